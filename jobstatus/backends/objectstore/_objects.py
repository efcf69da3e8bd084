"""The object layer: what the store asks of a folder of job objects, whatever the filesystem.

:class:`Objects` reads and writes whole objects (``<folder>/<job_id>.json``) with their stamp
(``updated_at``), their version and, where the filesystem keeps custom metadata, the record's
``expires_at``. It raises :class:`ObjectMissing`, :class:`ObjectChanged` (a conditional write
lost) and :class:`~jobstatus.StorageError` (anything else, with secrets scrubbed), and knows
nothing of job records beyond their ids: the store decides, the object layer carries out.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Collection, Mapping
from contextlib import suppress
from typing import Any, ClassVar

from jobstatus.errors import InvalidRequest, StorageError
from jobstatus.record import check_job_id

__all__ = [
    "EXPIRY_METADATA_KEY",
    "STAMP_METADATA_KEY",
    "SUFFIX",
    "Entry",
    "Head",
    "Item",
    "ObjectChanged",
    "ObjectMissing",
    "Objects",
    "StoredObject",
    "job_id_of",
    "object_metadata",
    "reason",
]

#: The metadata key holding ``updated_at`` (``x-amz-meta-updated-at`` on S3).
STAMP_METADATA_KEY = "updated-at"
#: The metadata key holding the record's ``expires_at`` in epoch seconds, when it has one
#: (``x-amz-meta-expires-at`` on S3), so that expiry is known without reading the document.
EXPIRY_METADATA_KEY = "expires-at"

SUFFIX = ".json"


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """An object as read: its bytes, its stamp and its version (changes with its bytes)."""

    data: bytes
    stamp: float
    version: str


@dataclasses.dataclass(frozen=True)
class Written:
    """What a write stored: the stamp as the filesystem keeps it, and the new version."""

    stamp: float
    version: str


@dataclasses.dataclass(frozen=True)
class Head:
    """An object's stamp and expiry, asked without its body. ``expiry_known`` is False when
    only the document can tell (an object written by something else than this store, or a
    filesystem without custom metadata)."""

    stamp: float
    expiry: float | None
    expiry_known: bool


@dataclasses.dataclass(frozen=True)
class Item:
    """An object to write as it is given (restore): bytes, stamp, expiry."""

    job_id: str
    data: bytes
    stamp: float
    expiry: float | None


@dataclasses.dataclass(frozen=True)
class Entry:
    """A listed object and the bounds its ``updated_at`` is known to lie within."""

    job_id: str
    earliest: float
    latest: float

    def straddles(self, bound: float) -> bool:
        """True when the listing cannot tell on which side of ``bound`` the stamp lies."""
        return self.earliest < bound <= self.latest

    def placed(self, stamp: float) -> Entry:
        """This entry with its exact stamp."""
        return Entry(self.job_id, stamp, stamp)


class ObjectMissing(Exception):
    """The object does not exist."""


class ObjectChanged(Exception):
    """A conditional write found the object changed (or created) since it was read."""


class Objects:
    """Reads and writes the job objects of one folder; see the module's docstring."""

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
            self.forked()
        return self._fs

    def forked(self) -> None:
        """Drop what belonged to the parent process; called once in a forked child."""

    def failure(self, action: str, job_id: str | None, exc: BaseException) -> StorageError:
        """A StorageError naming what failed and why, with any secret scrubbed out."""
        what = f"jobs/{job_id}{SUFFIX}" if job_id is not None else "jobs/"
        return self.scrubbed(f"cannot {action} {what} in {self.where}: {reason(exc)}")

    def scrubbed(self, message: str) -> StorageError:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return StorageError(message)

    # -- what each filesystem implements ---------------------------------------------------

    def read(self, job_id: str) -> StoredObject:
        raise NotImplementedError

    def read_many(self, job_ids: list[str]) -> dict[str, StoredObject]:
        """The objects that exist, by job id (missing ones are left out)."""
        raise NotImplementedError

    def heads(self, job_ids: list[str]) -> dict[str, Head]:
        """Stamps and expiries of the objects that exist, asked without their bodies."""
        raise NotImplementedError

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
        """Write the whole object with its stamp and expiry. ``if_match`` (a version) and
        ``if_absent`` make the write conditional where the filesystem can
        (:attr:`conditional`); a lost condition raises :class:`ObjectChanged`."""
        raise NotImplementedError

    def restore(self, items: list[Item]) -> None:
        """Write each object exactly as given, stamp included."""
        raise NotImplementedError

    def scan(self) -> list[Entry]:
        """Every job object in the folder, from a fresh listing (none for a missing folder)."""
        raise NotImplementedError

    def delete(self, job_id: str) -> bool:
        raise NotImplementedError

    def delete_many(self, job_ids: list[str]) -> int:
        raise NotImplementedError

    def exists(self) -> bool:
        """True when the container (bucket, or folder where there are no buckets) is there."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


def object_metadata(stamp: float, expiry: float | None) -> dict[str, str]:
    """The custom metadata written with an object."""
    metadata = {STAMP_METADATA_KEY: repr(stamp)}
    if expiry is not None:
        metadata[EXPIRY_METADATA_KEY] = repr(expiry)
    return metadata


def metadata_time(metadata: Mapping[str, Any] | None, key: str) -> float | None:
    """A finite number of seconds kept under ``key``, or None."""
    text = (metadata or {}).get(key)
    if text is None:
        return None
    with suppress(TypeError, ValueError):
        value = float(text)
        if math.isfinite(value):
            return value
    return None


def metadata_head(metadata: Mapping[str, Any] | None, fallback_stamp: float) -> Head:
    """The head that custom metadata gives: with our stamp there, the expiry is known (it is
    written with every stamp); without it the object was written by something else."""
    stamp = metadata_time(metadata, STAMP_METADATA_KEY)
    if stamp is None:
        return Head(fallback_stamp, None, expiry_known=False)
    return Head(stamp, metadata_time(metadata, EXPIRY_METADATA_KEY), expiry_known=True)


def job_id_of(name: str) -> str | None:
    """The job id of an object name in ``jobs/``, or None for anything else there."""
    if not name.endswith(SUFFIX):
        return None
    try:
        return check_job_id(name[: -len(SUFFIX)])
    except InvalidRequest:
        return None


def _client_error(exc: BaseException) -> Any:
    """The botocore ClientError behind an exception (its ``response`` names the S3 error)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, Mapping) and "Error" in response:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of an exception (``NoSuchKey``, ``PreconditionFailed``...), if any."""
    client = _client_error(exc)
    if client is None:
        return None
    code = client.response["Error"].get("Code")
    return None if code is None else str(code)


def reason(exc: BaseException) -> str:
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
