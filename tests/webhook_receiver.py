"""A real webhook receiver for tests: an HTTP/1.1 server on 127.0.0.1 in a thread.

It records every request (path, headers, body) and answers what ``script(n, request)`` returns
for the n-th request (1-based): ``(status, body)`` or ``(status, body, headers)``. A script may
block (on an event the test sets) to hold a request open. ``wait_until`` waits on a condition
rather than for a time.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

Answer = tuple[int, bytes] | tuple[int, bytes, dict[str, str]]


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


def ok(n: int, request: Request) -> Answer:
    return 200, b"ok"


class Receiver:
    def __init__(
        self, script: Callable[[int, Request], Answer] = ok, tls: ssl.SSLContext | None = None
    ) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.answered: list[int] = []  # statuses sent, in order
        self.connections: set[tuple[str, int]] = set()  # client (address, port) pairs seen
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, as real servers do

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
                with receiver._lock:
                    receiver.requests.append(request)
                    receiver.connections.add(self.client_address[:2])
                    n = len(receiver.requests)
                answer: Any = receiver.script(n, request)
                status, body = answer[0], answer[1]
                headers = answer[2] if len(answer) > 2 else {}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with receiver._lock:
                    receiver.answered.append(status)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)


@contextmanager
def receiving(
    script: Callable[[int, Request], Answer] = ok, tls: ssl.SSLContext | None = None
) -> Iterator[Receiver]:
    receiver = Receiver(script, tls)
    try:
        yield receiver
    finally:
        receiver.close()


def wait_until(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy (returned); fail after ``timeout`` seconds, which
    only a broken implementation reaches."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {what}")
        time.sleep(0.01)


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def make_tls_files(folder: Path, host: str) -> tuple[Path, ssl.SSLContext]:
    """A test CA (``ca.pem``, returned) and a server context whose certificate the CA signed
    for ``host``, made with openssl (a skip without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    openssl("req", "-x509", *key, "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=webhook test CA")  # fmt: skip
    (folder / "server.ext").write_text(f"subjectAltName=DNS:{host}\n")
    openssl("req", *key, "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", f"/CN={host}")  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "server.ext")  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", server
