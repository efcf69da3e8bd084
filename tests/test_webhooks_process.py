"""``jobstatus deliver`` as a separate process: configured from the environment, killed with
SIGKILL in the middle of a delivery's schedule, and another deliverer finishing the work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobstatus import JobTracker, Webhooks, open_store
from jobstatus.store import Store
from jobstatus.webhooks import generate_secret
from tests.cli_run import CONFIG_VARIABLES, ROOT, cli, one_line_error, run
from tests.webhook_receiver import Request, receiving, wait_until

ENDPOINT = "/v1/media/transcribe"
SECRET = generate_secret()
WEBHOOK_VARIABLES = {"JOBSTATUS_WEBHOOK_SECRETS", "JOBSTATUS_WEBHOOK_ALLOW"}


@pytest.fixture(autouse=True)
def _no_inherited_webhook_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in WEBHOOK_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def ended_job(store: Store, url: str) -> str:
    """A job that ended with a pending delivery, recorded by a worker that leaves the sending
    to ``jobstatus deliver`` (it holds no secret)."""
    worker = JobTracker(store, webhooks=Webhooks(None, deliver_in_process=False))
    with worker.run(endpoint=ENDPOINT, webhook_url=url) as job:
        job.result = "transcribed"
    return job.job_id


def deliver_process(store_path: Path, *options: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    environ.update(
        PYTHONPATH=str(ROOT),
        JOBSTATUS_WEBHOOK_SECRETS=f"{generate_secret()}, {SECRET}",
        JOBSTATUS_WEBHOOK_ALLOW="127.0.0.1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "jobstatus", "deliver", "--store", str(store_path), *options],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_deliverer_killed_mid_schedule_leaves_work_another_finishes(tmp_path: Path) -> None:
    """The first deliverer gets two 503s, then is SIGKILLed while its third attempt is held
    by the receiver. A second deliverer waits out the dead one's lease, records that attempt
    as lost and sends again: the job is delivered, and the document tells the whole story."""
    data = tmp_path / "data"
    third_arrived, release = threading.Event(), threading.Event()

    def script(n: int, _: Request) -> tuple[int, bytes]:
        if n <= 2:
            return 503, b"not yet"
        if n == 3:
            third_arrived.set()
            release.wait(60)
        return 200, b"ok"

    options = ("--interval", "0.05", "--timeout", "1", "--retry-schedule", "0.05,0.05,0.05,0.05")
    with receiving(script) as receiver, open_store(str(data)) as store:
        job_id = ended_job(store, receiver.url())
        first = deliver_process(data, *options)
        try:
            assert third_arrived.wait(60), "the third attempt never arrived"
            claimed = store.get(job_id).extra["webhook"]
            assert claimed["state"] == "sending"
            assert [a["status"] for a in claimed["attempts"]] == [503, 503]
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            first.kill()
            first.communicate()
        release.set()
        second = deliver_process(data, *options)
        try:
            state = wait_until(
                lambda: (h := store.get(job_id).extra["webhook"])["state"] == "delivered" and h,
                what="the second deliverer finished the delivery",
            )
            second.send_signal(signal.SIGTERM)
            out, err = second.communicate(timeout=30)
        finally:
            second.kill()
    assert first.returncode == -signal.SIGKILL
    assert second.returncode == 0, err
    assert "1 delivered" in out
    attempts = state["attempts"]
    assert [a.get("status") for a in attempts] == [503, 503, None, 200]
    assert "stopped before its lease ran out" in attempts[2]["error"]
    assert receiver.answered.count(200) >= 1  # the held third answer went to a dead process
    assert {r.headers["webhook-id"] for r in receiver.requests} == {state["id"]}


def test_deliver_once_sends_what_is_due_and_reports_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with receiving() as receiver, open_store(str(data)) as store:
        job_id = ended_job(store, receiver.url())
        result = run(
            "deliver",
            "--store",
            str(data),
            "--once",
            "--json",
            env={"JOBSTATUS_WEBHOOK_SECRETS": SECRET, "JOBSTATUS_WEBHOOK_ALLOW": "127.0.0.1"},
        )
        state = store.get(job_id).extra["webhook"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "attempts": 1,
        "delivered": 1,
        "failed": 0,
        "retrying": 0,
        "lost_claims": 0,
    }
    assert state["state"] == "delivered"
    assert len(receiver.requests) == 1


def test_deliver_refuses_private_addresses_unless_the_environment_allows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("JOBSTATUS_WEBHOOK_SECRETS", SECRET)
    with receiving() as receiver, open_store(str(data)) as store:
        refused = ended_job(store, receiver.url())
        code, out, _ = cli("deliver", "--store", str(data), "--once")
        assert (code, out) == (0, "made 1 attempt: 0 delivered, 1 failed, 0 to retry\n")
        assert "127.0.0.1 is loopback" in store.get(refused).extra["webhook"]["reason"]
        monkeypatch.setenv("JOBSTATUS_WEBHOOK_ALLOW", "127.0.0.0/8")
        allowed = ended_job(store, receiver.url())
        code, out, _ = cli("deliver", "--store", str(data), "--once")
        assert (code, out) == (0, "made 1 attempt: 1 delivered, 0 failed, 0 to retry\n")
        assert store.get(allowed).extra["webhook"]["state"] == "delivered"


def test_deliver_without_secrets_is_a_one_line_usage_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = run("deliver", "--store", str(tmp_path / "data"), "--once")
    assert result.returncode == 2
    assert one_line_error(result.stderr)
    assert "JOBSTATUS_WEBHOOK_SECRETS is not set" in result.stderr


def test_a_malformed_secret_is_refused_without_being_echoed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    secret = "whsec_not*base64*at*all"
    result = run(
        "deliver",
        "--store",
        str(tmp_path / "data"),
        "--once",
        env={"JOBSTATUS_WEBHOOK_SECRETS": secret},
    )
    assert result.returncode == 2
    assert one_line_error(result.stderr)
    assert "base64" in result.stderr
    assert "not*base64" not in result.stderr


def test_a_bad_retry_schedule_is_a_usage_error() -> None:
    result = run("deliver", "--once", "--retry-schedule", "5s,soon")
    assert result.returncode == 2
    assert one_line_error(result.stderr)
    assert "invalid duration 'soon'" in result.stderr
