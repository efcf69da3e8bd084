"""What ``tracker.submit_to(executor, fn, ...)`` hands an executor: ``fn`` inside a tracked run.

:class:`TrackedCall` is picklable whenever ``fn`` and the tracker's store are, so a
``ProcessPoolExecutor`` runs it -- and records the run -- in the child
process. :class:`CallLater` turns a function that schedules a call, such as FastAPI's
``BackgroundTasks.add_task``, into an executor for ``submit_to``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from jobstatus.errors import JobNotFound

if TYPE_CHECKING:
    from jobstatus.tracker import JobTracker

__all__ = ["CallLater", "TrackedCall"]


class TrackedCall:
    """``fn(*args, **kwargs)`` recorded as the job ``job_id`` of ``tracker``: ``running``, then
    ``done`` with the return value as the envelope's ``response`` or ``failed`` with the
    error (re-raised, so the future holds it too). A job cancelled before it started is
    skipped: ``fn`` is not called and the call returns None."""

    def __init__(
        self, tracker: JobTracker, job_id: str, endpoint: str, fn: Callable[..., Any]
    ) -> None:
        self.tracker, self.job_id, self.endpoint, self.fn = tracker, job_id, endpoint, fn

    def __repr__(self) -> str:
        return f"TrackedCall({self.fn!r}, job_id={self.job_id!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.tracker.run(self.job_id, endpoint=self.endpoint) as run:
            if run.already_final:
                return None
            run.result = self.fn(*args, **kwargs)
        return run.result

    def settle(self, future: Future[Any]) -> None:
        """When the future ends: a cancelled future (it never started) records ``cancelled``;
        a call that failed without recording it -- the pool broke, an argument or the result
        did not pickle, the process running it died -- records ``failed`` with that error.
        What the call recorded itself stands: nothing is written over a final record."""
        tracker = self.tracker
        if future.cancelled():
            tracker.cancel(self.job_id)
            return
        error = future.exception()
        if error is None:
            return
        try:
            run = tracker.attach(self.job_id, endpoint=self.endpoint)
        except JobNotFound:
            return
        tracker.finish(run, error)


class CallLater:
    """An executor for :meth:`~jobstatus.JobTracker.submit_to` made of a function that
    schedules a call, ``add_task(fn, *args, **kwargs)``: FastAPI's and Starlette's
    ``BackgroundTasks.add_task``, or any other. ``submit`` returns None (no future)::

        @app.post("/v1/reports", status_code=202)
        def report(background_tasks: BackgroundTasks) -> dict[str, str]:
            job_id = tracker.submit_to(CallLater(background_tasks.add_task), build_report)
            return {"job_id": job_id}
    """

    def __init__(self, add_task: Callable[..., object]) -> None:
        self.add_task = add_task

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        self.add_task(fn, *args, **kwargs)
