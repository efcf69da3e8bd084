"""The object store: the store protocol on top of the object layer (S3 or any fsspec path).

Every check of ``put`` (``expect_version``, final is final, an expired record counting as
none) is made against the object as read, and the write is conditional on that object still
being there unchanged: on S3 by the request itself (``If-Match`` / ``If-None-Match: *``), so it
holds across processes; on other filesystems by a lock of this process around the read and the
write, so it holds among this process's threads only.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import threading
import time
import zlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from jobstatus.backends._timeout import DEFAULT_TIMEOUT, check_timeout
from jobstatus.backends.objectstore._fsspec import FsspecObjects
from jobstatus.backends.objectstore._objects import (
    SUFFIX,
    Entry,
    Item,
    ObjectChanged,
    ObjectMissing,
    Objects,
    StoredObject,
    Written,
)
from jobstatus.backends.objectstore._repair import repair_objects
from jobstatus.backends.objectstore._s3 import S3Objects, is_s3
from jobstatus.backends.objectstore._url import secret_values
from jobstatus.errors import InvalidRequest, JobNotFound, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.repair import DEFAULT_GRACE, RepairReport
from jobstatus.store import (
    ABSENT,
    BaseStore,
    ExpectedVersion,
    check_expected,
    check_limit,
    check_purge,
    expiry_of,
    keeps_stored,
    normalize_status,
    purges,
)

__all__ = ["DEFAULT_CLOCK_SKEW", "ObjectStore"]

log = logging.getLogger(__name__)

#: How far apart a writer's clock and the object store's ``LastModified`` may be, in seconds,
#: request time included. Listing and purging read the stamp of objects this close to a bound.
DEFAULT_CLOCK_SKEW = 60.0

_LOCK_STRIPES = 64
# Shared by every store of this process, striped by object path: two stores opened on one
# folder serialise their writes of a job too.
_LOCKS = [threading.Lock() for _ in range(_LOCK_STRIPES)]
_WRITE_ATTEMPTS = 20  # conditional writes retried while other writers keep winning
_READ_BATCH = 16  # objects read at a time by a listing with a limit
_RESTORE_CHUNK = 100

_Heap = list[tuple[float, int, JobRecord]]
_Entries = list[Entry]  # the class defines `list`: these name the builtin inside it
_Items = list[Item]
_Ids = list[str]


class ObjectStore(BaseStore):
    """Records as ``<root>/jobs/<job_id>.json`` on an fsspec filesystem; S3 takes the fast path.

    Args:
        fs: an fsspec filesystem; an s3fs one gets single-request reads, conditional writes
            and stamps and expiry in object metadata, any other the generic fsspec path.
        root: the folder (``bucket/prefix`` on object stores) holding ``jobs/``.
        clock_skew: how far a writer's clock may be from the store's, in seconds.
        close_fs: close the filesystem's connections in :meth:`close` (``open_store`` makes
            a filesystem for each store and sets it; one handed in stays open by default).
        timeout: on S3, seconds each request of the store may take, botocore's retries
            included, before the call fails with a :class:`~jobstatus.StorageError`
            (:data:`~jobstatus.backends.DEFAULT_TIMEOUT` by default). Other
            filesystems bound their requests with their own options.
    """

    def __init__(
        self,
        fs: Any,
        root: str,
        *,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        close_fs: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.root = root.rstrip("/")
        self._close_fs = close_fs
        self.url = str(fs.unstrip_protocol(self.root))
        folder = f"{self.root}/jobs"
        secrets = secret_values(getattr(fs, "storage_options", {}))
        if is_s3(fs):
            self._objects: Objects = S3Objects(
                fs, folder, self.url, secrets, clock_skew, check_timeout(timeout)
            )
        else:
            self._objects = FsspecObjects(fs, self.root, self.url, secrets)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    @property
    def fs(self) -> Any:
        """The fsspec filesystem underneath."""
        return self._objects.fs

    def close(self) -> None:
        if self._close_fs:
            self._objects.close()

    def exists(self) -> bool:
        """True when the bucket (on S3, GCS, Azure) or the root folder is there. Reads and
        lists never create either; the first write creates a missing folder."""
        return self._objects.exists()

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Abort S3 multipart uploads a killed ``restore`` left, and remove the temp files a
        killed writer left in a local folder, once they are ``grace`` seconds old (nothing
        tells whether their writer is still at work); see :mod:`jobstatus.repair`."""
        return repair_objects(self._objects, dry_run=dry_run, grace=grace)

    @contextmanager
    def _guard(self, job_id: str) -> Iterator[None]:
        """Serialise this process's writes of one job where the store has no conditional
        write; where it has, the condition does the work and nothing is held."""
        if self._objects.conditional:
            yield
            return
        path = f"{self.url}/jobs/{job_id}".encode()
        with _LOCKS[zlib.crc32(path) % _LOCK_STRIPES]:
            yield

    def _record(self, job_id: str, obj: StoredObject) -> JobRecord:
        try:
            return JobRecord.from_json(obj.data, updated_at=obj.stamp, version=obj.version)
        except InvalidRequest as exc:
            raise StorageError(
                f"jobs/{job_id}{SUFFIX} in {self.url} is not a job record: {exc}"
            ) from exc

    def _records(self, objects: dict[str, StoredObject], action: str) -> Iterator[JobRecord]:
        """The records of ``objects``; unreadable ones are skipped with a warning."""
        for job_id, obj in objects.items():
            try:
                yield self._record(job_id, obj)
            except StorageError as exc:
                log.warning("%s skipped an unreadable job object: %s", action, exc)

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        try:
            obj = self._objects.read(job_id)
        except ObjectMissing:
            raise JobNotFound(job_id) from None
        record = self._record(job_id, obj)
        if record.is_expired(time.time()):
            raise JobNotFound(job_id)
        return record

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        check_limit(limit)  # here, not in the generator: raised at the call
        return self._list(since, normalize_status(status), limit)

    def _list(
        self, since: float | None, statuses: frozenset[str] | None, limit: int | None
    ) -> Iterator[JobRecord]:
        if limit == 0:
            return
        floor = -math.inf if since is None else since
        entries = self._placed(self._objects.scan(), floor)
        candidates = sorted(
            (e for e in entries if e.latest >= floor), key=lambda e: e.latest, reverse=True
        )
        batch = len(candidates) if limit is None else max(limit, _READ_BATCH)
        newest: _Heap = []  # a heap, newest on top
        yielded = 0
        now = time.time()
        for start in range(0, len(candidates), max(batch, 1)):
            chunk = candidates[start : start + batch]
            objects = self._objects.read_many([e.job_id for e in chunk])
            order = {e.job_id: start + n for n, e in enumerate(chunk)}
            inside = {j: o for j, o in objects.items() if o.stamp >= floor}  # else moved since
            for record in self._records(inside, "list"):
                if record.is_expired(now):
                    continue
                if statuses is None or record.job_status in statuses:
                    stamp = inside[record.job_id].stamp
                    heapq.heappush(newest, (-stamp, order[record.job_id], record))
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
        heads = self._objects.heads(unsure)
        placed = []
        for entry in entries:
            if not entry.straddles(bound):
                placed.append(entry)
            elif entry.job_id in heads:  # else deleted since the listing
                placed.append(entry.placed(heads[entry.job_id].stamp))
        return placed

    # -- writing -----------------------------------------------------------------------------

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        """Write ``record`` if the checks of the protocol pass against the object as read, and
        only if that object is still there unchanged when written (see the module).

        On S3: a forced put without ``expect_version`` is one PUT; ``expect_version=ABSENT``
        for a new job one PUT (``If-None-Match: *``); any other put one GET and one
        conditional PUT, read and sent again when another writer came in between.
        """
        check_job_id(record.job_id)
        data = record.to_json().encode("utf-8")
        expiry = expiry_of(record)
        job_id = record.job_id
        with self._guard(job_id):
            if force and expect_version is None:  # nothing stored can keep it out
                return _stored(record, self._objects.write(job_id, data, time.time(), expiry))
            if expect_version is ABSENT and self._objects.conditional:
                try:  # a new job needs no read: S3 refuses the write if there is an object
                    written = self._objects.write(job_id, data, time.time(), expiry, if_absent=True)
                    return _stored(record, written)
                except ObjectChanged:
                    pass  # there is one: a Conflict, unless it has expired (read below)
            for _ in range(_WRITE_ATTEMPTS):
                try:
                    stored: StoredObject | None = self._objects.read(job_id)
                except ObjectMissing:
                    stored = None
                live = None if stored is None else self._record(job_id, stored)
                if live is not None and live.is_expired(time.time()):
                    live = None  # an expired record is replaced as if there were none
                check_expected(job_id, None if live is None else live.version, expect_version)
                if live is not None and keeps_stored(live.job_status, force=force):
                    return live
                try:
                    written = self._objects.write(
                        job_id,
                        data,
                        time.time(),
                        expiry,
                        if_match=None if stored is None else stored.version,
                        if_absent=stored is None,
                    )
                except (ObjectChanged, ObjectMissing):
                    continue  # another writer (or a delete) came between the read and the write
                return _stored(record, written)
        raise StorageError(
            f"cannot write jobs/{job_id}{SUFFIX} in {self.url}: it changed "
            f"under {_WRITE_ATTEMPTS} attempts in a row (too many writers)"
        )

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        chunk: _Items = []
        for record in records:
            check_job_id(record.job_id)
            stamp = time.time() if record.updated_at is None else float(record.updated_at)
            data = record.to_json().encode("utf-8")
            chunk.append(Item(record.job_id, data, stamp, expiry_of(record)))
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
                with self._guard(item.job_id):
                    self._objects.restore([item])
        return len(chunk)

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        with self._guard(job_id):
            return self._objects.delete(job_id)

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        """One listing, then one pass. Objects the listing places before ``older_than`` are
        deleted unread; those near the cut are asked for their stamp (HEAD). Documents are read
        only where they alone can tell: with a ``status`` (it is in the body), for the objects
        that may be old enough (all of them with ``expired``); with ``expired`` and no
        ``status``, every other object is asked for its expiry (HEAD, from its metadata) and
        read only when written by something else than this store."""
        check_purge(older_than, expired)
        statuses = normalize_status(status)
        expired_before = time.time() if expired else None
        cut = -math.inf if older_than is None else older_than

        def doomed_record(record: JobRecord) -> bool:
            stamp = cut if record.updated_at is None else record.updated_at
            return purges(
                stamp,
                expiry_of(record),
                record.job_status,
                older_than=older_than,
                statuses=statuses,
                expired_before=expired_before,
            )

        entries = self._objects.scan()
        doomed: _Ids = []
        to_read: _Ids = []  # the objects whose document decides
        if statuses is not None:
            to_read = [e.job_id for e in entries if expired or e.earliest < cut]
        else:
            doomed = [e.job_id for e in entries if e.latest < cut]
            # asked: those near the cut, and with `expired` every one not surely old
            asked = [e.job_id for e in entries if e.latest >= cut and (expired or e.straddles(cut))]
            for job_id, head in self._objects.heads(asked).items():
                if head.stamp < cut or (
                    head.expiry_known
                    and head.expiry is not None
                    and expired_before is not None
                    and head.expiry <= expired_before
                ):
                    doomed.append(job_id)
                elif expired and not head.expiry_known:
                    to_read.append(job_id)
        unread = self._objects.read_many(to_read)
        doomed += [r.job_id for r in self._records(unread, "purge") if doomed_record(r)]
        return self._delete_all(doomed)

    def _delete_all(self, job_ids: _Ids) -> int:
        if self._objects.conditional:
            return self._objects.delete_many(job_ids)
        deleted = 0
        for job_id in job_ids:
            with self._guard(job_id):
                deleted += self._objects.delete(job_id)
        return deleted


def _stored(record: JobRecord, written: Written) -> JobRecord:
    """``record`` as written: with the stamp and the version the write gave it."""
    return dataclasses.replace(record, updated_at=written.stamp, version=written.version)
