"""A database or an S3 endpoint that restarts under a serving app: a loopback TCP proxy between
the app and the server cuts every connection and refuses new ones for a while, then lets
traffic through again (tests/tcp_proxy.py).

What is guaranteed: before and after the outage every answer is the record; during it every
answer is the spec's 500, within the stores' own timeouts; no request hangs; every failure is
the store's StorageError. The figures are printed on the terminal (``FIGURES …`` lines) and
copied into docs/reliability.rst.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobstatus import JobRecord
from tests import s3_server
from tests.outages import check_phases, through_an_outage
from tests.staging import (
    JOB_ID,
    SQL_SERVERS,
    drop_table,
    require_port,
)
from tests.tcp_proxy import TcpProxy

# -- the proxy these tests stage outages with ---------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A loopback server echoing every line back, one thread per client."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_the_proxy_forwards_cuts_refuses_and_resumes(echo_server: int) -> None:
    with TcpProxy(echo_server) as proxy:
        before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.sendall(b"ping")
        assert before.recv(4) == b"ping"

        with proxy.outage():
            assert before.recv(4) == b""  # the open connection was closed under the client
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.close()

        after = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        after.sendall(b"pong")
        assert after.recv(4) == b"pong"
        after.close()
        assert proxy.accepted == 2
        assert proxy.cut_connections == 1


def _hears_nothing(sock: socket.socket) -> bool:
    """Nothing arrives within a short look, and the connection is still open."""
    sock.settimeout(0.3)
    try:
        sock.recv(4)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_the_proxy_goes_silent_and_delivers_what_it_held_once_back(echo_server: int) -> None:
    with TcpProxy(echo_server) as proxy:
        before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.sendall(b"ping")
        assert before.recv(4) == b"ping"

        with proxy.silence():
            assert "silent" in repr(proxy)
            before.sendall(b"held")
            assert _hears_nothing(before)  # no echo, and no end of the connection either
            # A new connection is accepted, and then hears nothing either.
            during = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            during.sendall(b"late")
            assert _hears_nothing(during)

        # The network is back: what was held arrives, and both connections carry on.
        assert before.recv(4) == b"held"
        assert during.recv(4) == b"late"
        for sock in (before, during):
            sock.sendall(b"more")
            assert sock.recv(4) == b"more"
            sock.close()
        assert proxy.accepted == 2
        assert proxy.cut_connections == 0


# -- a store behind the proxy, served while the proxy cuts it off -------------------------------

SQL_TIMEOUTS: dict[str, dict[str, Any]] = {
    "postgresql": {"connect_args": {"connect_timeout": 3}},
    "mariadb": {"connect_args": {"connect_timeout": 3, "read_timeout": 5, "write_timeout": 5}},
}
S3_TIMEOUTS = (
    "config_kwargs.connect_timeout=3&config_kwargs.read_timeout=5"
    "&config_kwargs.retries.max_attempts=2"
)


@pytest.mark.extras
@pytest.mark.services
@pytest.mark.parametrize("database", list(SQL_SERVERS))
def test_a_database_restart_is_survived(
    database: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("sqlalchemy")
    from jobstatus import open_store

    url, port, name = SQL_SERVERS[database]
    require_port(port, name)
    table = f"jobstatus_faults_{uuid.uuid4().hex[:10]}"
    with open_store(url.format(port=port), table_name=table) as direct:
        direct.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
        try:
            with TcpProxy(port) as proxy:
                phases = through_an_outage(
                    url.format(port=proxy.port), proxy, JOB_ID, table_name=table,
                    **SQL_TIMEOUTS[database],
                )  # fmt: skip
        finally:
            drop_table(url.format(port=port), table)
    check_phases(phases, JOB_ID, capsys, caplog, database)


@pytest.mark.extras
@pytest.mark.services
def test_an_s3_endpoint_restart_is_survived(
    s3_endpoint: s3_server.S3Endpoint,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from jobstatus import open_store

    prefix = f"faults-{uuid.uuid4().hex[:10]}"
    with open_store(s3_endpoint.store_url(prefix)) as direct:
        direct.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    moto_port = int(s3_endpoint.url.rsplit(":", 1)[1])
    with TcpProxy(moto_port) as proxy:
        url = f"s3://{s3_server.BUCKET}/{prefix}?endpoint_url=http://127.0.0.1:{proxy.port}"
        phases = through_an_outage(f"{url}&{S3_TIMEOUTS}", proxy, JOB_ID)
    check_phases(phases, JOB_ID, capsys, caplog, "s3")
