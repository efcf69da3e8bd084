"""Plain WSGI: ``make_app(service)`` returns a WSGI callable serving the status routes (and,
with ``dashboard=True``, the job dashboard: :mod:`jobstatus.dashboard` answers its paths).

Only translation lives here: environ in, :meth:`StatusService.respond` call, response out.
The service answers other paths with a JSON 404 and other methods with a JSON 405. A request
that waits (``?wait=``, ``"wait"``) holds its worker thread until its answer is known, at most
``max_waiters`` at once (see :class:`~jobstatus.StatusService`); a long listing is streamed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from jobstatus.dashboard import Dashboard
from jobstatus.service import Reply, StatusService
from jobstatus.wire import Request

__all__ = ["make_app", "read_body"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_STATUS_LINES = {
    code: f"{code} {reason}"
    for code, reason in {
        200: "OK",
        202: "Accepted",
        304: "Not Modified",
        308: "Permanent Redirect",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
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


def make_app(service: StatusService, *, dashboard: bool = False) -> WSGIApp:
    """A WSGI application answering ``service``'s routes, and with ``dashboard`` the job
    dashboard at ``/v1/toolkit/dashboard/``."""
    pages = Dashboard.for_service(service) if dashboard else None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD") or "GET"
        path = environ.get("PATH_INFO") or "/"
        if not path.isascii():  # WSGI decodes the (unescaped) path as latin-1; URLs are UTF-8
            path = path.encode("latin-1").decode("utf-8", "replace")
        if pages is not None and pages.handles(path):
            reply = pages.respond(method, path, environ.get("HTTP_IF_NONE_MATCH"))
            return _send(reply, start_response)
        key = environ.get("HTTP_X_API_KEY")
        # WSGI decodes headers as latin-1; keys are UTF-8 (ASCII reads the same in both)
        if key is not None and not key.isascii():
            key = key.encode("latin-1").decode("utf-8", "surrogateescape")
        if method == "POST":
            body = read_body(environ, service.max_body_bytes)
            request = Request(method, path, body, key, "", None, environ.get("HTTP_AUTHORIZATION"))
        else:
            query, condition = environ.get("QUERY_STRING") or "", environ.get("HTTP_IF_NONE_MATCH")
            authorization = environ.get("HTTP_AUTHORIZATION")
            request = Request(method, path, b"", key, query, condition, authorization)
        outcome = service.respond(request)
        return _send(outcome if isinstance(outcome, Reply) else outcome.result(), start_response)

    return app


def _send(reply: Reply, start_response: Callable[..., Any]) -> Iterable[bytes]:
    status = _STATUS_LINES.get(reply.status) or str(reply.status)
    if reply.__class__ is Reply and reply.status != 304:
        start_response(status, [*reply.headers, ("Content-Length", str(len(reply.body)))])
        return [reply.body]
    start_response(status, list(reply.headers))  # streamed, or a 304: no length
    return reply.chunks()
