"""The OpenAPI description of the status endpoints, for the FastAPI adapter.

Each operation has a stable ``operationId``, a tag, a summary and a description a client
generator can use, and documents exactly the answers the route can give. The example bodies are
real answers: a twin of the service (same options, an in-memory store holding the example job)
answers each case, so the documented bodies follow every rule of the service -- upstream-wire
mode included -- without a rule written twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from jobstatus.errors import JobNotFound, StorageError
from jobstatus.record import JobRecord
from jobstatus.schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA
from jobstatus.service import JOB_CANCEL_PATH, JOB_STATUS_PATH, JOBS_STATUS_PATH, StatusService
from jobstatus.store import BaseStore

__all__ = ["EXAMPLE_JOB_ID", "TAG", "Operation", "operation", "request_body", "responses"]

#: The job id of the examples.
EXAMPLE_JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
#: The tag of every status operation (client generators group operations by tag).
TAG = "job status"
_KEY = "example-key"
_DESCRIPTIONS = {
    200: "The envelope",
    202: "A running job was asked to stop; the envelope holds its record",
    400: "Invalid payload",
    401: "Missing or wrong x-api-key",
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
        "(600 when absent; the body may be empty), newest first, in the status envelope.",
    ),
}


def operation(path: str) -> Operation:
    """The ``operationId``, summary and description of ``path``, one of the service's routes
    (a route without an entry here is a KeyError: every documented route is named)."""
    return _OPERATIONS[path]


def request_body(service: StatusService, path: str) -> dict[str, Any]:
    """The ``requestBody`` object of ``path``: its JSON schema and an example."""
    if path in (JOB_STATUS_PATH, JOB_CANCEL_PATH):
        job_id = {"type": "string", "pattern": f"^(?:{service.job_id_pattern})$"}
        schema = {**JOB_STATUS_SCHEMA, "properties": {"job_id": job_id, "id": {}}}
        example: dict[str, Any] = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"}
    else:
        schema, example = JOBS_STATUS_SCHEMA, {"since_seconds": 600}
    media = {"schema": schema, "example": example}
    return {"required": path != JOBS_STATUS_PATH, "content": {"application/json": media}}


def responses(service: StatusService, path: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` object of ``path``: every answer it can give, each with an example."""
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {
                "application/json": {
                    "example": example,
                    "schema": {"type": "object", "required": list(example)},
                }
            },
        }
        for code, example in sorted(_answers(service, path))
    }


class _ExampleStore(BaseStore):
    """An in-memory store holding ``records``, or failing every call when ``failing``."""

    def __init__(self, records: Iterable[JobRecord] = (), *, failing: bool = False) -> None:
        self._records = {record.job_id: record for record in records}
        self._failing = failing

    def get(self, job_id: str) -> JobRecord:
        if self._failing:
            raise StorageError("connection refused")
        try:
            return self._records[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        """Every record, whatever the filters: the examples hold one job."""
        if self._failing:
            raise StorageError("connection refused")
        return iter(self._records.values())

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
    def twin(store: _ExampleStore) -> StatusService:
        return StatusService(
            store,
            api_keys=[_KEY],
            build_number=service.build_number or "1.0.0",
            queue_id=service.queue_id,
            job_id_pattern=service.job_id_pattern,
            upstream_wire=service.upstream_wire,
            allow_cancel=path == JOB_CANCEL_PATH,
        )

    def ask(store: _ExampleStore, body: dict[str, Any], key: str | None = _KEY) -> Any:
        return json.loads(twin(store).handle(path, json.dumps(body).encode(), key).body)

    example = JobRecord(
        job_id=EXAMPLE_JOB_ID,
        job_status="done",
        process_id=123456,
        queue_id=service.queue_id,
        response={"code": 200, "response": "…"},
    )
    store = _ExampleStore([example])
    one_job = path != JOBS_STATUS_PATH
    good = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"} if one_job else {"since_seconds": 600}
    yield 200, ask(store, good)
    if path == JOB_CANCEL_PATH:
        running = replace(example, job_status="running", response=None)
        yield 202, ask(_ExampleStore([running]), good)
    yield 400, ask(store, {} if one_job else {"since_seconds": -1})
    yield 401, ask(store, good, key=None)
    if one_job:
        yield 404, ask(_ExampleStore(), good)
    yield 500, ask(_ExampleStore(failing=True), good)
