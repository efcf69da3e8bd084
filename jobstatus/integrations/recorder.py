"""Where a task queue's events become a tracker's writes; shared by every integration.

An integration turns its queue's hooks into calls of a :class:`QueueRecorder`: ``enqueued``
when the queue accepted a message, ``started`` when a worker starts it, then ``succeeded``,
``failed``, ``retrying`` or ``stopped``. The record of the job is the upstream document with the
lifecycle keys, plus :data:`ATTEMPT_KEY`: the attempt's number, 1 for the first run.

Recording never breaks the queue: a write that fails is logged (``jobstatus.integrations``,
credentials redacted) and the task goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from jobstatus.errors import Conflict, JobCancelled, JobNotFound, redact
from jobstatus.lifecycle import Progress
from jobstatus.record import JobRecord, JobState
from jobstatus.run import Run, current_run, set_current_run, utc_now
from jobstatus.store import ABSENT
from jobstatus.tracker import JobTracker

__all__ = ["ATTEMPT_KEY", "QueueRecorder", "check_cancelled", "progress"]

log = logging.getLogger("jobstatus.integrations")

#: The document key holding the number of the job's attempt (1, then 2 after a retry).
ATTEMPT_KEY = "attempt"


class QueueRecorder:
    """One queue's jobs, recorded by ``tracker``. The runs this process is working on are
    kept here, by job id, from ``started`` until they end."""

    def __init__(self, tracker: JobTracker) -> None:
        self.tracker = tracker
        self._runs: dict[str, Run] = {}
        self._restore: dict[str, Callable[[], None]] = {}

    def __repr__(self) -> str:
        return f"QueueRecorder({self.tracker!r})"

    def enqueued(self, job_id: str, *, attempt: int = 1) -> None:
        """The queue accepted the job's message (call it after it did): ``queued`` with
        ``created_at`` and the attempt, written only if the job has no record yet
        (``expect_version=ABSENT``) -- never over a worker that was quicker, nor over the
        record of a job whose id is reused."""
        tracker = self.tracker
        record = JobRecord(
            job_id=job_id,
            job_status=JobState.QUEUED,
            queue_id=tracker.queue_id,
            process_id=os.getpid(),
            extra={ATTEMPT_KEY: attempt},
            created_at=utc_now(),
            owner=tracker.owner,
        )
        with _logged("queued", job_id), suppress(Conflict):
            tracker.store.put(record, expect_version=ABSENT)

    def started(self, job_id: str, *, endpoint: str, attempt: int | None = None) -> Run | None:
        """A worker of this process starts the job: ``running`` (the stored attempt kept
        unless the queue gives it). The run becomes the thread's
        :func:`~jobstatus.run.current_run` until :meth:`release`. None when the store
        failed: the work goes on unrecorded."""
        extra = None if attempt is None else {ATTEMPT_KEY: attempt}
        try:
            run = self.tracker.start(job_id, endpoint=endpoint, extra=extra)
        except Exception as exc:
            _log_failure("running", job_id, exc)
            return None
        self._runs[job_id] = run
        self._restore[job_id] = set_current_run(run)
        return run

    def running(self, job_id: str) -> Run | None:
        """The run of ``job_id`` if this process works on it."""
        return self._runs.get(job_id)

    def forget(self, job_id: str) -> None:
        """Drop the run of ``job_id`` without writing: the task ended in a way that leaves its
        record as it is (skipped because already final, ignored)."""
        run = self._runs.pop(job_id, None)
        if run is not None:
            self.tracker.abandon(run)

    def release(self, job_id: str) -> None:
        """The task's code is over in this thread: its run is no longer the current one."""
        restore = self._restore.pop(job_id, None)
        if restore is not None:
            with suppress(ValueError):  # released from another context: nothing to restore
                restore()

    def succeeded(self, job_id: str, result: Any) -> None:
        """The task returned ``result``: ``done`` with it as the envelope's ``response``."""
        run = self._runs.pop(job_id, None)
        if run is not None:
            run.result = result
            with _logged("done", job_id):
                self.tracker.finish(run)

    def failed(self, job_id: str, error: BaseException, *, endpoint: str) -> None:
        """The task raised ``error`` for the last time: ``failed`` with its message
        (``cancelled`` for the job's own :class:`~jobstatus.JobCancelled`, or once a cancel
        was requested). Works from any process: without a run here, the stored record is
        ended."""
        self._end(job_id, error, endpoint)

    def stopped(self, job_id: str, *, endpoint: str) -> None:
        """The queue stopped the job (revoked, terminated, skipped): ``cancelled``. Works from
        any process."""
        self._end(job_id, JobCancelled(job_id), endpoint)

    def retrying(self, job_id: str, *, attempt: int | None = None) -> bool:
        """The attempt this process ran failed and the job will run again: ``queued`` with
        the next attempt's number (the stored one plus 1 unless given), or ``cancelled`` if a
        client asked it to stop. False when this process holds no run of the job."""
        run = self._runs.pop(job_id, None)
        if run is None:
            return False
        if attempt is None:
            attempt = attempt_of(run.record) + 1
        with _logged("queued again", job_id):
            self.tracker.requeue(run, extra={ATTEMPT_KEY: attempt})
        return True

    def _end(self, job_id: str, error: BaseException, endpoint: str) -> None:
        run = self._runs.pop(job_id, None)
        with _logged("the end", job_id):
            if run is None:
                try:
                    run = self.tracker.attach(job_id, endpoint=endpoint)
                except JobNotFound:
                    return  # never recorded, or purged meanwhile: nothing to end
            self.tracker.finish(run, error)


def attempt_of(record: JobRecord | None) -> int:
    """The attempt number a record holds (1 when it has none)."""
    value = None if record is None else record.extra.get(ATTEMPT_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def progress(
    percent: float | None = None,
    message: str | None = None,
    current: int | None = None,
    total: int | None = None,
) -> None:
    """Report how far the running task is: written at most once per the tracker's
    ``progress_interval`` (a value not written yet rides on the next write, the final one at
    the latest); a client's cancel request is learned at each write. Bad values raise
    :class:`ValueError`. Outside a recorded task the values are checked and nothing is
    written; a failing store is logged, never raised into the task."""
    run = current_run()
    if run is None:
        Progress(percent, message, current, total)  # the same checks, nothing to write
        return
    try:
        run.progress(percent, message, current, total)
    except ValueError:
        raise
    except Exception as exc:
        _log_failure("progress", run.job_id, exc)


def check_cancelled() -> None:
    """Raise :class:`~jobstatus.JobCancelled` if a client asked the running task to stop; the
    integration then records ``cancelled`` (let the exception leave the task). Reads the
    record unless a progress write already learned of the request: call it between steps,
    not in a tight loop. Outside a recorded task it does nothing; a failing store is logged
    and the task goes on."""
    run = current_run()
    if run is None:
        return
    try:
        run.check_cancelled()
    except JobCancelled:
        raise
    except Exception as exc:
        _log_failure("a cancel request", run.job_id, exc)


@contextmanager
def _logged(what: str, job_id: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        _log_failure(what, job_id, exc)


def _log_failure(what: str, job_id: str, exc: Exception) -> None:
    log.error(
        "jobstatus could not record %s of job %s: %s",
        what,
        job_id,
        redact(f"{type(exc).__name__}: {exc}"),
    )
