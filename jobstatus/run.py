"""The job being run inside ``with tracker.run(...) as run:``: progress, cancel requests.

A :class:`Run` writes progress through the tracker's store with ``expect_version``, so a
client's cancel request written meanwhile is never overwritten: the write that conflicts reads
the record again, learns of the request, and writes on top of it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from jobstatus.errors import Conflict, JobCancelled, JobNotFound
from jobstatus.lifecycle import Progress
from jobstatus.record import JobRecord
from jobstatus.store import Store

__all__ = ["Run", "activate", "current_run", "set_current_run"]

#: How often a write is tried again when other writers keep changing the record.
MAX_ATTEMPTS = 20


@dataclass
class Run:
    """The job being run inside ``with tracker.run(...) as run:``.

    Set :attr:`result` to what the work produced. Leave :attr:`code` at 200 for success; any
    code outside 2xx records the job ``failed`` with :attr:`result` as the message, as the
    upstream queue does with a route's error answer. Report progress with :meth:`progress`;
    stop early when :attr:`cancel_requested` turns true or :meth:`check_cancelled` raises.
    """

    job_id: str
    endpoint: str
    id: Any = None
    result: Any = None
    code: int = 200
    #: True when the job was already final before this run (a duplicate delivery, or a job
    #: cancelled while it waited): the work may skip itself, and nothing is written at the
    #: end, so the first outcome stands.
    already_final: bool = False
    #: True once a client asked the job to stop (learned at a progress write or from
    #: :meth:`check_cancelled`); the run then records ``cancelled`` when it ends.
    cancel_requested: bool = False
    #: The record as this run last wrote or read it.
    record: JobRecord | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _interval: float = field(default=1.0, repr=False)
    _next_write: float = field(default=0.0, repr=False)
    _pending: tuple[Any, Any, Any, Any] | None = field(default=None, repr=False)
    #: Seconds the job waited before this run started, and when it started (time.monotonic()).
    _queue_time: float = field(default=0.0, repr=False)
    _started: float = field(default=0.0, repr=False)
    #: When this run last wrote its record, on the ``time.monotonic()`` clock. It is the run's
    #: heartbeat.
    last_write: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(
        self,
        percent: float | None = None,
        message: str | None = None,
        current: int | None = None,
        total: int | None = None,
    ) -> None:
        """Report how far the job is. Written at most once per the tracker's
        ``progress_interval`` (counted from the last progress write); a value not written yet
        is never lost: it rides on the next write, the final one at the latest. Bad values
        raise :class:`ValueError` here."""
        if not _plain_progress(percent, message, current, total):
            Progress(percent, message, current, total)  # raises the precise ValueError
        now = time.monotonic()
        if now < self._next_write:
            self._pending = (percent, message, current, total)
            return
        self._pending = None
        self._next_write = now + self._interval
        reported = Progress(percent, message, current, total)
        self._update(lambda record: replace(record, progress=reported))

    def check_cancelled(self) -> None:
        """Read the job's record; raise :class:`~jobstatus.JobCancelled` if a client asked it
        to stop (the tracker then records ``cancelled`` and the ``with`` block ends quietly)."""
        if not self.cancel_requested and self._store is not None:
            with suppress(JobNotFound):
                self._learn(self._store.get(self.job_id))
        if self.cancel_requested:
            raise JobCancelled(self.job_id)

    # -- for the tracker ----------------------------------------------------------------------

    def beat(self) -> None:
        """Write the record again (with any progress held back): the run is alive."""
        pending = self.take_pending()
        self._update(
            lambda record: record if pending is None else replace(record, progress=pending)
        )

    def take_pending(self) -> Progress | None:
        """The progress not written yet (it rides on the final write)."""
        pending, self._pending = self._pending, None
        return None if pending is None else Progress(*pending)

    def _learn(self, stored: JobRecord, *, wrote: bool = False) -> None:
        self.record = stored
        if wrote:
            self.last_write = time.monotonic()
        if stored.cancel_requested_at is not None or stored.job_status == "cancelled":
            self.cancel_requested = True
        if stored.is_final:
            self.already_final = True

    def _update(self, change: Callable[[JobRecord], JobRecord]) -> None:
        """Write ``change(record)`` over the record this run knows, re-reading on a conflict;
        nothing is written once the job is final."""
        with self._lock:  # the heartbeat thread writes too
            self._update_locked(change)

    def _update_locked(self, change: Callable[[JobRecord], JobRecord]) -> None:
        store, record = self._store, self.record
        if store is None or record is None or self.already_final:
            return
        for _ in range(MAX_ATTEMPTS):
            try:
                written = store.put(change(record), expect_version=record.version)
            except Conflict:
                try:
                    record = store.get(self.job_id)
                except JobNotFound:
                    return  # deleted meanwhile: nothing left to report progress on
                self._learn(record)
                if record.is_final:
                    return
                continue
            self._learn(written, wrote=True)
            return
        raise Conflict(self.job_id, f"the job kept changing over {MAX_ATTEMPTS} attempts")


_current: ContextVar[Run | None] = ContextVar("jobstatus_current_run", default=None)


def current_run() -> Run | None:
    """The run being recorded in this thread (or asyncio task): inside ``tracker.run``, a
    function given to ``tracker.submit_to``, a task of a recorded queue
    (:mod:`jobstatus.integrations`); None anywhere else."""
    return _current.get()


def set_current_run(run: Run | None) -> Callable[[], None]:
    """Make ``run`` the :func:`current_run` of this thread (or asyncio task) and return the
    function that restores the previous one: for hooks that see a task start and end as two
    events."""
    token = _current.set(run)
    return lambda: _current.reset(token)


@contextmanager
def activate(run: Run) -> Iterator[Run]:
    """Make ``run`` the :func:`current_run` inside the ``with`` block."""
    restore = set_current_run(run)
    try:
        yield run
    finally:
        restore()


def _plain_progress(percent: Any, message: Any, current: Any, total: Any) -> bool:
    """The usual progress values, checked at a fraction of :class:`Progress`'s cost."""
    return (
        (percent is None or (type(percent) in (int, float) and 0 <= percent <= 100))
        and (message is None or type(message) is str)
        and (current is None or (type(current) is int and current >= 0))
        and (total is None or (type(total) is int and total >= 0))
        and (current is None or total is None or current <= total)
        and (type(percent) is not float or math.isfinite(percent))
    )


def utc_now() -> datetime:
    """The current moment, as lifecycle timestamps hold it."""
    return datetime.now(timezone.utc)
