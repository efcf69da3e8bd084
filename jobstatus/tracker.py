"""JobTracker: record a job's life the way the upstream queue does, and a little more.

``submit`` writes ``queued``; ``run`` writes ``running``, then ``done`` with the processing
endpoint's envelope, ``failed`` with the error, or ``cancelled`` when a client asked the job to
stop; ``hand_off`` writes ``submitted`` for work handed to an external runner; ``submit_to``
does all of it for a function run by a ``concurrent.futures`` executor. ``start``,
``finish``, ``requeue`` and ``attach`` are the steps of ``run`` one by one, for task queues
whose events arrive as separate callbacks (:mod:`jobstatus.integrations`). Every record is
the upstream job file::

    {"job_status": ..., "job_id": ..., "queue_id": ..., "process_id": ..., "response": ...}

plus ``created_at``, ``started_at``, ``ended_at``, the last ``progress``, ``expires_at`` (with
``result_ttl``/``failure_ttl``) and ``owner``. A tracked job costs three writes -- queued,
running, final -- and progress at most one more per ``progress_interval``. A job with a
``webhook_url`` carries its delivery's state in the same writes (``webhook``); the deliverer's
own writes come after the final one (:mod:`jobstatus.webhooks`).

The tracker holds no lock, thread or connection of its own: the process id is read at each
write and the jobs waiting to start are a plain ordered dict, so a host that forks (gunicorn,
multiprocessing) keeps recording correctly in every process. Its heartbeat and webhook
deliverer start their threads in the process that needs them, a forked child its own.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, NamedTuple

from jobstatus._writer import CANCELLED_CODE, WAITING, RecordWriter
from jobstatus.errors import Conflict, JobCancelled, QueueFull
from jobstatus.lifecycle import LIFECYCLE_KEYS
from jobstatus.record import JobRecord, JobState, check_job_id
from jobstatus.run import MAX_ATTEMPTS, Run, activate, utc_now
from jobstatus.store import ABSENT, ExpectedVersion, Store
from jobstatus.webhooks import Webhooks
from jobstatus.webhooks.state import WEBHOOK_KEY, new_webhook, with_webhook

__all__ = ["MAX_REMEMBERED", "CANCELLED_CODE", "JobTracker", "Run"]

#: How many submitted jobs a tracker remembers until they start; past that the oldest is
#: forgotten, and its run measures ``queue_time`` from the stored ``queued`` record instead.
MAX_REMEMBERED = 100_000


class _Submission(NamedTuple):
    endpoint: str
    id: Any
    queued_at: float  # time.monotonic(): one clock for every process of the machine
    created_at: datetime
    owner: str | None
    webhook: dict[str, Any] | None


class JobTracker(RecordWriter):
    """Writes ``queued`` → ``running`` → ``done``/``failed``/``cancelled`` records to a store.

    Args:
        store: where the records go.
        build_number: echoed as ``build_number`` in every finished job's envelope.
        queue_id: identifies this queue in every record; like upstream (``id(queue)``), it
            defaults to an id of this tracker.
        max_queue_length: when above 0, :meth:`submit` raises :class:`~jobstatus.QueueFull`
            (429) once that many jobs wait to start, as the upstream ``MAX_QUEUE_LENGTH`` does.
        progress_interval: seconds between two progress writes of a run (0: every call).
        result_ttl: seconds a ``done`` record is kept after it ended (None: for ever).
        failure_ttl: the same for ``failed`` and ``cancelled`` records.
        owner: the owner of the jobs this tracker submits, unless ``submit`` names another.
        heartbeat_interval: a run that has not written for this many seconds gets its
            record written again, so :meth:`reap` can tell a live run from a lost one.
        on_cancel: called with the record as stored after each :meth:`cancel` of a job that
            was not final: the hook through which a task queue stops the work (revokes a
            Celery task, stops an RQ job). Its exceptions propagate; the record is written.
        webhooks: lets jobs name a ``webhook_url`` (:class:`~jobstatus.Webhooks`): the
            tracker's :attr:`deliverer` sends each job's final envelope there when it ends.
    """

    def __init__(
        self,
        store: Store,
        *,
        build_number: str | None = None,
        queue_id: int | None = None,
        max_queue_length: int = 0,
        progress_interval: float = 1.0,
        result_ttl: float | None = None,
        failure_ttl: float | None = None,
        owner: str | None = None,
        heartbeat_interval: float = 30.0,
        on_cancel: Callable[[JobRecord], object] | None = None,
        webhooks: Webhooks | None = None,
    ) -> None:
        super().__init__(
            store,
            build_number=build_number,
            queue_id=queue_id,
            progress_interval=progress_interval,
            result_ttl=result_ttl,
            failure_ttl=failure_ttl,
            owner=owner,
            heartbeat_interval=heartbeat_interval,
            webhooks=webhooks,
        )
        self.max_queue_length = max_queue_length
        self.on_cancel = on_cancel
        # Plain dict operations only (atomic under the GIL): nothing to re-create after a fork.
        self._waiting: OrderedDict[str, _Submission] = OrderedDict()

    def __repr__(self) -> str:
        return f"JobTracker({self.store!r}, queue_id={self.queue_id!r})"

    def __getstate__(self) -> dict[str, Any]:
        """A pickled tracker (sent to a process pool) records the same way to the same store,
        with no memory of the jobs waiting and no ``on_cancel`` hook."""
        state = super().__getstate__()
        state.update(_waiting=OrderedDict(), on_cancel=None)
        return state

    @property
    def queue_length(self) -> int:
        """Jobs this tracker submitted that have not started (nor been handed off) yet."""
        return len(self._waiting)

    def submit(
        self,
        *,
        endpoint: str,
        id: Any = None,
        job_id: str | None = None,
        owner: str | None = None,
        webhook_url: str | None = None,
    ) -> str:
        """Record a new job as ``queued`` (``created_at`` now) and return its id (a fresh UUID
        unless given).

        ``endpoint`` and ``id`` (the client's request id) go into the envelope when the job
        finishes. Raises :class:`~jobstatus.QueueFull` when ``max_queue_length`` jobs wait.
        ``webhook_url`` receives the final envelope when the job ends; a bad one (or one on a
        tracker without ``webhooks=``) is a :class:`ValueError` before anything is written.
        """
        webhook = new_webhook(webhook_url, configured=self.webhooks is not None)
        job_id = str(uuid.uuid4()) if job_id is None else check_job_id(job_id)
        waiting = self.queue_length
        if 0 < self.max_queue_length <= waiting:
            raise QueueFull(
                self.max_queue_length,
                queue_length=waiting,
                id=id,
                job_id=job_id,
                pid=os.getpid(),
                queue_id=self.queue_id,
                build_number=self.build_number,
            )
        owner = self.owner if owner is None else owner
        created_at = utc_now()
        queued = self._record(job_id, JobState.QUEUED, created_at=created_at, owner=owner)
        self.store.put(queued if webhook is None else with_webhook(queued, webhook))
        self._waiting[job_id] = _Submission(
            endpoint, id, time.monotonic(), created_at, owner, webhook
        )
        while len(self._waiting) > MAX_REMEMBERED:
            self._waiting.popitem(last=False)
        return job_id

    def hand_off(self, job_id: str, *, response: Any = None) -> JobRecord:
        """Record that the job went to an external runner: ``submitted``, with ``response``
        (what the runner answered, e.g. its execution name). The runner later records the
        rest with a tracker of its own."""
        submission = self._waiting.pop(job_id, None)
        submitted = self._record(
            job_id,
            JobState.SUBMITTED,
            response,
            created_at=None if submission is None else submission.created_at,
            owner=self.owner if submission is None else submission.owner,
        )
        webhook = None if submission is None else submission.webhook
        return self.store.put(submitted if webhook is None else with_webhook(submitted, webhook))

    @contextmanager
    def run(
        self,
        job_id: str | None = None,
        *,
        endpoint: str | None = None,
        id: Any = None,
        webhook_url: str | None = None,
    ) -> Iterator[Run]:
        """Record the work inside the ``with`` block: ``running`` on entry (``started_at``),
        then ``done`` with the envelope, ``failed`` with the error when the block raises (then
        re-raised), or ``cancelled`` when a client asked the job to stop (a
        :class:`~jobstatus.JobCancelled` from :meth:`Run.check_cancelled` ends the block
        quietly). The final record has ``ended_at``, the last progress and, with a TTL,
        ``expires_at``. Inside the block, :func:`jobstatus.run.current_run` is this run.

        ``queue_time`` runs from :meth:`submit` to the start, ``run_time`` from the start to
        the end, ``total_time`` is their sum. Without ``job_id`` the job skips the queue (a
        fresh id, ``queue_time`` 0, ``created_at`` = ``started_at``). A job submitted by
        another process (a separate worker) needs ``endpoint`` (and ``id``) here; its
        ``queue_time`` is measured from the stored ``queued`` record's ``updated_at``.
        ``webhook_url`` is as for :meth:`submit` (it replaces the one the job was submitted
        with).
        """
        run = self.start(job_id, endpoint=endpoint, id=id, webhook_url=webhook_url)
        try:
            with activate(run):
                yield run
        except BaseException as exc:
            self.finish(run, exc)
            if isinstance(exc, JobCancelled) and exc.job_id == run.job_id:
                return
            raise
        self.finish(run)

    def start(
        self,
        job_id: str | None = None,
        *,
        endpoint: str | None = None,
        id: Any = None,
        extra: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> Run:
        """Record that the work starts, as :meth:`run` does on entry, and return the run;
        end it with :meth:`finish` (or :meth:`requeue`). For task queues whose start and end
        arrive as separate events.

        A job submitted elsewhere keeps its stored ``created_at``, ``owner`` and the document
        keys this release does not own; ``extra`` sets more of those (an integration's
        ``attempt``). A job already final is left as it is: the run's ``already_final``.
        ``webhook_url`` is as for :meth:`submit`.
        """
        webhook = new_webhook(webhook_url, configured=self.webhooks is not None)
        if webhook is not None:
            extra = {**(extra or {}), WEBHOOK_KEY: webhook}
        started = time.monotonic()
        started_at = utc_now()
        fresh = job_id is None
        job_id = str(uuid.uuid4()) if job_id is None else job_id
        submission = self._waiting.pop(job_id, None)
        if endpoint is None and submission is None:
            raise TypeError(
                f"run({job_id!r}) needs endpoint=...: this tracker did not submit that job"
            )
        run = Run(
            job_id=job_id,
            endpoint=endpoint or "",
            id=id,
            _store=self.store,
            _interval=self.progress_interval,
            _started=started,
        )
        if fresh or submission is not None:
            created_at, owner = started_at, self.owner
            if submission is not None:
                run.endpoint = submission.endpoint if endpoint is None else endpoint
                run.id = submission.id if id is None else id
                run._queue_time = started - submission.queued_at
                created_at, owner = submission.created_at, submission.owner
                if submission.webhook is not None and webhook is None:
                    extra = {**(extra or {}), WEBHOOK_KEY: submission.webhook}
            running = self._running(run, started_at, created_at, owner, extra)
            run._learn(self.store.put(running), wrote=True)
            if not run.already_final:
                self._heartbeat.add(run)
            return run
        for _ in range(MAX_ATTEMPTS):
            run._queue_time, stored = self._time_in_queue(job_id)
            if stored is None:  # no record yet: written only if still none (else adopt it)
                running = self._running(run, started_at, started_at, self.owner, extra=extra)
                expected: ExpectedVersion = ABSENT
            else:
                # A publisher that recorded the job just after the worker took it stamped
                # created_at a little after started_at: never after it.
                created = stored.created_at
                created = created if created is None else min(created, started_at)
                running = self._running(
                    run, started_at, created, stored.owner, {**stored.extra, **(extra or {})}
                )
                expected = None
            try:
                run._learn(self.store.put(running, expect_version=expected), wrote=True)
            except Conflict:
                continue
            if not run.already_final:
                self._heartbeat.add(run)
            return run
        raise Conflict(job_id, f"the job kept changing over {MAX_ATTEMPTS} attempts")

    def _running(
        self,
        run: Run,
        started_at: datetime,
        created_at: datetime | None,
        owner: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        kept = {k: v for k, v in (extra or {}).items() if k not in LIFECYCLE_KEYS}
        return self._record(
            run.job_id,
            JobState.RUNNING,
            created_at=created_at,
            started_at=started_at,
            owner=owner,
            extra=kept,
        )

    def submit_to(
        self,
        executor: Any,
        fn: Callable[..., Any],
        /,
        *args: Any,
        endpoint: str | None = None,
        webhook_url: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Run ``fn(*args, **kwargs)`` on ``executor`` as a tracked job; return its id.

        ``queued`` now, then ``running`` and ``done`` (``fn``'s return value as the
        envelope's ``response``) or ``failed`` where it runs; ``endpoint`` defaults to
        ``fn``'s qualified name. ``executor`` is anything with ``submit(fn, *args,
        **kwargs)``: a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` (``fn``, its
        arguments, its result and this tracker, store included, must pickle), or
        :class:`jobstatus.executor.CallLater` around FastAPI's ``BackgroundTasks.add_task``.
        When it returns a future, the future's end is watched too: a cancelled future records
        ``cancelled``, a call that could not run or end (a broken pool, an unpicklable
        argument) records ``failed``. ``fn`` reports progress through
        :func:`jobstatus.run.current_run`. ``webhook_url`` is as for :meth:`submit`.
        """
        from jobstatus.executor import TrackedCall

        if endpoint is None:
            endpoint = f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', fn)}"
        job_id = self.submit(endpoint=endpoint, webhook_url=webhook_url)
        call = TrackedCall(self, job_id, endpoint, fn)
        try:
            future = executor.submit(call, *args, **kwargs)
        except BaseException as exc:
            self._waiting.pop(job_id, None)
            self.finish(self.attach(job_id, endpoint=endpoint), exc)
            raise
        if isinstance(future, Future):

            def settle(future: Future[Any]) -> None:
                self._waiting.pop(job_id, None)  # a process pool ran it: it waits here no more
                call.settle(future)

            future.add_done_callback(settle)
        return job_id

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop and return its record as stored after the call.

        A ``queued`` or ``submitted`` job becomes ``cancelled`` at once; a running job gets
        ``cancel_requested_at`` (its run sees :attr:`Run.cancel_requested` and records
        ``cancelled`` when it ends); a final job is left as it is (the returned record says
        so: ``is_final``). Unless the job was final, ``on_cancel`` is then called with the
        returned record (again at every request while the job runs). Raises
        :class:`~jobstatus.JobNotFound` for an unknown job. Never overwrites a concurrent
        write: it is checked with the record's version.
        """
        record, was_final = self._request_cancel(job_id)
        if self.on_cancel is not None and not was_final:
            self.on_cancel(record)
        return record

    def _request_cancel(self, job_id: str) -> tuple[JobRecord, bool]:
        """The cancel's write: the record after it, and whether the job was final before."""
        for _ in range(MAX_ATTEMPTS):
            stored = self.store.get(job_id)
            if stored.is_final:
                return stored, True
            if stored.cancel_requested_at is not None:
                return stored, False
            now = utc_now()
            if stored.job_status in WAITING:
                submission = self._waiting.pop(job_id, None)
                envelope = self._envelope(
                    endpoint=None if submission is None else submission.endpoint,
                    id=None if submission is None else submission.id,
                    job_id=job_id,
                    code=CANCELLED_CODE,
                    response=None,
                    message="cancelled",
                    run_time=0.0,
                    queue_time=0.0,
                )
                new = self._ended(stored, JobState.CANCELLED, envelope, now)
                new = replace(new, cancel_requested_at=now)
            else:
                new = replace(stored, cancel_requested_at=now)
            try:
                return self._notify(self.store.put(new, expect_version=stored.version)), False
            except Conflict:
                continue
        raise Conflict(job_id, f"the job kept changing over {MAX_ATTEMPTS} attempts")
