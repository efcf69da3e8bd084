"""One HTTP client per adapter, all with the same call shape, for the HTTP conformance suite;
:func:`call_wsgi`, the one in-process caller of a WSGI app that every test uses.

A client is ``call(method, path, body=b"", headers=None) -> Answer``. Each adapter module
registers a factory in ``ADAPTERS``: ``factory(service, dashboard=False, prefix="") -> client``
(``dashboard`` mounts the job dashboard too; ``prefix`` mounts everything under a path, as a
host app does). The HTTP suite runs every case on every adapter and demands the same status and
JSON body from all of them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from jobstatus.service import StatusService


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Client = Callable[..., Answer]


def call_wsgi(
    app: Any,
    method: str,
    path: str,
    body: bytes | io.IOBase = b"",
    headers: Mapping[str, str] | None = None,
    *,
    content_length: int | None = None,
    chunked: bool = False,
) -> Answer:
    """Call any WSGI ``app`` in-process, as a WSGI server would (PEP 3333's environ).

    ``body`` is the request body, or a stream the app reads it from. ``Content-Length`` is
    ``content_length`` if given, else the length of a ``bytes`` body; ``chunked`` sends no
    length and marks the stream as terminated by the server, as for a chunked request. Header
    values arrive as WSGI carries them: UTF-8 bytes decoded as latin-1.
    """
    path_info, _, query = path.partition("?")
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # as a server does: unescaped, the bytes seen as latin-1 (PEP 3333)
        "PATH_INFO": unquote_to_bytes(path_info).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    elif isinstance(body, bytes):
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ[f"HTTP_{key}"] = value.encode("utf-8").decode("latin-1")
    seen: dict[str, Any] = {}

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        seen["status"] = int(status.split()[0])
        seen["headers"] = {k.lower(): v for k, v in response_headers}
        return lambda data: None  # the legacy write(): no app here uses it

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Answer(seen["status"], seen["headers"], payload)


def wsgi_client(service: StatusService, dashboard: bool = False, prefix: str = "") -> Client:
    """The plain WSGI app of ``service``, through :func:`call_wsgi`; under ``prefix`` it is
    mounted as a dispatcher mounts it (the prefix moves to ``SCRIPT_NAME``)."""
    from jobstatus.adapters.wsgi import make_app

    inner = make_app(service, dashboard=dashboard)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ["PATH_INFO"]
        if not path.startswith(prefix):  # not this app's: the host answers
            start_response("404 Not Found", [])
            return [b""]
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = prefix, path[len(prefix) :]
        return inner(environ, start_response)

    def call(
        method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        return call_wsgi(app, method, path, body, headers)

    return call


def flask_client(service: StatusService, dashboard: bool = False, prefix: str = "") -> Client:
    """The blueprint in a bare Flask app, through Flask's test client."""
    from flask import Flask

    from jobstatus.adapters.flask import make_blueprint

    app = Flask(__name__)
    app.register_blueprint(make_blueprint(service, dashboard=dashboard), url_prefix=prefix or None)
    test_client = app.test_client()

    def call(
        method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        # Header values as they arrive from the wire: UTF-8 bytes, seen as latin-1 by WSGI.
        wire = {k: v.encode("utf-8").decode("latin-1") for k, v in (headers or {}).items()}
        # input_stream: the body as sent, even where werkzeug would encode a form of its own
        response = test_client.open(
            path,
            method=method,
            input_stream=io.BytesIO(body),
            headers=wire,
            content_length=len(body),
        )
        with response:
            payload = response.get_data()
        return Answer(response.status_code, {k.lower(): v for k, v in response.headers}, payload)

    return call


def fastapi_client(service: StatusService, dashboard: bool = False, prefix: str = "") -> Client:
    """The router in a bare FastAPI app, through httpx's ASGI transport (each call runs in a
    fresh event loop; starlette's TestClient warns about httpx under ``-W error``)."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    from jobstatus.adapters.fastapi import make_router

    app = FastAPI()
    app.include_router(make_router(service, dashboard=dashboard), prefix=prefix)

    async def send(method: str, path: str, body: bytes, headers: dict[str, bytes]) -> Answer:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.request(method, path, content=body, headers=headers)
        return Answer(response.status_code, dict(response.headers), response.content)

    def call(
        method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        wire = {k: v.encode("utf-8") for k, v in (headers or {}).items()}
        return asyncio.run(send(method, path, body, wire))

    return call


def asgi_scope(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """The ASGI scope of one HTTP/1.1 request from 127.0.0.1."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
    }


def post_endless_body(app: Any, path: str, api_key: str, chunk: bytes) -> tuple[Answer, int]:
    """POST to the ASGI ``app`` a body that never ends, one ``chunk`` per ``receive()``: the
    answer, and how many chunks the app pulled before it answered."""
    import asyncio

    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"x-api-key", api_key.encode()), (b"content-type", b"application/json")]
    asyncio.run(app(asgi_scope("POST", path, b"", headers), receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], headers, body), pulled


#: adapter name → (factory, pytest marks). A factory imports its framework only when called.
ADAPTERS: dict[str, tuple[Callable[..., Client], tuple[pytest.MarkDecorator, ...]]] = {
    "wsgi": (wsgi_client, ()),
    "flask": (flask_client, (pytest.mark.extras,)),
    "fastapi": (fastapi_client, (pytest.mark.extras,)),
}
