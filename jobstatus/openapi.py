"""OpenAPI descriptions of the status endpoints, for adapters whose framework publishes one.

The example bodies are real answers: a twin of the service (same options, an in-memory store)
answers each case, so the documented bodies follow every rule of the service -- upstream-wire
mode included -- without a rule written twice.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import Any

from jobstatus.backends.memory import MemoryStore
from jobstatus.errors import QueueFull, StorageError
from jobstatus.record import JobRecord
from jobstatus.schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA
from jobstatus.service import JOB_STATUS_PATH, StatusService

__all__ = ["EXAMPLE_JOB_ID", "request_body", "responses"]

#: The job id of the examples (the spec's).
EXAMPLE_JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
_KEY = "example-key"
_DESCRIPTIONS = {
    200: "The envelope",
    400: "Invalid payload",
    401: "Missing or wrong x-api-key",
    404: "Job not found",
    429: "The host's queue is full",
    500: "The store failed",
}


def request_body(service: StatusService, path: str) -> dict[str, Any]:
    """The ``requestBody`` object of ``path``: its JSON schema and an example."""
    if path == JOB_STATUS_PATH:
        job_id = {"type": "string", "pattern": f"^(?:{service.job_id_pattern})$"}
        schema = {**JOB_STATUS_SCHEMA, "properties": {"job_id": job_id, "id": {}}}
        example: dict[str, Any] = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"}
    else:
        schema, example = JOBS_STATUS_SCHEMA, {"since_seconds": 600}
    media = {"schema": schema, "example": example}
    return {"required": path == JOB_STATUS_PATH, "content": {"application/json": media}}


def responses(service: StatusService, path: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` object of ``path``: every answer it can give, each with an example."""
    examples = dict(_answers(service, path))
    described: dict[int | str, dict[str, Any]] = {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {
                "application/json": {
                    "example": example,
                    "schema": {"type": "object", "required": list(example)},
                }
            },
        }
        for code, example in sorted(examples.items())
    }
    return described


class _FailingStore(MemoryStore):
    def get(self, job_id: str) -> JobRecord:
        raise StorageError("connection refused")

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        raise StorageError("connection refused")


def _answers(service: StatusService, path: str) -> Iterator[tuple[int, Any]]:
    def twin(store: MemoryStore) -> StatusService:
        return StatusService(
            store,
            api_keys=[_KEY],
            build_number=service.build_number or "1.0.0",
            queue_id=service.queue_id,
            job_id_pattern=service.job_id_pattern,
            upstream_wire=service.upstream_wire,
        )

    def ask(answering: StatusService, body: dict[str, Any], key: str | None = _KEY) -> Any:
        return json.loads(answering.handle(path, json.dumps(body).encode(), key).body)

    store = MemoryStore()
    store.put(
        JobRecord(
            job_id=EXAMPLE_JOB_ID,
            job_status="done",
            process_id=123456,
            queue_id=service.queue_id,
            response={"code": 200, "response": "…"},
        )
    )
    one_job = path == JOB_STATUS_PATH
    good = {"job_id": EXAMPLE_JOB_ID, "id": "request-7"} if one_job else {"since_seconds": 600}
    yield 200, ask(twin(store), good)
    yield 400, ask(twin(store), {} if one_job else {"since_seconds": -1})
    yield 401, ask(twin(store), good, key=None)
    if one_job:
        yield 404, ask(twin(MemoryStore()), good)
    yield (
        429,
        QueueFull(
            100,
            queue_length=100,
            job_id=EXAMPLE_JOB_ID,
            id="request-7",
            pid=123456,
            queue_id=service.queue_id,
            build_number=service.build_number or "1.0.0",
        ).body(),
    )
    yield 500, ask(twin(_FailingStore()), good)
