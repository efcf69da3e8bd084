"""The OpenAPI description of the status endpoints, for the FastAPI adapter.

Each operation has a stable ``operationId``, a tag, a summary and a description a client
generator can use, and documents exactly the answers the route can give. The example bodies are
real answers: a twin of the service (same options, an in-memory store holding the example job)
answers each case, so the documented bodies follow every rule of the service -- upstream-wire
mode included -- without a rule written twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NamedTuple

from jobstatus._listing import MAX_LIMIT, MAX_NUMBER
from jobstatus._schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA, STATES_PATTERN
from jobstatus.access import Access
from jobstatus.errors import JobNotFound, StorageError
from jobstatus.record import JobRecord
from jobstatus.service import (
    JOB_CANCEL_PATH,
    JOB_PATH,
    JOB_STATUS_PATH,
    JOBS_PATH,
    JOBS_STATUS_PATH,
    StatusService,
)
from jobstatus.store import BaseStore
from jobstatus.waiting import Pending
from jobstatus.wire import Request

__all__ = [
    "EXAMPLE_JOB_ID",
    "TAG",
    "Operation",
    "operation",
    "parameters",
    "request_body",
    "responses",
]

#: The job id of the examples.
EXAMPLE_JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
#: The tag of every status operation (client generators group operations by tag).
TAG = "job status"
_KEY = "example-key"
_SCOPELESS_KEY = "example-key-without-scopes"
_DESCRIPTIONS = {
    200: "The envelope",
    202: "A running job was asked to stop; the envelope holds its record",
    304: "Not modified: the job's version matches If-None-Match (no body)",
    400: "Invalid payload",
    401: "Missing or wrong x-api-key (or per-job bearer token)",
    403: "The key lacks the scope this route needs",
    404: "Job not found",
    500: "The store failed",
}


class Operation(NamedTuple):
    """What names and explains one route in the OpenAPI document."""

    operation_id: str
    summary: str
    description: str


_OPERATIONS = {
    JOB_STATUS_PATH: Operation(
        "getJobStatus",
        "The status of one job",
        "The job's stored document (`job_status`, `job_id`, `queue_id`, `process_id`, `response`) "
        "in the status envelope. Poll it with the `job_id` a submission answered until "
        "`response.job_status` is `done` or `failed`. The `x-api-key` header is checked first, "
        "then the body, then the store. Reading a status writes nothing.",
    ),
    JOB_CANCEL_PATH: Operation(
        "cancelJob",
        "Ask a job to stop",
        "A queued job is cancelled at once and a final one is left as it is (200 with the "
        "record); a running job gets `cancel_requested_at` and ends as `cancelled` when its "
        "worker next looks (202). The envelope's `response` is the record as stored after the "
        "call. Mounted only when the service allows cancel.",
    ),
    JOBS_STATUS_PATH: Operation(
        "listJobStatuses",
        "Recent jobs' states",
        "`job_id` → `job_status` of every job updated in the last `since_seconds` seconds "
        "(600 when absent; the body may be empty), newest first, in the status envelope; "
        "`status` keeps only the jobs in the states it names. A long answer is streamed.",
    ),
    JOB_PATH: Operation(
        "getJob",
        "One job, for pollers",
        "The same envelope as `getJobStatus` (`endpoint` is the path asked), with the record's "
        "version as a strong `ETag` and `Cache-Control: no-cache`. Send the ETag back in "
        "`If-None-Match` to get a bodiless 304 while the job is unchanged; add `wait` (seconds) "
        "to hold the request until the job changes (200), is gone (404) or the wait ends (304). "
        "Every answer about a job that is not final carries `Retry-After` (seconds).",
    ),
    JOBS_PATH: Operation(
        "listJobs",
        "Recent jobs, a page at a time",
        '`{"jobs": [...], "next_cursor": ...}` in the status envelope: the jobs updated in '
        "the last `since_seconds` seconds (600), newest first, `limit` per page (100, at most "
        "1000), optionally only those in the `status` states (comma-separated). Pass "
        "`next_cursor` back as `cursor` for the next page; null means there is none.",
    ),
}
_GET_JOB_HEADERS = {
    "ETag": {
        "description": "The job's version, a strong entity tag",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "no-cache", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds until the job is worth asking about again; only while the job "
        "is not final",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def operation(path: str) -> Operation:
    """The ``operationId``, summary and description of ``path``, one of the service's routes
    (a route without an entry here is a KeyError: every documented route is named)."""
    return _OPERATIONS[path]


def _wait_schema(service: StatusService, kind: str = "number") -> dict[str, Any]:
    return {"type": kind, "exclusiveMinimum": 0, "maximum": service.max_wait}


def parameters(service: StatusService, path: str) -> list[dict[str, Any]]:
    """The ``parameters`` of a GET route: its path, query and header parameters."""
    if path == JOB_PATH:
        return [
            {
                "name": "job_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^(?:{service.job_id_pattern})$"},
            },
            {
                "name": "wait",
                "in": "query",
                "description": "With If-None-Match: hold the request up to this many seconds "
                "until the job changes",
                "schema": _wait_schema(service),
            },
            {
                "name": "If-None-Match",
                "in": "header",
                "description": "ETags the client has (or *): a 304 while the job matches",
                "schema": {"type": "string"},
            },
        ]
    if path == JOBS_PATH:
        return [
            {
                "name": "status",
                "in": "query",
                "description": "Only jobs in these states, comma-separated",
                "schema": {"type": "string", "pattern": STATES_PATTERN},
            },
            {
                "name": "since_seconds",
                "in": "query",
                "description": "The window: jobs updated in the last so many seconds (600)",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_NUMBER},
            },
            {
                "name": "limit",
                "in": "query",
                "description": "Jobs per page (100)",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "cursor",
                "in": "query",
                "description": "The previous page's next_cursor",
                "schema": {"type": "string"},
            },
        ]
    return []


def request_body(service: StatusService, path: str) -> dict[str, Any] | None:
    """The ``requestBody`` object of ``path``: its JSON schema and an example (None for a
    GET route)."""
    if path in (JOB_PATH, JOBS_PATH):
        return None
    if path in (JOB_STATUS_PATH, JOB_CANCEL_PATH):
        job_id = {"type": "string", "pattern": f"^(?:{service.job_id_pattern})$"}
        properties: dict[str, Any] = {"job_id": job_id, "id": {}}
        if path == JOB_STATUS_PATH:
            properties["wait"] = _wait_schema(service)
        schema = {**JOB_STATUS_SCHEMA, "properties": properties}
        example: dict[str, Any] = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"}
    else:
        schema, example = JOBS_STATUS_SCHEMA, {"since_seconds": 600}
    media = {"schema": schema, "example": example}
    return {"required": path != JOBS_STATUS_PATH, "content": {"application/json": media}}


def responses(service: StatusService, path: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` object of ``path``: every answer it can give, each with an example."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code, example in sorted(_answers(service, path), key=lambda answer: answer[0]):
        answer: dict[str, Any] = {"description": _DESCRIPTIONS[code]}
        if example is not None:
            answer["content"] = {
                "application/json": {
                    "example": example,
                    "schema": {"type": "object", "required": list(example)},
                }
            }
        if path == JOB_PATH and code in (200, 304):
            answer["headers"] = _GET_JOB_HEADERS
        documented[code] = answer
    return documented


class _ExampleStore(BaseStore):
    """An in-memory store holding ``records``, or failing every call when ``failing``."""

    def __init__(self, records: Iterable[JobRecord] = (), *, failing: bool = False) -> None:
        self._records = {record.job_id: record for record in records}
        self._failing = failing

    def get(self, job_id: str) -> JobRecord:
        if self._failing:
            raise StorageError("connection refused")
        try:
            return replace(self._records[job_id], version="3f9a1c7e55d04b8e2a61", updated_at=0.0)
        except KeyError:
            raise JobNotFound(job_id) from None

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        """Every record, whatever the filters: the examples hold one job."""
        if self._failing:
            raise StorageError("connection refused")
        return iter([self.get(job_id) for job_id in self._records])

    def put(self, record: JobRecord, **conditions: Any) -> JobRecord:
        """Keep ``record`` (the cancel example's one write), with a version of its own."""
        self.get(record.job_id)
        stored = replace(record, version=f"example-{len(self._records)}")
        self._records[record.job_id] = stored
        return stored

    def _unused(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the OpenAPI examples never restore, delete or purge")

    restore = delete = purge = _unused


def _answers(service: StatusService, path: str) -> Iterator[tuple[int, Any]]:
    """(status, example body or None) of every answer ``path`` can give, each asked of a
    twin of ``service``."""

    def twin(store: _ExampleStore) -> StatusService:
        return StatusService(
            store,
            api_keys={_KEY: Access(), _SCOPELESS_KEY: Access(scopes=frozenset())},
            build_number=service.build_number or "1.0.0",
            queue_id=service.queue_id,
            job_id_pattern=service.job_id_pattern,
            upstream_wire=service.upstream_wire,
            allow_cancel=path == JOB_CANCEL_PATH,
            max_wait=service.max_wait,
        )

    get = path in (JOB_PATH, JOBS_PATH)
    asked = path.replace("{job_id}", EXAMPLE_JOB_ID)

    def ask(
        store: _ExampleStore, good: bool, key: str | None = _KEY, **headers: str
    ) -> tuple[int, Any]:
        if get:
            query = "" if good else ("wait=-1" if path == JOB_PATH else "limit=0")
            request = Request("GET", asked, b"", key, query, headers.get("if_none_match"))
        else:
            request = Request("POST", path, json.dumps(body if good else bad).encode(), key)
        reply = twin(store).respond(request)
        assert not isinstance(reply, Pending)  # the examples never wait
        return reply.status, json.loads(reply.body) if reply.body else None

    example = JobRecord(
        job_id=EXAMPLE_JOB_ID,
        job_status="done",
        process_id=123456,
        queue_id=service.queue_id,
        response={"code": 200, "response": "…"},
    )
    store = _ExampleStore([example])
    one_job = path not in (JOBS_STATUS_PATH, JOBS_PATH)
    body = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"} if one_job else {"since_seconds": 600}
    bad: dict[str, Any] = {} if one_job else {"since_seconds": -1}
    yield ask(store, True)
    if path == JOB_CANCEL_PATH:
        running = replace(example, job_status="running", response=None)
        yield ask(_ExampleStore([running]), True)
    if path == JOB_PATH:
        yield ask(store, True, if_none_match=f'"{store.get(EXAMPLE_JOB_ID).version}"')
    yield ask(store, False)
    yield ask(store, True, key=None)
    yield ask(store, True, key=_SCOPELESS_KEY)
    if one_job:
        yield ask(_ExampleStore(), True)
    with _unlogged():
        failed = ask(_ExampleStore(failing=True), True)
    yield failed


@contextmanager
def _unlogged() -> Iterator[None]:
    """The example 500 is no failure of the host's service: the service's log drops what
    this thread logs meanwhile (other threads' records pass)."""
    thread = threading.get_ident()
    service_log = logging.getLogger("jobstatus.service")

    def others(record: logging.LogRecord) -> bool:
        return record.thread != thread

    service_log.addFilter(others)
    try:
        yield
    finally:
        service_log.removeFilter(others)
