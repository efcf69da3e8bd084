"""The watcher behind long-polls: one store read per change whatever the number of waiters,
one query per poll without notification, deadlines kept when the store fails, no thread held
under ASGI, waiters freed when clients leave, and the cap on thread-holding waits.

Synchronisation is by conditions the code under test makes true (the watcher's count of
waiters, a request's thread finishing), never by sleeping for a while.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobstatus import JobRecord, StatusService, StorageError
from jobstatus.backends.memory import MemoryStore
from jobstatus.watch import GONE, Watcher, watcher_for
from jobstatus.wire import Request
from tests.clients import asgi_scope

KEY = "watch-key"
JOB = "/v1/toolkit/jobs/"


class CountingStore(MemoryStore):
    """A memory store that counts reads and can be told to fail them."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.lists = 0
        self.broken = False

    def get(self, job_id: str) -> JobRecord:
        self.gets += 1
        if self.broken:
            raise StorageError("the database is down")
        return super().get(job_id)

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        self.lists += 1
        if self.broken:
            raise StorageError("the database is down")
        return super().list(**filters)


class PolledStore(CountingStore):
    """The same, without change notification: the watcher must poll it."""

    def __getattribute__(self, name: str) -> Any:
        if name == "subscribe":
            raise AttributeError(name)
        return super().__getattribute__(name)


def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.002)


def jobs(store: MemoryStore, count: int) -> list[JobRecord]:
    return [store.put(JobRecord(job_id=f"job-{n}", job_status="running")) for n in range(count)]


def wait_on(watcher: Watcher, record: JobRecord) -> Any:
    waiter = watcher.watch(record.job_id)
    waiter.expect(record, lambda version: version == record.version)
    return waiter


# -- the watcher ----------------------------------------------------------------------------


def test_one_change_is_one_store_read_for_all_its_waiters() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    watcher = Watcher(store)
    waiters = [wait_on(watcher, record) for _ in range(200)]
    assert watcher.notified
    assert watcher.waiting == 200
    before = store.gets
    changed = store.put(JobRecord(job_id=record.job_id, job_status="done"))
    for waiter in waiters:
        assert waiter.wait(20)
        assert waiter.current.version == changed.version
    assert store.gets - before == 1  # one read, two hundred answers
    assert watcher.queries == 1
    for waiter in waiters:
        waiter.close()
    assert watcher.waiting == 0


def test_each_change_is_one_read_whatever_the_number_of_jobs() -> None:
    store = CountingStore()
    records = jobs(store, 100)
    watcher = Watcher(store)
    waiters = [wait_on(watcher, record) for record in records]
    before = store.gets
    for record in records:
        store.put(JobRecord(job_id=record.job_id, job_status="done"))
    assert all(waiter.wait(20) for waiter in waiters)
    assert store.gets - before == 100


def test_a_deleted_job_wakes_its_waiters_with_gone() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    waiter = wait_on(Watcher(store), record)
    store.delete(record.job_id)
    assert waiter.wait(20)
    assert waiter.current is GONE


def test_without_notification_one_query_per_poll_serves_every_waiter() -> None:
    store = PolledStore()
    records = jobs(store, 50)
    watcher = Watcher(store, poll_interval=0.01)
    waiters = [wait_on(watcher, record) for record in records]
    assert not watcher.notified
    gets = store.gets
    for record in records:
        store.put(JobRecord(job_id=record.job_id, job_status="done"))
    assert all(waiter.wait(20) for waiter in waiters)
    assert store.gets == gets  # no read per waiter: only the polls
    assert store.lists == watcher.queries >= 1


def test_a_change_before_the_read_is_not_missed() -> None:
    """Registered, then changed, then read: the waiter compares with the newer read."""
    store = CountingStore()
    (record,) = jobs(store, 1)
    watcher = Watcher(store)
    waiter = watcher.watch(record.job_id)
    newer = store.put(JobRecord(job_id=record.job_id, job_status="running", response=1))
    until(lambda: watcher.queries == 1, "the watcher read the change")
    waiter.expect(newer, lambda version: version == newer.version)  # the service read it
    assert not waiter.wait(0.05)  # nothing changed since the read: no answer
    store.put(JobRecord(job_id=record.job_id, job_status="done"))
    assert waiter.wait(20)


def test_the_watcher_remembers_no_version_a_change_superseded() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    watcher = Watcher(store)
    token = watcher.token()
    store.put(JobRecord(job_id=record.job_id, job_status="done"))  # a change after the token
    watcher.remember(record, token)  # the older read arrives late
    assert watcher.known(record.job_id) is None
    fresh = store.get(record.job_id)
    watcher.remember(fresh, watcher.token())
    assert watcher.known(record.job_id) == fresh


def test_deadlines_hold_while_the_store_fails_and_the_watcher_recovers() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    service = StatusService(store, api_keys=None, job_id_pattern=r".*")
    etag = f'"{record.version}"'

    def held_get(wait: float) -> Any:
        request = Request("GET", JOB + record.job_id, query=f"wait={wait}", if_none_match=etag)
        return service.respond(request)

    pending = held_get(0.2)
    store.broken = True
    store.put(JobRecord(job_id=record.job_id, job_status="running", response=1))  # unreadable
    assert pending.result().status == 304  # at its deadline, whatever the store does
    store.broken = False
    changed = store.put(JobRecord(job_id=record.job_id, job_status="done"))
    etag = f'"{store.get(record.job_id).version}"'
    assert etag != f'"{record.version}"'
    record = changed
    pending = held_get(20)
    store.put(JobRecord(job_id=record.job_id, job_status="done", response=2), force=True)
    reply = pending.result()
    assert reply.status == 200
    assert reply.parsed()["response"]["response"] == 2


def test_one_watcher_per_store_and_process() -> None:
    store = MemoryStore()
    assert watcher_for(store) is watcher_for(store)
    assert watcher_for(store) is not watcher_for(MemoryStore())
    one = StatusService(store, api_keys=None)
    two = StatusService(store, api_keys=None)
    assert one.watcher is two.watcher is watcher_for(store)


# -- waits through the service ----------------------------------------------------------------


def test_past_max_waiters_a_wait_answers_at_once() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    service = StatusService(store, api_keys=None, job_id_pattern=r".*", max_waiters=2)
    body = json.dumps({"job_id": record.job_id, "wait": 20}).encode()
    answers: list[Any] = []
    held = [
        threading.Thread(
            target=lambda: answers.append(service.handle("/v1/toolkit/job/status", body, None))
        )
        for _ in range(2)
    ]
    for thread in held:
        thread.start()
    until(lambda: service.wait_limits.held(blocking=True) == 2, "two requests hold threads")
    third = service.handle("/v1/toolkit/job/status", body, None)  # over the cap: at once
    assert third.status == 200
    assert answers == []  # the two others still wait
    store.put(JobRecord(job_id=record.job_id, job_status="done"))
    for thread in held:
        thread.join(20)
    assert [answer.parsed()["response"]["job_status"] for answer in answers] == ["done"] * 2
    assert service.wait_limits.held(blocking=True) == 0


# -- ASGI: no thread held, and a client that leaves frees its waiter -------------------------


def asgi_get(app: Any, path: str, query: str, etag: str, leave: asyncio.Event) -> Any:
    """One GET to ``app``; the client disconnects once ``leave`` is set."""
    sent: list[dict[str, Any]] = []
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"x-api-key", KEY.encode()), (b"if-none-match", etag.encode())]
    return app(asgi_scope("GET", path, query.encode(), headers), receive, send), sent


def fastapi_app(service: StatusService) -> Any:
    fastapi = pytest.importorskip("fastapi")
    from jobstatus.adapters.fastapi import make_router

    app = fastapi.FastAPI()
    app.include_router(make_router(service))
    return app


@pytest.mark.extras
@pytest.mark.slow
def test_ten_thousand_abandoned_waits_leave_no_waiter() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    service = StatusService(store, api_keys=[KEY], job_id_pattern=r".*")
    app = fastapi_app(service)
    count = 10_000
    threads_before = threading.active_count()

    async def main() -> int:
        leave = asyncio.Event()
        calls = [
            asgi_get(app, JOB + record.job_id, "wait=30", f'"{record.version}"', leave)
            for _ in range(count)
        ]
        tasks = [asyncio.ensure_future(call) for call, _ in calls]
        while service.watcher.waiting < count:  # every request is waiting now
            assert not any(task.done() for task in tasks[:10])
            await asyncio.sleep(0.01)
        threads = threading.active_count()
        leave.set()  # every client goes away
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return threads

    threads_while_waiting = asyncio.run(main())
    assert service.watcher.waiting == 0
    assert service.wait_limits.held(blocking=False) == 0
    # ten thousand waits, and the thread count is the thread pool's, not one per wait
    assert threads_while_waiting - threads_before < 100


@pytest.mark.extras
def test_an_asgi_wait_is_answered_from_the_event_loop() -> None:
    store = CountingStore()
    (record,) = jobs(store, 1)
    service = StatusService(store, api_keys=[KEY], job_id_pattern=r".*")
    app = fastapi_app(service)

    async def main() -> list[dict[str, Any]]:
        leave = asyncio.Event()
        call, sent = asgi_get(app, JOB + record.job_id, "wait=30", f'"{record.version}"', leave)
        task = asyncio.ensure_future(call)
        while service.watcher.waiting < 1:
            await asyncio.sleep(0.002)
        await asyncio.to_thread(store.put, JobRecord(job_id=record.job_id, job_status="done"))
        await asyncio.wait_for(task, 20)
        leave.set()
        return sent

    sent = asyncio.run(main())
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body)["response"]["job_status"] == "done"
    assert service.watcher.waiting == 0
