"""Record the messages of a Dramatiq broker: ``broker.add_middleware(JobStatusMiddleware(store))``.

The job id is the message id; each hook writes:

- ``after_enqueue``: ``queued``, ``attempt`` 1 (only if the job has no record yet);
- ``before_process_message``: ``running``, ``attempt`` = the message's retries + 1;
- ``after_process_message`` with a result: ``done``, the return value as ``response``;
- the ``Retries`` middleware retries it (``before_enqueue``): ``queued`` again;
- the message fails for good: ``failed``, the error's message;
- ``after_skip_message``: ``failed`` if the message failed (e.g. too old for ``AgeLimit``),
  else ``cancelled``.

An exception's outcome waits for the ``Retries`` middleware's decision: a retry (recorded at
its enqueue), or the message's ack or nack (recorded then), wherever the middleware sits in
the broker's list. A job cancelled while it waited is skipped when its message arrives; a
running actor learns of a cancel at its :func:`progress` writes and stops at
:func:`check_cancelled` (Dramatiq has no way to interrupt a running actor).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

try:
    from dramatiq import Broker
    from dramatiq.middleware import Middleware, SkipMessage
except ImportError as exc:  # pragma: no cover - depends on the environment
    from jobstatus.errors import missing_extra

    raise missing_extra("dramatiq", exc) from exc

from jobstatus.errors import JobCancelled
from jobstatus.integrations.recorder import QueueRecorder, check_cancelled, progress
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

__all__ = ["JobStatusMiddleware", "MessageSkipped", "check_cancelled", "progress"]


class JobStatusMiddleware(Middleware):
    """Records every message of the broker it is added to (or those of ``actors``, a
    collection of actor names or a predicate on them) in ``store``; ``tracker_options`` go
    to :class:`~jobstatus.JobTracker`. Add it in the module that declares the broker, so that
    workers add it too. ``tracker`` cancels jobs; hand it to
    ``StatusService(store, allow_cancel=middleware.tracker)``."""

    def __init__(
        self,
        store: Store,
        *,
        actors: Collection[str] | Callable[[str], bool] | None = None,
        **tracker_options: Any,
    ) -> None:
        self.recorder = QueueRecorder(JobTracker(store, **tracker_options))
        if actors is None:
            self._wanted: Callable[[str], bool] = lambda name: True
        elif callable(actors):
            self._wanted = actors
        else:
            names = frozenset([actors] if isinstance(actors, str) else actors)
            self._wanted = names.__contains__
        # Exceptions whose outcome waits for the Retries middleware, by message id.
        self._failures: dict[str, BaseException] = {}

    def __repr__(self) -> str:
        return f"JobStatusMiddleware({self.tracker.store!r})"

    @property
    def tracker(self) -> JobTracker:
        """The tracker that records the messages."""
        return self.recorder.tracker

    def after_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        """The broker took a new message: ``queued``."""
        if _retries(message) == 0 and self._wanted(message.actor_name):
            self.recorder.enqueued(message.message_id)

    def before_enqueue(self, broker: Broker, message: Any, delay: int | None) -> None:
        """A retry of the attempt this process ran: ``queued`` again, the next attempt."""
        job_id = message.message_id
        if self.recorder.running(job_id) is not None:  # Retries sends this attempt again
            self._failures.pop(job_id, None)
            self.recorder.retrying(job_id, attempt=_retries(message) + 1)

    def before_process_message(self, broker: Broker, message: Any) -> None:
        """``running``; a job already final is skipped."""
        if not self._wanted(message.actor_name):
            return
        job_id = message.message_id
        run = self.recorder.started(
            job_id, endpoint=message.actor_name, attempt=_retries(message) + 1
        )
        if run is not None and run.already_final:  # cancelled while it waited
            self.recorder.release(job_id)
            self.recorder.forget(job_id)
            raise SkipMessage(f"job {job_id} is already {run.record and run.record.job_status}")

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """``done`` with the result; an exception's outcome waits for the Retries
        middleware's decision, unless the message already failed."""
        job_id = message.message_id
        self.recorder.release(job_id)
        if self.recorder.running(job_id) is None:  # not recorded, or already queued again
            return
        if exception is None:
            self.recorder.succeeded(job_id, result)
        elif message.failed or isinstance(exception, JobCancelled):
            self.recorder.failed(job_id, exception, endpoint=message.actor_name)
        else:
            self._failures[job_id] = exception  # retried (before_enqueue), or acked/nacked

    def after_ack(self, broker: Broker, message: Any) -> None:
        """A message that raised and was not retried: ``failed``."""
        self._settle(message)

    def after_nack(self, broker: Broker, message: Any) -> None:
        """A message that failed for good: ``failed``."""
        self._settle(message)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        """A message skipped before it was processed: ``failed`` or ``cancelled``."""
        job_id = message.message_id
        if not self._wanted(message.actor_name):
            return
        self.recorder.release(job_id)
        if message.failed:
            skipped = MessageSkipped("the message was skipped before it was processed")
            self.recorder.failed(job_id, skipped, endpoint=message.actor_name)
        else:
            self.recorder.stopped(job_id, endpoint=message.actor_name)

    def _settle(self, message: Any) -> None:
        error = self._failures.pop(message.message_id, None)
        if error is not None:
            self.recorder.failed(message.message_id, error, endpoint=message.actor_name)


class MessageSkipped(Exception):
    """The message of a job whose message another middleware skipped and failed."""


def _retries(message: Any) -> int:
    retries = message.options.get("retries", 0)
    return retries if isinstance(retries, int) else 0
