"""The Dramatiq actors the integration tests run in a real worker (``dramatiq
tests.apps.dramatiq_actors``): a Redis broker under its own namespace and the jobstatus
middleware, both made from the environment the test gives the worker."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from jobstatus import JobCancelled, open_store
from jobstatus.integrations.dramatiq import JobStatusMiddleware, progress
from tests.apps import common
from tests.apps.common import gate


def make_broker(redis_url: str, store_url: str, namespace: str) -> RedisBroker:
    broker = RedisBroker(url=redis_url, namespace=namespace)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(
        JobStatusMiddleware(
            open_store(store_url),
            progress_interval=0.05,
            heartbeat_interval=0.2,
            build_number="dq-test",
        )
    )
    declare_actors(broker)
    return broker


def middleware_of(broker: dramatiq.Broker) -> JobStatusMiddleware:
    return next(m for m in broker.middleware if isinstance(m, JobStatusMiddleware))


def current_id() -> str:
    message = CurrentMessage.get_current_message()
    assert message is not None
    return str(message.message_id)


def declare_actors(broker: RedisBroker) -> None:
    def actor(name: str, **options: object) -> object:
        return dramatiq.actor(actor_name=name, broker=broker, **{"max_retries": 0, **options})

    @actor("add")
    def add(x: int, y: int) -> int:
        return x + y

    @actor("parked_add", queue_name="parked")  # no worker listens to that queue
    def parked_add(x: int, y: int) -> int:
        return x + y

    @actor("boom")
    def boom(url: str) -> None:
        raise ConnectionError(f"could not reach {url}")

    @actor("flaky", max_retries=2)
    def flaky(delay: int) -> str:
        message = CurrentMessage.get_current_message()
        assert message is not None
        retries = message.options.get("retries", 0)
        if retries == 0:
            progress(percent=10, message="not yet")
            raise dramatiq.Retry("not yet", delay=delay)
        return f"worked after {retries} retry"

    @actor("steps")
    def steps(folder: str, total: int) -> str:
        return common.steps(folder, total, f"release-{current_id()}")

    @actor("blocker")
    def blocker(folder: str) -> str:
        gate(folder, f"release-{current_id()}")
        return "released"

    @actor("patient", max_retries=3, throws=(JobCancelled,))  # a cancelled job is not retried
    def patient(folder: str) -> str:
        return common.patient()

    @actor("doomed_sleeper", queue_name="doomed")
    def doomed_sleeper(folder: str) -> str:
        return common.sleeper(folder)


if "JOBSTATUS_TEST_REDIS" in os.environ:  # in the worker
    broker = make_broker(
        os.environ["JOBSTATUS_TEST_REDIS"],
        os.environ["JOBSTATUS_TEST_STORE"],
        os.environ["JOBSTATUS_TEST_NAMESPACE"],
    )
    dramatiq.set_broker(broker)
