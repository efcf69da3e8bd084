"""StatusService: auth → validate → store → envelope, with no web framework in sight.

Adapters hand it a path, the raw body and the ``x-api-key`` header, and send back the
:class:`Reply` it returns. Every answer, errors included, is JSON.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from jobstatus.envelope import build_envelope
from jobstatus.errors import (
    InvalidRequest,
    JobStatusError,
    StorageError,
    Unauthorized,
    redact,
)
from jobstatus.record import dump_compact
from jobstatus.schema import (
    DEFAULT_MAX_BODY_BYTES,
    JOB_STATUS_SCHEMA,
    JOBS_STATUS_SCHEMA,
    UUID_PATTERN,
    RequestValidator,
    accepts_job_status,
    accepts_jobs_status,
    parse_json_body,
)
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

__all__ = [
    "JOBS_STATUS_PATH",
    "JOB_CANCEL_PATH",
    "JOB_STATUS_PATH",
    "Reply",
    "StatusService",
    "dump_json",
]

log = logging.getLogger(__name__)

JOB_STATUS_PATH = "/v1/toolkit/job/status"
JOBS_STATUS_PATH = "/v1/toolkit/jobs/status"
JOB_CANCEL_PATH = "/v1/toolkit/job/cancel"
DEFAULT_SINCE_SECONDS = 600

_JSON_HEADERS = (("Content-Type", "application/json"),)


def dump_json(body: Any) -> bytes:
    """JSON as Flask's ``jsonify`` sends it: compact, ASCII, one trailing newline."""
    return (dump_compact(body) + "\n").encode("ascii")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status code, JSON body bytes, headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = _JSON_HEADERS

    @classmethod
    def json(cls, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        return cls(status, dump_json(body), _JSON_HEADERS + tuple(headers))

    @classmethod
    def method_not_allowed(cls) -> Reply:
        """The JSON 405 every adapter sends for a method other than POST."""
        return cls.json(405, {"message": "Method not allowed"}, [("Allow", "POST")])

    def parsed(self) -> Any:
        """The body as Python objects (for tests and for hosts that re-serialise)."""
        return json.loads(self.body)


class StatusService:
    """Answers ``POST /v1/toolkit/job/status`` and ``POST /v1/toolkit/jobs/status`` from a
    :class:`~jobstatus.Store`, in the shapes the docs' "The endpoint" page lists.

    Args:
        store: where records are read. Reading a status never writes.
        api_keys: the accepted ``x-api-key`` values (several at once, for rotation); an empty
            collection accepts nobody; ``None`` turns authentication off for hosts that
            authenticate requests themselves.
        build_number: echoed as ``build_number`` in every envelope.
        queue_id: echoed as ``queue_id``; like upstream, defaults to an id of this service.
        queue_length: the host's queue length, or a function returning it.
        job_id_pattern: a regular expression every requested job id must match whole
            (a UUID by default).
        max_body_bytes: larger request bodies are refused with a 400.
        upstream_wire: answer as the running upstream service does rather than as its
            document says: a 404 or 500 wrapped in an envelope whose ``message`` holds the
            error, and a fresh outer ``job_id`` per request.
        allow_cancel: mount ``POST /v1/toolkit/job/cancel``. True cancels with a plain
            :class:`~jobstatus.JobTracker` on ``store``; pass the host's own tracker so that
            a cancelled job gets its ``failure_ttl`` and ``build_number``.
    """

    def __init__(
        self,
        store: Store,
        *,
        api_keys: Iterable[str] | None,
        build_number: str | None = None,
        queue_id: int | None = None,
        queue_length: int | Callable[[], int] = 0,
        job_id_pattern: str = UUID_PATTERN,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        upstream_wire: bool = False,
        allow_cancel: bool | JobTracker = False,
    ) -> None:
        if isinstance(api_keys, str):
            raise TypeError("api_keys takes a collection of keys, not one string")
        self.store = store
        self._keys = None if api_keys is None else [_key_bytes(k) for k in api_keys]
        if self._keys is not None and not all(self._keys):
            raise ValueError("an API key must not be empty")
        self.build_number = build_number
        self.queue_id = id(self) if queue_id is None else queue_id
        # The envelope's last key never changes: encoded once.
        self._build_number_tail = f',"build_number":{dump_compact(build_number)}}}\n'

        self._queue_length = queue_length
        self._job_id = re.compile(job_id_pattern)
        self.job_id_pattern = job_id_pattern
        self.max_body_bytes = max_body_bytes
        self.upstream_wire = upstream_wire
        self._validate_job = RequestValidator(JOB_STATUS_SCHEMA, accepts_job_status)
        self._validate_jobs = RequestValidator(JOBS_STATUS_SCHEMA, accepts_jobs_status)
        #: path → handler; adapters mount exactly these, for POST.
        self.routes: dict[str, Callable[[bytes, str | None], Reply]] = {
            JOB_STATUS_PATH: self.job_status,
            JOBS_STATUS_PATH: self.jobs_status,
        }
        self._canceller: JobTracker | None = None
        if allow_cancel:
            self._canceller = (
                allow_cancel
                if isinstance(allow_cancel, JobTracker)
                else JobTracker(store, build_number=build_number, queue_id=self.queue_id)
            )
            self.routes[JOB_CANCEL_PATH] = self.job_cancel

    def __repr__(self) -> str:
        auth = "off" if self._keys is None else f"{len(self._keys)} key(s)"
        return f"StatusService({self.store!r}, auth={auth})"

    def handle(self, path: str, body: bytes, api_key: str | None) -> Reply:
        """Answer a POST to ``path``; an unknown path is a JSON 404."""
        handler = self.routes.get(path)
        if handler is None:
            return Reply.json(404, {"message": f"Not found: {path}"})
        return handler(body, api_key)

    def job_status(self, body: bytes, api_key: str | None) -> Reply:
        """``POST /v1/toolkit/job/status``: one job's record in an envelope."""
        return self._answer(
            JOB_STATUS_PATH, body, api_key, self._read_job_request, self._job_response
        )

    def job_cancel(self, body: bytes, api_key: str | None) -> Reply:
        """``POST /v1/toolkit/job/cancel`` (with ``allow_cancel``): ask a job to stop. A 202
        envelope when a running job was asked to stop, a 200 one when the job is now (or
        already was) final; ``response`` is the record as stored after the call."""
        return self._answer(
            JOB_CANCEL_PATH, body, api_key, self._read_job_request, self._cancel_response
        )

    def jobs_status(self, body: bytes, api_key: str | None) -> Reply:
        """``POST /v1/toolkit/jobs/status``: job_id → job_status of recently updated jobs."""
        return self._answer(
            JOBS_STATUS_PATH, body, api_key, self._read_jobs_request, self._jobs_response
        )

    # -- the steps ---------------------------------------------------------------------------

    def _answer(
        self,
        endpoint: str,
        body: bytes,
        api_key: str | None,
        read: Callable[[bytes], dict[str, Any]],
        respond: Callable[[dict[str, Any]], tuple[str, str | None, int]],
    ) -> Reply:
        started = time.perf_counter()
        request_id = None
        try:
            self._authenticate(api_key)
            payload = read(body)
            request_id = payload.get("id")
            response_json, job_id, code = respond(payload)
            return Reply(
                code,
                self._success_body(endpoint, code, request_id, job_id, response_json, started),
            )
        except JobStatusError as error:
            return self._error_reply(endpoint, error, request_id, started)
        except Exception as exc:  # a store (or the host's queue_length) raised, untranslated
            failure = StorageError(f"{type(exc).__name__}: {exc}")
            log.error("unexpected failure answering %s: %s", endpoint, failure)
            # The traceback helps; its text may hold a credential, so it is redacted too.
            log.debug("traceback:\n%s", redact("".join(traceback.format_exception(exc))))
            return self._error_reply(endpoint, failure, request_id, started)

    def _authenticate(self, api_key: str | None) -> None:
        if self._keys is None:
            return
        given = _key_bytes(api_key or "")
        # Compare against every key, always, so timing says nothing about which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise Unauthorized()

    def _read_job_request(self, body: bytes) -> dict[str, Any]:
        payload = self._validate_job(parse_json_body(body, max_bytes=self.max_body_bytes))
        if not self._job_id.fullmatch(payload["job_id"]):
            raise InvalidRequest(
                "job_id must be a UUID"
                if self.job_id_pattern == UUID_PATTERN
                else f"job_id does not match {self.job_id_pattern!r}"
            )
        return payload

    def _job_response(self, payload: dict[str, Any]) -> tuple[str, str | None, int]:
        job_id: str = payload["job_id"]
        return self.store.get(job_id).compact_json(), job_id, 200

    def _cancel_response(self, payload: dict[str, Any]) -> tuple[str, str | None, int]:
        job_id: str = payload["job_id"]
        assert self._canceller is not None  # the route is mounted only with one
        record = self._canceller.cancel(job_id)
        return record.compact_json(), job_id, 200 if record.is_final else 202

    def _read_jobs_request(self, body: bytes) -> dict[str, Any]:
        return self._validate_jobs(
            parse_json_body(body, max_bytes=self.max_body_bytes, allow_empty=True)
        )

    def _jobs_response(self, payload: dict[str, Any]) -> tuple[str, str | None, int]:
        since_seconds = payload.get("since_seconds", DEFAULT_SINCE_SECONDS)
        records = self.store.list(since=time.time() - since_seconds)
        return dump_compact({r.job_id: r.job_status for r in records}), None, 200

    # -- answers -----------------------------------------------------------------------------

    def _success_body(
        self,
        endpoint: str,
        code: int,
        request_id: Any,
        job_id: str | None,
        response_json: str,
        started: float,
    ) -> bytes:
        """The envelope, byte for byte what ``dump_json(build_envelope(...))`` gives, spliced
        around the record's own cached JSON so that a polled record is not encoded again."""
        if self.upstream_wire:
            job_id = str(uuid.uuid4())
        run_time = _scalar_json(round(time.perf_counter() - started, 3))
        queue_length = self._queue_length
        return (
            f'{{"endpoint":"{endpoint}","code":{code},"id":{_scalar_json(request_id)},'
            f'"job_id":{_scalar_json(job_id)},"response":{response_json},"message":"success",'
            f'"pid":{os.getpid()},"queue_id":{_scalar_json(self.queue_id)},'
            f'"run_time":{run_time},"queue_time":0.0,"total_time":{run_time},"queue_length":'
            f"{_scalar_json(queue_length() if callable(queue_length) else queue_length)}"
            f"{self._build_number_tail}"
        ).encode("ascii")

    def _envelope(
        self,
        endpoint: str,
        code: int,
        request_id: Any,
        job_id: str | None,
        response: Any,
        message: Any,
        started: float,
    ) -> dict[str, Any]:
        queue_length: Any = self._queue_length
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

    def _error_reply(
        self, endpoint: str, error: JobStatusError, request_id: Any, started: float
    ) -> Reply:
        if self.upstream_wire and error.status in (404, 500):
            envelope = self._envelope(
                endpoint, error.status, request_id, None, None, error.body(), started
            )
            return Reply.json(error.status, envelope)
        return Reply.json(error.status, error.body())


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


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")
