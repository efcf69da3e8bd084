"""What every write of a :class:`~jobstatus.JobTracker` shares: its settings, the records and
envelopes it builds, the heartbeat of its runs, and the end of a run --
:meth:`~RecordWriter.finish`, :meth:`~RecordWriter.requeue`, :meth:`~RecordWriter.attach`, and
:meth:`~RecordWriter.reap` for the runs whose worker died.

:class:`~jobstatus.JobTracker` builds on it with the jobs it remembers (submit, run, cancel,
submit_to). Every write of a run is checked with the record's version (``Run._update``), so
a client's cancel request written meanwhile is never lost, and nothing is written over a final
record. A job's webhook delivery (:mod:`jobstatus.webhooks`) falls due with its final write,
which hands it to the writer's deliverer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from jobstatus._heartbeat import Heartbeat
from jobstatus.envelope import build_envelope
from jobstatus.errors import Conflict, InvalidRequest, JobCancelled, JobNotFound, redact
from jobstatus.lifecycle import Progress, format_timestamp, utc_from_epoch
from jobstatus.record import JobRecord, JobState
from jobstatus.run import Run, utc_now
from jobstatus.store import Store
from jobstatus.webhooks import Deliverer, Webhooks
from jobstatus.webhooks.state import WEBHOOK_KEY, ended_extra

__all__ = ["CANCELLED_CODE", "RecordWriter", "failure_message"]

#: The ``code`` of a cancelled job's envelope (nginx's "client closed request").
CANCELLED_CODE = 499

#: The states of a job that waits to start.
WAITING = frozenset({JobState.QUEUED.value, JobState.SUBMITTED.value})


class RecordWriter:
    """The settings every record of a tracker carries, and the writes that end a run.

    Args:
        store: where the records go.
        build_number: echoed as ``build_number`` in every finished job's envelope.
        queue_id: identifies this queue in every record; like upstream (``id(queue)``), it
            defaults to an id of this object.
        progress_interval: seconds between two progress writes of a run (0: every call).
        result_ttl: seconds a ``done`` record is kept after it ended (None: for ever).
        failure_ttl: the same for ``failed`` and ``cancelled`` records.
        owner: the owner of the jobs recorded, unless a submission names another.
        heartbeat_interval: a run that has not written for this many seconds gets its record
            written again, so :meth:`reap` can tell a live run from a lost one.
        webhooks: lets jobs name a ``webhook_url`` (:class:`~jobstatus.Webhooks`): the
            :attr:`deliverer` sends each job's final envelope there when it ends.
    """

    def __init__(
        self,
        store: Store,
        *,
        build_number: str | None = None,
        queue_id: int | None = None,
        progress_interval: float = 1.0,
        result_ttl: float | None = None,
        failure_ttl: float | None = None,
        owner: str | None = None,
        heartbeat_interval: float = 30.0,
        webhooks: Webhooks | None = None,
    ) -> None:
        if progress_interval < 0:
            raise ValueError(f"progress_interval must not be negative, got {progress_interval}")
        for name, ttl in (("result_ttl", result_ttl), ("failure_ttl", failure_ttl)):
            if ttl is not None and not ttl > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {ttl!r}")
        self.store = store
        self.build_number = build_number
        self.queue_id = id(self) if queue_id is None else queue_id
        self.progress_interval = progress_interval
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        self.owner = owner
        self._heartbeat = Heartbeat(heartbeat_interval)
        self.webhooks = webhooks
        #: Sends the webhooks of the jobs this process ends, from background threads (None
        #: without ``webhooks``, or with ``deliver_in_process=False``).
        self.deliverer = _deliverer(store, webhooks)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its heartbeat and deliverer threads; the copy starts its own."""
        state = self.__dict__.copy()
        state["_heartbeat"] = self._heartbeat.interval
        state["deliverer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _heartbeat=Heartbeat(state["_heartbeat"]))
        self.deliverer = _deliverer(self.store, self.webhooks)

    @property
    def queue_length(self) -> int:
        """The envelope's ``queue_length``: jobs waiting to start that this object knows of."""
        return 0

    def finish(self, run: Run, error: BaseException | None = None) -> None:
        """Record how the run ended, as :meth:`JobTracker.run <jobstatus.JobTracker.run>` does
        on exit: without ``error``, ``done``
        for a 2xx :attr:`Run.code` (:attr:`Run.result` as the envelope's ``response``) or
        ``failed`` for another (the result as ``message``); with a
        :class:`~jobstatus.JobCancelled` for this job, ``cancelled``; with any other error,
        ``failed`` with code 500 and the error's text, credentials redacted. ``cancelled``
        whenever a cancel was requested; nothing once the job is final.

        A result that is not storable JSON records ``failed`` with code 500 instead and
        raises the :class:`~jobstatus.InvalidRequest`, so the job never stays ``running``.
        """
        self._heartbeat.remove(run)
        if error is None and 200 <= run.code < 300:
            try:
                self._finish(
                    run, JobState.DONE, code=run.code, response=run.result, message="success"
                )
            except InvalidRequest as exc:
                self._finish(run, JobState.FAILED, code=500, message=f"unstorable result: {exc}")
                raise
        elif error is None:
            self._finish(run, JobState.FAILED, code=run.code, message=run.result)
        elif isinstance(error, JobCancelled) and error.job_id == run.job_id:
            self._finish(run, JobState.CANCELLED)
        else:
            self._finish(run, JobState.FAILED, code=500, message=failure_message(error))

    def requeue(self, run: Run, *, extra: Mapping[str, Any] | None = None) -> None:
        """The attempt ended and the job waits for another (a task queue's retry): ``queued``
        again, ``started_at`` cleared, its ``created_at``, ``owner`` and progress kept (the
        progress not written yet included), ``extra`` set (the next attempt's number). A job
        asked to stop is recorded ``cancelled`` instead; a final job is left as it is."""
        self._heartbeat.remove(run)
        if run.already_final:
            return
        pending = run.take_pending()
        cancelled = self._ending(run, pending, JobState.CANCELLED)

        def queued(record: JobRecord) -> JobRecord:
            if record.cancel_requested_at is not None or run.cancel_requested:
                return cancelled(record)
            return replace(
                record,
                job_status=JobState.QUEUED,
                process_id=os.getpid(),
                started_at=None,
                progress=record.progress if pending is None else pending,
                extra={**record.extra, **extra} if extra else record.extra,
            )

        run._update(queued)

    def abandon(self, run: Run) -> None:
        """Stop following ``run`` without a write: its work ended in a way that leaves the
        record as it is (a task queue skipped or ignored it). Its heartbeat stops, so a record
        left ``running`` is reaped in time."""
        self._heartbeat.remove(run)

    def attach(self, job_id: str, *, endpoint: str, id: Any = None) -> Run:
        """A run for a job whose work is not in this process, to end it with :meth:`finish`
        when a task queue's supervisor learns how it ended (revoked, its process killed).
        Writes nothing; ``run_time`` counts from the stored ``started_at``, ``queue_time``
        from ``created_at`` to the start. Raises :class:`~jobstatus.JobNotFound`."""
        record = self.store.get(job_id)
        now = utc_now()
        waited = ran = 0.0
        begun, created = record.started_at, record.created_at
        if begun is not None:
            ran = (now - begun).total_seconds()
            waited = 0.0 if created is None else (begun - created).total_seconds()
        elif created is not None:
            waited = (now - created).total_seconds()
        run = Run(
            job_id=job_id,
            endpoint=endpoint,
            id=id,
            _store=self.store,
            _interval=self.progress_interval,
            _queue_time=max(0.0, waited),
            _started=time.monotonic() - max(0.0, ran),
        )
        run._learn(record)
        return run

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
                self._notify(self.store.put(lost, expect_version=record.version))
            except Conflict:
                continue  # the worker wrote meanwhile: it is alive
            reaped += 1
        return reaped

    def _finish(
        self,
        run: Run,
        status: JobState,
        *,
        code: int = CANCELLED_CODE,
        response: Any = None,
        message: Any = "cancelled",
    ) -> None:
        """The final write; nothing once the job is final."""
        if run.already_final:
            return
        pending = run.take_pending()
        run._update(
            self._ending(run, pending, status, code=code, response=response, message=message)
        )
        if run.record is not None:
            self._notify(run.record)

    def _ending(
        self,
        run: Run,
        pending: Progress | None,
        status: JobState,
        *,
        code: int = CANCELLED_CODE,
        response: Any = None,
        message: Any = "cancelled",
    ) -> Callable[[JobRecord], JobRecord]:
        """The change that ends ``run`` with ``status``, or ``cancelled`` once a cancel was
        requested (also when the request arrives during the write)."""
        ended_at = utc_now()
        run_time = time.monotonic() - run._started

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
                queue_time=run._queue_time,
            )
            ended = self._ended(record, outcome, envelope, ended_at)
            return ended if pending is None else replace(ended, progress=pending)

        return final

    def _ended(
        self, record: JobRecord, status: JobState, envelope: Any, ended_at: datetime
    ) -> JobRecord:
        ttl = self.result_ttl if status is JobState.DONE else self.failure_ttl
        extra = record.extra
        if WEBHOOK_KEY in extra:
            extra = ended_extra(extra, ended_at)  # the delivery falls due with this write
        return replace(
            record,
            extra=extra,
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

    def _notify(self, record: JobRecord) -> JobRecord:
        """Hand a final record with a due delivery to this writer's deliverer."""
        if self.deliverer is not None and record.is_final and WEBHOOK_KEY in record.extra:
            self.deliverer.notify(record)
        return record

    def _time_in_queue(self, job_id: str) -> tuple[float, JobRecord | None]:
        """Seconds since the stored ``queued`` (or ``submitted``) record was written, and
        that record (None when there is none)."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            return 0.0, None
        if record.job_status not in WAITING or record.updated_at is None:
            return 0.0, record
        return max(0.0, time.time() - record.updated_at), record


def _deliverer(store: Store, webhooks: Webhooks | None) -> Deliverer | None:
    if webhooks is None or not webhooks.deliver_in_process:
        return None
    return Deliverer(store, webhooks)


def failure_message(error: BaseException) -> str:
    """The ``message`` of a job that raised ``error``: its text (its type's name when it has
    none), with passwords and secret parameters hidden. Never a traceback."""
    return redact(str(error) or type(error).__name__)
