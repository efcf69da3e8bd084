"""``file:///srv/data`` or a plain path: one JSON file per job, the upstream layout.

A record lives in ``<root>/jobs/<job_id>.json``, written as the upstream service writes it
(``indent=2``), so an existing ``LOCAL_STORAGE_PATH`` is read as is and the other way round.

- Writes go to a temp file in the same folder, are fsynced and moved into place with
  :func:`os.replace`: a reader sees the old or the new document, never a torn one.
- ``updated_at`` is the file's modification time, set exactly by the writer.
- A record's version is a hash of the file's bytes (:func:`~jobstatus.store.version_of`), so a
  file rewritten in place by an upstream writer has a new version too.
- Conditional writes, the final-state rule and deletes run under an exclusive ``flock`` on one of
  :data:`LOCK_STRIPES` lock files in ``<root>/.jobstatus-locks/``, so concurrent writers in
  any number of processes are serialised per job without a lock file per job.
- A file that does not parse (an upstream writer truncates, then writes) is read again a few
  times within about 50 ms before it is reported as a :class:`~jobstatus.StorageError`.
- On Linux, one inotify watch per store and process (no dependency: ctypes) keeps a recency
  index of the folder, so listing recent jobs reads the files in the window rather than a
  ``stat`` of every file, and offers change notification (:meth:`FileSystemStore.subscribe`)
  for long-polling requests. It sees the writes of every process on this machine, this
  library's and upstream in-place writers' alike, once the writer renames or closes the file.
  On a network filesystem, whose other clients' writes the kernel does not report, turn it off
  with ``notify=False`` (``file:///srv/data?notify=false``): listing then scans the folder and
  waiting requests poll.
- A writer killed before its rename leaves only its temp file, which readers never see;
  :meth:`FileSystemStore.repair` (``jobstatus check --deep``) removes such files while it holds
  every lock stripe, so that no live writer's file is touched.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import time
import zlib
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from jobstatus.backends import _inotify
from jobstatus.backends._filesystem_repair import repair_folder
from jobstatus.backends._folder_watch import FolderWatch
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.repair import DEFAULT_GRACE, RepairReport
from jobstatus.store import (
    BaseStore,
    ChangeCallback,
    ExpectedVersion,
    Subscription,
    check_expected,
    check_limit,
    check_purge,
    expiry_of,
    keeps_stored,
    normalize_status,
    purges,
    version_of,
)

__all__ = ["LOCK_STRIPES", "FileSystemStore", "open_filesystem_store"]

log = logging.getLogger(__name__)

LOCK_STRIPES = 64
_SUFFIX = ".json"
# Pauses between reads of a file that did not parse: about 50 ms in all.
_REREAD_PAUSES = (0.0, 0.005, 0.01, 0.015, 0.02)
_RECENT_MAX = 1024


class FileSystemStore(BaseStore):
    """Records as ``<root>/jobs/<job_id>.json``; safe across threads and processes (POSIX).

    ``notify`` (Linux) keeps the recency index and offers :meth:`subscribe`; turn it off on a
    network filesystem.
    """

    def __init__(self, root: str | os.PathLike[str], *, notify: bool = True) -> None:
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        self._locks_dir = self.root / ".jobstatus-locks"
        self._jobs_prefix = os.path.join(self.jobs_dir, "")
        # job_id -> (file bytes, mtime_ns, record): a record polled again and again is parsed
        # once. A hit needs the very same bytes, so the cache can never serve a stale record.
        self._recent: dict[str, tuple[bytes, int, JobRecord]] = {}
        self._watch = (
            FolderWatch(str(self.jobs_dir), _SUFFIX) if notify and _inotify.AVAILABLE else None
        )

    def __repr__(self) -> str:
        return f"FileSystemStore({str(self.root)!r})"

    # -- reading ---------------------------------------------------------------------------

    def _path(self, job_id: str) -> str:
        return f"{self._jobs_prefix}{check_job_id(job_id)}{_SUFFIX}"

    def exists(self) -> bool:
        """True when the store's folder is there (reads never create it)."""
        return self.root.is_dir()

    def get(self, job_id: str) -> JobRecord:
        record = self._read(self._path(job_id), job_id)
        if record.expires_at is not None and record.is_expired(time.time()):
            raise JobNotFound(job_id)
        return record

    def _read(self, path: str, job_id: str) -> JobRecord:
        problem: Exception | None = None
        for pause in _REREAD_PAUSES:
            if pause:
                time.sleep(pause)
            try:
                data, mtime_ns = _read_file(path)
            except FileNotFoundError:
                raise JobNotFound(job_id) from None
            except OSError as exc:
                raise StorageError(f"cannot read {job_id}{_SUFFIX}: {exc.strerror}") from exc
            recent = self._recent.get(job_id)
            if recent is not None and recent[0] == data and recent[1] == mtime_ns:
                return recent[2]  # the same bytes: the same record, already parsed
            try:
                record = JobRecord.from_json(
                    data, updated_at=mtime_ns / 1e9, version=version_of(data)
                )
            except InvalidRequest as exc:
                problem = exc
                continue
            if len(self._recent) >= _RECENT_MAX:
                self._recent.clear()
            self._recent[job_id] = (data, mtime_ns, record)
            return record
        raise StorageError(f"{job_id}{_SUFFIX} is not a job record: {problem}") from problem

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        check_limit(limit)
        statuses = normalize_status(status)
        now = time.time()
        found = None if self._watch is None else self._watch.recent(since)
        if found is None:  # no index: one stat per file
            found = [
                (stamp, job_id)
                for job_id, stamp in self._scan()
                if since is None or stamp / 1e9 >= since
            ]
            found.sort(reverse=True)
        yielded = 0
        for _stamp, job_id in found:
            if limit is not None and yielded >= limit:
                return
            try:
                record = self._read(os.path.join(self.jobs_dir, job_id + _SUFFIX), job_id)
            except JobNotFound:
                continue  # deleted since the scan
            except StorageError as exc:
                log.warning("skipping unreadable job file while listing: %s", exc)
                continue
            if (statuses is None or record.job_status in statuses) and not record.is_expired(now):
                yielded += 1
                yield record

    def _scan(self) -> Iterator[tuple[str, int]]:
        """(job_id, mtime_ns) of every record file, from a stat only: nothing is opened."""
        try:
            entries = os.scandir(self.jobs_dir)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot list {self.jobs_dir.name}/: {exc.strerror}") from exc
        with entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(_SUFFIX):  # temp files end in .part
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                yield name[: -len(_SUFFIX)], stat.st_mtime_ns

    # -- change notification -----------------------------------------------------------------

    def subscribe(self, callback: ChangeCallback) -> Subscription:
        """Call ``callback(job_id)`` after each change of a record file made by any process on
        this machine, from a thread of the store (see "Change notification" in
        :mod:`jobstatus.store`); the subscription can ``flush()``. Raises
        :class:`~jobstatus.StorageError` when notification is off or unavailable (not Linux,
        ``notify=False``, no ``jobs/`` folder yet, the kernel's inotify limits reached)."""
        if self._watch is None:
            raise StorageError("change notification is off for this store")
        return self._watch.subscribe(callback)

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Remove the temp files of killed writers while holding every lock stripe (so no
        writer is using one; ``grace`` is not needed), report stripes a live process holds
        and record files that do not parse (see :mod:`jobstatus.repair`)."""
        return repair_folder(
            str(self.jobs_dir),
            [self._lock_path(stripe) for stripe in range(LOCK_STRIPES)],
            lambda: (job_id for job_id, _ in self._scan()),
            self.get,
            dry_run=dry_run,
        )

    def close(self) -> None:
        """Stop the folder watch, if there is one."""
        if self._watch is not None:
            self._watch.close()

    # -- writing ---------------------------------------------------------------------------

    def _lock_path(self, stripe: int) -> str:
        return os.path.join(self._locks_dir, f"{stripe:02d}.lock")

    @contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        path = self._lock_path(zlib.crc32(job_id.encode("utf-8")) % LOCK_STRIPES)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            self._make_dirs()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open lock file: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _make_dirs(self) -> None:
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            self._locks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the store folders: {exc.strerror}") from exc

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        path = self._path(record.job_id)
        text = record.to_json()
        with self._locked(record.job_id):
            if not force or expect_version is not None:
                stored = self._stored(path, record.job_id)
                check_expected(
                    record.job_id, None if stored is None else stored.version, expect_version
                )
                if stored is not None and keeps_stored(stored.job_status, force=force):
                    return stored
            data = text.encode("utf-8")
            stamp_ns = time.time_ns()
            self._write(path, data, stamp_ns)
        return dataclasses.replace(record, updated_at=stamp_ns / 1e9, version=version_of(data))

    def _stored(self, path: str, job_id: str) -> JobRecord | None:
        """The unexpired record at ``path``, or None; call with the job's lock held."""
        try:
            stored = self._read(path, job_id)
        except JobNotFound:
            return None
        return None if stored.is_expired(time.time()) else stored

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        for record in records:
            path = self._path(record.job_id)
            text = record.to_json()
            stamp = time.time() if record.updated_at is None else record.updated_at
            with self._locked(record.job_id):
                self._write(path, text.encode("utf-8"), round(stamp * 1e9))
            count += 1
        return count

    def _write(self, path: str, data: bytes, stamp_ns: int) -> None:
        """Temp file, fsync, exact mtime, rename over, fsync the folder."""
        folder = os.path.dirname(path)
        tmp = os.path.join(folder, f".tmp-{os.getpid()}-{time.monotonic_ns()}{_SUFFIX}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            self._make_dirs()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot write {os.path.basename(path)}: {exc.strerror}") from exc
        try:
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.utime(tmp, ns=(stamp_ns, stamp_ns))
                os.replace(tmp, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(folder)
        except OSError as exc:
            raise StorageError(f"cannot write {os.path.basename(path)}: {exc.strerror}") from exc

    def delete(self, job_id: str) -> bool:
        path = self._path(job_id)
        if not os.path.exists(path):
            return False
        with self._locked(job_id):
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise StorageError(f"cannot delete {job_id}{_SUFFIX}: {exc.strerror}") from exc
        return True

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        """One scan of the folder; a file is opened only when its status or expiry decides
        (``status`` or ``expired`` given) and its stamp alone does not."""
        check_purge(older_than, expired)
        statuses = normalize_status(status)
        expired_before = time.time() if expired else None
        deleted = 0
        for job_id, stamp_ns in list(self._scan()):
            if not expired and older_than is not None and stamp_ns / 1e9 >= older_than:
                continue
            path = os.path.join(self.jobs_dir, job_id + _SUFFIX)
            with self._locked(job_id):
                try:  # decide under the lock: a writer may have renewed the record meanwhile
                    stamp = os.stat(path).st_mtime_ns / 1e9
                    old = older_than is not None and stamp < older_than
                    if statuses is None and old:
                        os.unlink(path)
                        deleted += 1
                        continue
                    if statuses is None and not expired:
                        continue
                    record = self._read(path, job_id)
                    if not purges(
                        stamp,
                        expiry_of(record),
                        record.job_status,
                        older_than=older_than,
                        statuses=statuses,
                        expired_before=expired_before,
                    ):
                        continue
                    os.unlink(path)
                except (FileNotFoundError, JobNotFound):
                    continue
                except StorageError:
                    log.warning("purge skipped unreadable job file %s%s", job_id, _SUFFIX)
                    continue
                except OSError as exc:
                    raise StorageError(f"cannot delete {job_id}{_SUFFIX}: {exc.strerror}") from exc
            deleted += 1
        return deleted


def _read_file(path: str) -> tuple[bytes, int]:
    """The whole file and its mtime in nanoseconds, with as few system calls as possible."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        stat = os.fstat(fd)
        data = os.read(fd, stat.st_size + 1)
        if len(data) > stat.st_size:  # it grew since the stat: read the rest
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data, stat.st_mtime_ns


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_filesystem_store(url: str, **options: Any) -> FileSystemStore:
    """Factory for ``file:///path``, ``file://relative/path`` is refused; a plain path is fine.

    One option, also as a query parameter: ``notify`` (true by default; ``false`` on a network
    filesystem)."""
    unknown = set(options) - {"notify"}
    if unknown:
        raise ConfigurationError(f"the filesystem store takes only notify, got {sorted(unknown)}")
    if "://" not in url:
        return FileSystemStore(url, notify=_flag(options.get("notify", True)))
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if set(query) - {"notify"}:
        raise ConfigurationError(
            f"the filesystem store takes only notify, got {sorted(set(query) - {'notify'})}"
        )
    notify = _flag(options.get("notify", query.get("notify", True)))
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"file URLs name a local absolute path (file:///srv/data), got host {parts.netloc!r}"
        )
    if not parts.path:
        raise ConfigurationError("a file:// URL needs a path, e.g. file:///srv/data")
    return FileSystemStore(unquote(parts.path), notify=notify)


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"notify takes true or false, got {value!r}")
