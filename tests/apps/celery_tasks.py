"""The Celery app the integration tests run in a real worker (``celery -A tests.apps.celery_tasks
worker``). Configured by the environment the test gives the worker: the broker, the store, the
queue and a folder where the test drops the files that let a task go on."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task

from jobstatus import open_store
from jobstatus.integrations.celery import TaskRecorder, progress, record_tasks
from tests.apps import common


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
        return common.steps(folder, total, f"release-{steps.request.id}")

    @app.task(name="tests.patient", shared=False)
    def patient(folder: str) -> str:
        return common.patient()

    @app.task(name="tests.sleeper", shared=False)
    def sleeper(folder: str) -> str:
        return common.sleeper(folder)

    return app, recorder


if "JOBSTATUS_TEST_BROKER" in os.environ:  # in the worker
    app, recorder = make_app(
        os.environ["JOBSTATUS_TEST_BROKER"],
        os.environ["JOBSTATUS_TEST_STORE"],
        os.environ["JOBSTATUS_TEST_QUEUE"],
    )
