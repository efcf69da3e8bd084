"""``tracker.submit_to(executor, fn, ...)``: a thread pool, a process pool (the work and its
records in the child), FastAPI's BackgroundTasks through CallLater, and every way a future can
end without the function recording it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, JobTracker, Progress, open_store
from jobstatus.executor import CallLater
from jobstatus.integrations import progress
from jobstatus.store import Store


def add(x: int, y: int) -> int:
    return x + y


def count_words(text: str, *, report: bool = False) -> dict[str, int]:
    words = text.split()
    for n, _ in enumerate(words, 1):
        if report:
            progress(current=n, total=len(words))
    return {"words": len(words), "pid": os.getpid()}


def refuse(url: str) -> None:
    raise PermissionError(f"refused by {url}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(str(tmp_path / "jobs")) as opened:
        yield opened


def test_a_thread_pool_records_the_whole_life(store: Store) -> None:
    tracker = JobTracker(store, build_number="3", progress_interval=0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        ok = tracker.submit_to(pool, count_words, "to be or not", report=True)
        bad = tracker.submit_to(pool, refuse, "https://user:pw@api.example", endpoint="/v1/x")
    done, failed = store.get(ok), store.get(bad)
    assert done.job_status == "done"
    assert done.response["response"] == {"words": 4, "pid": os.getpid()}
    assert done.response["endpoint"] == f"{__name__}.count_words"
    assert done.progress == Progress(current=4, total=4)
    assert done.created_at is not None
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.created_at <= done.started_at <= done.ended_at
    assert failed.job_status == "failed"
    assert failed.response["endpoint"] == "/v1/x"
    assert failed.response["message"] == "refused by https://user:***@api.example"
    assert tracker.queue_length == 0


def test_a_process_pool_runs_and_records_the_job_in_the_child(store: Store) -> None:
    tracker = JobTracker(store, queue_id=11)
    with ProcessPoolExecutor(max_workers=1) as pool:
        ok = tracker.submit_to(pool, add, 2, 3)
        bad = tracker.submit_to(pool, refuse, "ftp://host")
    done, failed = store.get(ok), store.get(bad)
    assert (done.job_status, done.response["response"]) == ("done", 5)
    assert done.process_id != os.getpid()  # written where the work ran
    assert done.queue_id == 11
    assert done.response["endpoint"] == f"{__name__}.add"
    assert failed.job_status == "failed"
    assert failed.response["message"] == "refused by ftp://host"
    assert tracker.queue_length == 0  # the parent no longer counts them as waiting


def test_a_call_that_cannot_be_pickled_records_failed(store: Store) -> None:
    tracker = JobTracker(store)
    with ProcessPoolExecutor(max_workers=1) as pool:
        job_id = tracker.submit_to(pool, add, 1, threading.Lock())  # a lock does not pickle
    failed = store.get(job_id)
    assert failed.job_status == "failed"
    assert "pickle" in failed.response["message"]


def test_a_memory_store_cannot_follow_work_into_a_process_pool() -> None:
    store = open_store("memory://")
    tracker = JobTracker(store)
    with ProcessPoolExecutor(max_workers=1) as pool:
        job_id = tracker.submit_to(pool, add, 1, 2)
    failed = store.get(job_id)
    assert failed.job_status == "failed"
    assert "lives in one process" in failed.response["message"]


def test_futures_cancelled_before_they_start_record_cancelled(store: Store) -> None:
    tracker = JobTracker(store)
    go = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    first = tracker.submit_to(pool, go.wait, 30)
    waiting = tracker.submit_to(pool, add, 1, 2)
    pool.shutdown(wait=False, cancel_futures=True)
    go.set()
    pool.shutdown(wait=True)
    assert store.get(first).job_status == "done"
    cancelled = store.get(waiting)
    assert (cancelled.job_status, cancelled.response["code"]) == ("cancelled", 499)


def test_a_job_cancelled_while_it_waits_is_skipped(store: Store) -> None:
    tracker = JobTracker(store)
    go = threading.Event()
    called: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        tracker.submit_to(pool, go.wait, 30)
        waiting = tracker.submit_to(pool, called.append, 1)
        cancelled = tracker.cancel(waiting)
        go.set()
    assert called == []
    assert store.get(waiting).to_dict() == cancelled.to_dict()


def test_an_executor_that_refuses_the_call_records_failed_and_raises(store: Store) -> None:
    tracker = JobTracker(store)
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shutdown"):
        tracker.submit_to(pool, add, 1, 2)
    (record,) = store.list()
    assert record.job_status == "failed"
    assert "shutdown" in record.response["message"]
    assert tracker.queue_length == 0


def test_call_later_schedules_through_any_add_task(store: Store) -> None:
    tracker = JobTracker(store)
    later: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    job_id = tracker.submit_to(CallLater(lambda fn, *a, **k: later.append((fn, a, k))), add, 4, 5)
    assert store.get(job_id).job_status == "queued"
    fn, args, kwargs = later.pop()
    assert fn(*args, **kwargs) == 9
    assert store.get(job_id).response["response"] == 9


@pytest.mark.extras
def test_fastapi_background_tasks_run_the_job_after_the_answer(store: Store) -> None:
    import asyncio

    import httpx

    from tests.apps.background_app import make_app

    app = make_app(JobTracker(store))

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/v1/count", params={"text": "one two three"})

    answer = asyncio.run(post())
    assert answer.status_code == 202
    body = answer.json()
    assert body["job_status"] == "queued"  # as the client was told
    record: JobRecord = store.get(body["job_id"])
    assert record.job_status == "done"  # the background task ran after the answer
    assert record.response["response"]["words"] == 3
