"""JobTracker: record a job's life the way the upstream queue does.

``submit`` writes ``queued``; ``run`` writes ``running``, then ``done`` with the processing
endpoint's envelope or ``failed`` with the error; ``hand_off`` writes ``submitted`` for work
handed to an external runner. Every record is the upstream job file::

    {"job_status": ..., "job_id": ..., "queue_id": ..., "process_id": ..., "response": ...}

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
from dataclasses import dataclass
from typing import Any, NamedTuple

from jobstatus.envelope import build_envelope
from jobstatus.errors import JobNotFound, QueueFull
from jobstatus.record import JobRecord, JobState, check_job_id
from jobstatus.store import Store

__all__ = ["MAX_REMEMBERED", "JobTracker", "Run"]

#: How many submitted jobs a tracker remembers until they start; past that the oldest is
#: forgotten, and its run measures ``queue_time`` from the stored ``queued`` record instead.
MAX_REMEMBERED = 100_000


class _Submission(NamedTuple):
    endpoint: str
    id: Any
    queued_at: float  # time.monotonic(): one clock for every process of the machine


@dataclass
class Run:
    """The job being run inside ``with tracker.run(...) as run:``.

    Set :attr:`result` to what the work produced. Leave :attr:`code` at 200 for success; any
    code outside 2xx records the job ``failed`` with :attr:`result` as the message, as the
    upstream queue does with a route's error answer.
    """

    job_id: str
    endpoint: str
    id: Any = None
    result: Any = None
    code: int = 200
    #: True when the job was already ``done`` or ``failed`` before this run (a duplicate
    #: delivery): the work may skip itself, and nothing is written at the end, so the first
    #: outcome stands.
    already_final: bool = False


class JobTracker:
    """Writes ``queued`` → ``running`` → ``done``/``failed`` records to a store.

    Args:
        store: where the records go.
        build_number: echoed as ``build_number`` in every finished job's envelope.
        queue_id: identifies this queue in every record; like upstream (``id(queue)``), it
            defaults to an id of this tracker.
        max_queue_length: when above 0, :meth:`submit` raises :class:`~jobstatus.QueueFull`
            (429) once that many jobs wait to start, as the upstream ``MAX_QUEUE_LENGTH`` does.
    """

    def __init__(
        self,
        store: Store,
        *,
        build_number: str | None = None,
        queue_id: int | None = None,
        max_queue_length: int = 0,
    ) -> None:
        self.store = store
        self.build_number = build_number
        self.queue_id = id(self) if queue_id is None else queue_id
        self.max_queue_length = max_queue_length
        # Plain dict operations only (atomic under the GIL): nothing to re-create after a fork.
        self._waiting: OrderedDict[str, _Submission] = OrderedDict()

    def __repr__(self) -> str:
        return f"JobTracker({self.store!r}, queue_id={self.queue_id!r})"

    @property
    def queue_length(self) -> int:
        """Jobs this tracker submitted that have not started (nor been handed off) yet."""
        return len(self._waiting)

    def submit(self, *, endpoint: str, id: Any = None, job_id: str | None = None) -> str:
        """Record a new job as ``queued`` and return its id (a fresh UUID unless given).

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
        self._write(job_id, JobState.QUEUED)
        self._waiting[job_id] = _Submission(endpoint, id, time.monotonic())
        while len(self._waiting) > MAX_REMEMBERED:
            self._waiting.popitem(last=False)
        return job_id

    def hand_off(self, job_id: str, *, response: Any = None) -> JobRecord:
        """Record that the job went to an external runner: ``submitted``, with ``response``
        (what the runner answered, e.g. its execution name). The runner later records the
        rest with a tracker of its own."""
        self._waiting.pop(job_id, None)
        return self._write(job_id, JobState.SUBMITTED, response)

    @contextmanager
    def run(
        self, job_id: str | None = None, *, endpoint: str | None = None, id: Any = None
    ) -> Iterator[Run]:
        """Record the work inside the ``with`` block: ``running`` on entry, then ``done`` with
        the envelope, or ``failed`` with the error when the block raises (then re-raised).

        ``queue_time`` runs from :meth:`submit` to the start, ``run_time`` from the start to
        the end, ``total_time`` is their sum. Without ``job_id`` the job skips the queue (a
        fresh id, ``queue_time`` 0). A job submitted by another process (a separate worker)
        needs ``endpoint`` (and ``id``) here; its ``queue_time`` is measured from the stored
        ``queued`` record's ``updated_at``.
        """
        started = time.monotonic()
        if job_id is None:
            job_id, queue_time = str(uuid.uuid4()), 0.0
        elif (submission := self._waiting.pop(job_id, None)) is not None:
            queue_time = started - submission.queued_at
            endpoint = submission.endpoint if endpoint is None else endpoint
            id = submission.id if id is None else id
        else:
            queue_time = self._time_in_queue(job_id)
        if endpoint is None:
            raise TypeError(
                f"run({job_id!r}) needs endpoint=...: this tracker did not submit that job"
            )
        run = Run(job_id=job_id, endpoint=endpoint, id=id)
        run.already_final = self._write(job_id, JobState.RUNNING).is_final
        try:
            yield run
        except BaseException as exc:
            if not run.already_final:
                message = str(exc) or type(exc).__name__
                self._finish(run, queue_time, started, code=500, response=None, message=message)
            raise
        if run.already_final:
            return
        if 200 <= run.code < 300:
            self._finish(
                run, queue_time, started, code=run.code, response=run.result, message="success"
            )
        else:
            self._finish(run, queue_time, started, code=run.code, response=None, message=run.result)

    # -- writing ---------------------------------------------------------------------------

    def _finish(
        self,
        run: Run,
        queue_time: float,
        started: float,
        *,
        code: int,
        response: Any,
        message: Any,
    ) -> None:
        envelope = build_envelope(
            endpoint=run.endpoint,
            code=code,
            id=run.id,
            job_id=run.job_id,
            response=response,
            message=message,
            pid=os.getpid(),
            queue_id=self.queue_id,
            run_time=time.monotonic() - started,
            queue_time=queue_time,
            queue_length=self.queue_length,
            build_number=self.build_number,
        )
        ok = 200 <= code < 300
        self._write(run.job_id, JobState.DONE if ok else JobState.FAILED, envelope)

    def _write(self, job_id: str, status: JobState, response: Any = None) -> JobRecord:
        return self.store.put(
            JobRecord(
                job_id=job_id,
                job_status=status,
                queue_id=self.queue_id,
                process_id=os.getpid(),
                response=response,
            )
        )

    def _time_in_queue(self, job_id: str) -> float:
        """Seconds since the stored ``queued`` (or ``submitted``) record was written."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            return 0.0
        waiting = {JobState.QUEUED.value, JobState.SUBMITTED.value}
        if record.job_status not in waiting or record.updated_at is None:
            return 0.0
        return max(0.0, time.time() - record.updated_at)
