"""The tasks bench_integrations.py runs in real workers -- the same two for Celery, RQ and
Dramatiq: ``work`` (1 ms of sleep, then a Redis INCR the benchmark waits on) and ``chatty``
(``progress`` called 10,000 times, then the same INCR).

``build(kind, redis_url, name, store)`` makes the queue side; a worker imports this module with
``JOBSTATUS_BENCH_*`` in its environment and builds the same. With a store the queue is
recorded by jobstatus, the store wrapped so that every ``put`` appends one byte to the counts
file, and one more when a conditional write is refused with ``Conflict`` (one ``os.write`` with
``O_APPEND``: the puts of every process add up); without, it is the plain queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from jobstatus import Conflict, JobRecord, open_store
from jobstatus.integrations import progress
from jobstatus.store import Store

WORK_SECONDS = 0.001
PROGRESS_CALLS = 10_000


class CountingStore:
    """A store that appends one byte to ``path`` per ``put``: ``p`` before it (so the count is
    there by the time the record can be seen), ``c`` after one refused with ``Conflict``;
    everything else is the store's."""

    def __init__(self, store: Store, path: str) -> None:
        self._store = store
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def put(self, record: JobRecord, **options: Any) -> JobRecord:
        os.write(self._fd, b"p")
        try:
            return self._store.put(record, **options)
        except Conflict:
            os.write(self._fd, b"c")
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class Bench:
    """The queue side: each ``send_*`` returns the job id."""

    send_work: Callable[[int], str]
    send_chatty: Callable[[], str]
    close: Callable[[], None]
    app: Any = None  # the Celery app, the RQ queue or the Dramatiq broker


def _done_counter(redis_url: str, name: str) -> Callable[[], None]:
    client = redis.Redis.from_url(redis_url)
    key = f"{name}:done"
    return lambda: client.incr(key)


def build(kind: str, redis_url: str, name: str, store: Store | None) -> Bench:
    done = _done_counter(redis_url, name)

    def work(n: int) -> int:
        time.sleep(WORK_SECONDS)
        done()
        return n

    def chatty() -> int:
        for n in range(1, PROGRESS_CALLS + 1):
            progress(current=n, total=PROGRESS_CALLS)
        done()
        return PROGRESS_CALLS

    if kind == "celery":
        return _celery(redis_url, name, store, work, chatty)
    if kind == "rq":
        return _rq(redis_url, name, store)
    if kind == "dramatiq":
        return _dramatiq(redis_url, name, store, work, chatty)
    raise ValueError(f"unknown kind {kind!r}")


def _celery(
    redis_url: str, name: str, store: Store | None, work: Callable[..., Any], chatty: Any
) -> Bench:
    from celery import Celery

    from jobstatus.integrations.celery import record_tasks

    app = Celery(name, broker=redis_url, set_as_current=False)
    app.conf.update(task_default_queue=name, worker_hijack_root_logger=False)
    recorder = None if store is None else record_tasks(app, store)
    work_task = app.task(name="bench.work", shared=False)(work)
    chatty_task = app.task(name="bench.chatty", shared=False)(chatty)

    def close() -> None:
        if recorder is not None:
            recorder.disconnect()
        app.close()

    return Bench(
        lambda n: str(work_task.delay(n).id), lambda: str(chatty_task.delay().id), close, app
    )


# RQ imports job functions by name: they live at module level, their counter set by _rq.
_rq_done: Callable[[], None] = lambda: None  # noqa: E731


def rq_work(n: int) -> int:
    time.sleep(WORK_SECONDS)
    _rq_done()
    return n


def rq_chatty() -> int:
    for n in range(1, PROGRESS_CALLS + 1):
        progress(current=n, total=PROGRESS_CALLS)
    _rq_done()
    return PROGRESS_CALLS


def _rq(redis_url: str, name: str, store: Store | None) -> Bench:
    from redis import Redis
    from rq import Queue

    from jobstatus.integrations.rq import record_jobs

    global _rq_done
    _rq_done = _done_counter(redis_url, name)
    connection = Redis.from_url(redis_url)
    queue = Queue(name, connection=connection)
    if store is not None:
        record_jobs(queue, store)
    return Bench(
        lambda n: str(queue.enqueue(rq_work, n).id),
        lambda: str(queue.enqueue(rq_chatty).id),
        connection.close,
        queue,
    )


def _dramatiq(
    redis_url: str, name: str, store: Store | None, work: Callable[..., Any], chatty: Any
) -> Bench:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from jobstatus.integrations.dramatiq import JobStatusMiddleware

    broker = RedisBroker(url=redis_url, namespace=name)
    if store is not None:
        broker.add_middleware(JobStatusMiddleware(store))
    work_actor = dramatiq.actor(work, actor_name="work", broker=broker, max_retries=0)
    chatty_actor = dramatiq.actor(chatty, actor_name="chatty", broker=broker, max_retries=0)
    dramatiq.set_broker(broker)
    return Bench(
        lambda n: str(work_actor.send(n).message_id),
        lambda: str(chatty_actor.send().message_id),
        broker.close,
        broker,
    )


def store_for(url: str | None, counts: str | None) -> Store | None:
    if url is None:
        return None
    store = open_store(url)
    return store if counts is None else CountingStore(store, counts)  # type: ignore[return-value]


if "JOBSTATUS_BENCH_KIND" in os.environ:  # in a worker
    _bench = build(
        os.environ["JOBSTATUS_BENCH_KIND"],
        os.environ["JOBSTATUS_BENCH_REDIS"],
        os.environ["JOBSTATUS_BENCH_QUEUE"],
        store_for(
            os.environ.get("JOBSTATUS_BENCH_STORE"), os.environ.get("JOBSTATUS_BENCH_COUNTS")
        ),
    )
    app = broker = _bench.app  # what `celery -A` and `dramatiq` look for
