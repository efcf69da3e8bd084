"""Any other fsspec filesystem: its public file API, no conditional writes.

- The version of an object is the hash of its bytes (:func:`jobstatus.store.version_of`), so it
  changes whenever the document does, whoever wrote it.
- The stamp is kept where the filesystem can keep it exactly: as custom metadata where it has
  ``setxattrs`` (Google Cloud Storage; the expiry goes there too), as the file's modification
  time on the local filesystem, and in this process's table for the memory filesystem (which
  lives in this process too, and offers no public way to set a time). Elsewhere a ``put`` is
  stamped with the modification time the filesystem chose, and ``restore`` is refused.
- Local files are written whole (a temporary file renamed over the old one); every other
  filesystem writes an object whole by itself.
- Writes are not conditional (fsspec has no such call): the store serialises a job's writes
  with a lock of this process and checks again under it.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping
from contextlib import suppress
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from jobstatus.backends.objectstore._objects import (
    STAMP_METADATA_KEY,
    SUFFIX,
    Entry,
    Head,
    Item,
    ObjectChanged,
    ObjectMissing,
    Objects,
    StoredObject,
    Written,
    job_id_of,
    metadata_head,
    object_metadata,
)
from jobstatus.backends.objectstore._url import BUCKET_PROTOCOLS
from jobstatus.errors import StorageError
from jobstatus.store import version_of

__all__ = ["FsspecObjects", "is_local"]

T = TypeVar("T")

_MTIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created")


class FsspecObjects(Objects):
    """The job objects of ``<root>/jobs`` on any fsspec filesystem."""

    def __init__(self, fs: Any, root: str, where: str, secrets: Collection[str]) -> None:
        super().__init__(fs, f"{root}/jobs", where, secrets)
        # what exists() looks for: the bucket on bucket filesystems, else the root folder
        bucket_protocol = not BUCKET_PROTOCOLS.isdisjoint(_protocols(fs))
        self.container = root.strip("/").partition("/")[0] if bucket_protocol else root

    def _path(self, job_id: str) -> str:
        return f"{self.folder}/{job_id}{SUFFIX}"

    def _guarded(self, action: str, job_id: str | None, call: Callable[[], T]) -> T:
        try:
            return call()
        except (ObjectMissing, ObjectChanged, StorageError):
            raise
        except FileNotFoundError as exc:
            raise ObjectMissing(job_id) from exc
        except Exception as exc:
            raise self.failure(action, job_id, exc) from exc

    # -- reading ---------------------------------------------------------------------------

    def _stamp(self, job_id: str, info: Mapping[str, Any]) -> float:
        """The stamp of the object from its info: what this store kept, else its mtime."""
        if _in_memory(self.fs):
            kept = _MEMORY_STAMPS.recall(self._path(job_id), info)
            if kept is not None:
                return kept
        return _info_stamp(self.fs, info)

    def read(self, job_id: str) -> StoredObject:
        path = self._path(job_id)

        def read() -> StoredObject:
            data = bytes(self.fs.cat_file(path))
            return StoredObject(data, self._stamp(job_id, self.fs.info(path)), version_of(data))

        return self._guarded("read", job_id, read)

    def read_many(self, job_ids: list[str]) -> dict[str, StoredObject]:
        found = {}
        for job_id in job_ids:
            with suppress(ObjectMissing):
                found[job_id] = self.read(job_id)
        return found

    def heads(self, job_ids: list[str]) -> dict[str, Head]:
        found = {}
        for job_id in job_ids:
            with suppress(ObjectMissing):
                found[job_id] = self._guarded("read", job_id, partial(self._head, job_id))
        return found

    def _head(self, job_id: str) -> Head:
        info = self.fs.info(self._path(job_id))
        stamp = self._stamp(job_id, info)
        metadata = info.get("metadata")
        return metadata_head(metadata if isinstance(metadata, Mapping) else None, stamp)

    def scan(self) -> list[Entry]:
        def scan() -> list[Entry]:
            self.fs.invalidate_cache(self.folder)
            try:
                listing = self.fs.ls(self.folder, detail=True)
            except FileNotFoundError:
                return []
            entries = []
            for info in listing:
                job_id = job_id_of(str(info["name"]).rsplit("/", 1)[-1])
                if info.get("type") == "file" and job_id is not None:
                    stamp = self._stamp(job_id, info)
                    entries.append(Entry(job_id, stamp, stamp))
            return entries

        return self._guarded("list", None, scan)

    def exists(self) -> bool:
        return bool(self._guarded("read", None, lambda: self.fs.exists(self.container)))

    # -- writing ---------------------------------------------------------------------------

    def _pipe(self, job_id: str, data: bytes, stamp: float, expiry: float | None) -> float | None:
        """Write the object and keep its stamp; return the stamp as kept, or None where this
        filesystem cannot keep one."""
        path = self._path(job_id)
        if is_local(self.fs):  # written in place, a reader could see half a file: rename
            return _replace_local_file(self.folder, path, data, stamp)
        self.fs.pipe_file(path, data)
        return _keep_stamp(self.fs, path, stamp, expiry)

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
        """An unconditional write: the store holds this job's lock and has checked."""

        def write() -> Written:
            kept = self._pipe(job_id, data, stamp, expiry)
            if kept is None:  # the filesystem stamps the file itself: read back what it chose
                kept = self._stamp(job_id, self.fs.info(self._path(job_id)))
            return Written(kept, version_of(data))

        return self._guarded("write", job_id, write)

    def restore(self, items: list[Item]) -> None:
        for item in items:

            def write(item: Item = item) -> None:
                if self._pipe(item.job_id, item.data, item.stamp, item.expiry) is None:
                    raise StorageError(
                        f"{self.where}: this filesystem cannot keep a given updated_at "
                        "(no settable modification time, no setxattrs); restore needs one"
                    )

            self._guarded("write", item.job_id, write)

    def delete(self, job_id: str) -> bool:
        path = self._path(job_id)
        try:
            self._guarded("delete", job_id, lambda: self.fs.rm_file(path))
        except ObjectMissing:
            return False
        finally:
            _MEMORY_STAMPS.forget(path)
        return True

    def delete_many(self, job_ids: list[str]) -> int:
        return sum(self.delete(job_id) for job_id in job_ids)


# -- stamps --------------------------------------------------------------------------------


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _in_memory(fs: Any) -> bool:
    return "memory" in _protocols(fs)


def is_local(fs: Any) -> bool:
    protocols = _protocols(fs)
    return "file" in protocols or "local" in protocols


def _replace_local_file(folder: str, path: str, data: bytes, stamp: float) -> float:
    """Write a local file whole: a temporary file in the same folder, stamped, then renamed
    over the old one, so a reader (in any process) sees the old or the new document."""
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    except FileNotFoundError:  # the first write in a folder that does not exist yet
        os.makedirs(folder, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        nanoseconds = round(stamp * 1e9)
        os.utime(temporary, ns=(nanoseconds, nanoseconds))
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    return os.stat(path).st_mtime_ns / 1e9


class _MemoryStamps:
    """Stamps kept for files of fsspec's memory filesystem, which has no settable time.

    The memory filesystem lives in this process, so a table of this process is exact for it.
    An entry counts only while the file is the one it was kept for (same size, same creation
    time): a file written past the store is stamped with its creation time, as elsewhere.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamps: dict[str, tuple[tuple[Any, float | None], float]] = {}

    @staticmethod
    def _identity(info: Mapping[str, Any]) -> tuple[Any, float | None]:
        return info.get("size"), _seconds(info.get("created"))

    def keep(self, path: str, info: Mapping[str, Any], stamp: float) -> None:
        with self._lock:
            self._stamps[path] = (self._identity(info), stamp)

    def recall(self, path: str, info: Mapping[str, Any]) -> float | None:
        with self._lock:
            kept = self._stamps.get(path)
        if kept is None or kept[0] != self._identity(info):
            return None
        return kept[1]

    def forget(self, path: str) -> None:
        with self._lock:
            self._stamps.pop(path, None)


_MEMORY_STAMPS = _MemoryStamps()


def _keep_stamp(fs: Any, path: str, stamp: float, expiry: float | None) -> float | None:
    """Keep ``stamp`` as the file's stamp; return it as the filesystem keeps it, or None when
    this filesystem has no way to keep it."""
    if _in_memory(fs):
        _MEMORY_STAMPS.keep(path, fs.info(path), stamp)
        return stamp
    setxattrs = getattr(fs, "setxattrs", None)
    if setxattrs is None:
        return None
    try:
        setxattrs(path, **object_metadata(stamp, expiry))
    except NotImplementedError:
        return None
    return stamp


def _seconds(value: Any) -> float | None:
    """A time from an fsspec info (datetime, number or ISO text) in epoch seconds, or None."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return None
    with suppress(ValueError):
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return None


def _info_stamp(fs: Any, info: Mapping[str, Any]) -> float:
    """The stamp of a file from its fsspec info: custom metadata first, then its mtime."""
    metadata = info.get("metadata")
    if isinstance(metadata, Mapping) and STAMP_METADATA_KEY in metadata:
        with suppress(TypeError, ValueError):
            return float(metadata[STAMP_METADATA_KEY])
    for key in _MTIME_KEYS:
        seconds = _seconds(info.get(key))
        if seconds is not None:
            return seconds
    raise StorageError(f"{fs.protocol}: the listing gives no modification time for {info['name']}")
