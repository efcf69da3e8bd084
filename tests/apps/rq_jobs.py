"""The RQ jobs the integration tests run in a real worker (``rq worker --job-class
jobstatus.integrations.rq.RecordedJob``). The queue and its recorder are made here, from the
environment the test gives the worker, so that the work horse (which imports this module to
run a job) records too."""

from __future__ import annotations

import os
from typing import Any

from redis import Redis
from rq import Queue, Retry, get_current_job

from jobstatus import open_store
from jobstatus.integrations.rq import JobRecorder, progress, record_jobs
from tests.apps import common
from tests.apps.common import gate


def make_queue(redis_url: str, store_url: str, name: str) -> tuple[Queue, JobRecorder]:
    queue = Queue(name, connection=Redis.from_url(redis_url))
    recorder = record_jobs(
        queue,
        open_store(store_url),
        progress_interval=0.05,
        heartbeat_interval=0.2,
        build_number="rq-test",
    )
    return queue, recorder


def add(x: int, y: int) -> int:
    return x + y


def boom(url: str) -> None:
    raise ConnectionError(f"could not reach {url}")


def flaky(folder: str) -> dict[str, Any]:
    job = get_current_job()
    assert job is not None
    if job.retries_left:  # retries left: this is not the last attempt
        progress(percent=10, message="not yet")
        gate(folder, f"fail-{job.id}")
        raise RuntimeError("not yet")
    return {"retries_left": job.retries_left}


def again(folder: str) -> Any:
    """Returns rq.Retry once, then succeeds."""
    job = get_current_job()
    assert job is not None
    if not job.number_of_retries:
        return Retry(max=2)
    return "second time lucky"


def steps(folder: str, total: int) -> str:
    job = get_current_job()
    assert job is not None
    return common.steps(folder, total, f"release-{job.id}")


def patient(folder: str) -> str:
    return common.patient()


def sleeper(folder: str) -> str:
    return common.sleeper(folder)


if "JOBSTATUS_TEST_REDIS" in os.environ:  # in the worker
    queue, recorder = make_queue(
        os.environ["JOBSTATUS_TEST_REDIS"],
        os.environ["JOBSTATUS_TEST_STORE"],
        os.environ["JOBSTATUS_TEST_QUEUE"],
    )
