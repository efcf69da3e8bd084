"""The deliveries a deliverer knows of, in the order they fall due.

One entry per job (a later due time never delays an earlier one), and for deliveries due soon
the record as last seen: the attempt then claims with that record's version and needs no read.
A stale record costs nothing but a refused conditional write and one read.
"""

from __future__ import annotations

import heapq
import threading
import time

from jobstatus.record import JobRecord

__all__ = ["DueDeliveries"]

#: Records kept for deliveries due sooner than this (seconds).
HINT_HORIZON = 300.0


class DueDeliveries:
    """A heap of (due time, job id), safe to share between threads through :attr:`cond`."""

    def __init__(self) -> None:
        #: Held around every call; waited on until the soonest delivery falls due.
        self.cond = threading.Condition()
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._records: dict[str, JobRecord] = {}

    def add(self, job_id: str, due: float, record: JobRecord | None = None) -> None:
        """Schedule ``job_id`` at ``due`` (seconds since the epoch) unless it already is at
        that time or sooner; keep ``record`` when it is due soon. Wakes a waiter."""
        with self.cond:
            if record is not None and due - time.time() < HINT_HORIZON:
                self._records[job_id] = record
            current = self._due.get(job_id)
            if current is not None and current <= due:
                return
            self._due[job_id] = due
            heapq.heappush(self._heap, (due, job_id))
            self.cond.notify()

    def pop_due(self, now: float) -> list[str]:
        """The jobs due by ``now``, taken off the heap."""
        due: list[str] = []
        with self.cond:
            while self._heap and self._heap[0][0] <= now:
                when, job_id = heapq.heappop(self._heap)
                if self._due.get(job_id) == when:
                    del self._due[job_id]
                    due.append(job_id)
        return due

    def record(self, job_id: str) -> JobRecord | None:
        """The record kept for ``job_id`` (taken: at most one attempt uses it)."""
        with self.cond:
            return self._records.pop(job_id, None)

    def soonest(self) -> float:
        """When the soonest delivery falls due (infinity when none is known)."""
        with self.cond:
            return self._heap[0][0] if self._heap else float("inf")
