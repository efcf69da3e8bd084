"""``jobstatus serve`` on an address it cannot bind: one line naming the port and ``--port``,
an exit status of 2, and gunicorn never started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobstatus import ConfigurationError
from jobstatus._serve import check_address, serve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another server listens on, as an earlier ``jobstatus serve`` would."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def test_a_busy_port_is_one_line_naming_it_and_the_option(busy_port: int) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_address("127.0.0.1", busy_port)
    message = str(info.value)
    assert "\n" not in message
    assert f"port {busy_port}" in message
    assert "already in use" in message
    assert "--port" in message


def test_a_port_held_on_every_address_is_busy_on_loopback_too() -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with pytest.raises(ConfigurationError, match=f"port {port} on 127.0.0.1 is already"):
            check_address("127.0.0.1", port)


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    check_address("127.0.0.1", port)
    with socket.socket() as again:  # the check closed its socket: the port is still free
        again.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 70000, "--port 70000 is not a port number"),
        ("no-such-host.invalid", 8080, "cannot listen on no-such-host.invalid port 8080"),
    ],
)
def test_an_address_that_cannot_be_bound_is_one_line(host: str, port: int, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_address(host, port)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_serve_checks_the_port_before_it_starts_gunicorn(busy_port: int) -> None:
    pytest.importorskip("gunicorn")
    with pytest.raises(ConfigurationError, match=f"port {busy_port} .*--port"):
        serve(store_url="memory://", api_keys=["k"], port=busy_port)


@pytest.mark.extras
def test_the_command_exits_2_with_one_line_on_a_busy_port(busy_port: int, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTATUS_")}
    environ.update(PYTHONPATH=str(ROOT), API_KEY="k")
    result = subprocess.run(
        [sys.executable, "-m", "jobstatus", "serve", "--port", str(busy_port)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # not gunicorn's retries and tracebacks
    assert f"port {busy_port}" in lines[0]
    assert "--port" in lines[0]
    assert "Connection in use" not in result.stderr
