"""The answers of the status routes: envelopes spliced around a record's JSON, the headers
that tell a poller when to come back, and every error in its documented shape.

:class:`Answers` holds what every envelope of a service repeats (``pid``, ``queue_id``,
``queue_length``, ``build_number``, the upstream-wire mode) and the ``Retry-After`` settings.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

from jobstatus._freshness import etag, retry_after
from jobstatus.envelope import build_envelope
from jobstatus.errors import JobStatusError, StorageError, redact
from jobstatus.record import JobRecord, dump_compact
from jobstatus.webhooks.state import WEBHOOK_KEY, public_document
from jobstatus.wire import JSON_HEADERS, Reply

__all__ = ["Answers", "document_json"]

log = logging.getLogger("jobstatus.service")

Headers = tuple[tuple[str, str], ...]
_NO_CACHE = ("Cache-Control", "no-cache")
# This process's id, kept by a fork hook: no system call per answer.
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))
# The fixed endpoints, encoded once.
_ENDPOINTS = {
    path: encode_basestring_ascii(path)
    for path in ("/v1/toolkit/job/status", "/v1/toolkit/jobs/status", "/v1/toolkit/jobs")
}


def document_json(record: JobRecord) -> str:
    """A record's document as an answer shows it: its cached compact JSON, or, for a document
    with a webhook, that JSON with the webhook URL's secrets redacted (only those pay)."""
    if WEBHOOK_KEY in record.extra:
        return dump_compact(public_document(record))
    return record.compact_json()


class Answers:
    """Builds a service's answers; see :class:`~jobstatus.StatusService` for the options."""

    def __init__(
        self,
        *,
        build_number: str | None,
        queue_id: Any,
        queue_length: int | Callable[[], int],
        upstream_wire: bool,
        retry_after: int,
        retry_after_bounds: tuple[int, int],
    ) -> None:
        low, high = retry_after_bounds
        if not 0 <= low <= high or retry_after < 0:
            raise ValueError("retry_after and retry_after_bounds must be 0 <= low <= high")
        self.build_number = build_number
        self.queue_id = queue_id
        self.queue_length = queue_length
        self.upstream_wire = upstream_wire
        self.retry_after = retry_after
        self.retry_after_bounds = (low, high)
        # What never changes between answers is encoded once: the last key, a constant
        # queue length, and (per process) the keys from "message" to "run_time".
        self._build_number_tail = f',"build_number":{dump_compact(build_number)}}}\n'
        self._queue_length_json = None if callable(queue_length) else _scalar_json(queue_length)
        self._middle_pid = -1
        self._middle = ""

    def _middle_for(self, pid: int) -> str:
        """``,"message":"success","pid":…,"queue_id":…,"run_time":`` of this process."""
        self._middle = (
            f',"message":"success","pid":{pid},"queue_id":{_scalar_json(self.queue_id)},"run_time":'
        )
        self._middle_pid = pid
        return self._middle

    def _queue_length(self) -> str:
        queue_length = self._queue_length_json
        if queue_length is None:
            function: Any = self.queue_length
            queue_length = _scalar_json(function())
        return queue_length

    # -- the envelope ------------------------------------------------------------------------

    def head(self, endpoint: str, code: int, request_id: Any, job_id: str | None) -> str:
        """The envelope up to its ``response``."""
        if self.upstream_wire:
            job_id = str(uuid.uuid4())
        return (
            f'{{"endpoint":{_scalar_json(endpoint)},"code":{code},'
            f'"id":{_scalar_json(request_id)},"job_id":{_scalar_json(job_id)},"response":'
        )

    def tail(self, started: float) -> str:
        """The envelope after its ``response``; ``run_time`` is measured now."""
        run_time = _scalar_json(round(time.perf_counter() - started, 3))
        pid = _PID[0]
        middle = self._middle if pid == self._middle_pid else self._middle_for(pid)
        return (
            f'{middle}{run_time},"queue_time":0.0,"total_time":{run_time},'
            f'"queue_length":{self._queue_length()}{self._build_number_tail}'
        )

    def success_body(
        self,
        endpoint: str,
        code: int,
        request_id: Any,
        job_id: str | None,
        response_json: str,
        started: float,
    ) -> bytes:
        """The envelope, byte for byte what ``dump_json(build_envelope(...))`` gives, spliced
        around the record's own cached JSON so that a polled record is not encoded again.
        (:meth:`head` and :meth:`tail` in one piece: this is every poll's path.)"""
        if self.upstream_wire:
            job_id = str(uuid.uuid4())
        run_time = _scalar_json(round(time.perf_counter() - started, 3))
        pid = _PID[0]
        middle = self._middle if pid == self._middle_pid else self._middle_for(pid)
        queue_length = self._queue_length_json
        if queue_length is None:
            queue_length = self._queue_length()
        return (
            f'{{"endpoint":{_ENDPOINTS.get(endpoint) or _scalar_json(endpoint)},"code":{code},'
            f'"id":{_scalar_json(request_id)},"job_id":{_scalar_json(job_id)},'
            f'"response":{response_json}{middle}{run_time},"queue_time":0.0,'
            f'"total_time":{run_time},"queue_length":{queue_length}{self._build_number_tail}'
        ).encode("ascii")

    def envelope(
        self,
        endpoint: str,
        code: int,
        request_id: Any,
        job_id: str | None,
        response: Any,
        message: Any,
        started: float,
    ) -> dict[str, Any]:
        """The envelope as a dict (for the answers that are not spliced: upstream errors)."""
        queue_length: Any = self.queue_length
        if callable(queue_length):
            try:
                queue_length = queue_length()
            except Exception:  # already answering an error: report no length rather than fail
                queue_length = None
        return build_envelope(
            endpoint=endpoint,
            code=code,
            id=request_id,
            job_id=str(uuid.uuid4()) if self.upstream_wire else job_id,
            response=response,
            message=message,
            pid=os.getpid(),
            queue_id=self.queue_id,
            run_time=time.perf_counter() - started,
            queue_length=queue_length,
            build_number=self.build_number,
        )

    # -- a job's answers ---------------------------------------------------------------------

    def retry_headers(self, record: JobRecord) -> Headers:
        """``Retry-After`` while the job is not final, else nothing."""
        seconds = retry_after(
            record, time.time(), default=self.retry_after, bounds=self.retry_after_bounds
        )
        return () if seconds is None else (("Retry-After", str(seconds)),)

    def job(
        self, endpoint: str, request_id: Any, job_id: str, record: JobRecord, started: float
    ) -> Reply:
        """The 200 of a GET (or a waited POST): the envelope, ``ETag``, ``Cache-Control:
        no-cache`` and, while the job is not final, ``Retry-After``."""
        headers: Headers = JSON_HEADERS
        if record.version is not None:
            headers += (("ETag", etag(record.version)), _NO_CACHE)
        if not record.is_final:
            headers += self.retry_headers(record)
        body = self.success_body(endpoint, 200, request_id, job_id, document_json(record), started)
        return Reply(200, body, headers)

    def not_modified(self, record: JobRecord) -> Reply:
        """The 304 of a record the client has: no body, its ``ETag``, ``Retry-After``."""
        headers: Headers = (("ETag", etag(record.version or "")), _NO_CACHE)
        if not record.is_final:
            headers += self.retry_headers(record)
        return Reply(304, b"", headers)

    # -- errors ------------------------------------------------------------------------------

    def failure(self, endpoint: str, exc: Exception, request_id: Any, started: float) -> Reply:
        """The answer to any exception: its own for a :class:`~jobstatus.JobStatusError`,
        else the 500 of a store failure.

        Every 500 of a service is logged here, once, as one ERROR record: the path, the
        request's ``id`` and the failure -- its type (and its cause's) and its message, both
        redacted. An exception that is not a :class:`~jobstatus.JobStatusError` is an
        "unexpected failure", with its redacted traceback at DEBUG."""
        error = (
            exc if isinstance(exc, JobStatusError) else StorageError(f"{type(exc).__name__}: {exc}")
        )
        if error.status >= 500:
            log.error(
                "%s answering %s (id %s): %s",
                "500" if error is exc else "unexpected failure",
                endpoint,
                redact(dump_compact(request_id))[:200],
                _described(error) if error is exc else error,
            )
            if error is not exc:  # the traceback helps; its text may hold a credential too
                log.debug("traceback:\n%s", redact("".join(traceback.format_exception(exc))))
        return self.error(endpoint, error, request_id, started)

    def error(self, endpoint: str, error: JobStatusError, request_id: Any, started: float) -> Reply:
        """An error in its documented shape (an envelope in upstream-wire mode for 404, 500)."""
        if self.upstream_wire and error.status in (404, 500):
            envelope = self.envelope(
                endpoint, error.status, request_id, None, None, error.body(), started
            )
            return Reply.json(error.status, envelope)
        return Reply.json(error.status, error.body())


def _described(exc: BaseException) -> str:
    """``Type: message``, with ``(from Cause)`` for a chained exception; never a credential."""
    cause = exc.__cause__
    kind = type(exc).__name__ + ("" if cause is None else f" (from {type(cause).__name__})")
    return redact(f"{kind}: {exc}")


def _scalar_json(value: Any) -> str:
    """``dump_compact(value)``, without the encoder's overhead for the common small values."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return float.__repr__(value)  # finite here: a rounded duration
    return dump_compact(value)
