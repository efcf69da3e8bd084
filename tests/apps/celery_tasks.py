"""The Celery app the integration tests run in a real worker (``celery -A tests.apps.celery_tasks
worker``). Configured by the environment the test gives the worker: the broker, the store, the
queue and a folder where the test drops the files that let a task go on."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery, Task

from jobstatus import open_store
from jobstatus.integrations.celery import TaskRecorder, check_cancelled, progress, record_tasks

DEADLINE = 120.0  # no task waits longer than this for the test


def gate(folder: str, name: str) -> None:
    """Wait until the test creates ``folder/name`` (or the deadline passes)."""
    path, deadline = Path(folder) / name, time.monotonic() + DEADLINE
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened gate {name}")
        time.sleep(0.01)


def make_app(broker: str, store_url: str, queue: str) -> tuple[Celery, TaskRecorder]:
    app = Celery("jobstatus_tests", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
    )
    recorder = record_tasks(
        app,
        open_store(store_url),
        progress_interval=0.05,
        heartbeat_interval=0.2,
        build_number="celery-test",
    )

    @app.task(name="tests.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tests.boom", shared=False)
    def boom(url: str) -> None:
        raise ConnectionError(f"could not reach {url}")

    @app.task(name="tests.flaky", shared=False, bind=True, max_retries=3)
    def flaky(self: Task, countdown: float) -> dict[str, Any]:
        if self.request.retries == 0:
            progress(percent=10, message="first try")
            raise self.retry(exc=RuntimeError("not yet"), countdown=countdown)
        return {"attempts": self.request.retries + 1}

    @app.task(name="tests.steps", shared=False)
    def steps(folder: str, total: int) -> str:
        for n in range(1, total + 1):
            progress(current=n, total=total, message=f"step {n}")
        gate(folder, f"release-{steps.request.id}")
        return f"{total} steps"

    @app.task(name="tests.patient", shared=False)
    def patient(folder: str) -> str:
        deadline = time.monotonic() + DEADLINE
        n = 0
        while time.monotonic() < deadline:
            n += 1
            progress(percent=min(n, 99), message="waiting")
            check_cancelled()
            time.sleep(0.01)
        return "never cancelled"

    @app.task(name="tests.sleeper", shared=False)
    def sleeper(folder: str) -> str:
        progress(percent=1, message="asleep")
        gate(folder, "never")
        return "woke up"

    return app, recorder


if "JOBSTATUS_TEST_BROKER" in os.environ:  # in the worker
    app, recorder = make_app(
        os.environ["JOBSTATUS_TEST_BROKER"],
        os.environ["JOBSTATUS_TEST_STORE"],
        os.environ["JOBSTATUS_TEST_QUEUE"],
    )
