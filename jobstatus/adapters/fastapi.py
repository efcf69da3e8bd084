"""FastAPI: ``app.include_router(make_router(service))`` mounts the status routes.

Only translation lives here: request in, :meth:`StatusService.respond` call, response out. The
body is read raw and parsed by the service (a pydantic model would answer 422 where the
endpoint answers 400); the OpenAPI document still shows each operation's name (``getJobStatus``,
``listJobStatuses``, ``getJob``, ``listJobs``), tag and description, its parameters or request
schema, every answer the route can give with an example, and ``x-api-key`` as an API-key
security scheme.

The store is synchronous, so the service runs in the thread pool and a slow store never blocks
the event loop. A request that waits (``?wait=``, ``"wait"``) then holds **no thread**: it
awaits a future the watcher resolves, and gives its place up as soon as the client
disconnects. A long listing is streamed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

try:
    from fastapi import APIRouter, Request, Response, Security
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import StreamingResponse
    from fastapi.security import APIKeyHeader
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from jobstatus.errors import missing_extra

    raise missing_extra("fastapi", exc) from exc

from jobstatus import wire
from jobstatus.adapters import _openapi
from jobstatus.dashboard import DASHBOARD_ROUTES, Dashboard
from jobstatus.service import Reply, StatusService

__all__ = ["API_KEY_HEADER", "METHODS", "make_router"]

#: Documents ``x-api-key`` for the "Authorize" button; checking it stays with the service.
API_KEY_HEADER = APIKeyHeader(name="x-api-key", auto_error=False)
#: Every method reaches the service, which answers one a route does not take with a JSON 405.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def make_router(service: StatusService, *, dashboard: bool = False) -> APIRouter:
    """A router answering ``service``'s routes, and with ``dashboard`` the job dashboard at
    ``/v1/toolkit/dashboard/`` (not in the OpenAPI document); include it with any ``prefix``."""
    router = APIRouter()
    if dashboard:
        pages = Dashboard.for_service(service)
        for path in DASHBOARD_ROUTES:
            router.add_api_route(
                path, _page(pages, path), methods=[*METHODS, "HEAD"], include_in_schema=False
            )
    for path, route in service.routes.items():  # exact paths before /v1/toolkit/jobs/{job_id}
        endpoint = _endpoint(service, path)
        if route.scope == "metrics":  # Prometheus' page, not an operation of the API
            router.add_api_route(path, endpoint, methods=METHODS, include_in_schema=False)
            continue
        operation = _openapi.operation(path)
        extra: dict[str, Any] = {}
        body = _openapi.request_body(service, path)
        if body is not None:
            extra["requestBody"] = body
        parameters = _openapi.parameters(service, path)
        if parameters:
            extra["parameters"] = parameters
        router.add_api_route(
            path,
            endpoint,
            methods=[route.method],
            response_class=Response,
            operation_id=operation.operation_id,
            summary=operation.summary,
            description=operation.description,
            tags=[_openapi.TAG],
            dependencies=[Security(API_KEY_HEADER)],
            openapi_extra=extra,
            responses=_openapi.responses(service, path),
        )
        others = [method for method in METHODS if method != route.method]
        router.add_api_route(path, endpoint, methods=others, include_in_schema=False)
    return router


def _endpoint(service: StatusService, path: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = bytearray()
        if request.method == "POST":
            size = service.max_body_bytes + 1
            async with aclosing(request.stream()) as chunks:
                async for chunk in chunks:  # never more of an oversized body than needed
                    body += chunk
                    if len(body) >= size:
                        break
            del body[size:]
        key = request.headers.get("x-api-key")
        if key is not None:  # ASGI headers are bytes, decoded as latin-1; keys are UTF-8
            key = key.encode("latin-1").decode("utf-8", "surrogateescape")
        asked = wire.Request(
            request.method,
            path.format(**request.path_params) if request.path_params else path,
            bytes(body),
            key,
            request.url.query,
            request.headers.get("if-none-match"),
            request.headers.get("authorization"),
        )
        outcome = await run_in_threadpool(service.respond, asked)
        if isinstance(outcome, Reply):
            return _response(outcome)
        reply = await outcome.result_async(_disconnected(request))
        if reply is None:  # the client left while waiting: nobody reads this
            return Response(status_code=499)
        return _response(reply)

    return endpoint


def _page(pages: Dashboard, path: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        asked = path.format(**request.path_params) if request.path_params else path
        reply = pages.respond(request.method, asked, request.headers.get("if-none-match"))
        return _response(reply)

    return endpoint


async def _disconnected(request: Request) -> None:
    """Return once the client has gone away (its body, if any, was read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _response(reply: Reply) -> Response:
    if isinstance(reply, wire.StreamedReply):
        return StreamingResponse(
            reply.chunks(), status_code=reply.status, headers=dict(reply.headers)
        )
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))
