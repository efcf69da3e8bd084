"""``jobstatus serve`` on an address it cannot bind: one line naming the port and ``--port``,
an exit status of 2, and gunicorn never started; and a long-poll under it holds a thread, not
a worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- a long-poll under jobstatus serve -------------------------------------------------------------

JOB = "6b0f3c7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def _ask(port: int, path: str, *, body: bytes | None = None, **headers: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"x-api-key": "k", **headers},
        method="POST" if body is not None else "GET",
    )
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as answer:  # a 304 is one too
        return answer


@pytest.mark.extras
@pytest.mark.slow
def test_a_long_poll_holds_a_thread_not_the_worker(tmp_path: Path) -> None:
    """One worker: while a client long-polls an unchanged job, another client's status
    request is answered; the long-poll then answers the write it waited for."""
    pytest.importorskip("gunicorn")
    from jobstatus import JobRecord, open_store
    from jobstatus.testing._server import Gunicorn, serve_command

    folder = tmp_path / "jobs"
    with open_store(str(folder)) as store:
        store.put(JobRecord(job_id=JOB, job_status="running"))
    env = {"API_KEY": "k", "PYTHONPATH": str(ROOT)}
    with Gunicorn(serve_command(str(folder), 1), workers=1, log_dir=tmp_path, env=env) as server:
        first = _ask(server.port, f"/v1/toolkit/jobs/{JOB}")
        etag = first.headers["ETag"]
        answers: list[Any] = []
        poll = threading.Thread(
            target=lambda: answers.append(
                _ask(server.port, f"/v1/toolkit/jobs/{JOB}?wait=30", **{"If-None-Match": etag})
            )
        )
        poll.start()
        time.sleep(1.0)  # the long-poll's head start: with it, a sync worker would be held
        status = _ask(
            server.port, "/v1/toolkit/job/status", body=json.dumps({"job_id": JOB}).encode()
        )
        assert status.status == 200
        assert not answers  # answered while the long-poll still waits
        assert poll.is_alive()
        with open_store(str(folder)) as store:
            store.put(JobRecord(job_id=JOB, job_status="done"))
        poll.join(timeout=60)
        assert len(answers) == 1
        assert answers[0].status == 200
        assert json.loads(answers[0].read())["response"]["job_status"] == "done"
