"""Flask: ``app.register_blueprint(make_blueprint(service))`` mounts the status routes.

Only translation lives here: request in, :meth:`StatusService.respond` call, response out.
Every method reaches the service, which answers the ones a route does not take with a JSON
405. A request that waits (``?wait=``, ``"wait"``) holds its worker thread until its answer is
known, at most ``max_waiters`` at once (see :class:`~jobstatus.StatusService`); a long listing
is streamed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

try:
    from flask import Blueprint, Response, request
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from jobstatus.errors import missing_extra

    raise missing_extra("flask", exc) from exc

from jobstatus.dashboard import DASHBOARD_ROUTES, Dashboard
from jobstatus.service import Reply, StatusService
from jobstatus.wire import Request, StreamedReply

__all__ = ["METHODS", "make_blueprint"]

#: Every method is routed to the view, so that the service answers a wrong one with its JSON
#: 405 (Flask matches the method while routing, before a blueprint's error handlers apply).
METHODS = ("GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def make_blueprint(
    service: StatusService, name: str = "jobstatus", *, dashboard: bool = False
) -> Blueprint:
    """A blueprint answering ``service``'s routes, and with ``dashboard`` the job dashboard
    at ``/v1/toolkit/dashboard/``; mount it with any ``url_prefix``."""
    blueprint = Blueprint(name, __name__)
    rules = [
        (path.replace("{job_id}", "<job_id>"), f"route{index}", _view(service, path))
        for index, path in enumerate(service.routes)
    ]
    if dashboard:
        pages = Dashboard.for_service(service)
        rules += [
            (path.replace("{name}", "<name>"), f"dashboard{index}", _page(pages, path))
            for index, path in enumerate(DASHBOARD_ROUTES)
        ]
    for rule, endpoint, view in rules:
        blueprint.add_url_rule(
            rule,
            endpoint=endpoint,
            view_func=view,
            methods=METHODS,
            provide_automatic_options=False,
        )
    return blueprint


def _view(service: StatusService, path: str) -> Callable[..., Response]:
    def view(**params: Any) -> Response:
        key = request.headers.get("x-api-key")
        if key is not None:  # WSGI decodes headers as latin-1; keys are UTF-8
            key = key.encode("latin-1").decode("utf-8", "surrogateescape")
        method = request.method
        answer = service.respond(
            Request(
                method,
                path.format(**params) if params else path,
                _read_at_most(request.stream, service.max_body_bytes + 1)
                if method == "POST"
                else b"",
                key,
                request.query_string.decode("latin-1"),
                request.headers.get("If-None-Match"),
                request.headers.get("Authorization"),
            )
        )
        return _response(answer if isinstance(answer, Reply) else answer.result())

    return view


def _page(pages: Dashboard, path: str) -> Callable[..., Response]:
    def view(**params: Any) -> Response:
        asked = path.format(**params) if params else path
        reply = pages.respond(request.method, asked, request.headers.get("If-None-Match"))
        return _response(reply)

    return view


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: a stream may return fewer per read, never the rest of the body."""
    chunks = []
    while size > 0 and (chunk := stream.read(size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _response(reply: Reply) -> Response:
    body: Any = reply.chunks() if isinstance(reply, StreamedReply) else reply.body
    response = Response(body, status=reply.status, headers=list(reply.headers))
    if reply.status == 304:
        del response.headers["Content-Type"]  # Flask's default; a 304 has no body
    return response
