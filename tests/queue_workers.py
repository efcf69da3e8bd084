"""What the task-queue integration tests share: a real worker process, waiting on the store
with a deadline, the status endpoint read over WSGI, and the checks every finished record
must pass.

A worker runs in its own session (process group) so that a test can SIGKILL all of it. Waits
poll the store every 10 ms until a condition holds and fail, with the worker's log, at the
deadline: no test sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobstatus import JobNotFound, JobRecord, JobTracker, Progress, StatusService
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.store import Store
from tests.clients import wsgi_client
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parent.parent
KEY = "integration-test-key"
DEADLINE = 90.0


@dataclass
class Worker:
    """A worker process started by a test, in a session of its own."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Ask the worker to shut down (SIGTERM to its main process), then SIGKILL its whole
        group if it has not within 30 s."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()  # whatever is left of its group

    def kill(self) -> None:
        """SIGKILL every process of the worker's group and reap its main process."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(30)


def start_worker(argv: list[str], env: Mapping[str, str], log: Path) -> Worker:
    """``python -m <argv>`` from the repository root, this checkout first on the path."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    out = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=environment,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return Worker(process, log)


@contextmanager
def running_worker(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[Worker]:
    worker = start_worker(argv, env, log)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for(
    store: Store,
    job_id: str,
    condition: Callable[[JobRecord], bool],
    *,
    worker: Worker | None = None,
    timeout: float = DEADLINE,
) -> JobRecord:
    """The job's record once ``condition`` holds; fails at the deadline, or as soon as the
    worker is gone, with the last record and the worker's log."""
    deadline = time.monotonic() + timeout
    last: JobRecord | None = None
    while True:
        with suppress(JobNotFound):
            last = store.get(job_id)
            if condition(last):
                return last
        if worker is not None and not worker.alive():
            raise AssertionError(f"the worker exited; last record {_shown(last)}\n{worker.tail()}")
        if time.monotonic() > deadline:
            log = "" if worker is None else worker.tail()
            raise AssertionError(f"no match within {timeout}s; last record {_shown(last)}\n{log}")
        time.sleep(0.01)


def state(status: str, **extra: Any) -> Callable[[JobRecord], bool]:
    """The condition: the record has this status and these document keys."""
    return lambda record: (
        record.job_status == status
        and all(record.extra.get(key) == value for key, value in extra.items())
    )


def running_with_progress(record: JobRecord) -> bool:
    """The condition: the job runs and has reported progress."""
    return record.job_status == "running" and record.progress is not None


def check_progress_then_done(
    store: Store, job_id: str, *, worker: Worker, release: Callable[[], None], endpoint: str
) -> None:
    """A task reporting 10,000 steps, then waiting for ``release``: its progress shows while
    it runs (at most one write per interval: some step of the 10,000), and the last step
    rides on its final write."""
    running = wait_for(store, job_id, running_with_progress, worker=worker)
    shown = running.progress
    assert shown is not None
    assert shown.total == 10_000
    assert shown.current is not None
    assert 1 <= shown.current <= 10_000
    assert shown.message == f"step {shown.current}"
    assert running.started_at is not None
    assert running.ended_at is None
    assert over_http(store, job_id)["response"]["progress"] == shown.to_dict()
    release()
    done = wait_for(store, job_id, state("done"), worker=worker)
    check_final(store, done, status="done", endpoint=endpoint, attempt=1, code=200)
    assert done.progress == Progress(current=10_000, total=10_000, message="step 10000")


def check_cooperative_cancel(
    store: Store, tracker: JobTracker, job_id: str, *, worker: Worker, endpoint: str
) -> None:
    """A task that reports progress and checks for a cancel: the cancel route answers 202
    while it runs, and the task ends ``cancelled`` at its next check."""
    wait_for(store, job_id, running_with_progress, worker=worker)
    status, body = cancel_over_http(store, tracker, job_id)
    assert status == 202
    assert body["response"]["job_status"] == "running"
    asked = body["response"]["cancel_requested_at"]
    cancelled = wait_for(store, job_id, state("cancelled"), worker=worker)
    check_final(store, cancelled, status="cancelled", endpoint=endpoint, attempt=1, code=499)
    assert cancelled.to_dict()["cancel_requested_at"] == asked
    assert cancelled.cancel_requested_at is not None
    assert cancelled.ended_at is not None
    assert cancelled.cancel_requested_at <= cancelled.ended_at
    assert cancelled.progress is not None


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.01)


def process_gone(pid: int) -> bool:
    """True once no process has this id (reaped or not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie child of ours still answers kill(0): reap it if we can
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _is_zombie(pid)
    return done == pid


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def over_http(store: Store, job_id: str, tracker: JobTracker | None = None) -> dict[str, Any]:
    """``POST /v1/toolkit/job/status`` through ``make_app``: the 200 envelope, whose
    ``response`` must be the stored document."""
    service = StatusService(store, api_keys=[KEY], allow_cancel=tracker or False)
    answer = wsgi_client(service)(
        "POST",
        "/v1/toolkit/job/status",
        json.dumps({"job_id": job_id}).encode(),
        {"x-api-key": KEY},
    )
    assert answer.status == 200, answer.body
    envelope = answer.json()
    assert list(envelope) == list(ENVELOPE_KEYS)
    assert envelope["job_id"] == job_id
    return dict(envelope)


def cancel_over_http(store: Store, tracker: JobTracker, job_id: str) -> tuple[int, dict[str, Any]]:
    """``POST /v1/toolkit/job/cancel`` with ``allow_cancel=tracker``: status and envelope."""
    service = StatusService(store, api_keys=[KEY], allow_cancel=tracker)
    answer = wsgi_client(service)(
        "POST",
        "/v1/toolkit/job/cancel",
        json.dumps({"job_id": job_id}).encode(),
        {"x-api-key": KEY},
    )
    return answer.status, answer.json()


def check_final(
    store: Store,
    record: JobRecord,
    *,
    status: str,
    endpoint: str,
    attempt: int,
    code: int,
) -> dict[str, Any]:
    """Every final record of an integration: its timestamps in order, its envelope, its
    attempt, and the same document over HTTP. Returns the envelope."""
    assert record.job_status == status
    assert record.extra.get("attempt") == attempt
    assert record.created_at is not None
    assert record.ended_at is not None
    if record.started_at is not None:
        assert record.created_at <= record.started_at <= record.ended_at
    assert record.created_at <= record.ended_at
    envelope = record.response
    assert isinstance(envelope, dict)
    assert list(envelope) == list(ENVELOPE_KEYS)
    assert (envelope["endpoint"], envelope["code"], envelope["job_id"]) == (
        endpoint,
        code,
        record.job_id,
    )
    assert envelope["run_time"] >= 0
    assert envelope["queue_time"] >= 0
    assert abs(envelope["total_time"] - envelope["run_time"] - envelope["queue_time"]) < 0.0015
    assert envelope["pid"] == record.process_id
    assert record.process_id != os.getpid()  # written where the work ran, not by the test
    http = over_http(store, record.job_id)
    assert http["response"] == record.to_dict()
    for key in ("created_at", "started_at", "ended_at"):
        value = http["response"].get(key)
        assert value is None or (value.endswith("Z") and "T" in value)
    return envelope


#: Seconds without a write after which the tests' reaper declares a run lost (the test apps
#: beat every 0.2 s).
STALE_AFTER = 1.0


def check_left_running_then_reaped(store: Store, job_id: str) -> None:
    """A job whose whole worker was SIGKILLed: it stays ``running`` -- nothing is alive to
    write, not even a heartbeat -- until the reaper fails it."""
    after = store.get(job_id)
    assert after.job_status == "running"
    assert after.ended_at is None
    assert after.updated_at is not None
    assert over_http(store, job_id)["response"] == after.to_dict()
    stamp = after.updated_at
    wait_until(lambda: time.time() - stamp > STALE_AFTER, "the heartbeat is stale")
    assert store.get(job_id).version == after.version  # no write since the kill
    assert JobTracker(store).reap(stale_after=STALE_AFTER) == 1
    lost = store.get(job_id)
    assert lost.job_status == "failed"
    assert lost.response["message"].startswith("worker lost: no heartbeat since ")
    assert lost.progress == after.progress
    assert lost.extra == after.extra


def _shown(record: JobRecord | None) -> str:
    return "none" if record is None else json.dumps(record.to_dict())


def redis_url(db: int) -> str:
    """The shared test Redis (``tests/redis_server.py``), database ``db`` -- each test file
    owns one and empties it when done; skip (fail in CI) when Redis is not there."""
    from urllib.parse import urlsplit

    from tests.redis_server import shared_redis_url

    return urlsplit(shared_redis_url())._replace(path=f"/{db}").geturl()


def empty_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def rabbitmq_url() -> str:
    """The test RabbitMQ at 127.0.0.1:5672 (guest/guest); skip (fail in CI) when absent."""
    import socket

    url = os.environ.get("JOBSTATUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        service_unavailable(f"RabbitMQ is not reachable at 127.0.0.1:5672: {exc}")
    return url
