"""``memory://``: records in a dict of this process, behind a lock.

The reference model of the conformance suite and the store for tests. Documents are kept as
JSON text, so what comes out is never the caller's object and only storable documents get in.
:meth:`MemoryStore.subscribe` reports every write and delete, in the writer's thread, before
the writer's call returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any, NamedTuple

from jobstatus.errors import JobNotFound
from jobstatus.record import JobRecord, check_job_id
from jobstatus.store import (
    BaseStore,
    ChangeCallback,
    ExpectedVersion,
    Subscribers,
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

__all__ = ["MemoryStore", "open_memory_store"]


class _Row(NamedTuple):
    text: str
    job_status: str
    updated_at: float
    version: str
    expires_at: float | None

    def record(self) -> JobRecord:
        return JobRecord.from_json(self.text, updated_at=self.updated_at, version=self.version)

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


def _row(record: JobRecord, stamp: float) -> _Row:
    text = record.to_json()
    return _Row(text, record.job_status, stamp, version_of(text.encode("utf-8")), expiry_of(record))


class MemoryStore(BaseStore):
    """A thread-safe in-process store; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._subscribers = Subscribers()

    def __repr__(self) -> str:
        return "MemoryStore()"

    def __reduce__(self) -> Any:
        raise TypeError(
            "a memory store lives in one process and cannot be pickled; work recorded in "
            "another process (a process pool) needs a store every process shares: a folder, "
            "SQL, Redis, S3"
        )

    def _live(self, job_id: str) -> _Row | None:
        """The unexpired row of ``job_id``; call with the lock held."""
        row = self._rows.get(job_id)
        return row if row is not None and row.live(time.time()) else None

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        with self._lock:
            row = self._live(job_id)
        if row is None:
            raise JobNotFound(job_id)
        return row.record()

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        check_job_id(record.job_id)
        new = _row(record, 0.0)
        with self._lock:
            stored = self._live(record.job_id)
            check_expected(
                record.job_id, None if stored is None else stored.version, expect_version
            )
            if stored is not None and keeps_stored(stored.job_status, force=force):
                return stored.record()
            new = new._replace(updated_at=time.time())
            self._rows[record.job_id] = new
        if self._subscribers:
            self._subscribers.notify(record.job_id)
        return new.record()

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        for record in records:
            check_job_id(record.job_id)
            stamp = time.time() if record.updated_at is None else record.updated_at
            row = _row(record, stamp)
            with self._lock:
                self._rows[record.job_id] = row
            if self._subscribers:
                self._subscribers.notify(record.job_id)
            count += 1
        return count

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        with self._lock:
            deleted = self._rows.pop(job_id, None) is not None
        if deleted and self._subscribers:
            self._subscribers.notify(job_id)
        return deleted

    def subscribe(self, callback: ChangeCallback) -> Subscription:
        """Call ``callback(job_id)`` after each write and delete, in the writer's thread,
        before its call returns (see "Change notification" in :mod:`jobstatus.store`)."""
        return self._subscribers.subscribe(callback)

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
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if (since is None or row.updated_at >= since)
                and (statuses is None or row.job_status in statuses)
                and row.live(now)
            ]
        rows.sort(key=lambda row: row.updated_at, reverse=True)
        for row in rows[:limit] if limit is not None else rows:
            yield row.record()

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
                job_id
                for job_id, row in self._rows.items()
                if purges(
                    row.updated_at,
                    row.expires_at,
                    row.job_status,
                    older_than=older_than,
                    statuses=statuses,
                    expired_before=expired_before,
                )
            ]
            for job_id in doomed:
                del self._rows[job_id]
        if self._subscribers:
            for job_id in doomed:
                self._subscribers.notify(job_id)
        return len(doomed)


def open_memory_store(url: str, **options: Any) -> MemoryStore:
    """Factory for ``memory://``; takes no options."""
    if options:
        raise TypeError(f"memory:// takes no options, got {sorted(options)}")
    return MemoryStore()
