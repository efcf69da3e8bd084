"""The command line as a user runs it: exit codes, one-line errors, the id rule, stores that
do not exist, ``check``'s steps, and the served endpoint."""

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, Progress, StorageError, open_store
from jobstatus._schema import UUID_PATTERN
from jobstatus.errors import redact
from jobstatus.testing.suite import UPSTREAM_EXAMPLE
from tests.cli_run import ROOT, Spy, SpyWithExists, cli, one_line_error, run, stand_in

JOB = UPSTREAM_EXAMPLE["job_id"]
OTHER = "0b9ac6fe-4a7e-4b0b-9d7c-9f7a3c2e0d11"
MILLISECONDS_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'data'}"


def test_put_get_list(store_url: str, tmp_path: Path) -> None:
    put = run("put", "--store", store_url, stdin=json.dumps(UPSTREAM_EXAMPLE))
    assert (put.returncode, put.stdout, put.stderr) == (0, f"stored {JOB}: done\n", "")
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"job_id": OTHER, "job_status": "running"}))
    assert run("put", str(doc), "--store", store_url).returncode == 0

    got = run("get", JOB, "--store", store_url)
    assert got.returncode == 0
    summary, document = got.stdout.split("document:\n")
    assert summary.splitlines()[:2] == [f"job_id:   {JOB}", "status:   done"]
    assert re.fullmatch(rf"updated:  {MILLISECONDS_Z}", summary.splitlines()[2])
    assert json.loads(document) == UPSTREAM_EXAMPLE

    table = run("list", "--store", store_url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["JOB_ID", "STATUS", "UPDATED", "(UTC)"]
    assert [line.split()[:2] for line in lines[1:]] == [[OTHER, "running"], [JOB, "done"]]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[1])

    only_done = run("list", "--status", "done,failed", "--json", "--store", store_url)
    [line] = only_done.stdout.splitlines()
    assert json.loads(line)["document"] == UPSTREAM_EXAMPLE
    assert (
        run("list", "--since", "1h", "--limit", "1", "--json", "--store", store_url).stdout.count(
            "\n"
        )
        == 1
    )


def test_list_and_get_json_carry_updated_at_in_rfc3339_milliseconds(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    stamp = 1_796_007_991.123_9  # 2026-11-30T03:06:31.1239Z
    with open_store(url) as store:
        store.restore([JobRecord(job_id=JOB, job_status="done", updated_at=stamp)])
    code, out, _ = cli("list", "--json", "--store", url)
    assert code == 0
    listed = json.loads(out)
    with open_store(url) as store:
        version = store.get(JOB).version
    assert version is not None
    assert listed.pop("version") == version
    assert listed == {
        "job_id": JOB,
        "job_status": "done",
        "updated_at": "2026-11-30T03:06:31.123Z",  # milliseconds, truncated
        "document": JobRecord(job_id=JOB, job_status="done").to_dict(),
    }
    code, out, _ = cli("get", JOB, "--json", "--store", url)
    assert (code, out.count("\n")) == (0, 1)
    got = json.loads(out)
    del got["version"]
    assert got == listed


def test_the_store_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"LOCAL_STORAGE_PATH": str(tmp_path)}
    assert run("put", stdin=json.dumps(UPSTREAM_EXAMPLE), env=env).returncode == 0
    assert (tmp_path / "jobs" / f"{JOB}.json").exists()  # the upstream layout
    env["JOBSTATUS_STORE"] = f"file://{tmp_path / 'data'}"
    with open_store(env["JOBSTATUS_STORE"]) as store:
        store.put(JobRecord(job_id=OTHER, job_status="done"))
    assert run("get", JOB, env=env).returncode == 1  # JOBSTATUS_STORE wins


def test_a_final_job_is_kept_unless_forced(store_url: str) -> None:
    run("put", "--store", store_url, stdin=json.dumps(UPSTREAM_EXAMPLE))
    late = dict(UPSTREAM_EXAMPLE, job_status="running")
    kept = run("put", "--store", store_url, stdin=json.dumps(late))
    assert kept.stdout == f"stored {JOB}: done (kept: the job was already final)\n"
    forced = run("put", "--force", "--store", store_url, stdin=json.dumps(late))
    assert forced.stdout == f"stored {JOB}: running\n"


def test_a_final_job_is_kept_over_another_final_write_unless_forced(store_url: str) -> None:
    assert cli("put", "--store", store_url, stdin=json.dumps(UPSTREAM_EXAMPLE))[0] == 0
    failed = dict(UPSTREAM_EXAMPLE, job_status="failed", response={"error": "late"})
    kept = cli("put", "--store", store_url, stdin=json.dumps(failed))
    assert kept == (0, f"stored {JOB}: done (kept: the job was already final)\n", "")
    again = dict(UPSTREAM_EXAMPLE, response={"result": "another"})  # done over done
    assert cli("put", "--store", store_url, stdin=json.dumps(again))[1].endswith(
        "done (kept: the job was already final)\n"
    )
    with open_store(store_url) as store:
        assert store.get(JOB).to_dict() == UPSTREAM_EXAMPLE
    forced = cli("put", "--force", "--store", store_url, stdin=json.dumps(failed))
    assert forced == (0, f"stored {JOB}: failed\n", "")


def test_get_and_list_show_times_and_progress(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    started = datetime(2026, 11, 30, 3, 6, 31, 123_000, tzinfo=timezone.utc)
    with open_store(url) as store:
        store.put(JobRecord(job_id=OTHER, job_status="queued"))
        code, out, _ = cli("list", "--store", url)
        assert out.splitlines()[0].split() == ["JOB_ID", "STATUS", "UPDATED", "(UTC)"]
        store.put(
            JobRecord(
                job_id=JOB,
                job_status="running",
                started_at=started,
                progress=Progress(current=3, total=10, message="resizing\nimages"),
            )
        )
    code, out, _ = cli("get", JOB, "--store", url)
    assert code == 0
    assert "started:  2026-11-30T03:06:31.123Z\n" in out
    assert "progress: 3/10 30% resizing images\n" in out
    assert "ended:" not in out
    code, out, _ = cli("list", "--store", url)
    header, first, second = out.splitlines()
    assert header.split() == ["JOB_ID", "STATUS", "UPDATED", "(UTC)", "STARTED", "PROGRESS"]
    assert first.split()[3:] == ["2026-11-30T03:06:31Z", "3/10", "30%", "resizing", "images"]
    assert second.split()[3:] == ["-", "-"]


def test_cancel(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    queued, running, done = OTHER, JOB, "5f7d2a10-8c1b-4f6e-a3d9-1e2b3c4d5e6f"
    with open_store(url) as store:
        store.put(JobRecord(job_id=queued, job_status="queued"))
        store.put(JobRecord(job_id=running, job_status="running"))
        store.put(JobRecord(job_id=done, job_status="done", response={"result": 42}))
    assert cli("cancel", queued, "--store", url) == (0, f"cancelled {queued}\n", "")
    assert cli("cancel", running, "--store", url) == (
        0,
        f"cancel requested for {running}: it is running, and its run records cancelled when "
        "it stops\n",
        "",
    )
    assert cli("cancel", done, "--store", url) == (
        0,
        f"{done} was already done: left as it is\n",
        "",
    )
    with open_store(url) as store:
        assert store.get(queued).job_status == "cancelled"
        assert store.get(running).cancel_requested_at is not None
        assert store.get(done).to_dict()["response"] == {"result": 42}
    code, out, _ = cli("cancel", queued, "--json", "--store", url)
    assert (code, json.loads(out)["job_status"]) == (0, "cancelled")
    assert cli("cancel", "5f7d2a10-0000-4f6e-a3d9-1e2b3c4d5e6f", "--store", url)[0] == 1
    code, _, err = cli("cancel", "abc", "--store", url)
    assert (code, "job_id 'abc' is not a UUID" in err) == (2, True)
    missing = f"file://{tmp_path / 'nothing'}"
    assert cli("cancel", queued, "--store", missing) == (
        1,
        "",
        f"jobstatus: store does not exist: {missing}\n",
    )
    assert not (tmp_path / "nothing").exists()


def test_version() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"jobstatus {version('jobstatus')}\n")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (("get", JOB), "", 1, f"jobstatus: Job not found: {JOB!r}"),
        (("get", "../etc/passwd", "--any-id"), "", 2, "jobstatus: job_id must not contain"),
        (("put",), "not json", 2, "jobstatus: the job document is not valid JSON"),
        (("put",), '{"job_id": "x"}', 2, "jobstatus: a job document needs a non-empty string"),
        (("put", "/no/such/file.json"), "", 2, "jobstatus: cannot read /no/such/file.json"),
        (("list", "--since", "soon"), "", 2, "jobstatus list: error: argument --since: invalid"),
        (("frobnicate",), "", 2, "jobstatus: error: argument COMMAND: invalid choice"),
        (("get",), "", 2, "jobstatus get: error: the following arguments are required: JOB_ID"),
        (("get", JOB, "--store", "nope://x"), "", 2, "jobstatus: unknown store scheme 'nope'"),
    ],
)
def test_errors_are_one_line_with_the_documented_exit_code(
    store_url: str, args: tuple[str, ...], stdin: str, code: int, says: str
) -> None:
    with open_store(store_url) as store:  # the store exists: the errors are about the job
        store.put(JobRecord(job_id=OTHER, job_status="done"))
    if "--store" not in args:
        args = (*args, "--store", store_url)
    result = run(*args, stdin=stdin)
    assert result.returncode == code
    assert result.stderr.startswith(says), result.stderr
    assert one_line_error(result.stderr)


def test_a_password_in_the_store_url_is_never_printed() -> None:
    result = run("get", JOB, "--store", "nope://user:hunter2@host/db")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_every_command_has_help() -> None:
    for command in ("serve", "get", "put", "cancel", "list", "purge", "check"):
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


# -- the job id rule: the one the status endpoint serves ---------------------------------------


def test_put_refuses_an_id_the_endpoint_would_never_serve(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    doc = json.dumps({"job_id": "abc", "job_status": "done"})
    result = run("put", "--store", url, stdin=doc)
    assert result.returncode == 2
    assert result.stderr == (
        "jobstatus: job_id 'abc' is not a UUID: the status endpoint would not serve it "
        "(--any-id or --job-id-pattern allow other ids)\n"
    )
    assert not (tmp_path / "jobs").exists()  # nothing was written


@pytest.mark.parametrize(
    "options",
    [("--any-id",), ("--job-id-pattern", ".+"), ("--job-id-pattern", "[a-c]+")],
)
def test_other_ids_when_asked(tmp_path: Path, options: tuple[str, ...]) -> None:
    url = f"file://{tmp_path}"
    doc = json.dumps({"job_id": "abc", "job_status": "done"})
    assert cli("put", *options, "--store", url, stdin=doc) == (0, "stored abc: done\n", "")
    code, out, _ = cli("get", "abc", "--json", *options, "--store", url)
    assert (code, json.loads(out)["job_status"]) == (0, "done")
    code, _, err = cli("get", "abc", "--store", url)  # without the option: the default rule
    assert code == 2
    assert "job_id 'abc' is not a UUID" in err


def test_a_pattern_of_its_own_is_named_and_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path}"
    monkeypatch.setenv("JOBSTATUS_JOB_ID_PATTERN", r"job-\d+")
    assert cli("put", "--store", url, stdin='{"job_id": "job-7", "job_status": "done"}')[0] == 0
    code, _, err = cli("get", JOB, "--store", url)
    assert code == 2
    assert err.startswith(
        f"jobstatus: job_id {JOB!r} does not match the job id pattern 'job-\\\\d+'"
    )
    assert cli("get", JOB, "--job-id-pattern", UUID_PATTERN, "--store", url)[0] == 1  # not found


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("get", JOB, "--job-id-pattern", "(["), "argument --job-id-pattern: invalid regular"),
        (("get", JOB, "--any-id", "--job-id-pattern", "x"), "not allowed with argument"),
    ],
)
def test_a_bad_id_rule_is_a_usage_error(args: tuple[str, ...], says: str) -> None:
    result = run(*args, "--store", "memory://")
    assert result.returncode == 2
    assert says in result.stderr
    assert one_line_error(result.stderr)


def test_a_bad_pattern_in_the_environment_is_a_usage_error() -> None:
    result = run("get", JOB, "--store", "memory://", env={"JOBSTATUS_JOB_ID_PATTERN": "(["})
    assert result.returncode == 2
    assert result.stderr.startswith("jobstatus: JOBSTATUS_JOB_ID_PATTERN is not a regular")
    assert one_line_error(result.stderr)


class _FakeGunicorn:
    """Stands in for gunicorn's BaseApplication: ``run`` loads the app a worker would."""

    apps: list[Any] = []  # noqa: RUF012

    def run(self) -> None:
        self.apps.append(self.load())  # type: ignore[attr-defined]


@pytest.mark.extras
@pytest.mark.parametrize(
    ("options", "env", "served", "refused"),
    [
        ((), {}, JOB, "abc"),
        (("--job-id-pattern", "[a-c]+"), {}, "abc", JOB),
        ((), {"JOBSTATUS_JOB_ID_PATTERN": "[a-c]+"}, "abc", JOB),
        (("--any-id",), {}, "abc", None),
    ],
)
def test_serve_uses_the_same_id_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    options: tuple[str, ...],
    env: dict[str, str],
    served: str,
    refused: str | None,
) -> None:
    pytest.importorskip("gunicorn")
    from jobstatus.adapters.wsgi import make_app  # noqa: F401  (the adapter serve uses)

    url = f"file://{tmp_path}"
    with open_store(url) as store:
        store.restore(JobRecord(job_id=i, job_status="done") for i in (JOB, "abc"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("API_KEY", "k")
    monkeypatch.setattr("gunicorn.app.base.BaseApplication", _FakeGunicorn)
    _FakeGunicorn.apps.clear()
    assert cli("serve", *options, "--store", url)[0] == 0
    [app] = _FakeGunicorn.apps

    def status(job_id: str) -> str:
        body = json.dumps({"job_id": job_id}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/v1/toolkit/job/status",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "HTTP_X_API_KEY": "k",
            "wsgi.input": __import__("io").BytesIO(body),
        }
        started: list[str] = []
        b"".join(app(environ, lambda s, h, *_: started.append(s)))
        return started[0]

    assert status(served).startswith("200")
    if refused is not None:
        assert status(refused).startswith("400")


# -- a store that does not exist ------------------------------------------------------------


def _missing(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'mistyped' / 'path'}"


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("get", JOB), ("purge", "--older-than", "1d")],
)
def test_reading_a_store_that_does_not_exist_says_so(tmp_path: Path, args: tuple[str, ...]) -> None:
    url = _missing(tmp_path)
    result = run(*args, "--store", url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"jobstatus: store does not exist: {url}\n"
    assert not (tmp_path / "mistyped").exists()


def test_check_reports_a_store_that_does_not_exist_unless_told_to_create_it(
    tmp_path: Path,
) -> None:
    url = _missing(tmp_path)
    result = run("check", "--store", url)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"jobstatus: check failed: store does not exist: {url} (--create creates it)\n"
    )
    assert not (tmp_path / "mistyped").exists()
    created = run("check", "--create", "--store", url)
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(
        rf"ok: {re.escape(url)} was created; it can be reached, read and written \(\d+ ms\)\n",
        created.stdout,
    )
    assert (tmp_path / "mistyped" / "path").is_dir()
    again = run("check", "--store", url)
    assert again.returncode == 0
    assert again.stdout.startswith(f"ok: {url} can be reached")


def test_exists_is_asked_through_the_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = open_store("memory://")
    memory.put(JobRecord(job_id=JOB, job_status="done"))
    gone = SpyWithExists(memory, answers={"exists": False})
    stand_in(monkeypatch, gone)
    assert cli("list", "--store", "x://y") == (1, "", "jobstatus: store does not exist: x://y\n")
    assert gone.names() == ["exists", "close"]  # nothing read, nothing written

    there = SpyWithExists(memory, answers={"exists": True})
    stand_in(monkeypatch, there)
    assert cli("get", JOB, "--json", "--store", "x://y")[0] == 0
    assert there.names() == ["exists", "get", "close"]

    without = Spy(memory)  # a third-party store without exists(): taken as there
    stand_in(monkeypatch, without)
    code, out, _ = cli("list", "--store", "x://y")
    assert (code, out.splitlines()[1].split()[0]) == (0, JOB)


# -- check: each step says what failed -------------------------------------------------------


@pytest.mark.parametrize(
    ("fail", "says", "step"),
    [
        ("exists", "cannot connect to x://y: connection refused", "connect"),
        ("get", "cannot read from x://y: connection refused", "read"),
        ("put", "cannot write to x://y: connection refused", "write"),
        ("delete", "cannot delete from x://y: connection refused", "delete"),
    ],
)
def test_check_names_the_step_that_failed(
    monkeypatch: pytest.MonkeyPatch, fail: str, says: str, step: str
) -> None:
    spy = SpyWithExists(
        open_store("memory://"),
        fail={fail: StorageError("connection refused")},
        answers={"exists": True} if fail != "exists" else {},
    )
    stand_in(monkeypatch, spy)
    code, out, err = cli("check", "--store", "x://y")
    assert (code, out, err) == (1, "", f"jobstatus: check failed: {says}\n")
    stand_in(monkeypatch, spy)
    code, out, err = cli("check", "--json", "--store", "x://y")
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "store": "x://y",
        "step": step,
        "created": False,
        "error": says,
    }
    assert err == f"jobstatus: check failed: {says}\n"


def test_check_says_what_the_store_did_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyWithExists(open_store("memory://"), answers={"exists": True, "delete": False})
    stand_in(monkeypatch, spy)
    assert cli("check", "--store", "x://y") == (
        1,
        "",
        "jobstatus: check failed: cannot delete from x://y: the probe record was gone before "
        "it was deleted\n",
    )


def test_check_without_exists_connects_with_a_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(open_store("memory://"), fail={"list": StorageError("connection refused")})
    stand_in(monkeypatch, spy)
    code, _, err = cli("check", "--store", "x://y")
    assert (code, err) == (
        1,
        "jobstatus: check failed: cannot connect to x://y: connection refused\n",
    )
    assert "put" not in spy.names()


def test_check_json_when_ok(tmp_path: Path) -> None:
    code, out, err = cli("check", "--json", "--create", "--store", f"file://{tmp_path / 'new'}")
    assert (code, err) == (0, "")
    outcome = json.loads(out)
    assert outcome.pop("elapsed_ms") >= 0
    assert outcome == {"ok": True, "store": f"file://{tmp_path / 'new'}", "created": True}


@pytest.mark.extras
def test_check_names_a_refused_connection() -> None:
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    result = run("check", "--store", "postgresql+psycopg://user:hunter2@127.0.0.1:9/nothing")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "jobstatus: check failed: cannot connect to postgresql+psycopg://user:***@127.0.0.1:9/"
    )
    assert "hunter2" not in result.stderr
    assert one_line_error(result.stderr)


@pytest.mark.extras
@pytest.mark.services
def test_mysql_says_using_password_yes_and_shows_no_password() -> None:
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("pymysql")
    result = run("check", "--store", "mysql+pymysql://root:hunter2@127.0.0.1:3306/test")
    if "Access denied" not in result.stderr:
        from tests.conftest import service_unavailable

        service_unavailable(f"MariaDB did not refuse a wrong password: {result.stderr}")
    assert result.returncode == 1
    assert "(using password: YES)" in result.stderr
    assert "hunter2" not in result.stderr
    assert one_line_error(result.stderr)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "(1045, \"Access denied for user 'root'@'localhost' (using password: YES)\")",
            "(1045, \"Access denied for user 'root'@'localhost' (using password: YES)\")",
        ),
        ("Access denied (using password: NO)", "Access denied (using password: NO)"),
        ("mysql+pymysql://root:hunter2@db/test", "mysql+pymysql://root:***@db/test"),
        ("connect: password=hunter2 host=db", "connect: password=*** host=db"),
        ("password = hunter2", "password = ***"),
        ("{'password': 'hunter2', 'user': 'root'}", "{'password': '***', 'user': 'root'}"),
        ('{"token": "hunter2"}', '{"token": "***"}'),
    ],
)
def test_redact_masks_secrets_and_only_secrets(text: str, shown: str) -> None:
    assert redact(text) == shown


# -- integer options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("list", "--limit", "0"), "--limit"),
        (("list", "--limit", "-3"), "--limit"),
        (("list", "--limit", "many"), "--limit"),
        (("migrate", "a", "b", "--batch-size", "0"), "--batch-size"),
        (("migrate", "a", "b", "--batch-size", "-500"), "--batch-size"),
        (("serve", "--port", "-1"), "--port"),
        (("serve", "--port", "70000"), "--port"),
        (("serve", "--workers", "0"), "--workers"),
        (("serve", "--workers", "-1"), "--workers"),
    ],
)
def test_integer_options_are_checked(args: tuple[str, ...], option: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert f"error: argument {option}: expected a whole number" in result.stderr
    assert one_line_error(result.stderr)


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
