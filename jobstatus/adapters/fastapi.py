"""FastAPI: ``app.include_router(make_router(service))`` mounts the status endpoints.

Only translation lives here: request in, :meth:`StatusService.handle` call, response out. The
body is read raw and parsed by the service (a pydantic model would answer 422 where the spec
says 400); the OpenAPI document still shows the request schema, every answer with an example,
and ``x-api-key`` as an API-key security scheme. The store is synchronous, so the service runs
in the thread pool and a slow store never blocks the event loop.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

try:
    from fastapi import APIRouter, Request, Response, Security
    from fastapi.concurrency import run_in_threadpool
    from fastapi.security import APIKeyHeader
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from jobstatus.backends import missing_extra

    raise missing_extra("fastapi", exc) from exc

from jobstatus.envelope import build_envelope
from jobstatus.errors import InvalidRequest, JobNotFound, QueueFull, StorageError, Unauthorized
from jobstatus.schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA
from jobstatus.service import JOB_STATUS_PATH, JOBS_STATUS_PATH, Reply, StatusService

__all__ = ["API_KEY_HEADER", "OTHER_METHODS", "make_router"]

#: Documents ``x-api-key`` for the "Authorize" button; checking it stays with the service.
API_KEY_HEADER = APIKeyHeader(name="x-api-key", auto_error=False)
#: Methods answered with the WSGI adapter's JSON 405 rather than FastAPI's.
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]

_SUMMARIES = {JOB_STATUS_PATH: "The status of one job", JOBS_STATUS_PATH: "Recent jobs' states"}
_JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
_PID, _QUEUE_ID = 123456, 140368864456064
# Example values are never None: FastAPI drops None from the whole OpenAPI document.
_IDS: dict[str, Any] = {"id": "request-7", "pid": _PID, "queue_id": _QUEUE_ID, "build_number": "1"}
_RECORD = {"job_status": "done", "job_id": _JOB_ID, "process_id": _PID, "response": {"code": 200}}


def make_router(service: StatusService) -> APIRouter:
    """A router answering ``service``'s routes, POST only; include it with any ``prefix``."""
    router = APIRouter()
    for path in service.routes:
        router.add_api_route(
            path,
            _endpoint(service, path),
            methods=["POST"],
            response_class=Response,
            summary=_SUMMARIES.get(path),
            dependencies=[Security(API_KEY_HEADER)],
            openapi_extra={"requestBody": _request_body(service, path)},
            responses=_responses(service, path),
        )
        router.add_api_route(
            path, _method_not_allowed, methods=OTHER_METHODS, include_in_schema=False
        )
    return router


def _endpoint(service: StatusService, path: str) -> Any:
    async def endpoint(request: Request) -> Response:
        body, size = bytearray(), service.max_body_bytes + 1
        async with aclosing(request.stream()) as chunks:
            async for chunk in chunks:  # never more of an oversized body than needed
                body += chunk
                if len(body) >= size:
                    break
        key = request.headers.get("x-api-key")
        if key is not None:  # ASGI headers are bytes, decoded as latin-1; keys are UTF-8
            key = key.encode("latin-1").decode("utf-8", "surrogateescape")
        return _response(await run_in_threadpool(service.handle, path, bytes(body[:size]), key))

    return endpoint


async def _method_not_allowed() -> Response:
    return _response(Reply.method_not_allowed())


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


def _request_body(service: StatusService, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = JOBS_STATUS_SCHEMA
    example: dict[str, Any] = {"since_seconds": 600}
    if path == JOB_STATUS_PATH:
        job_id = {"type": "string", "pattern": f"^(?:{service.job_id_pattern})$"}
        schema = {**JOB_STATUS_SCHEMA, "properties": {"job_id": job_id, "id": {}}}
        example = {"job_id": _JOB_ID, "id": _IDS["id"]}
    media = {"schema": schema, "example": example}
    return {"required": path == JOB_STATUS_PATH, "content": {"application/json": media}}


def _responses(service: StatusService, path: str) -> dict[int | str, dict[str, Any]]:
    """An example of every answer, the upstream-wire shapes when the service uses them."""
    one_job, wire = path == JOB_STATUS_PATH, service.upstream_wire

    def envelope(code: int, response: Any, message: Any = "success") -> dict[str, Any]:
        job_id = _JOB_ID if one_job or wire else None
        return build_envelope(
            endpoint=path, code=code, job_id=job_id, response=response, message=message, **_IDS
        )

    def error(code: int, body: dict[str, Any]) -> dict[str, Any]:  # upstream wraps 404, 500
        return envelope(code, None, body) if wire else body

    fault = "'job_id' is a required property" if one_job else "-1 is less than the minimum of 0"
    answers = {
        200: ("The envelope", envelope(200, _RECORD if one_job else {_JOB_ID: "done"})),
        400: ("Invalid payload", InvalidRequest(fault).body()),
        401: ("Missing or wrong x-api-key", Unauthorized().body()),
        404: ("Job not found", error(404, JobNotFound(_JOB_ID).body())),
        429: ("The host's queue is full", QueueFull(100, job_id=_JOB_ID, **_IDS).body()),
        500: ("The store failed", error(500, StorageError("connection refused").body())),
    }
    if not one_job:
        del answers[404]
    return {
        code: {"description": text, "content": {"application/json": _media(example)}}
        for code, (text, example) in answers.items()
    }


def _media(example: dict[str, Any]) -> dict[str, Any]:
    return {"example": example, "schema": {"type": "object", "required": list(example)}}
