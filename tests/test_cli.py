"""The command line as a user runs it: exit codes, one-line errors, the served endpoint."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jobstatus.testing.suite import UPSTREAM_EXAMPLE

JOB = UPSTREAM_EXAMPLE["job_id"]
ROOT = Path(__file__).resolve().parents[1]


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m jobstatus ARGS`` in a fresh process, as a user would run it."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"JOBSTATUS_STORE", "LOCAL_STORAGE_PATH", "API_KEY", "JOBSTATUS_API_KEYS"}
    }
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobstatus", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'data'}"


def test_put_get_list(store_url: str, tmp_path: Path) -> None:
    put = run("put", "--store", store_url, stdin=json.dumps(UPSTREAM_EXAMPLE))
    assert (put.returncode, put.stdout, put.stderr) == (0, f"stored {JOB}: done\n", "")
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"job_id": "second", "job_status": "running"}))
    assert run("put", str(doc), "--store", store_url).returncode == 0

    got = run("get", JOB, "--store", store_url)
    assert got.returncode == 0
    assert json.loads(got.stdout) == UPSTREAM_EXAMPLE

    table = run("list", "--store", store_url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["JOB_ID", "STATUS", "UPDATED", "(UTC)"]
    assert [line.split()[:2] for line in lines[1:]] == [["second", "running"], [JOB, "done"]]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[1])

    only_done = run("list", "--status", "done,failed", "--json", "--store", store_url)
    assert [json.loads(line) for line in only_done.stdout.splitlines()] == [UPSTREAM_EXAMPLE]
    assert (
        run("list", "--since", "1h", "--limit", "1", "--json", "--store", store_url).stdout.count(
            "\n"
        )
        == 1
    )


def test_the_store_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"LOCAL_STORAGE_PATH": str(tmp_path)}
    assert run("put", stdin=json.dumps(UPSTREAM_EXAMPLE), env=env).returncode == 0
    assert (tmp_path / "jobs" / f"{JOB}.json").exists()  # the upstream layout
    env["JOBSTATUS_STORE"] = f"file://{tmp_path / 'other'}"
    assert run("get", JOB, env=env).returncode == 1  # JOBSTATUS_STORE wins


def test_a_final_job_is_kept_unless_forced(store_url: str) -> None:
    run("put", "--store", store_url, stdin=json.dumps(UPSTREAM_EXAMPLE))
    late = dict(UPSTREAM_EXAMPLE, job_status="running")
    kept = run("put", "--store", store_url, stdin=json.dumps(late))
    assert kept.stdout == f"stored {JOB}: done (kept: the job was already final)\n"
    forced = run("put", "--force", "--store", store_url, stdin=json.dumps(late))
    assert forced.stdout == f"stored {JOB}: running\n"


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (("get", "missing-job"), "", 1, "jobstatus: Job not found: 'missing-job'"),
        (("get", "../etc/passwd"), "", 2, "jobstatus: job_id must not contain"),
        (("put",), "not json", 2, "jobstatus: the job document is not valid JSON"),
        (("put",), '{"job_id": "x"}', 2, "jobstatus: a job document needs a non-empty string"),
        (("put", "/no/such/file.json"), "", 2, "jobstatus: cannot read /no/such/file.json"),
        (("list", "--since", "soon"), "", 2, "jobstatus list: error: argument --since: invalid"),
        (("frobnicate",), "", 2, "jobstatus: error: argument COMMAND: invalid choice"),
        (("get",), "", 2, "jobstatus get: error: the following arguments are required: JOB_ID"),
        (("get", "x", "--store", "nope://x"), "", 2, "jobstatus: unknown store scheme 'nope'"),
    ],
)
def test_errors_are_one_line_with_the_documented_exit_code(
    store_url: str, args: tuple[str, ...], stdin: str, code: int, says: str
) -> None:
    if "--store" not in args:
        args = (*args, "--store", store_url)
    result = run(*args, stdin=stdin)
    assert result.returncode == code
    assert result.stderr.startswith(says), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_password_in_the_store_url_is_never_printed() -> None:
    result = run("get", "x", "--store", "nope://user:hunter2@host/db")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_every_command_has_help() -> None:
    for command in ("serve", "get", "put", "list"):
        result = run(command, "--help")
        assert result.returncode == 0
        assert "--store URL" in result.stdout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1.5w", 907200)],
)
def test_durations(text: str, seconds: float) -> None:
    from jobstatus.cli import parse_duration

    assert parse_duration(text) == seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _post(port: int, path: str, payload: dict[str, Any], key: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(), method="POST"
    )
    if key is not None:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.extras
def test_serve_generates_a_key_and_serves_under_gunicorn(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    data = tmp_path / "data"
    assert run("put", "--store", str(data), stdin=json.dumps(UPSTREAM_EXAMPLE)).returncode == 0
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k not in {"API_KEY", "JOBSTATUS_API_KEYS"}}
    environ.update(PYTHONPATH=str(ROOT), LOCAL_STORAGE_PATH=str(data))
    server = subprocess.Popen(
        [sys.executable, "-m", "jobstatus", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
        cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        printed = server.stdout.readline() + server.stdout.readline()
        key = re.search(r"x-api-key: (\S+)", printed)
        assert key, printed
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _post(port, "/v1/toolkit/job/status", {"job_id": JOB}, key[1])
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        assert status == 200
        assert body["response"] == UPSTREAM_EXAMPLE
        assert _post(port, "/v1/toolkit/job/status", {"job_id": JOB}, None) == (
            401,
            {"message": "Unauthorized"},
        )
        assert _post(port, "/v1/toolkit/jobs/status", {}, key[1])[1]["response"] == {JOB: "done"}
        pids = {
            _post(port, "/v1/toolkit/job/status", {"job_id": JOB}, key[1])[1]["pid"]
            for _ in range(40)
        }
        assert server.pid not in pids  # answered by workers, not the master
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "gunicorn" in stderr.lower() or "Booting worker" in stderr
    assert "Traceback" not in stderr
