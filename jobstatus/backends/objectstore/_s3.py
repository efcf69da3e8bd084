"""S3: one request per read, conditional writes, stamps and expiry in object metadata.

The requests go through the aiobotocore client that s3fs's public ``set_session()`` and
``get_s3()`` hand out, so they use the filesystem's credentials, endpoint, region and botocore
configuration (its retries: ``config_kwargs.retries``), and none of fsspec's caches. They run on
the filesystem's event loop; s3fs's ``s3_additional_kwargs`` (server-side encryption...) and
``requester_pays`` are sent with every operation that takes them.

Each request, botocore's retries included (and a read's body with it), ends within ``timeout``
seconds: past that it is cancelled, and the call fails with :class:`NoAnswer` naming the
timeout (a :class:`~jobstatus.StorageError` for the store's caller). Retries that fit run; a
silent endpoint costs one timeout, however many attempts botocore would make.

- ``read`` is one GET; the version is the object's ETag.
- ``write`` is one PUT carrying the stamp (and the expiry) as metadata, conditional on the
  ETag read (``If-Match``) or on there being no object (``If-None-Match: *``) when asked: S3
  refuses a write that lost the race (412), which is what makes the store's checks atomic.
- ``restore`` writes a one-part multipart upload, whose ETag ends in ``-1``, so that a listing
  shows which objects carry a stamp unrelated to their ``LastModified``.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

import fsspec.asyn

from jobstatus.backends.objectstore._objects import (
    SUFFIX,
    Entry,
    Head,
    Item,
    ObjectChanged,
    ObjectMissing,
    Objects,
    StoredObject,
    Written,
    error_code,
    job_id_of,
    metadata_head,
    object_metadata,
)
from jobstatus.errors import InvalidRequest, StorageError

__all__ = ["NoAnswer", "S3Objects", "is_s3"]

T = TypeVar("T")

_CONCURRENCY = 16  # requests in flight when many objects are read, asked or written
_BULK_DELETE = 1000  # keys per S3 DeleteObjects request, its maximum
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class NoAnswer(Exception):
    """A request got no answer within the store's timeout, and was cancelled. (Not a
    ``TimeoutError``: fsspec would put its own, without a message, in its place.)"""


def is_s3(fs: Any) -> bool:
    """True for an s3fs filesystem (s3fs is then imported already: nothing is imported here)."""
    s3fs = sys.modules.get("s3fs")
    return s3fs is not None and isinstance(fs, s3fs.S3FileSystem)


def _etag(response: Mapping[str, Any]) -> str:
    """The version of an object: its ETag without the quotes."""
    return str(response["ETag"]).strip('"')


def _head_of(response: Mapping[str, Any]) -> Head:
    modified: datetime = response["LastModified"]
    return metadata_head(response.get("Metadata"), modified.timestamp())


class S3Objects(Objects):
    """The job objects under ``s3://<bucket>/<prefix>/``."""

    conditional = True

    def __init__(
        self,
        fs: Any,
        folder: str,
        where: str,
        secrets: Collection[str],
        clock_skew: float,
        timeout: float,
    ) -> None:
        super().__init__(fs, folder, where, secrets)
        self.timeout = timeout
        bucket, _, prefix = folder.strip("/").partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.clock_skew = clock_skew
        self._clients: list[Any] = []  # every client this layer used, closed by close()
        self._extra: dict[str, dict[str, Any]] = {}  # operation -> additional parameters

    def forked(self) -> None:
        self._clients = []  # the parent's, on the parent's loop

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}{job_id}{SUFFIX}"

    # -- requests --------------------------------------------------------------------------

    async def _client(self) -> Any:
        fs = self.fs
        await fs.set_session()
        client = await fs.get_s3(self.bucket)
        if not any(client is seen for seen in self._clients):
            self._clients.append(client)
        return client

    def _additional(self, client: Any, operation: str) -> dict[str, Any]:
        """The filesystem's request-wide parameters that ``operation`` takes."""
        extra = self._extra.get(operation)
        if extra is None:
            fs = self.fs
            wanted = dict(fs.s3_additional_kwargs or {})
            if fs.requester_pays:
                wanted["RequestPayer"] = "requester"
            model = client.meta.service_model.operation_model(
                client.meta.method_to_api_mapping[operation]
            )
            members = model.input_shape.members if model.input_shape is not None else {}
            extra = self._extra[operation] = {k: v for k, v in wanted.items() if k in members}
        return extra

    async def _request(self, client: Any, operation: str, **params: Any) -> Any:
        method = getattr(client, operation)
        return await method(**{**self._additional(client, operation), **params})

    async def _bounded(self, request: Coroutine[Any, Any, T]) -> T:
        """``request``, cancelled once it took ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(request, self.timeout)
        except asyncio.TimeoutError:
            raise NoAnswer(f"no answer within {self.timeout:g} s") from None

    async def _call(self, operation: str, **params: Any) -> Any:
        # The client first, outside the clock: making one (the first time) parses botocore's
        # service model, work of this process, not a wait on the network.
        client = await self._client()
        return await self._bounded(self._request(client, operation, **params))

    async def _object_call(self, operation: str, job_id: str, **params: Any) -> Any:
        return await self._call(operation, Bucket=self.bucket, Key=self._key(job_id), **params)

    def _run(
        self, action: str, job_id: str | None, coro: Callable[[], Coroutine[Any, Any, T]]
    ) -> T:
        try:
            result: T = fsspec.asyn.sync(self.fs.loop, coro)
        except (ObjectMissing, ObjectChanged, StorageError, InvalidRequest):
            raise
        except Exception as exc:
            raise self._translate(action, job_id, exc) from exc
        return result

    def _translate(self, action: str, job_id: str | None, exc: Exception) -> Exception:
        code = error_code(exc)
        if code in _CONFLICT_CODES:
            return ObjectChanged(code)
        if code in _MISSING_CODES:
            return ObjectMissing(job_id)
        return self.failure(action, job_id, exc)

    async def _each(
        self, action: str, job_ids: list[str], one: Callable[[str], Coroutine[Any, Any, T]]
    ) -> dict[str, T]:
        """Run ``one`` for every id, a few at a time; leave out the missing ones."""
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def guarded(job_id: str) -> T:
            async with limit:
                return await one(job_id)

        results = await asyncio.gather(*(guarded(j) for j in job_ids), return_exceptions=True)
        found: dict[str, T] = {}
        for job_id, result in zip(job_ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failure = self._translate(action, job_id, result)
                if isinstance(failure, ObjectMissing):
                    continue
                raise failure from result
            found[job_id] = result
        return found

    # -- reading ---------------------------------------------------------------------------

    async def _get(self, job_id: str) -> StoredObject:
        client = await self._client()
        return await self._bounded(self._download(client, job_id))

    async def _download(self, client: Any, job_id: str) -> StoredObject:
        response = await self._request(
            client, "get_object", Bucket=self.bucket, Key=self._key(job_id)
        )
        body = response["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        return StoredObject(data, _head_of(response).stamp, _etag(response))

    async def _head(self, job_id: str) -> Head:
        return _head_of(await self._object_call("head_object", job_id))

    def read(self, job_id: str) -> StoredObject:
        return self._run("read", job_id, lambda: self._get(job_id))

    def read_many(self, job_ids: list[str]) -> dict[str, StoredObject]:
        return self._run("read", None, lambda: self._each("read", job_ids, self._get))

    def heads(self, job_ids: list[str]) -> dict[str, Head]:
        return self._run("read", None, lambda: self._each("read", job_ids, self._head))

    def scan(self) -> list[Entry]:
        return self._run("list", None, self._scan)

    async def _scan(self) -> list[Entry]:
        entries: list[Entry] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call(
                "list_objects_v2", Bucket=self.bucket, Prefix=self.prefix, Delimiter="/", **token
            )
            for item in page.get("Contents", ()):
                job_id = job_id_of(item["Key"][len(self.prefix) :])
                if job_id is None:
                    continue
                modified = item["LastModified"].timestamp()
                # multipart (restored): stamped any time up to its LastModified
                earliest = -math.inf if "-" in item.get("ETag", "") else modified - self.clock_skew
                entries.append(Entry(job_id, earliest, modified + self.clock_skew))
            if not page.get("IsTruncated"):
                return entries
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def exists(self) -> bool:
        async def head_bucket() -> bool:
            try:
                await self._call("head_bucket", Bucket=self.bucket)
            except Exception as exc:
                if error_code(exc) in _NO_BUCKET_CODES:
                    return False
                raise
            return True

        return self._run("read", None, head_bucket)

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        job_id: str,
        data: bytes,
        stamp: float,
        expiry: float | None,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Written:
        conditions = (
            {"IfMatch": f'"{if_match}"'}
            if if_match is not None
            else {"IfNoneMatch": "*"}
            if if_absent
            else {}
        )

        async def put() -> Written:
            response = await self._object_call(
                "put_object",
                job_id,
                Body=data,
                ContentType="application/json",
                Metadata=object_metadata(stamp, expiry),
                **conditions,
            )
            return Written(stamp, _etag(response))

        return self._run("write", job_id, put)

    def restore(self, items: list[Item]) -> None:
        latest = time.time() + self.clock_skew
        for item in items:
            if item.stamp > latest:
                raise InvalidRequest(
                    f"cannot restore {item.job_id!r} with updated_at {item.stamp!r}, later than "
                    "now: an object store keeps stamps up to the time they are written"
                )
        by_id = {item.job_id: item for item in items}

        async def put(job_id: str) -> None:
            await self._put_marked(by_id[job_id])

        self._run("write", None, lambda: self._each("write", list(by_id), put))

    async def _put_marked(self, item: Item) -> None:
        """One-part multipart upload: its ETag (``…-1``) marks the stamp as unrelated to
        ``LastModified`` in every listing."""
        upload = await self._object_call(
            "create_multipart_upload",
            item.job_id,
            ContentType="application/json",
            Metadata=object_metadata(item.stamp, item.expiry),
        )
        upload_id = upload["UploadId"]
        try:
            part = await self._object_call(
                "upload_part", item.job_id, UploadId=upload_id, PartNumber=1, Body=item.data
            )
            await self._object_call(
                "complete_multipart_upload",
                item.job_id,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
        except NoAnswer:
            # The endpoint is not answering: an abort would wait as long, and fail the same
            # way (a bucket's lifecycle rule for incomplete uploads removes the part).
            raise
        except BaseException:
            with suppress(Exception):
                await self._object_call("abort_multipart_upload", item.job_id, UploadId=upload_id)
            raise

    def delete(self, job_id: str) -> bool:
        async def delete() -> bool:
            try:
                await self._head(job_id)
            except Exception as exc:
                if isinstance(self._translate("delete", job_id, exc), ObjectMissing):
                    return False
                raise
            await self._object_call("delete_object", job_id)
            return True

        return self._run("delete", job_id, delete)

    def delete_many(self, job_ids: list[str]) -> int:
        async def delete(chunk: list[str]) -> int:
            response = await self._call(
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(j)} for j in chunk], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise self.failure(
                    "delete",
                    None,
                    RuntimeError(
                        f"{len(errors)} of {len(chunk)} objects not deleted, "
                        f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    ),
                )
            return len(chunk)

        async def delete_all() -> int:
            deleted = 0
            for start in range(0, len(job_ids), _BULK_DELETE):
                deleted += await delete(job_ids[start : start + _BULK_DELETE])
            return deleted

        return self._run("delete", None, delete_all)

    def close(self) -> None:
        """Close the connections of the clients this layer used (in this process)."""
        clients, self._clients = self._clients, []
        if not clients:
            return

        async def close_all() -> None:
            for client in clients:
                with suppress(Exception):
                    await client.close()

        with suppress(Exception):
            fsspec.asyn.sync(self.fs.loop, close_all)
