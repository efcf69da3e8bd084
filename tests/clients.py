"""One HTTP client per adapter, all with the same call shape, for the HTTP conformance suite.

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


def wsgi_client(service: StatusService, dashboard: bool = False, prefix: str = "") -> Client:
    from jobstatus.adapters.wsgi import make_app

    app = make_app(service, dashboard=dashboard)

    def call(
        method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Answer:
        path, _, query = path.partition("?")
        if not path.startswith(prefix):  # not this app's: the host answers
            return Answer(404, {}, b"")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            # as a server does: unescaped, the bytes seen as latin-1 (PEP 3333); a mount
            # prefix is SCRIPT_NAME
            "SCRIPT_NAME": prefix,
            "PATH_INFO": unquote_to_bytes(path[len(prefix) :]).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "test",
            "SERVER_PORT": "80",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.url_scheme": "http",
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:  # WSGI carries header values as latin-1 decoded strings
                environ[f"HTTP_{key}"] = value.encode("utf-8").decode("latin-1")
        seen: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            seen["status"] = int(status.split()[0])
            seen["headers"] = {k.lower(): v for k, v in response_headers}

        answer = app(environ, start_response)
        try:
            payload = b"".join(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:  # as a WSGI server does (PEP 3333)
                close()
        return Answer(seen["status"], seen["headers"], payload)

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

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-api-key", api_key.encode()), (b"content-type", b"application/json")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
    }
    asyncio.run(app(scope, receive, send))
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
