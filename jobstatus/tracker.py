"""JobTracker: record a job's life the way the upstream queue does, and a little more.

``submit`` writes ``queued``; ``run`` writes ``running``, then ``done`` with the processing
endpoint's envelope, ``failed`` with the error, or ``cancelled`` when a client asked the job to
stop; ``hand_off`` writes ``submitted`` for work handed to an external runner. Every record is
the upstream job file::

    {"job_status": ..., "job_id": ..., "queue_id": ..., "process_id": ..., "response": ...}

plus ``created_at``, ``started_at``, ``ended_at``, the last ``progress``, ``expires_at`` (with
``result_ttl``/``failure_ttl``) and ``owner``. A tracked job costs three writes -- queued,
running, final -- and progress at most one more per ``progress_interval``.

The tracker holds no lock, thread or connection of its own: the process id is read at each
write and the jobs waiting to start are a plain ordered dict, so a host that forks (gunicorn,
multiprocessing) keeps recording correctly in every process.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from jobstatus.envelope import build_envelope
from jobstatus.errors import Conflict, JobCancelled, JobNotFound, QueueFull
from jobstatus.heartbeat import Heartbeat
from jobstatus.lifecycle import format_timestamp, utc_from_epoch
from jobstatus.record import JobRecord, JobState, check_job_id
from jobstatus.run import MAX_ATTEMPTS, Run, utc_now
from jobstatus.store import Store

__all__ = ["MAX_REMEMBERED", "CANCELLED_CODE", "JobTracker", "Run"]

#: How many submitted jobs a tracker remembers until they start; past that the oldest is
#: forgotten, and its run measures ``queue_time`` from the stored ``queued`` record instead.
MAX_REMEMBERED = 100_000

#: The ``code`` of a cancelled job's envelope (nginx's "client closed request").
CANCELLED_CODE = 499

_WAITING = frozenset({JobState.QUEUED.value, JobState.SUBMITTED.value})


class _Submission(NamedTuple):
    endpoint: str
    id: Any
    queued_at: float  # time.monotonic(): one clock for every process of the machine
    created_at: datetime
    owner: str | None


class JobTracker:
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
    ) -> None:
        if progress_interval < 0:
            raise ValueError(f"progress_interval must not be negative, got {progress_interval}")
        for name, ttl in (("result_ttl", result_ttl), ("failure_ttl", failure_ttl)):
            if ttl is not None and not ttl > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {ttl!r}")
        self.store = store
        self.build_number = build_number
        self.queue_id = id(self) if queue_id is None else queue_id
        self.max_queue_length = max_queue_length
        self.progress_interval = progress_interval
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        self.owner = owner
        self._heartbeat = Heartbeat(heartbeat_interval)
        # Plain dict operations only (atomic under the GIL): nothing to re-create after a fork.
        self._waiting: OrderedDict[str, _Submission] = OrderedDict()

    def __repr__(self) -> str:
        return f"JobTracker({self.store!r}, queue_id={self.queue_id!r})"

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
    ) -> str:
        """Record a new job as ``queued`` (``created_at`` now) and return its id (a fresh UUID
        unless given).

        ``endpoint`` and ``id`` (the client's request id) go into the envelope when the job
        finishes. Raises :class:`~jobstatus.QueueFull` when ``max_queue_length`` jobs wait.
        """
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
        self.store.put(self._record(job_id, JobState.QUEUED, created_at=created_at, owner=owner))
        self._waiting[job_id] = _Submission(endpoint, id, time.monotonic(), created_at, owner)
        while len(self._waiting) > MAX_REMEMBERED:
            self._waiting.popitem(last=False)
        return job_id

    def hand_off(self, job_id: str, *, response: Any = None) -> JobRecord:
        """Record that the job went to an external runner: ``submitted``, with ``response``
        (what the runner answered, e.g. its execution name). The runner later records the
        rest with a tracker of its own."""
        submission = self._waiting.pop(job_id, None)
        return self.store.put(
            self._record(
                job_id,
                JobState.SUBMITTED,
                response,
                created_at=None if submission is None else submission.created_at,
                owner=self.owner if submission is None else submission.owner,
            )
        )

    @contextmanager
    def run(
        self, job_id: str | None = None, *, endpoint: str | None = None, id: Any = None
    ) -> Iterator[Run]:
        """Record the work inside the ``with`` block: ``running`` on entry (``started_at``),
        then ``done`` with the envelope, ``failed`` with the error when the block raises (then
        re-raised), or ``cancelled`` when a client asked the job to stop (a
        :class:`~jobstatus.JobCancelled` from :meth:`Run.check_cancelled` ends the block
        quietly). The final record has ``ended_at``, the last progress and, with a TTL,
        ``expires_at``.

        ``queue_time`` runs from :meth:`submit` to the start, ``run_time`` from the start to
        the end, ``total_time`` is their sum. Without ``job_id`` the job skips the queue (a
        fresh id, ``queue_time`` 0, ``created_at`` = ``started_at``). A job submitted by
        another process (a separate worker) needs ``endpoint`` (and ``id``) here; its
        ``queue_time`` is measured from the stored ``queued`` record's ``updated_at``.
        """
        started = time.monotonic()
        started_at = utc_now()
        created_at: datetime | None = started_at
        owner = self.owner
        if job_id is None:
            job_id, queue_time = str(uuid.uuid4()), 0.0
        elif (submission := self._waiting.pop(job_id, None)) is not None:
            queue_time = started - submission.queued_at
            endpoint = submission.endpoint if endpoint is None else endpoint
            id = submission.id if id is None else id
            created_at, owner = submission.created_at, submission.owner
        else:
            queue_time, stored = self._time_in_queue(job_id)
            if stored is not None:
                created_at, owner = stored.created_at, stored.owner
        if endpoint is None:
            raise TypeError(
                f"run({job_id!r}) needs endpoint=...: this tracker did not submit that job"
            )
        running = self._record(
            job_id, JobState.RUNNING, created_at=created_at, started_at=started_at, owner=owner
        )
        run = Run(
            job_id=job_id,
            endpoint=endpoint,
            id=id,
            _store=self.store,
            _interval=self.progress_interval,
        )
        run._learn(self.store.put(running), wrote=True)
        self._heartbeat.add(run)
        try:
            yield run
        except BaseException as exc:
            self._heartbeat.remove(run)
            if isinstance(exc, JobCancelled) and exc.job_id == job_id:
                self._finish(run, queue_time, started, JobState.CANCELLED)
                return
            message = str(exc) or type(exc).__name__
            self._finish(run, queue_time, started, JobState.FAILED, code=500, message=message)
            raise
        self._heartbeat.remove(run)
        if 200 <= run.code < 300:
            self._finish(
                run,
                queue_time,
                started,
                JobState.DONE,
                code=run.code,
                response=run.result,
                message="success",
            )
        else:
            self._finish(
                run, queue_time, started, JobState.FAILED, code=run.code, message=run.result
            )

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop and return its record as stored after the call.

        A ``queued`` or ``submitted`` job becomes ``cancelled`` at once; a running job gets
        ``cancel_requested_at`` (its run sees :attr:`Run.cancel_requested` and records
        ``cancelled`` when it ends); a final job is left as it is (the returned record says
        so: ``is_final``). Raises :class:`~jobstatus.JobNotFound` for an unknown job. Never
        overwrites a concurrent write: it is checked with the record's version.
        """
        for _ in range(MAX_ATTEMPTS):
            stored = self.store.get(job_id)
            if stored.is_final or stored.cancel_requested_at is not None:
                return stored
            now = utc_now()
            if stored.job_status in _WAITING:
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
                return self.store.put(new, expect_version=stored.version)
            except Conflict:
                continue
        raise Conflict(job_id, f"the job kept changing over {MAX_ATTEMPTS} attempts")

    def reap(self, *, stale_after: float, dry_run: bool = False) -> int:
        """Fail the ``running`` jobs whose heartbeat (their last write) is older than
        ``stale_after`` seconds -- their worker died -- with the message "worker lost: no
        heartbeat since …"; return how many (with ``dry_run``: how many it would fail).

        Each is written with the version it was read at: a worker that comes back and writes
        first wins, and its job is left alone.
        """
        if not stale_after > 0:
            raise ValueError(
                f"stale_after must be a positive number of seconds, got {stale_after!r}"
            )
        cutoff = time.time() - stale_after
        reaped = 0
        for record in list(self.store.list(status=JobState.RUNNING.value)):
            if record.updated_at is None or record.updated_at >= cutoff:
                continue
            if dry_run:
                reaped += 1
                continue
            since = format_timestamp(utc_from_epoch(record.updated_at))
            envelope = self._envelope(
                endpoint=None,
                id=None,
                job_id=record.job_id,
                code=500,
                response=None,
                message=f"worker lost: no heartbeat since {since}",
                run_time=0.0,
                queue_time=0.0,
            )
            lost = self._ended(record, JobState.FAILED, envelope, utc_now())
            try:
                self.store.put(lost, expect_version=record.version)
            except Conflict:
                continue  # the worker wrote meanwhile: it is alive
            reaped += 1
        return reaped

    # -- writing ---------------------------------------------------------------------------

    def _finish(
        self,
        run: Run,
        queue_time: float,
        started: float,
        status: JobState,
        *,
        code: int = CANCELLED_CODE,
        response: Any = None,
        message: Any = "cancelled",
    ) -> None:
        """The final write: ``cancelled`` instead of the outcome once a cancel was requested
        (also when the request arrives during this write), nothing once the job is final."""
        if run.already_final:
            return
        pending = run.take_pending()
        ended_at = utc_now()
        run_time = time.monotonic() - started

        def final(record: JobRecord) -> JobRecord:
            outcome, what, answer, text = status, code, response, message
            if record.cancel_requested_at is not None or run.cancel_requested:
                outcome, what, answer, text = JobState.CANCELLED, CANCELLED_CODE, None, "cancelled"
            envelope = self._envelope(
                endpoint=run.endpoint,
                id=run.id,
                job_id=run.job_id,
                code=what,
                response=answer,
                message=text,
                run_time=run_time,
                queue_time=queue_time,
            )
            ended = self._ended(record, outcome, envelope, ended_at)
            return ended if pending is None else replace(ended, progress=pending)

        run._update(final)

    def _ended(
        self, record: JobRecord, status: JobState, envelope: Any, ended_at: datetime
    ) -> JobRecord:
        ttl = self.result_ttl if status is JobState.DONE else self.failure_ttl
        return replace(
            record,
            job_status=status,
            process_id=os.getpid(),
            response=envelope,
            ended_at=ended_at,
            expires_at=None if ttl is None else ended_at + timedelta(seconds=ttl),
        )

    def _envelope(
        self,
        *,
        endpoint: str | None,
        id: Any,
        job_id: str,
        code: int,
        response: Any,
        message: Any,
        run_time: float,
        queue_time: float,
    ) -> dict[str, Any]:
        return build_envelope(
            endpoint=endpoint,
            code=code,
            id=id,
            job_id=job_id,
            response=response,
            message=message,
            pid=os.getpid(),
            queue_id=self.queue_id,
            run_time=run_time,
            queue_time=queue_time,
            queue_length=self.queue_length,
            build_number=self.build_number,
        )

    def _record(
        self, job_id: str, status: JobState, response: Any = None, **lifecycle: Any
    ) -> JobRecord:
        return JobRecord(
            job_id=job_id,
            job_status=status,
            queue_id=self.queue_id,
            process_id=os.getpid(),
            response=response,
            **lifecycle,
        )

    def _time_in_queue(self, job_id: str) -> tuple[float, JobRecord | None]:
        """Seconds since the stored ``queued`` (or ``submitted``) record was written, and
        that record (None when there is none)."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            return 0.0, None
        if record.job_status not in _WAITING or record.updated_at is None:
            return 0.0, record
        return max(0.0, time.time() - record.updated_at), record
