"""``dbm:///var/lib/app/jobs``: job records in a :mod:`dbm` database, a jobstatus plug-in.

A third-party backend in one module: the example of docs/backends-guide.rst, installed and
run through the conformance suite by tests/test_plugin_backend.py. One process at a time
(dbm files have no cross-process locking); threads are serialised by a lock.
"""

from __future__ import annotations

import dbm
import json
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from jobstatus import ConfigurationError, JobNotFound, JobRecord, StorageError
from jobstatus.record import check_job_id
from jobstatus.store import (
    BaseStore,
    ExpectedVersion,
    check_expected,
    check_limit,
    check_purge,
    expiry_of,
    keeps_stored,
    normalize_status,
    purges,
    version_of,
)

__all__ = ["DbmStore", "open_dbm_store"]


class DbmStore(BaseStore):
    """Each record is one dbm entry: ``job_id`` → ``[updated_at, job_status, document]``.

    The version of a record is a hash of its document (:func:`~jobstatus.store.version_of`);
    its expiry is read from the document (``JobRecord.expires_at``)."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        try:
            self._db = dbm.open(path, "c")  # noqa: SIM115 (open until close())
        except OSError as exc:
            raise StorageError(f"cannot open the dbm database {path}: {exc}") from exc

    # -- the dbm entries ---------------------------------------------------------------------

    def _load(self, key: str | bytes) -> tuple[float, str, str] | None:
        raw = self._db.get(key)
        if raw is None:
            return None
        stamp, status, text = json.loads(raw)
        return stamp, status, text

    def _save(self, record: JobRecord, stamp: float) -> str:
        text = record.to_json()  # refuses what no store could keep (NaN, NUL, ...)
        self._db[record.job_id.encode()] = json.dumps([stamp, record.job_status, text])
        return text

    def _entries(self) -> list[tuple[float, str, str]]:
        # .keys(): the gnu and ndbm kinds of dbm object cannot be iterated
        keys = self._db.keys()
        return [entry for key in keys if (entry := self._load(key)) is not None]

    # -- the Store protocol ------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        key = check_job_id(job_id).encode()
        with self._lock:
            entry = self._load(key)
        record = None if entry is None else _record(entry)
        if record is None or record.is_expired(time.time()):
            raise JobNotFound(job_id)
        return record

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        key = check_job_id(record.job_id).encode()
        with self._lock:  # the version check and the final-state rule: under one lock
            entry = self._load(key)
            stored = None if entry is None else _record(entry)
            if stored is not None and stored.is_expired(time.time()):
                stored = None  # an expired record counts as none
            check_expected(record.job_id, stored.version if stored else None, expect_version)
            if stored is not None and keeps_stored(stored.job_status, force=force):
                return stored
            stamp = time.time()
            text = self._save(record, stamp)
        return _record((stamp, record.job_status, text))

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        for record in records:
            check_job_id(record.job_id)
            stamp = time.time() if record.updated_at is None else record.updated_at
            with self._lock:
                self._save(record, stamp)
            count += 1
        return count

    def delete(self, job_id: str) -> bool:
        key = check_job_id(job_id).encode()
        with self._lock:
            if key not in self._db:
                return False
            del self._db[key]
            return True

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        check_limit(limit)
        statuses = normalize_status(status)
        with self._lock:
            entries = self._entries()
        entries = [
            (stamp, job_status, text)
            for stamp, job_status, text in entries
            if (since is None or stamp >= since) and (statuses is None or job_status in statuses)
        ]
        entries.sort(key=lambda entry: entry[0], reverse=True)  # newest first
        now = time.time()
        records = (_record(entry) for entry in entries)
        yield from [record for record in records if not record.is_expired(now)][:limit]

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        check_purge(older_than, expired)
        statuses = normalize_status(status)
        expired_before = time.time() if expired else None
        with self._lock:
            doomed = [
                key
                for key in self._db.keys()  # noqa: SIM118
                if (entry := self._load(key)) is not None
                and purges(
                    entry[0],
                    expiry_of(_record(entry)) if expired else None,
                    entry[1],
                    older_than=older_than,
                    statuses=statuses,
                    expired_before=expired_before,
                )
            ]
            for key in doomed:
                del self._db[key]
        return len(doomed)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(entry: tuple[float, str, str]) -> JobRecord:
    stamp, _status, text = entry
    return JobRecord.from_json(text, updated_at=stamp, version=version_of(text.encode()))


def open_dbm_store(url: str, **options: Any) -> DbmStore:
    """The entry point: ``dbm:///path/to/jobs`` → a :class:`DbmStore`; takes no options."""
    if options:
        raise ConfigurationError(f"dbm:// takes no options, got {sorted(options)}")
    path = unquote(urlsplit(url).path)
    if not path:
        raise ConfigurationError("a dbm URL needs a path, e.g. dbm:///var/lib/app/jobs")
    return DbmStore(path)
