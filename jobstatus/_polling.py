"""Reading one job for a poller: conditionally, from the watcher when it can vouch for the
version, and held while the client waits for a change.

- ``GET /v1/toolkit/jobs/{job_id}`` with ``If-None-Match``: a 304 when the job's version
  matches. The current version comes from the watcher when its store's change feed can flush
  (no store read at all), else from the store.
- With ``?wait=S`` (GET, with ``If-None-Match``) or ``"wait": S`` (POST): the waiter is
  registered *before* the record is read, so no change can fall between the read and the wait;
  the answer is then a :class:`~jobstatus.waiting.Pending` the watcher wakes -- 200 with the
  new record, 404 once the job is gone, or at the deadline 304 (GET) or the 200 of the record
  seen (POST). A POST about a final job answers at once: it will not change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from jobstatus._answers import Answers
from jobstatus._freshness import IfNoneMatch
from jobstatus.access import Access, visible
from jobstatus.errors import JobNotFound
from jobstatus.metrics import ServiceMetrics
from jobstatus.record import JobRecord
from jobstatus.store import Store
from jobstatus.waiting import Pending, WaitLimits
from jobstatus.watch import GONE, Watcher, watcher_for
from jobstatus.wire import Reply

__all__ = ["JobReads"]

EVERYTHING = Access()


class JobReads:
    """The reads of one job that a service answers, conditional and waiting ones included."""

    def __init__(
        self,
        store: Store,
        answers: Answers,
        limits: WaitLimits,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.store = store
        self.answers = answers
        self.limits = limits
        self.metrics = metrics
        self._watcher: Watcher | None = None

    @property
    def watcher(self) -> Watcher:
        """The watcher of the store in this process (shared by every service on it; with
        ``metrics``, the store is the service's own measured one, and so is its watcher)."""
        watcher = self._watcher
        if watcher is None or watcher.pid != os.getpid():
            watcher = self._watcher = watcher_for(self.store)
            if self.metrics is not None:
                watcher.metrics = self.metrics
        return watcher

    def read(self, job_id: str) -> JobRecord:
        """The record from the store; the watcher remembers it when it can vouch for it."""
        watcher = self.watcher
        token = watcher.token()
        record = self.store.get(job_id)
        watcher.remember(record, token)
        return record

    def current(self, job_id: str) -> JobRecord:
        """The job's current record: from the watcher when it can vouch, else the store's."""
        record = self.watcher.known(job_id)
        if record is not None and not record.is_expired(time.time()):
            return record
        return self.read(job_id)

    def get(
        self,
        endpoint: str,
        job_id: str,
        condition: IfNoneMatch | None,
        wait: float | None,
        started: float,
        access: Access = EVERYTHING,
    ) -> Reply | Pending:
        """``GET /v1/toolkit/jobs/{job_id}``; another owner's job is a plain 404."""
        if condition is None:
            record = visible(self.read(job_id), access)
            return self.answers.job(endpoint, None, job_id, record, started)
        if wait is not None:
            return self.held(endpoint, job_id, None, condition, wait, started, access)
        record = visible(self.current(job_id), access)
        if condition.matches(record.version):
            return self.answers.not_modified(record)
        return self.answers.job(endpoint, None, job_id, record, started)

    def held(
        self,
        endpoint: str,
        job_id: str,
        request_id: Any,
        condition: IfNoneMatch | None,
        wait: float,
        started: float,
        access: Access = EVERYTHING,
    ) -> Reply | Pending:
        """A long-poll: the answer now if the job already differs from ``condition`` (None:
        a POST, whose wait ends when the version seen now changes, or at once for a final
        job), else a :class:`~jobstatus.waiting.Pending`."""
        answers = self.answers
        waiter = self.watcher.watch(job_id)  # before the read: no change can slip between
        try:
            record = visible(self.current(job_id), access)
            matches: Callable[[str | None], bool]
            seen = record.version
            if condition is not None:
                matches = condition.matches
            elif record.is_final or seen is None:
                matches = _never
            else:

                def matches(version: str | None) -> bool:
                    return version == seen

            if not matches(record.version):
                waiter.close()
                return answers.job(endpoint, request_id, job_id, record, started)
            waiter.expect(record, matches)
        except BaseException:
            waiter.close()
            raise

        def finish(woken: bool) -> Reply:
            state = waiter.current
            try:
                if state is GONE or state is None or state.is_expired(time.time()):
                    raise JobNotFound(job_id)
                visible(state, access)
                if condition is not None and not woken:
                    return answers.not_modified(state)
                return answers.job(endpoint, request_id, job_id, state, started)
            except Exception as exc:
                return answers.failure(endpoint, exc, request_id, started)

        return Pending(waiter, time.monotonic() + wait, finish, self.limits)


def _never(version: str | None) -> bool:
    return False
