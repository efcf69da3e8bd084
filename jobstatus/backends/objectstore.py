"""``s3://bucket/prefix``, ``gs://…``, ``az://…``, ``fsspec+PROTO://…``: one object per job.

A record lives in ``<prefix>/jobs/<job_id>.json`` and holds exactly the bytes the filesystem
backend writes (``record.to_json()``), so a data folder synced into a bucket is read as is, and
the other way round.

- ``updated_at`` travels with the object: S3 keeps it in the object's metadata
  (``x-amz-meta-updated-at``), written by the same request as the body and read by the same
  GET, so ``restore`` gives back exactly the stamp it was given. An object without it (synced
  from a folder) is stamped with its ``LastModified``.
- On S3 the s3fs client is called directly, past fsspec's caches: ``get`` is one GET, a final
  or forced ``put`` one PUT, any other ``put`` one GET and one PUT conditional on the ETag read
  (``If-Match``, or ``If-None-Match: *`` for a new job), retried when another writer got there
  first. That keeps the final-state rule atomic across processes.
- ``list`` and ``purge`` decide from the listing where they can. A ``put`` stamps the writer's
  clock, which is within :data:`DEFAULT_CLOCK_SKEW` of the object's ``LastModified``; a
  ``restore`` writes a one-part multipart upload, whose ETag ends in ``-1``, so that the
  listing shows which objects carry a stamp unrelated to their ``LastModified``. Only objects
  whose stamp the listing cannot place on one side of a bound are asked for it (HEAD); objects
  outside the window are never downloaded.
- Other fsspec filesystems take the generic path: the stamp is the file's modification time
  (set exactly on the memory and local filesystems, as custom metadata where the filesystem
  has ``setxattrs``), and the final-state rule is a read-check-write under a lock of this
  process, since fsspec offers no conditional write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import importlib
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Collection, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

import fsspec
import fsspec.asyn

from jobstatus.backends import missing_extra
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.store import BaseStore, keeps_stored, normalize_status

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "NUMERIC_OPTIONS",
    "STAMP_METADATA_KEY",
    "ObjectStore",
    "open_object_store",
    "parse_store_url",
]

log = logging.getLogger(__name__)

#: The metadata key holding ``updated_at`` (``x-amz-meta-updated-at`` on S3).
STAMP_METADATA_KEY = "updated-at"

#: How far apart a writer's clock and the object store's ``LastModified`` may be, in seconds,
#: request time included. Listing and purging read the stamp of objects this close to a bound.
DEFAULT_CLOCK_SKEW = 60.0

#: Query parameters turned into numbers (by the last part of a dotted name); every other
#: value stays a string, but ``true`` and ``false`` become booleans.
NUMERIC_OPTIONS: Mapping[str, Callable[[str], float]] = {
    "max_concurrency": int,
    "default_block_size": int,
    "block_size": int,
    "max_pool_connections": int,
    "max_attempts": int,
    "total_max_attempts": int,
    "max_paths": int,
    "connect_timeout": float,
    "read_timeout": float,
    "timeout": float,
    "requests_timeout": float,
    "listings_expiry_time": float,
}

# Defaults under the query string and the keyword options: each store gets its own filesystem
# (closing it closes nobody else's connections) and fsspec keeps no directory listings.
_DEFAULT_OPTIONS: Mapping[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}

# The pip extra and the package behind each fsspec protocol.
_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "abfss": ("azure", "adlfs"),
    "adl": ("azure", "adlfs"),
}
_BUCKET_PROTOCOLS = frozenset(_EXTRAS)
_SECRET_OPTIONS = frozenset(
    {
        "secret",
        "token",
        "password",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
        "connection_string",
        "credential",
    }
)

_SUFFIX = ".json"
_LOCK_STRIPES = 64
_WRITE_ATTEMPTS = 20  # conditional writes retried while other writers keep winning
_CONCURRENCY = 16  # requests in flight when many objects are read, asked or written
_RESTORE_CHUNK = 100
_BULK_DELETE = 1000  # keys per S3 DeleteObjects request, its maximum
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})

T = TypeVar("T")
_Items = list[tuple[str, bytes, float]]  # (job id, body, stamp) to write
_Heap = list[tuple[float, int, JobRecord]]


# -- what the object layer hands the store --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Object:
    data: bytes
    stamp: float
    version: str | None  # the ETag a conditional write names; None where there is none


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A listed object and the bounds its ``updated_at`` is known to lie within."""

    job_id: str
    earliest: float
    latest: float

    def straddles(self, bound: float) -> bool:
        """True when the listing cannot tell on which side of ``bound`` the stamp lies."""
        return self.earliest < bound <= self.latest


_Entries = list[_Entry]


class _Missing(Exception):
    """The object does not exist."""


class _Conflict(Exception):
    """A conditional write found the object changed."""


class _Objects:
    """Reads and writes job objects in one folder; raises _Missing, _Conflict, StorageError."""

    #: True when writes can be made conditional on what was read (no process lock needed).
    conditional: ClassVar[bool] = False

    def __init__(self, fs: Any, folder: str, where: str, secrets: Collection[str]) -> None:
        self._fs = fs
        self._pid = os.getpid()
        self.folder = folder
        self.where = where
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    @property
    def fs(self) -> Any:
        """The filesystem, made again in a forked child (fsspec's async loop is not fork-safe)."""
        if self._pid != os.getpid():
            self._fs = type(self._fs)(**self._fs.storage_options)
            self._pid = os.getpid()
        return self._fs

    def failure(self, action: str, job_id: str | None, exc: BaseException) -> StorageError:
        """A StorageError naming what failed and why, with any secret scrubbed out."""
        what = f"jobs/{job_id}{_SUFFIX}" if job_id is not None else "jobs/"
        message = f"cannot {action} {what} in {self.where}: {_reason(exc)}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return StorageError(message)

    def read(self, job_id: str) -> _Object:
        raise NotImplementedError

    def read_many(self, job_ids: list[str]) -> dict[str, _Object]:
        """The objects that exist, by job id (missing ones are left out)."""
        raise NotImplementedError

    def write(
        self,
        job_id: str,
        data: bytes,
        stamp: float,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> float:
        """Write the whole object and its stamp; return the stamp as stored."""
        raise NotImplementedError

    def restore(self, items: list[tuple[str, bytes, float]]) -> None:
        raise NotImplementedError

    def stamps(self, job_ids: list[str]) -> dict[str, float]:
        """The exact stamps of the objects that exist, asked without their bodies."""
        raise NotImplementedError

    def scan(self) -> list[_Entry]:
        raise NotImplementedError

    def delete(self, job_id: str) -> bool:
        raise NotImplementedError

    def delete_many(self, job_ids: list[str]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


# -- S3, through the s3fs client -----------------------------------------------------------


class _S3Objects(_Objects):
    """S3 requests made with s3fs's client (its retries and credentials), past its caches."""

    conditional = True

    def __init__(
        self, fs: Any, folder: str, where: str, secrets: Collection[str], clock_skew: float
    ) -> None:
        super().__init__(fs, folder, where, secrets)
        bucket, _, prefix = folder.strip("/").partition("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.clock_skew = clock_skew

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}{job_id}{_SUFFIX}"

    def _call(self, method: str, **params: Any) -> Coroutine[Any, Any, Any]:
        call: Callable[..., Coroutine[Any, Any, Any]] = self.fs._call_s3
        return call(method, Bucket=self.bucket, **params)

    def _run(
        self, action: str, job_id: str | None, coro: Callable[[], Coroutine[Any, Any, T]]
    ) -> T:
        try:
            result: T = fsspec.asyn.sync(self.fs.loop, coro)
        except (_Missing, _Conflict, StorageError):
            raise
        except Exception as exc:
            raise self._translate(action, job_id, exc) from exc
        return result

    def _translate(self, action: str, job_id: str | None, exc: Exception) -> Exception:
        code = _error_code(exc)
        if code in _CONFLICT_CODES:
            return _Conflict(code)
        if code in _MISSING_CODES or (code is None and isinstance(exc, FileNotFoundError)):
            return _Missing(job_id)
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
                if isinstance(failure, _Missing):
                    continue
                raise failure from result
            found[job_id] = result
        return found

    # reading

    async def _get(self, job_id: str) -> _Object:
        response = await self._call("get_object", Key=self._key(job_id))
        body = response["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        return _Object(data, _s3_stamp(response), response.get("ETag"))

    async def _head(self, job_id: str) -> float:
        return _s3_stamp(await self._call("head_object", Key=self._key(job_id)))

    def read(self, job_id: str) -> _Object:
        return self._run("read", job_id, lambda: self._get(job_id))

    def read_many(self, job_ids: list[str]) -> dict[str, _Object]:
        return self._run("read", None, lambda: self._each("read", job_ids, self._get))

    def stamps(self, job_ids: list[str]) -> dict[str, float]:
        return self._run("read", None, lambda: self._each("read", job_ids, self._head))

    def scan(self) -> list[_Entry]:
        return self._run("list", None, self._scan)

    async def _scan(self) -> list[_Entry]:
        entries: list[_Entry] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call("list_objects_v2", Prefix=self.prefix, Delimiter="/", **token)
            for item in page.get("Contents", ()):
                job_id = _job_id_of(item["Key"][len(self.prefix) :])
                if job_id is None:
                    continue
                modified = item["LastModified"].timestamp()
                if "-" in item.get("ETag", ""):  # multipart: restored, stamped any time before
                    entries.append(_Entry(job_id, -math.inf, modified + self.clock_skew))
                else:
                    entries.append(
                        _Entry(job_id, modified - self.clock_skew, modified + self.clock_skew)
                    )
            if not page.get("IsTruncated"):
                return entries
            token = {"ContinuationToken": page["NextContinuationToken"]}

    # writing

    def write(
        self,
        job_id: str,
        data: bytes,
        stamp: float,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> float:
        conditions = (
            {"IfMatch": if_match}
            if if_match is not None
            else {"IfNoneMatch": "*"}
            if if_absent
            else {}
        )

        async def put() -> None:
            await self._call(
                "put_object",
                Key=self._key(job_id),
                Body=data,
                ContentType="application/json",
                Metadata={STAMP_METADATA_KEY: repr(stamp)},
                **conditions,
            )

        self._run("write", job_id, put)
        return stamp

    def restore(self, items: list[tuple[str, bytes, float]]) -> None:
        latest = time.time() + self.clock_skew
        for job_id, _, stamp in items:
            if stamp > latest:
                raise InvalidRequest(
                    f"cannot restore {job_id!r} with updated_at {stamp!r}, later than now: "
                    "an object store keeps stamps up to the time they are written"
                )
        by_id = {job_id: (data, stamp) for job_id, data, stamp in items}
        self._run(
            "write",
            None,
            lambda: self._each(
                "write", list(by_id), lambda job_id: self._put_marked(job_id, *by_id[job_id])
            ),
        )

    async def _put_marked(self, job_id: str, data: bytes, stamp: float) -> None:
        """One-part multipart upload: its ETag (``…-1``) marks the stamp as unrelated to
        ``LastModified`` in every listing."""
        key = self._key(job_id)
        upload = await self._call(
            "create_multipart_upload",
            Key=key,
            ContentType="application/json",
            Metadata={STAMP_METADATA_KEY: repr(stamp)},
        )
        upload_id = upload["UploadId"]
        try:
            part = await self._call(
                "upload_part", Key=key, UploadId=upload_id, PartNumber=1, Body=data
            )
            await self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
        except BaseException:
            with suppress(Exception):
                await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            raise

    def delete(self, job_id: str) -> bool:
        async def delete() -> bool:
            try:
                await self._head(job_id)
            except Exception as exc:
                if isinstance(self._translate("delete", job_id, exc), _Missing):
                    return False
                raise
            await self._call("delete_object", Key=self._key(job_id))
            return True

        return self._run("delete", job_id, delete)

    def delete_many(self, job_ids: list[str]) -> int:
        async def delete(chunk: list[str]) -> int:
            response = await self._call(
                "delete_objects",
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
        fs = self._fs
        creator = getattr(fs, "_s3creator", None)
        if creator is None or self._pid != os.getpid():
            return
        with suppress(Exception):
            type(fs).close_session(fs.loop, creator)
        fs._s3 = None
        fs._s3creator = None


def _s3_stamp(response: Mapping[str, Any]) -> float:
    """The stamp in the object's metadata, else its LastModified."""
    text = (response.get("Metadata") or {}).get(STAMP_METADATA_KEY)
    if text is not None:
        with suppress(ValueError):
            stamp = float(text)
            if math.isfinite(stamp):
                return stamp
    modified: datetime = response["LastModified"]
    return modified.timestamp()


# -- any other fsspec filesystem -------------------------------------------------------------


class _FsspecObjects(_Objects):
    """The generic path: fsspec's file API, the stamp as the file's modification time."""

    def _path(self, job_id: str) -> str:
        return f"{self.folder}/{job_id}{_SUFFIX}"

    def _guarded(self, action: str, job_id: str | None, call: Callable[[], T]) -> T:
        try:
            return call()
        except (_Missing, _Conflict, StorageError):
            raise
        except FileNotFoundError as exc:
            raise _Missing(job_id) from exc
        except Exception as exc:
            raise self.failure(action, job_id, exc) from exc

    def read(self, job_id: str) -> _Object:
        path = self._path(job_id)

        def read() -> _Object:
            data = self.fs.cat_file(path)
            return _Object(bytes(data), _info_stamp(self.fs, self.fs.info(path)), None)

        return self._guarded("read", job_id, read)

    def read_many(self, job_ids: list[str]) -> dict[str, _Object]:
        found = {}
        for job_id in job_ids:
            with suppress(_Missing):
                found[job_id] = self.read(job_id)
        return found

    def stamps(self, job_ids: list[str]) -> dict[str, float]:
        found = {}
        for job_id in job_ids:
            with suppress(_Missing):
                found[job_id] = self._guarded("read", job_id, partial(self._stamp, job_id))
        return found

    def _stamp(self, job_id: str) -> float:
        return _info_stamp(self.fs, self.fs.info(self._path(job_id)))

    def _pipe(self, job_id: str, data: bytes) -> None:
        path = self._path(job_id)
        try:
            self.fs.pipe_file(path, data)
        except FileNotFoundError:  # a local folder that does not exist yet
            self.fs.makedirs(self.folder, exist_ok=True)
            self.fs.pipe_file(path, data)

    def write(
        self,
        job_id: str,
        data: bytes,
        stamp: float,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> float:
        def write() -> float:
            self._pipe(job_id, data)
            kept = _keep_stamp(self.fs, self._path(job_id), stamp)
            if kept is None:  # the filesystem stamps the file itself: read back what it chose
                return _info_stamp(self.fs, self.fs.info(self._path(job_id)))
            return kept

        return self._guarded("write", job_id, write)

    def restore(self, items: list[tuple[str, bytes, float]]) -> None:
        for job_id, data, stamp in items:

            def write(job_id: str = job_id, data: bytes = data, stamp: float = stamp) -> None:
                self._pipe(job_id, data)
                if _keep_stamp(self.fs, self._path(job_id), stamp) is None:
                    raise StorageError(
                        f"{self.where}: this filesystem cannot keep a given updated_at "
                        "(no settable modification time, no setxattrs); restore needs one"
                    )

            self._guarded("write", job_id, write)

    def scan(self) -> list[_Entry]:
        def scan() -> list[_Entry]:
            self.fs.invalidate_cache(self.folder)
            try:
                listing = self.fs.ls(self.folder, detail=True)
            except FileNotFoundError:
                return []
            entries = []
            for info in listing:
                job_id = _job_id_of(str(info["name"]).rsplit("/", 1)[-1])
                if info.get("type") == "file" and job_id is not None:
                    stamp = _info_stamp(self.fs, info)
                    entries.append(_Entry(job_id, stamp, stamp))
            return entries

        return self._guarded("list", None, scan)

    def delete(self, job_id: str) -> bool:
        try:
            self._guarded("delete", job_id, lambda: self.fs.rm_file(self._path(job_id)))
        except _Missing:
            return False
        return True

    def delete_many(self, job_ids: list[str]) -> int:
        return sum(self.delete(job_id) for job_id in job_ids)


def _keep_stamp(fs: Any, path: str, stamp: float) -> float | None:
    """Make ``stamp`` the file's modification time; return it as the filesystem keeps it,
    or None when this filesystem has no way to set it."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "memory" in protocols:
        when = datetime.fromtimestamp(stamp, tz=timezone.utc)  # microseconds
        file = fs.store[fs._strip_protocol(path)]
        file.created = file.modified = when
        return when.timestamp()
    if "file" in protocols or "local" in protocols:
        local = fs._strip_protocol(path)
        os.utime(local, ns=(round(stamp * 1e9), round(stamp * 1e9)))
        return os.stat(local).st_mtime_ns / 1e9
    setxattrs = getattr(fs, "setxattrs", None)
    if setxattrs is None:
        return None
    try:
        setxattrs(path, **{STAMP_METADATA_KEY: repr(stamp)})
    except NotImplementedError:
        return None
    return stamp


_MTIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created")


def _info_stamp(fs: Any, info: Mapping[str, Any]) -> float:
    """The stamp of a file from its fsspec info: custom metadata first, then its mtime."""
    metadata = info.get("metadata")
    if isinstance(metadata, Mapping) and STAMP_METADATA_KEY in metadata:
        with suppress(TypeError, ValueError):
            return float(metadata[STAMP_METADATA_KEY])
    for key in _MTIME_KEYS:
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        with suppress(ValueError):
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    raise StorageError(f"{fs.protocol}: the listing gives no modification time for {info['name']}")


# -- the store ---------------------------------------------------------------------------------


class ObjectStore(BaseStore):
    """Records as ``<root>/jobs/<job_id>.json`` on an fsspec filesystem; S3 takes the fast path.

    Args:
        fs: an fsspec filesystem; an s3fs one gets single-request reads and writes and
            conditional writes, any other the generic fsspec path.
        root: the folder (``bucket/prefix`` on object stores) holding ``jobs/``.
        clock_skew: how far a writer's clock may be from the store's, in seconds.
        close_fs: close the filesystem's connections in :meth:`close` (``open_store`` makes
            a filesystem for each store and sets it; one handed in stays open by default).
    """

    def __init__(
        self, fs: Any, root: str, *, clock_skew: float = DEFAULT_CLOCK_SKEW, close_fs: bool = False
    ) -> None:
        self.root = root.rstrip("/")
        self._close_fs = close_fs
        self.url = str(fs.unstrip_protocol(self.root))
        folder = f"{self.root}/jobs"
        secrets = _secret_values(getattr(fs, "storage_options", {}))
        if callable(getattr(fs, "_call_s3", None)):
            self._objects: _Objects = _S3Objects(fs, folder, self.url, secrets, clock_skew)
        else:
            self._objects = _FsspecObjects(fs, folder, self.url, secrets)
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem underneath."""
        return self._objects.fs

    def close(self) -> None:
        if self._close_fs:
            self._objects.close()

    @contextmanager
    def _guard(self, job_id: str) -> Iterator[None]:
        """Serialise this process's writes of one job where the store has no conditional
        write; where it has, the condition does the work and nothing is held."""
        if self._objects.conditional:
            yield
            return
        with self._locks[zlib.crc32(job_id.encode("utf-8")) % _LOCK_STRIPES]:
            yield

    def _record(self, job_id: str, obj: _Object) -> JobRecord:
        try:
            return JobRecord.from_json(obj.data, updated_at=obj.stamp)
        except InvalidRequest as exc:
            raise StorageError(
                f"jobs/{job_id}{_SUFFIX} in {self.url} is not a job record: {exc}"
            ) from exc

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        try:
            obj = self._objects.read(job_id)
        except _Missing:
            raise JobNotFound(job_id) from None
        return self._record(job_id, obj)

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        statuses = normalize_status(status)
        if limit is not None and limit <= 0:
            return
        floor = -math.inf if since is None else since
        entries = self._placed(self._objects.scan(), floor)
        candidates = sorted(
            (e for e in entries if e.latest >= floor), key=lambda e: e.latest, reverse=True
        )
        batch = len(candidates) if limit is None else max(limit, _CONCURRENCY)
        newest: _Heap = []  # a heap, newest on top
        yielded = 0
        for start in range(0, len(candidates), max(batch, 1)):
            chunk = candidates[start : start + batch]
            objects = self._objects.read_many([e.job_id for e in chunk])
            for n, entry in enumerate(chunk):
                obj = objects.get(entry.job_id)
                if obj is None or obj.stamp < floor:  # deleted since, or outside after all
                    continue
                try:
                    record = self._record(entry.job_id, obj)
                except StorageError as exc:
                    log.warning("skipping unreadable job object while listing: %s", exc)
                    continue
                if statuses is None or record.job_status in statuses:
                    heapq.heappush(newest, (-obj.stamp, start + n, record))
            rest = candidates[start + batch :]
            bound = rest[0].latest if rest else -math.inf  # nothing unread is newer than this
            while newest and -newest[0][0] >= bound:
                yield heapq.heappop(newest)[2]
                yielded += 1
                if limit is not None and yielded >= limit:
                    return

    def _placed(self, entries: _Entries, bound: float) -> _Entries:
        """Entries whose stamp the listing cannot place against ``bound`` are asked for it."""
        unsure = [e.job_id for e in entries if e.straddles(bound)]
        if not unsure:
            return entries
        stamps = self._objects.stamps(unsure)
        placed = []
        for entry in entries:
            if not entry.straddles(bound):
                placed.append(entry)
            elif entry.job_id in stamps:  # else deleted since the listing
                stamp = stamps[entry.job_id]
                placed.append(_Entry(entry.job_id, stamp, stamp))
        return placed

    # -- writing -----------------------------------------------------------------------------

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        check_job_id(record.job_id)
        data = record.to_json().encode("utf-8")
        job_id = record.job_id
        with self._guard(job_id):
            if force or record.is_final:  # nothing stored can keep it out: one PUT
                stamp = self._objects.write(job_id, data, time.time())
                return dataclasses.replace(record, updated_at=stamp)
            for _ in range(_WRITE_ATTEMPTS):
                try:
                    stored = self._objects.read(job_id)
                except _Missing:
                    version, absent = None, True
                else:
                    kept = self._record(job_id, stored)
                    if keeps_stored(kept.job_status, record.job_status, force=False):
                        return kept
                    version, absent = stored.version, False
                try:
                    stamp = self._objects.write(
                        job_id, data, time.time(), if_match=version, if_absent=absent
                    )
                except (_Conflict, _Missing):
                    continue  # another writer (or a delete) came between the read and the write
                return dataclasses.replace(record, updated_at=stamp)
        raise StorageError(
            f"cannot write jobs/{job_id}{_SUFFIX} in {self.url}: it changed "
            f"under {_WRITE_ATTEMPTS} attempts in a row (too many writers)"
        )

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        chunk: _Items = []
        for record in records:
            check_job_id(record.job_id)
            stamp = time.time() if record.updated_at is None else float(record.updated_at)
            chunk.append((record.job_id, record.to_json().encode("utf-8"), stamp))
            if len(chunk) >= _RESTORE_CHUNK:
                count += self._restore(chunk)
                chunk = []
        return count + self._restore(chunk)

    def _restore(self, chunk: _Items) -> int:
        if not chunk:
            return 0
        if self._objects.conditional:
            self._objects.restore(chunk)
        else:
            for item in chunk:
                with self._guard(item[0]):
                    self._objects.restore([item])
        return len(chunk)

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        with self._guard(job_id):
            return self._objects.delete(job_id)

    def purge(self, *, older_than: float, status: str | Collection[str] | None = None) -> int:
        statuses = normalize_status(status)
        entries = self._objects.scan()
        if statuses is None:
            doomed = [e.job_id for e in self._placed(entries, older_than) if e.latest < older_than]
        else:  # the status is in the body: read every object that may be old enough
            maybe = [e.job_id for e in entries if e.earliest < older_than]
            doomed = []
            for job_id, obj in self._objects.read_many(maybe).items():
                if obj.stamp >= older_than:
                    continue
                try:
                    record = self._record(job_id, obj)
                except StorageError as exc:
                    log.warning("purge skipped an unreadable job object: %s", exc)
                    continue
                if record.job_status in statuses:
                    doomed.append(job_id)
        if self._objects.conditional:
            return self._objects.delete_many(doomed)
        deleted = 0
        for job_id in doomed:
            with self._guard(job_id):
                deleted += self._objects.delete(job_id)
        return deleted


# -- URLs and errors ---------------------------------------------------------------------------


def parse_store_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split a store URL into the fsspec URL and the storage options of its query string.

    ``fsspec+memory://b/p`` → ``memory://b/p``. Query values are percent-decoded (``+`` stays
    a plus, as AWS secret keys need); ``true``/``false`` become booleans, the options of
    :data:`NUMERIC_OPTIONS` numbers; a dotted name fills a nested option
    (``client_kwargs.region_name=eu-west-1``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"not an object-store URL: {url!r}")
    scheme = scheme.lower()
    if scheme == "fsspec" or scheme.startswith("fsspec+"):
        protocol = scheme.partition("+")[2]
        if not protocol:
            raise ConfigurationError("an fsspec URL names its protocol: fsspec+memory://bucket/p")
    else:
        protocol = scheme
    path, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for pair in filter(None, query.split("&")):
        name, has_value, raw = pair.partition("=")
        name = unquote(name)
        if not name or not has_value:
            raise ConfigurationError(f"a query parameter needs a name and a value: {name!r}")
        _set_option(options, name.split("."), _option_value(name, unquote(raw)))
    return f"{protocol}://{path}", options


def _option_value(name: str, raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    convert = NUMERIC_OPTIONS.get(name.rsplit(".", 1)[-1])
    if convert is None:
        return raw
    try:
        return convert(raw)
    except ValueError:
        raise ConfigurationError(f"the option {name!r} takes a number, got {raw!r}") from None


def _set_option(options: dict[str, Any], names: list[str], value: Any) -> None:
    *parents, last = names
    for name in parents:
        options = options.setdefault(name, {})
        if not isinstance(options, dict):
            raise ConfigurationError(f"the option {name!r} is given both as a value and a group")
    if last in options:
        raise ConfigurationError(f"the option {'.'.join(names)!r} is given twice")
    options[last] = value


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` wins, option by option, inside nested groups too."""
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merged(merged[name], value)
        else:
            merged[name] = value
    return merged


def _secret_values(options: Mapping[str, Any]) -> set[str]:
    found = set()
    for name, value in options.items():
        if isinstance(value, Mapping):
            found |= _secret_values(value)
        elif name.lower() in _SECRET_OPTIONS and isinstance(value, str):
            found.add(value)
    return found


def _job_id_of(name: str) -> str | None:
    """The job id of an object name in ``jobs/``, or None for anything else there."""
    if not name.endswith(_SUFFIX):
        return None
    try:
        return check_job_id(name[: -len(_SUFFIX)])
    except InvalidRequest:
        return None


def _client_error(exc: BaseException) -> Any:
    """The botocore ClientError behind an exception s3fs translated, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, Mapping) and "Error" in response:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _error_code(exc: BaseException) -> str | None:
    client = _client_error(exc)
    if client is None:
        return None
    code = client.response["Error"].get("Code")
    return None if code is None else str(code)


def _reason(exc: BaseException) -> str:
    """What went wrong, in a line: the S3 error code and HTTP status where there is one."""
    client = _client_error(exc)
    if client is not None:
        error = client.response.get("Error", {})
        status = client.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = error.get("Code"), error.get("Message") or str(client)
        if code is None or str(code) == str(status):  # a HEAD: no body, no error code
            return f"HTTP {status} {message}"
        return f"{code} (HTTP {status}): {message}"
    return f"{type(exc).__name__}: {exc}"


def open_object_store(url: str, **options: Any) -> ObjectStore:
    """Factory for ``s3://``, ``s3a://``, ``gs://``, ``gcs://``, ``az://``, ``abfs://``,
    ``abfss://`` and ``fsspec+PROTO://``; keyword options are fsspec storage options and win
    over the query string."""
    target, query_options = parse_store_url(url)
    protocol = target.partition("://")[0]
    storage_options = _merged(_merged(_DEFAULT_OPTIONS, query_options), options)
    extra, package = _EXTRAS.get(protocol, ("fsspec", None))
    try:
        if package is not None:  # fsspec knows some of these protocols only once installed
            importlib.import_module(package)
        fs, root = fsspec.url_to_fs(target, **storage_options)
    except ImportError as exc:
        raise missing_extra(extra, ImportError(str(exc), name=package or exc.name)) from exc
    except ValueError as exc:
        raise ConfigurationError(f"cannot open {protocol}:// with fsspec: {exc}") from exc
    except TypeError as exc:
        raise ConfigurationError(f"bad storage option for {protocol}://: {exc}") from exc
    if protocol in _BUCKET_PROTOCOLS and not str(root).strip("/"):
        raise ConfigurationError(f"name a bucket: {protocol}://bucket/prefix")
    return ObjectStore(fs, str(root), close_fs=True)
