"""``memory://``: records in a dict of this process, behind a lock.

The reference model of the conformance suite and the store for tests. Documents are kept as
JSON text, so what comes out is never the caller's object and only storable documents get in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from jobstatus.errors import JobNotFound
from jobstatus.record import JobRecord, check_job_id
from jobstatus.store import BaseStore, keeps_stored, normalize_status

__all__ = ["MemoryStore", "open_memory_store"]


class MemoryStore(BaseStore):
    """A thread-safe in-process store; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # job_id -> (document JSON, job_status, updated_at)
        self._rows: dict[str, tuple[str, str, float]] = {}

    def __repr__(self) -> str:
        return "MemoryStore()"

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        with self._lock:
            row = self._rows.get(job_id)
        if row is None:
            raise JobNotFound(job_id)
        return JobRecord.from_json(row[0], updated_at=row[2])

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        check_job_id(record.job_id)
        text = record.to_json()
        with self._lock:
            stored = self._rows.get(record.job_id)
            if stored is not None and keeps_stored(stored[1], record.job_status, force=force):
                text, stamp = stored[0], stored[2]
            else:
                stamp = time.time()
                self._rows[record.job_id] = (text, record.job_status, stamp)
        return JobRecord.from_json(text, updated_at=stamp)

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        for record in records:
            check_job_id(record.job_id)
            text = record.to_json()
            stamp = time.time() if record.updated_at is None else record.updated_at
            with self._lock:
                self._rows[record.job_id] = (text, record.job_status, stamp)
            count += 1
        return count

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        with self._lock:
            return self._rows.pop(job_id, None) is not None

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        statuses = normalize_status(status)
        with self._lock:
            rows = [
                row
                for row in self._rows.values()
                if (since is None or row[2] >= since) and (statuses is None or row[1] in statuses)
            ]
        rows.sort(key=lambda row: row[2], reverse=True)
        for row in rows[:limit] if limit is not None else rows:
            yield JobRecord.from_json(row[0], updated_at=row[2])

    def purge(self, *, older_than: float, status: str | Collection[str] | None = None) -> int:
        statuses = normalize_status(status)
        with self._lock:
            doomed = [
                job_id
                for job_id, row in self._rows.items()
                if row[2] < older_than and (statuses is None or row[1] in statuses)
            ]
            for job_id in doomed:
                del self._rows[job_id]
        return len(doomed)


def open_memory_store(url: str, **options: Any) -> MemoryStore:
    """Factory for ``memory://``; takes no options."""
    if options:
        raise TypeError(f"memory:// takes no options, got {sorted(options)}")
    return MemoryStore()
