"""FastAPI: ``app.include_router(make_router(service))`` mounts the status endpoints.

Only translation lives here: request in, :meth:`StatusService.handle` call, response out. The
body is read raw and parsed by the service (a pydantic model would answer 422 where the
endpoint answers 400); the OpenAPI document still shows each operation's name
(``getJobStatus``, ``listJobStatuses``), tag and description, the request schema, every answer
the route can give with an example, and ``x-api-key`` as an API-key security scheme. The store
is synchronous, so the service runs in the thread pool and a slow store never blocks the event
loop.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

try:
    from fastapi import APIRouter, Request, Response, Security
    from fastapi.concurrency import run_in_threadpool
    from fastapi.security import APIKeyHeader
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from jobstatus.errors import missing_extra

    raise missing_extra("fastapi", exc) from exc

from jobstatus.adapters import _openapi
from jobstatus.service import Reply, StatusService

__all__ = ["API_KEY_HEADER", "OTHER_METHODS", "make_router"]

#: Documents ``x-api-key`` for the "Authorize" button; checking it stays with the service.
API_KEY_HEADER = APIKeyHeader(name="x-api-key", auto_error=False)
#: Methods answered with the WSGI adapter's JSON 405 rather than FastAPI's.
OTHER_METHODS = ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def make_router(service: StatusService) -> APIRouter:
    """A router answering ``service``'s routes, POST only; include it with any ``prefix``."""
    router = APIRouter()
    for path in service.routes:
        operation = _openapi.operation(path)
        router.add_api_route(
            path,
            _endpoint(service, path),
            methods=["POST"],
            response_class=Response,
            operation_id=operation.operation_id,
            summary=operation.summary,
            description=operation.description,
            tags=[_openapi.TAG],
            dependencies=[Security(API_KEY_HEADER)],
            openapi_extra={"requestBody": _openapi.request_body(service, path)},
            responses=_openapi.responses(service, path),
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
