"""Plain WSGI: ``make_app(service)`` returns a WSGI callable serving the status endpoints.

Only translation lives here: environ in, :meth:`StatusService.handle` call, response out.
Other paths get a JSON 404, other methods a JSON 405 with ``Allow: POST``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jobstatus.service import Reply, StatusService

__all__ = ["make_app", "read_body"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_STATUS_LINES = {
    code: f"{code} {reason}"
    for code, reason in {
        200: "OK",
        202: "Accepted",
        304: "Not Modified",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }.items()
}


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the request body: enough to refuse an oversized one
    without reading it whole."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length == 0:
        return b""
    want = limit + 1 if length < 0 else min(length, limit + 1)
    data: bytes = stream.read(want)
    return data


def make_app(service: StatusService) -> WSGIApp:
    """A WSGI application answering ``service``'s routes, POST only."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path not in service.routes:
            reply = Reply.json(404, {"message": f"Not found: {path}"})
        elif environ.get("REQUEST_METHOD") != "POST":
            reply = Reply.method_not_allowed()
        else:
            key = environ.get("HTTP_X_API_KEY")
            # WSGI decodes headers as latin-1; keys are UTF-8 (ASCII reads the same in both)
            if key is not None and not key.isascii():
                key = key.encode("latin-1").decode("utf-8", "surrogateescape")
            reply = service.handle(path, read_body(environ, service.max_body_bytes), key)
        headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
        start_response(_STATUS_LINES.get(reply.status) or str(reply.status), headers)
        return [reply.body]

    return app
