"""Redis for the tests: the shared server on loopback, and private servers a test controls.

- :func:`shared_redis_url` is the server at 127.0.0.1:6379 (``JOBSTATUS_TEST_REDIS_URL`` to
  override), or a skip (a failure when ``JOBSTATUS_REQUIRE_SERVICES=1``).
- :func:`new_prefix` gives a key prefix no other test run uses; :func:`remove_prefix` deletes
  every key under it. Each test run works under its own prefixes and removes its keys.
- :class:`RedisServer` runs a ``redis-server`` of the test's own on a free port in a temp dir
  (``--save '' --appendonly no``), which the test stops, pauses and starts again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.conftest import service_unavailable

redis = pytest.importorskip("redis")

SHARED_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SESSION = uuid.uuid4().hex[:8]
_counter = iter(range(1_000_000))
_START_TIMEOUT = 10.0


def shared_redis_url() -> str:
    """The shared server's URL, once it answers a PING."""
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_unavailable(f"Redis is not reachable at {SHARED_URL}: {exc}")
    finally:
        client.close()
    return SHARED_URL


def new_prefix(purpose: str) -> str:
    """A key prefix no other test (or test run) uses."""
    return f"jstest-{SESSION}-{purpose}-{next(_counter)}"


def keys_under(client: Any, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{prefix}:*", count=1000))


def remove_prefix(client: Any, prefix: str) -> int:
    """Delete every key under ``prefix``; return how many there were."""
    keys = keys_under(client, prefix)
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start : start + 1000])
    return len(keys)


@contextmanager
def shared_prefix(purpose: str) -> Iterator[tuple[str, str]]:
    """(url with ``?prefix=…``, prefix) on the shared server; the keys go afterwards."""
    url = shared_redis_url()
    prefix = new_prefix(purpose)
    client = redis.Redis.from_url(url)
    try:
        yield f"{url}?prefix={prefix}", prefix
    finally:
        remove_prefix(client, prefix)
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")  # quick to make


def make_certificates(folder: Path) -> None:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    if shutil.which("openssl") is None:
        service_unavailable("openssl is not installed: the TLS tests need it")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *_EC_KEY, "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=jobstatus test CA")  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", "server.ext"]), ("client", [])):
        openssl("req", *_EC_KEY, "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN=jobstatus test {name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra)  # fmt: skip


class RedisServer:
    """A ``redis-server`` of the test's own: nothing saved, nothing shared."""

    def __init__(
        self,
        folder: Path,
        *,
        password: str | None = None,
        unix_socket: bool = False,
        tls: bool = False,
    ) -> None:
        if shutil.which("redis-server") is None:
            service_unavailable("redis-server is not installed")
        self.folder = folder
        self.port = free_port()
        self.password = password
        self.socket_path = folder / "redis.sock" if unix_socket else None
        #: With ``tls``: the server speaks TLS only and wants a client certificate;
        #: ``ca.pem``, ``client.pem`` and ``client.key`` are in ``folder``.
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        if tls:
            make_certificates(folder)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, db: int = 0) -> Any:
        tls: dict[str, Any] = {}
        if self.tls:
            tls = {"ssl": True, "ssl_ca_certs": str(self.folder / "ca.pem"),
                   "ssl_certfile": str(self.folder / "client.pem"),
                   "ssl_keyfile": str(self.folder / "client.key")}  # fmt: skip
        return redis.Redis(port=self.port, db=db, password=self.password, socket_timeout=5, **tls)

    def start(self) -> RedisServer:
        port = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        command = ["redis-server", *port, "--bind", "127.0.0.1"]
        if self.tls:
            folder = self.folder
            command += ["--tls-cert-file", str(folder / "server.pem"), "--tls-key-file",
                        str(folder / "server.key"), "--tls-ca-cert-file", str(folder / "ca.pem"),
                        "--tls-auth-clients", "yes"]  # fmt: skip
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        if self.password:
            command += ["--requirepass", self.password]
        if self.socket_path is not None:
            command += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server writes to it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        client = self.client()
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if (
                        time.monotonic() > deadline
                        or self.process is None
                        or (self.process.poll() is not None)
                    ):
                        log = (self.folder / "redis.log").read_text(errors="replace")
                        raise RuntimeError(f"redis-server did not start:\n{log}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down (its data is gone: nothing is saved)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(30)
            self.process = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The server stopped with SIGSTOP: connections are accepted by the kernel, never
        answered, as by a hung server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    @contextmanager
    def sentinel(self, folder: Path, service: str = "jobs") -> Iterator[int]:
        """A Sentinel watching this server as ``service``; yields its port once it knows the
        master."""
        port = free_port()
        config = folder / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {service} 127.0.0.1 {self.port} 1\n"
        )
        log = open(folder / "sentinel.log", "ab")  # noqa: SIM115 - the sentinel writes to it
        process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        from redis.sentinel import Sentinel

        sentinel = Sentinel([("127.0.0.1", port)], socket_timeout=1)
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            while True:
                try:
                    sentinel.discover_master(service)
                    break
                except redis.RedisError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        text = (folder / "sentinel.log").read_text(errors="replace")
                        raise RuntimeError(f"the sentinel did not start:\n{text}") from None
                    time.sleep(0.05)
            yield port
        finally:
            for client in sentinel.sentinels:
                client.close()
            process.terminate()
            process.wait(30)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
