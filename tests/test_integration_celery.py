"""jobstatus.integrations.celery with a real ``celery worker`` (prefork pool, two processes),
on Redis (database 5, this file's own: emptied when done) and on RabbitMQ.

The worker and the test share a filesystem store. Every state a task goes through is read
from the store and over the status endpoint: queued, running with progress, done, failed,
queued again for a retry, cancelled (queued, cooperatively, and by terminating the process),
failed when the pool process dies, and still running when the whole worker is SIGKILLed --
nothing is left to write its end, so it stays ``running`` until a reaper marks it.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery

from jobstatus import Progress, open_store
from jobstatus.integrations.celery import TaskRecorder, cancel
from jobstatus.store import Store
from tests.apps.celery_tasks import make_app
from tests.queue_workers import (
    Worker,
    cancel_over_http,
    check_cooperative_cancel,
    check_final,
    check_left_running_then_reaped,
    check_progress_then_done,
    empty_redis,
    over_http,
    process_gone,
    rabbitmq_url,
    redis_url,
    running_with_progress,
    start_worker,
    state,
    wait_for,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.extras, pytest.mark.slow]

REDIS_DB = 5


@dataclass
class Celeried:
    app: Celery
    recorder: TaskRecorder
    store: Store
    gates: Path
    queue: str
    worker: Worker
    env: dict[str, str]
    root: Path

    def send(self, name: str, *args: Any, **options: Any) -> str:
        return str(self.app.tasks[name].apply_async(args, **options).id)

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()

    def hostname(self, queue: str | None = None) -> str:
        return f"{queue or self.queue}@jobstatus-test"


def worker_argv(queue: str, hostname: str) -> list[str]:
    return [
        "celery", "-A", "tests.apps.celery_tasks", "worker", "-P", "prefork", "-c", "2",
        "-Q", queue, "-n", hostname, "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "INFO",
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["redis", "amqp"])
def celery(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Celeried]:
    broker = redis_url(REDIS_DB) if request.param == "redis" else rabbitmq_url()
    root = tmp_path_factory.mktemp(f"celery-{request.param}")
    (root / "gates").mkdir()
    queue = f"jobstatus-test-{uuid.uuid4().hex[:10]}"
    store_url = str(root / "store")
    app, recorder = make_app(broker, store_url, queue)
    env = {
        "JOBSTATUS_TEST_BROKER": broker,
        "JOBSTATUS_TEST_STORE": store_url,
        "JOBSTATUS_TEST_QUEUE": queue,
    }
    worker = start_worker(worker_argv(queue, f"{queue}@jobstatus-test"), env, root / "worker.log")
    setup = Celeried(app, recorder, open_store(store_url), root / "gates", queue, worker, env, root)
    try:
        first = setup.send("tests.add", 0, 0)  # the worker is up once it has run a task
        wait_for(setup.store, first, state("done"), worker=worker, timeout=120)
        yield setup
    finally:
        worker.stop()
        recorder.disconnect()
        _remove_queues(app, [queue, f"{queue}-parked", f"{queue}-doomed"], request.param)
        app.close()


def _remove_queues(app: Celery, queues: list[str], broker: str) -> None:
    if broker == "redis":
        empty_redis(app.conf.broker_url)
        return
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in queues:
            channel.queue_delete(name)
            channel.exchange_delete(name)


def test_a_task_that_succeeds_is_queued_then_running_then_done(celery: Celeried) -> None:
    job_id = celery.send("tests.add", 2, 3)
    first = celery.store.get(job_id)  # written before apply_async returned
    assert first.created_at is not None
    assert first.extra["attempt"] == 1
    done = wait_for(celery.store, job_id, state("done"), worker=celery.worker)
    envelope = check_final(
        celery.store, done, status="done", endpoint="tests.add", attempt=1, code=200
    )
    assert (envelope["response"], envelope["message"]) == (5, "success")
    assert envelope["build_number"] == "celery-test"
    assert done.created_at == first.created_at
    assert done.started_at is not None


def test_a_queued_task_is_cancelled_at_once_and_revoked(celery: Celeried) -> None:
    parked = f"{celery.queue}-parked"  # no worker consumes it: the task stays queued
    job_id = celery.send("tests.add", 1, 1, queue=parked)
    queued = celery.store.get(job_id)
    assert (queued.job_status, queued.extra["attempt"], queued.started_at) == ("queued", 1, None)
    assert queued.process_id == os.getpid()
    assert over_http(celery.store, job_id)["response"] == queued.to_dict()

    status, body = cancel_over_http(celery.store, celery.recorder.tracker, job_id)
    assert status == 200
    cancelled = celery.store.get(job_id)
    assert body["response"] == cancelled.to_dict()
    assert cancelled.job_status == "cancelled"
    assert cancelled.response["code"] == 499
    assert cancelled.cancel_requested_at is not None
    assert cancelled.created_at == queued.created_at

    inspect = celery.app.control.inspect(destination=[celery.hostname()], timeout=2)
    wait_until(
        lambda: job_id in ((inspect.revoked() or {}).get(celery.hostname()) or []),
        "the worker was told to revoke the task",
    )


def test_a_failure_records_the_message_without_secrets(celery: Celeried) -> None:
    job_id = celery.send("tests.boom", "postgresql://jobs:s3cret@db.internal/jobs")
    failed = wait_for(celery.store, job_id, state("failed"), worker=celery.worker)
    envelope = check_final(
        celery.store, failed, status="failed", endpoint="tests.boom", attempt=1, code=500
    )
    assert envelope["message"] == "could not reach postgresql://jobs:***@db.internal/jobs"
    assert envelope["response"] is None
    assert "s3cret" not in json.dumps(failed.to_dict())
    assert "Traceback" not in json.dumps(failed.to_dict())


def test_a_retry_goes_back_to_queued_with_the_next_attempt(celery: Celeried) -> None:
    job_id = celery.send("tests.flaky", 3600)  # the retry waits an hour: queued meanwhile
    first = celery.store.get(job_id)
    requeued = wait_for(celery.store, job_id, state("queued", attempt=2), worker=celery.worker)
    assert requeued.started_at is None
    assert requeued.ended_at is None
    assert requeued.created_at == first.created_at
    assert requeued.progress == Progress(percent=10, message="first try")
    assert over_http(celery.store, job_id)["response"] == requeued.to_dict()

    cancelled = celery.recorder.cancel(job_id)  # a retry waiting in the worker is revoked
    assert (cancelled.job_status, cancelled.extra["attempt"]) == ("cancelled", 2)


def test_a_retried_task_is_done_on_its_second_attempt(celery: Celeried) -> None:
    job_id = celery.send("tests.flaky", 0)
    done = wait_for(celery.store, job_id, state("done"), worker=celery.worker)
    envelope = check_final(
        celery.store, done, status="done", endpoint="tests.flaky", attempt=2, code=200
    )
    assert envelope["response"] == {"attempts": 2}


def test_progress_is_visible_while_the_task_runs(celery: Celeried) -> None:
    job_id = celery.send("tests.steps", str(celery.gates), 10_000)
    check_progress_then_done(
        celery.store,
        job_id,
        worker=celery.worker,
        release=lambda: celery.open_gate(f"release-{job_id}"),
        endpoint="tests.steps",
    )


def test_a_running_task_stops_at_its_next_check_once_cancelled(celery: Celeried) -> None:
    job_id = celery.send("tests.patient", str(celery.gates))
    check_cooperative_cancel(
        celery.store,
        celery.recorder.tracker,
        job_id,
        worker=celery.worker,
        endpoint="tests.patient",
    )


def test_cancel_with_terminate_kills_the_process_running_the_task(celery: Celeried) -> None:
    job_id = celery.send("tests.sleeper", str(celery.gates))
    running = wait_for(
        celery.store,
        job_id,
        running_with_progress,
        worker=celery.worker,
    )
    asked = cancel(celery.app, celery.store, job_id, terminate=True)
    assert asked.job_status == "running"
    assert asked.cancel_requested_at is not None
    cancelled = wait_for(celery.store, job_id, state("cancelled"), worker=celery.worker)
    check_final(
        celery.store, cancelled, status="cancelled", endpoint="tests.sleeper", attempt=1, code=499
    )
    assert cancelled.process_id != running.process_id  # the worker's main process wrote it
    assert isinstance(running.process_id, int)
    pool_process = running.process_id
    wait_until(lambda: process_gone(pool_process), "the pool process was terminated")


def test_a_pool_process_killed_mid_task_records_failed(celery: Celeried) -> None:
    job_id = celery.send("tests.sleeper", str(celery.gates))
    running = wait_for(
        celery.store,
        job_id,
        running_with_progress,
        worker=celery.worker,
    )
    assert isinstance(running.process_id, int)
    os.kill(running.process_id, signal.SIGKILL)
    failed = wait_for(celery.store, job_id, state("failed"), worker=celery.worker)
    envelope = check_final(
        celery.store, failed, status="failed", endpoint="tests.sleeper", attempt=1, code=500
    )
    assert "SIGKILL" in envelope["message"]
    assert failed.process_id != running.process_id
    assert failed.progress == running.progress


def test_a_task_whose_worker_is_sigkilled_stays_running(celery: Celeried) -> None:
    doomed = f"{celery.queue}-doomed"
    worker = start_worker(
        worker_argv(doomed, celery.hostname(doomed)), celery.env, celery.root / "doomed.log"
    )
    try:
        job_id = celery.send("tests.sleeper", str(celery.gates), queue=doomed)
        before = wait_for(
            celery.store,
            job_id,
            running_with_progress,
            worker=worker,
            timeout=120,
        )
        worker.kill()  # SIGKILL to the whole worker: main process and pool
        assert isinstance(before.process_id, int)
        pool_process = before.process_id
        wait_until(lambda: process_gone(pool_process), "the pool process is gone")
    finally:
        worker.stop()
    check_left_running_then_reaped(celery.store, job_id)


def test_the_example_app_shows_progress_and_cancels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/celery_app.py as its docstring runs it: FastAPI sends the job to a Celery worker;
    the client polls the status endpoint, sees the progress, cancels the job."""
    import asyncio
    import importlib
    import sys

    import httpx

    queue = f"jobstatus-example-{uuid.uuid4().hex[:8]}"
    env = {
        "CELERY_BROKER_URL": redis_url(REDIS_DB),
        "JOBSTATUS_STORE": str(tmp_path / "store"),
        "WORDCOUNT_QUEUE": queue,
        "API_KEY": "example-key",
        "JOBSTATUS_BUILD_NUMBER": "demo-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "examples.celery_app", raising=False)
    example = importlib.import_module("examples.celery_app")
    worker = start_worker(
        [
            "celery",
            "--workdir",
            "examples",
            "-A",
            "celery_app",
            "worker",
            "-P",
            "solo",
            "-Q",
            queue,
            "-n",
            f"{queue}@jobstatus-test",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        tmp_path / "worker.log",
    )

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=example.api)
            async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
                return await client.post(path, json=body, headers={"x-api-key": "example-key"})

        return asyncio.run(send())

    def status(job_id: str) -> dict[str, Any]:
        answer = post("/v1/toolkit/job/status", {"job_id": job_id})
        assert answer.status_code == 200
        return dict(answer.json()["response"])

    try:
        words = " ".join(f"w{n}" for n in range(20))
        accepted = post("/v1/demo/wordcount", {"text": words, "seconds": 120, "id": "req-1"})
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        wait_until(
            lambda: status(job_id)["job_status"] == "running" and "progress" in status(job_id),
            "the client sees the job running with progress",
        )
        seen = status(job_id)["progress"]
        assert seen["total"] == 20
        assert 1 <= seen["current"] <= 20
        assert seen["message"] == f"word {seen['current']} of 20"
        cancel = post("/v1/toolkit/job/cancel", {"job_id": job_id})
        assert cancel.status_code == 202
        wait_until(lambda: status(job_id)["job_status"] == "cancelled", "the job stopped")
        final = status(job_id)
        assert final["response"]["endpoint"] == "demo.wordcount"
        assert final["response"]["code"] == 499
        assert final["response"]["build_number"] == "demo-1"
        assert final["progress"]["current"] >= seen["current"]
    finally:
        worker.stop()
        example.recorder.disconnect()
        example.app.close()
