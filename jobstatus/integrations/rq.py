"""Record the jobs of an RQ queue: ``record_jobs(queue, store)``, and workers started with
``--job-class jobstatus.integrations.rq.RecordedJob``.

RQ has no hook of its own for a job's start, so the job class is the way in -- as RQ's
documentation says of a custom job class, the queue and the worker must both use it:

- the queue creates the job (every ``enqueue*``): ``queued``, ``attempt`` 1;
- ``RecordedJob.perform`` in the work horse: ``running``;
- the success callback: ``done``, the return value as ``response``;
- the failure callback: ``queued`` again with the next ``attempt`` when retries are left,
  else ``failed`` with the error's message;
- the job returns ``rq.Retry``: ``queued`` again (``failed`` past ``Retry.max``);
- the stopped callback (``send_stop_job_command``): ``cancelled``;
- ``send_webhooks(FAILED)`` while the job still runs: ``failed`` -- its work horse was
  killed, and RQ calls no callback then.

The job class chains the job's own ``on_success``/``on_failure``/``on_stopped`` callbacks after
recording. The recorder a job belongs to is found by the job's queue name, in the process
that handles it: call ``record_jobs`` in the module that defines the job functions (the work
horse imports it to run them; the worker's main process imports it when a job is stopped).
Inside a job, :func:`progress` and :func:`check_cancelled` work as in every integration.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

try:
    from redis import Redis
    from rq import Queue, Retry
    from rq.command import send_stop_job_command
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job, JobStatus
except ImportError as exc:  # pragma: no cover - depends on the environment
    from jobstatus.errors import missing_extra

    raise missing_extra("rq", exc) from exc

from jobstatus.integrations.recorder import QueueRecorder, check_cancelled, progress
from jobstatus.record import JobRecord
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

__all__ = [
    "JobRecorder",
    "RecordedJob",
    "RetriesExhausted",
    "WorkHorseLost",
    "cancel",
    "check_cancelled",
    "progress",
    "record_jobs",
]

# queue name → its recorder, in this process
_RECORDERS: dict[str, JobRecorder] = {}


class JobRecorder(QueueRecorder):
    """Records the jobs of ``queue`` in ``store``. ``tracker`` cancels through RQ: hand it to
    ``StatusService(store, allow_cancel=recorder.tracker)``."""

    def __init__(self, queue: Queue, store: Store, **tracker_options: Any) -> None:
        super().__init__(JobTracker(store, on_cancel=self.stop, **tracker_options))
        self.queue = queue

    def __repr__(self) -> str:
        return f"JobRecorder({self.queue.name!r}, {self.tracker.store!r})"

    def cancel(self, job_id: str) -> JobRecord:
        """Ask the job to stop (:meth:`JobTracker.cancel <jobstatus.JobTracker.cancel>`) and
        tell RQ (:meth:`stop`); return the record as stored after the call."""
        return self.tracker.cancel(job_id)

    def stop(self, record: JobRecord) -> None:
        """RQ's side of a cancel: a job cancelled while queued is cancelled in RQ (it never
        runs); a running one is stopped -- its worker kills the work horse, and the stopped
        callback records ``cancelled``. Called by the tracker's cancel."""
        _stop(self.queue.connection, record, self.queue.serializer)


class RecordedJob(Job):
    """RQ's job, recorded: give it to the queue (``record_jobs`` does) and to the worker
    (``rq worker --job-class jobstatus.integrations.rq.RecordedJob``)."""

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        """RQ's ``Job.create``; a job of a recorded queue is recorded ``queued`` (before
        it is saved, so no worker can start it first)."""
        job = super().create(*args, **kwargs)
        recorder = _RECORDERS.get(job.origin)
        if recorder is not None:
            recorder.enqueued(job.id)
        return job

    def perform(self) -> Any:
        """Run the job in the work horse between ``running`` and its outcome. A job already
        final (cancelled while it waited) is skipped: its function is not called."""
        recorder = _recorder_of(self)
        if recorder is None:
            return super().perform()
        run = recorder.started(self.id, endpoint=self.func_name or "?")
        try:
            if run is not None and run.already_final:
                recorder.forget(self.id)
                return None
            result = super().perform()
        finally:
            recorder.release(self.id)
        if isinstance(result, Retry):
            if (self.number_of_retries or 0) >= result.max:  # RQ fails it, without a callback
                exhausted = RetriesExhausted(f"gave up after {result.max} retries")
                recorder.failed(self.id, exhausted, endpoint=self.func_name or "?")
            else:
                recorder.retrying(self.id)
        return result

    @property
    def success_callback(self) -> Callable[..., Any] | None:
        user = super().success_callback

        def recorded(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> Any:
            recorder = _recorder_of(job)
            if recorder is not None:
                recorder.succeeded(job.id, result)
            return None if user is None else user(job, connection, result, *args, **kwargs)

        return recorded

    @property
    def failure_callback(self) -> Callable[..., Any] | None:
        user = super().failure_callback

        def recorded(job: Job, connection: Redis, *exc_info: Any, **kwargs: Any) -> Any:
            recorder = _recorder_of(job)
            if recorder is not None:
                if job.should_retry:
                    recorder.retrying(job.id)
                else:
                    error = exc_info[1] if len(exc_info) > 1 else None
                    if not isinstance(error, BaseException):
                        error = RuntimeError("the job failed")
                    recorder.failed(job.id, error, endpoint=job.func_name or "?")
            return None if user is None else user(job, connection, *exc_info, **kwargs)

        return recorded

    @property
    def stopped_callback(self) -> Callable[..., Any] | None:
        user = super().stopped_callback

        def recorded(job: Job, connection: Redis, *args: Any, **kwargs: Any) -> Any:
            recorder = _recorder_of(job)
            if recorder is not None:
                recorder.stopped(job.id, endpoint=job.func_name or "?")
            return None if user is None else user(job, connection, *args, **kwargs)

        return recorded

    def send_webhooks(self, status: str | JobStatus, *, exc_string: str | None = None) -> None:
        """RQ's webhooks. RQ sends a failed job's webhooks wherever it learns of the failure
        -- also in the worker's main process when the work horse died, where it calls no
        failure callback: a job still running is then recorded ``failed`` here."""
        if status == JobStatus.FAILED:
            recorder = _recorder_of(self)
            if recorder is not None and recorder.running(self.id) is None:
                reason = (exc_string or "").strip().splitlines()[-1:] or ["the job failed"]
                recorder.failed(self.id, WorkHorseLost(reason[0]), endpoint=self.func_name or "?")
        super().send_webhooks(status, exc_string=exc_string)


class WorkHorseLost(Exception):
    """The message of a job whose work horse died before it could record the end."""


class RetriesExhausted(Exception):
    """The message of a job that kept returning ``rq.Retry`` past its ``max``."""


def record_jobs(queue: Queue, store: Store, **tracker_options: Any) -> JobRecorder:
    """Record the jobs of ``queue`` in ``store``: its job class becomes :class:`RecordedJob`
    (a custom job class must subclass it). Call it in the module that defines the job
    functions, so that workers do too; start workers with ``--job-class
    jobstatus.integrations.rq.RecordedJob``. ``tracker_options`` go to
    :class:`~jobstatus.JobTracker`."""
    if not issubclass(queue.job_class, RecordedJob):
        if queue.job_class is not Job:
            raise TypeError(
                f"the queue's job class {queue.job_class.__name__} must subclass RecordedJob"
            )
        queue.job_class = RecordedJob
    recorder = JobRecorder(queue, store, **tracker_options)
    _RECORDERS[queue.name] = recorder
    return recorder


def cancel(queue: Queue, store: Store, job_id: str, **tracker_options: Any) -> JobRecord:
    """Ask the job ``job_id`` of ``queue`` to stop, from any process: ``cancelled`` at once
    (and cancelled in RQ) if it is queued; ``cancel_requested_at`` and RQ's stop command if it
    runs. Returns the record as stored after the call."""

    def stop(record: JobRecord) -> None:
        _stop(queue.connection, record, queue.serializer)

    return JobTracker(store, on_cancel=stop, **tracker_options).cancel(job_id)


def _stop(connection: Redis, record: JobRecord, serializer: Any) -> None:
    with suppress(NoSuchJobError, InvalidJobOperation):
        if record.is_final:
            Job.fetch(record.job_id, connection=connection, serializer=serializer).cancel()
        else:
            send_stop_job_command(connection, record.job_id, serializer=serializer)


def _recorder_of(job: Job) -> JobRecorder | None:
    """The recorder of the job's queue in this process; the job's function is imported first
    when none is known yet (its module is where ``record_jobs`` is called)."""
    recorder = _RECORDERS.get(job.origin)
    if recorder is None:
        with suppress(Exception):  # RQ itself reports a function that cannot be imported
            job.func  # noqa: B018 - importing the function's module registers its recorder
        recorder = _RECORDERS.get(job.origin)
    return recorder
