"""jobstatus.integrations.rq with a real ``rq worker --job-class
jobstatus.integrations.rq.RecordedJob`` on Redis (database 6, this file's own: emptied when
done).

The worker and the test share a SQLite store. Every state a job goes through is read from
the store and over the status endpoint: queued, running with progress, done, failed, queued
again for a retry (raised or returned), cancelled (queued, by RQ's stop command, and
cooperatively), failed when the work horse is killed, and still running when the whole worker
is SIGKILLed -- nothing is left to write its end, so it stays ``running`` until a reaper marks
it.
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

pytest.importorskip("rq")

from rq import Queue, Retry
from rq.job import Job, JobStatus

from jobstatus import JobTracker, Progress, open_store
from jobstatus.integrations.rq import JobRecorder
from jobstatus.store import Store
from tests.apps import rq_jobs
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
    redis_url,
    running_with_progress,
    start_worker,
    state,
    wait_for,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.extras, pytest.mark.slow]

REDIS_DB = 6
JOBS = "tests.apps.rq_jobs"


@dataclass
class Rqd:
    queue: Queue
    recorder: JobRecorder
    store: Store
    gates: Path
    worker: Worker
    redis: str
    store_url: str
    root: Path

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()

    def status_in_rq(self, job_id: str) -> Any:
        return Job.fetch(job_id, connection=self.queue.connection).get_status()


def worker_argv(redis: str, queue: str) -> list[str]:
    return [
        "rq.cli", "worker", "--url", redis, "--job-class", "jobstatus.integrations.rq.RecordedJob",
        "--name", f"{queue}-{uuid.uuid4().hex[:6]}", "--logging_level", "INFO", queue,
    ]  # fmt: skip


def worker_env(redis: str, store_url: str, queue: str) -> dict[str, str]:
    return {
        "JOBSTATUS_TEST_REDIS": redis,
        "JOBSTATUS_TEST_STORE": store_url,
        "JOBSTATUS_TEST_QUEUE": queue,
    }


@pytest.fixture(scope="module")
def rqd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rqd]:
    redis = redis_url(REDIS_DB)
    root = tmp_path_factory.mktemp("rq")
    (root / "gates").mkdir()
    name = f"jobstatus-test-{uuid.uuid4().hex[:10]}"
    pytest.importorskip("sqlalchemy")
    store_url = f"sqlite:///{root / 'jobs.db'}"
    queue, recorder = rq_jobs.make_queue(redis, store_url, name)
    worker = start_worker(
        worker_argv(redis, name), worker_env(redis, store_url, name), root / "worker.log"
    )
    setup = Rqd(
        queue, recorder, open_store(store_url), root / "gates", worker, redis, store_url, root
    )
    try:
        first = queue.enqueue(rq_jobs.add, 0, 0)  # the worker is up once it has run a job
        wait_for(setup.store, first.id, state("done"), worker=worker, timeout=120)
        yield setup
    finally:
        worker.stop()
        empty_redis(redis)


def test_a_job_that_succeeds_is_queued_then_running_then_done(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.add, 2, 3)
    first = rqd.store.get(job.id)  # written before the job reached Redis
    assert first.created_at is not None
    assert first.extra["attempt"] == 1
    done = wait_for(rqd.store, job.id, state("done"), worker=rqd.worker)
    envelope = check_final(
        rqd.store, done, status="done", endpoint=f"{JOBS}.add", attempt=1, code=200
    )
    assert (envelope["response"], envelope["message"]) == (5, "success")
    assert envelope["build_number"] == "rq-test"
    assert done.created_at == first.created_at


def test_a_queued_job_is_cancelled_at_once_and_in_rq(rqd: Rqd) -> None:
    parked, parked_recorder = rq_jobs.make_queue(
        rqd.redis, rqd.store_url, f"{rqd.queue.name}-parked"
    )
    job = parked.enqueue(rq_jobs.add, 1, 1)  # no worker listens to that queue
    queued = rqd.store.get(job.id)
    assert (queued.job_status, queued.extra["attempt"], queued.started_at) == ("queued", 1, None)
    assert queued.process_id == os.getpid()
    assert over_http(rqd.store, job.id)["response"] == queued.to_dict()

    status, body = cancel_over_http(rqd.store, parked_recorder.tracker, job.id)
    assert status == 200
    cancelled = rqd.store.get(job.id)
    assert body["response"] == cancelled.to_dict()
    assert (cancelled.job_status, cancelled.response["code"]) == ("cancelled", 499)
    assert rqd.status_in_rq(job.id) == JobStatus.CANCELED


def test_a_failure_records_the_message_without_secrets(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.boom, "redis://:s3cret@cache.internal:6379/0")
    failed = wait_for(rqd.store, job.id, state("failed"), worker=rqd.worker)
    envelope = check_final(
        rqd.store, failed, status="failed", endpoint=f"{JOBS}.boom", attempt=1, code=500
    )
    assert envelope["message"] == "could not reach redis://:***@cache.internal:6379/0"
    assert "s3cret" not in json.dumps(failed.to_dict())
    assert "Traceback" not in json.dumps(failed.to_dict())


def test_a_retry_goes_back_to_queued_with_the_next_attempt(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.flaky, str(rqd.gates), retry=Retry(max=1, interval=3600))
    running = wait_for(rqd.store, job.id, state("running", attempt=1), worker=rqd.worker)
    rqd.open_gate(f"fail-{job.id}")
    requeued = wait_for(rqd.store, job.id, state("queued", attempt=2), worker=rqd.worker)
    assert requeued.started_at is None
    assert requeued.created_at == running.created_at
    assert requeued.progress == Progress(percent=10, message="not yet")
    assert over_http(rqd.store, job.id)["response"] == requeued.to_dict()
    wait_until(lambda: rqd.status_in_rq(job.id) == JobStatus.SCHEDULED, "RQ scheduled the retry")

    cancelled = rqd.recorder.cancel(job.id)
    assert (cancelled.job_status, cancelled.extra["attempt"]) == ("cancelled", 2)
    assert rqd.status_in_rq(job.id) == JobStatus.CANCELED


def test_a_retried_job_is_done_on_its_second_attempt(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.flaky, str(rqd.gates), retry=Retry(max=1))
    wait_for(rqd.store, job.id, state("running", attempt=1), worker=rqd.worker)
    rqd.open_gate(f"fail-{job.id}")
    done = wait_for(rqd.store, job.id, state("done"), worker=rqd.worker)
    envelope = check_final(
        rqd.store, done, status="done", endpoint=f"{JOBS}.flaky", attempt=2, code=200
    )
    assert envelope["response"] == {"retries_left": 0}


def test_a_job_that_returns_retry_runs_again(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.again, str(rqd.gates))
    done = wait_for(rqd.store, job.id, state("done"), worker=rqd.worker)
    envelope = check_final(
        rqd.store, done, status="done", endpoint=f"{JOBS}.again", attempt=2, code=200
    )
    assert envelope["response"] == "second time lucky"


def test_progress_is_visible_while_the_job_runs(rqd: Rqd) -> None:
    job_id = rqd.queue.enqueue(rq_jobs.steps, str(rqd.gates), 10_000).id
    check_progress_then_done(
        rqd.store,
        job_id,
        worker=rqd.worker,
        release=lambda: rqd.open_gate(f"release-{job_id}"),
        endpoint=f"{JOBS}.steps",
    )


def test_cancel_stops_a_running_job_through_rq(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.sleeper, str(rqd.gates))
    running = wait_for(
        rqd.store,
        job.id,
        running_with_progress,
        worker=rqd.worker,
    )
    status, body = cancel_over_http(rqd.store, rqd.recorder.tracker, job.id)
    assert status == 202
    assert body["response"]["cancel_requested_at"].endswith("Z")
    cancelled = wait_for(rqd.store, job.id, state("cancelled"), worker=rqd.worker)
    check_final(
        rqd.store, cancelled, status="cancelled", endpoint=f"{JOBS}.sleeper", attempt=1, code=499
    )
    assert cancelled.process_id == rqd.worker.pid  # the stopped callback, in the main process
    assert cancelled.process_id != running.process_id
    wait_until(lambda: rqd.status_in_rq(job.id) == JobStatus.STOPPED, "RQ marked it stopped")


def test_a_running_job_stops_at_its_next_check_once_cancelled(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.patient, str(rqd.gates))
    plain = JobTracker(rqd.store)  # no stop command: the job notices the request itself
    check_cooperative_cancel(
        rqd.store, plain, job.id, worker=rqd.worker, endpoint=f"{JOBS}.patient"
    )


def test_a_killed_work_horse_records_failed(rqd: Rqd) -> None:
    job = rqd.queue.enqueue(rq_jobs.sleeper, str(rqd.gates))
    running = wait_for(
        rqd.store,
        job.id,
        running_with_progress,
        worker=rqd.worker,
    )
    assert isinstance(running.process_id, int)
    os.kill(running.process_id, signal.SIGKILL)
    failed = wait_for(rqd.store, job.id, state("failed"), worker=rqd.worker)
    envelope = check_final(
        rqd.store, failed, status="failed", endpoint=f"{JOBS}.sleeper", attempt=1, code=500
    )
    assert envelope["message"].startswith("Work-horse terminated unexpectedly")
    assert failed.process_id == rqd.worker.pid
    assert failed.progress == running.progress


def test_a_job_whose_worker_is_sigkilled_stays_running(rqd: Rqd) -> None:
    name = f"{rqd.queue.name}-doomed"
    doomed, _ = rq_jobs.make_queue(rqd.redis, rqd.store_url, name)
    worker = start_worker(
        worker_argv(rqd.redis, name),
        worker_env(rqd.redis, rqd.store_url, name),
        rqd.root / "doomed.log",
    )
    try:
        job = doomed.enqueue(rq_jobs.sleeper, str(rqd.gates))
        before = wait_for(
            rqd.store,
            job.id,
            running_with_progress,
            worker=worker,
            timeout=120,
        )
        assert isinstance(before.process_id, int)
        horse = before.process_id
        # SIGKILL to the whole worker: its main process and the work horse, which RQ puts in
        # a process group of its own
        worker.kill()
        os.kill(horse, signal.SIGKILL)
        wait_until(lambda: process_gone(horse), "the work horse is gone")
    finally:
        worker.stop()
    check_left_running_then_reaped(rqd.store, job.id)
