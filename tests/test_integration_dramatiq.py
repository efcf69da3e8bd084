"""jobstatus.integrations.dramatiq with a real ``dramatiq`` worker (one process, one thread) on
a Redis broker (database 7, under a namespace of this run's own, removed when done).

The worker and the test share a filesystem store. Every state a message goes through is read
from the store and over the status endpoint: queued, running with progress, done, failed,
queued again for a retry, cancelled (while queued -- then skipped when it arrives -- and
cooperatively while running), and still running when the worker is SIGKILLed -- nothing is
left to write its end, so it stays ``running`` until a reaper marks it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dramatiq")

import redis
from dramatiq.brokers.redis import RedisBroker

from jobstatus import Progress, open_store
from jobstatus.integrations.dramatiq import JobStatusMiddleware
from jobstatus.store import Store
from tests.apps.dramatiq_actors import make_broker, middleware_of
from tests.queue_workers import (
    Worker,
    cancel_over_http,
    check_cooperative_cancel,
    check_final,
    check_left_running_then_reaped,
    check_progress_then_done,
    over_http,
    process_gone,
    redis_url,
    running_with_progress,
    start_worker,
    state,
    wait_for,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.extras, pytest.mark.slow]

REDIS_DB = 7


@dataclass
class Dramatiqd:
    broker: RedisBroker
    middleware: JobStatusMiddleware
    store: Store
    gates: Path
    worker: Worker
    env: dict[str, str]
    root: Path

    def send(self, actor: str, *args: Any) -> str:
        return str(self.broker.get_actor(actor).send(*args).message_id)

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()


def worker_argv(queue: str) -> list[str]:
    return ["dramatiq", "tests.apps.dramatiq_actors", "--processes", "1", "--threads", "1",
            "--queues", queue]  # fmt: skip


@pytest.fixture(scope="module")
def dq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dramatiqd]:
    url = redis_url(REDIS_DB)
    root = tmp_path_factory.mktemp("dramatiq")
    (root / "gates").mkdir()
    namespace = f"jobstatus-test-{uuid.uuid4().hex[:10]}"
    store_url = str(root / "store")
    broker = make_broker(url, store_url, namespace)
    env = {
        "JOBSTATUS_TEST_REDIS": url,
        "JOBSTATUS_TEST_STORE": store_url,
        "JOBSTATUS_TEST_NAMESPACE": namespace,
    }
    worker = start_worker(worker_argv("default"), env, root / "worker.log")
    setup = Dramatiqd(
        broker, middleware_of(broker), open_store(store_url), root / "gates", worker, env, root
    )
    try:
        first = setup.send("add", 0, 0)  # the worker is up once it has processed a message
        wait_for(setup.store, first, state("done"), worker=worker, timeout=120)
        yield setup
    finally:
        worker.stop()
        broker.close()
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()


def test_a_message_that_succeeds_is_queued_then_running_then_done(dq: Dramatiqd) -> None:
    job_id = dq.send("add", 2, 3)
    first = dq.store.get(job_id)  # written once the broker took the message
    assert first.created_at is not None
    assert first.extra["attempt"] == 1
    done = wait_for(dq.store, job_id, state("done"), worker=dq.worker)
    envelope = check_final(dq.store, done, status="done", endpoint="add", attempt=1, code=200)
    assert (envelope["response"], envelope["message"]) == (5, "success")
    assert envelope["build_number"] == "dq-test"
    assert done.created_at == first.created_at


def test_a_queued_message_is_cancelled_at_once(dq: Dramatiqd) -> None:
    job_id = dq.send("parked_add", 1, 1)  # no worker listens to its queue
    queued = dq.store.get(job_id)
    assert (queued.job_status, queued.extra["attempt"], queued.started_at) == ("queued", 1, None)
    assert queued.process_id == os.getpid()
    assert over_http(dq.store, job_id)["response"] == queued.to_dict()
    status, body = cancel_over_http(dq.store, dq.middleware.tracker, job_id)
    assert status == 200
    cancelled = dq.store.get(job_id)
    assert body["response"] == cancelled.to_dict()
    assert (cancelled.job_status, cancelled.response["code"]) == ("cancelled", 499)


def test_a_message_cancelled_while_it_waits_is_skipped_when_it_arrives(dq: Dramatiqd) -> None:
    blocker = dq.send("blocker", str(dq.gates))  # the one worker thread is busy with it
    wait_for(dq.store, blocker, state("running"), worker=dq.worker)
    job_id = dq.send("add", 4, 4)
    after = dq.send("add", 5, 5)
    cancelled = dq.middleware.tracker.cancel(job_id)
    assert cancelled.job_status == "cancelled"
    dq.open_gate(f"release-{blocker}")
    wait_for(dq.store, after, state("done"), worker=dq.worker)  # one thread, in order
    assert dq.store.get(job_id).to_dict() == cancelled.to_dict()
    assert dq.store.get(job_id).version == cancelled.version


def test_a_failure_records_the_message_without_secrets(dq: Dramatiqd) -> None:
    job_id = dq.send("boom", "amqp://jobs:s3cret@mq.internal//")
    failed = wait_for(dq.store, job_id, state("failed"), worker=dq.worker)
    envelope = check_final(dq.store, failed, status="failed", endpoint="boom", attempt=1, code=500)
    assert envelope["message"] == "could not reach amqp://jobs:***@mq.internal//"
    assert "s3cret" not in json.dumps(failed.to_dict())


def test_a_retry_goes_back_to_queued_with_the_next_attempt(dq: Dramatiqd) -> None:
    job_id = dq.send("flaky", 3_600_000)  # the retry waits an hour: queued meanwhile
    first = dq.store.get(job_id)
    requeued = wait_for(dq.store, job_id, state("queued", attempt=2), worker=dq.worker)
    assert requeued.started_at is None
    assert requeued.created_at == first.created_at
    assert requeued.progress == Progress(percent=10, message="not yet")
    assert over_http(dq.store, job_id)["response"] == requeued.to_dict()
    cancelled = dq.middleware.tracker.cancel(job_id)
    assert (cancelled.job_status, cancelled.extra["attempt"]) == ("cancelled", 2)


def test_a_retried_message_is_done_on_its_second_attempt(dq: Dramatiqd) -> None:
    job_id = dq.send("flaky", 0)
    done = wait_for(dq.store, job_id, state("done"), worker=dq.worker)
    envelope = check_final(dq.store, done, status="done", endpoint="flaky", attempt=2, code=200)
    assert envelope["response"] == "worked after 1 retry"


def test_progress_is_visible_while_the_actor_runs(dq: Dramatiqd) -> None:
    job_id = dq.send("steps", str(dq.gates), 10_000)
    check_progress_then_done(
        dq.store,
        job_id,
        worker=dq.worker,
        release=lambda: dq.open_gate(f"release-{job_id}"),
        endpoint="steps",
    )


def test_a_running_actor_stops_at_its_next_check_once_cancelled(dq: Dramatiqd) -> None:
    job_id = dq.send("patient", str(dq.gates))
    check_cooperative_cancel(
        dq.store, dq.middleware.tracker, job_id, worker=dq.worker, endpoint="patient"
    )


def test_a_message_whose_worker_is_sigkilled_stays_running(dq: Dramatiqd) -> None:
    worker = start_worker(worker_argv("doomed"), dq.env, dq.root / "doomed.log")
    try:
        job_id = dq.send("doomed_sleeper", str(dq.gates))
        before = wait_for(
            dq.store,
            job_id,
            running_with_progress,
            worker=worker,
            timeout=120,
        )
        assert isinstance(before.process_id, int)
        process = before.process_id
        worker.kill()  # SIGKILL to the whole worker: main process and worker process
        wait_until(lambda: process_gone(process), "the worker process is gone")
    finally:
        worker.stop()
    check_left_running_then_reaped(dq.store, job_id)
