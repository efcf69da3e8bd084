"""Record the tasks of a Celery app, with Celery's own signals: ``record_tasks(app, store)``.

The job id is the Celery task id; each signal writes:

- ``after_task_publish``: ``queued``, ``attempt`` 1 (only if the job has no record yet);
- ``task_prerun``: ``running``, ``attempt`` = the request's retries + 1;
- ``task_success``: ``done``, the return value as the envelope's ``response``;
- ``task_failure``: ``failed``, the error's message (no traceback);
- ``before_task_publish`` of a retry: ``queued`` again with the next ``attempt``, before the
  retry's message leaves (``task_retry`` does it for a retry that published nothing);
- ``task_revoked``: ``cancelled`` (``failed`` when the task had expired).

The endpoint of every envelope is the task's name. Inside a task, :func:`progress` reports
progress and :func:`check_cancelled` stops the task once a client asked it to. ``cancel`` (and
the status service's cancel route, given ``recorder.tracker``) records the request and revokes
the task -- with ``terminate=True`` the worker also kills the process running it.
"""

from __future__ import annotations

import signal as signals_of_os
from collections.abc import Callable, Collection
from typing import Any

try:
    from celery import Celery, signals
except ImportError as exc:  # pragma: no cover - depends on the environment
    from jobstatus.errors import missing_extra

    raise missing_extra("celery", exc) from exc

from jobstatus.integrations.recorder import QueueRecorder, check_cancelled, progress
from jobstatus.record import JobRecord
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

__all__ = [
    "TaskExpired",
    "TaskRecorder",
    "TaskSelection",
    "cancel",
    "check_cancelled",
    "progress",
    "record_tasks",
]

#: Which tasks to record -- None (every task but Celery's own ``celery.*``), a collection of
#: task names, or a predicate on the task's name.
TaskSelection = Collection[str] | Callable[[str], bool] | None

_SIGNALS = (
    "before_task_publish",
    "after_task_publish",
    "task_prerun",
    "task_success",
    "task_failure",
    "task_retry",
    "task_revoked",
    "task_postrun",
)


class TaskRecorder(QueueRecorder):
    """Records the tasks of ``app`` in ``store``: connected to Celery's signals in every
    process that makes it (the web app that sends tasks, the worker that imports the app).

    Make it once per app and process, where the app is defined, so that workers make it too.
    ``tracker`` (a :class:`~jobstatus.JobTracker`) cancels through Celery: hand it to
    ``StatusService(store, allow_cancel=recorder.tracker)``.
    """

    def __init__(
        self,
        app: Celery,
        store: Store,
        *,
        tasks: TaskSelection = None,
        terminate: bool = False,
        signal: str = "SIGTERM",
        **tracker_options: Any,
    ) -> None:
        super().__init__(JobTracker(store, on_cancel=self.revoke, **tracker_options))
        if terminate and not hasattr(signals_of_os, signal):
            raise ValueError(f"unknown signal {signal!r}")
        self.app = app
        self.terminate = terminate
        self.signal = signal
        self._wanted = _selection(tasks)
        for name in _SIGNALS:
            getattr(signals, name).connect(getattr(self, f"_on_{name}"), weak=False)

    def __repr__(self) -> str:
        return f"TaskRecorder({self.app.main!r}, {self.tracker.store!r})"

    def disconnect(self) -> None:
        """Stop recording: disconnect from Celery's signals."""
        for name in _SIGNALS:
            getattr(signals, name).disconnect(getattr(self, f"_on_{name}"))

    def cancel(self, job_id: str) -> JobRecord:
        """Ask the task to stop (:meth:`JobTracker.cancel <jobstatus.JobTracker.cancel>`)
        and revoke it; return the record as stored after the call."""
        return self.tracker.cancel(job_id)

    def revoke(self, record: JobRecord) -> None:
        """Revoke the task of ``record`` in every worker, so that a queued task never runs;
        with ``terminate``, a running one is killed with ``signal`` (then recorded
        ``cancelled`` by the worker). Called by the tracker's cancel."""
        self.app.control.revoke(
            record.job_id, terminate=self.terminate and not record.is_final, signal=self.signal
        )

    # -- Celery's signals ------------------------------------------------------------------

    def _on_before_task_publish(
        self, sender: Any = None, headers: Any = None, body: Any = None, **_: Any
    ) -> None:
        job_id, name, retries = _message(sender, headers, body)
        if job_id is not None and self.running(job_id) is not None and self._wanted(name):
            # A retry sent by the attempt this process runs: queued again before the message
            # leaves, so that the next attempt's "running" can never be overwritten.
            self.retrying(job_id, attempt=retries + 1)

    def _on_after_task_publish(
        self, sender: Any = None, headers: Any = None, body: Any = None, **_: Any
    ) -> None:
        job_id, name, retries = _message(sender, headers, body)
        if job_id is not None and self._wanted(name):
            self.enqueued(job_id, attempt=retries + 1)

    def _on_task_prerun(self, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if task is not None and isinstance(task_id, str) and self._wanted(task.name):
            retries = getattr(task.request, "retries", 0) or 0
            self.started(task_id, endpoint=task.name, attempt=retries + 1)

    def _on_task_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        job_id = getattr(getattr(sender, "request", None), "id", None)
        if isinstance(job_id, str):
            self.succeeded(job_id, result)

    def _on_task_failure(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any
    ) -> None:
        # In the process that ran the task, or in the worker's main process when the pool
        # process running it died (WorkerLostError) or it rejected its message for good.
        name = getattr(sender, "name", None)
        if isinstance(task_id, str) and isinstance(exception, BaseException) and self._wanted(name):
            self.failed(task_id, exception, endpoint=str(name))

    def _on_task_retry(self, request: Any = None, **_: Any) -> None:
        job_id = getattr(request, "id", None)
        if isinstance(job_id, str):
            self.retrying(job_id)  # nothing left to do when its publish already requeued it

    def _on_task_revoked(
        self, sender: Any = None, request: Any = None, expired: bool = False, **_: Any
    ) -> None:
        job_id, name = getattr(request, "id", None), getattr(sender, "name", None)
        if not isinstance(job_id, str) or not self._wanted(name):
            return
        self.release(job_id)
        if expired:
            self.failed(job_id, TaskExpired("the task expired before it ran"), endpoint=str(name))
        else:
            self.stopped(job_id, endpoint=str(name))

    def _on_task_postrun(self, task_id: Any = None, **_: Any) -> None:
        if isinstance(task_id, str):
            self.release(task_id)
            # A task that ended with Ignore or Reject keeps the record it had: nothing more
            # is known of it here.
            self.forget(task_id)


class TaskExpired(Exception):
    """The message of a task whose ``expires`` passed before a worker ran it."""


def record_tasks(
    app: Celery,
    store: Store,
    *,
    tasks: TaskSelection = None,
    terminate: bool = False,
    signal: str = "SIGTERM",
    **tracker_options: Any,
) -> TaskRecorder:
    """Record the tasks of ``app`` in ``store`` -- call it where the app is defined, so that
    the web app and the workers both do. ``tasks`` selects the tasks (see
    :data:`TaskSelection`); ``terminate`` and ``signal`` say how a cancel revokes a running
    task; ``tracker_options`` go to :class:`~jobstatus.JobTracker` (``progress_interval``,
    ``result_ttl``, ``failure_ttl``, ``owner``, ``build_number``, ``queue_id``)."""
    return TaskRecorder(
        app, store, tasks=tasks, terminate=terminate, signal=signal, **tracker_options
    )


def cancel(
    app: Celery,
    store: Store,
    job_id: str,
    *,
    terminate: bool = False,
    signal: str = "SIGTERM",
    **tracker_options: Any,
) -> JobRecord:
    """Ask the task ``job_id`` to stop, from any process: ``cancelled`` at once if it is
    queued, ``cancel_requested_at`` if it runs; then revoke it (see
    :meth:`TaskRecorder.revoke`). Returns the record as stored after the call."""

    def revoke(record: JobRecord) -> None:
        app.control.revoke(
            record.job_id, terminate=terminate and not record.is_final, signal=signal
        )

    return JobTracker(store, on_cancel=revoke, **tracker_options).cancel(job_id)


def _selection(tasks: TaskSelection) -> Callable[[Any], bool]:
    if tasks is None:
        return lambda name: isinstance(name, str) and not name.startswith("celery.")
    if callable(tasks):
        predicate = tasks
        return lambda name: isinstance(name, str) and bool(predicate(name))
    if isinstance(tasks, str):
        raise TypeError("tasks takes a collection of task names, not one string")
    names = frozenset(tasks)
    return lambda name: name in names


def _message(sender: Any, headers: Any, body: Any) -> tuple[str | None, Any, int]:
    """The task id, name and retries of a published message (Celery's message protocol 2,
    where they are headers; protocol 1 kept them in the body)."""
    for fields in (headers, body):
        if isinstance(fields, dict) and isinstance(fields.get("id"), str):
            retries = fields.get("retries") or 0
            return (
                fields["id"],
                fields.get("task", sender),
                retries if isinstance(retries, int) else 0,
            )
    return None, sender, 0
