"""Flask: ``app.register_blueprint(make_blueprint(service))`` mounts the status endpoints.

Only translation lives here: request in, :meth:`StatusService.handle` call, response out.
Other methods on the endpoints' paths get the WSGI adapter's JSON 405 with ``Allow: POST``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

try:
    from flask import Blueprint, Response, request
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    from jobstatus.errors import missing_extra

    raise missing_extra("flask", exc) from exc

from jobstatus.service import Reply, StatusService

__all__ = ["OTHER_METHODS", "make_blueprint"]

#: Methods answered with a JSON 405 rather than Flask's HTML page. Flask matches the method
#: while routing, before a blueprint's error handlers apply, so these are routed to the view.
OTHER_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")

_METHOD_NOT_ALLOWED = Reply.method_not_allowed()


def make_blueprint(service: StatusService, name: str = "jobstatus") -> Blueprint:
    """A blueprint answering ``service``'s routes, POST only; mount it with any ``url_prefix``."""
    blueprint = Blueprint(name, __name__)
    for index, path in enumerate(service.routes):
        blueprint.add_url_rule(
            path,
            endpoint=f"route{index}",
            view_func=_view(service, path),
            methods=("POST", *OTHER_METHODS),
            provide_automatic_options=False,
        )
    return blueprint


def _view(service: StatusService, path: str) -> Callable[[], Response]:
    def view() -> Response:
        if request.method != "POST":
            return _response(_METHOD_NOT_ALLOWED)
        key = request.headers.get("x-api-key")
        if key is not None:  # WSGI decodes headers as latin-1; keys are UTF-8
            key = key.encode("latin-1").decode("utf-8", "surrogateescape")
        body = _read_at_most(request.stream, service.max_body_bytes + 1)
        return _response(service.handle(path, body, key))

    return view


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: a stream may return fewer per read, never the rest of the body."""
    chunks = []
    while size > 0 and (chunk := stream.read(size)):
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _response(reply: Reply) -> Response:
    return Response(reply.body, status=reply.status, headers=list(reply.headers))
