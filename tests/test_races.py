"""Several processes write ``running`` while one writes ``done``: the job ends ``done``.

Threads share one store object; these are separate processes, each with its own store opened
from the URL, so only the backend's own atomic check (a lock, a conditional statement, a
conditional write) can keep a finished job finished. Memory is per process, so it is not here.
"""

from __future__ import annotations

import multiprocessing
import queue
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from jobstatus import Conflict, JobRecord, open_store
from tests.conftest import service_unavailable

RUNNERS = 4
JOBS = 12  # races per test: a read-then-write window shows up in one of them
EARLY_RUNNING_WRITES = 3  # the finisher writes "running" a few times before "done"
SEEN_DONE = 3  # a runner moves on once its "running" was refused this many times
#: A bound on a race, never reached while the processes run: a store that hangs fails the test.
CAP_SECONDS = 300.0


class Target(NamedTuple):
    url: str
    options: dict[str, Any]


def _runner(target: Target, prefix: str, start: Any, finished: Any, results: Any) -> None:
    """Write "running" to each job until the store has refused it SEEN_DONE times. Once the
    finisher has written "done" everywhere, every write must be refused: a store that takes
    one more "running" then ends the job's count short (the test fails), it never loops on."""
    refused_per_job = []
    cap = time.monotonic() + CAP_SECONDS
    with open_store(target.url, **target.options) as store:
        start.wait(60)
        for job in range(JOBS):
            record = JobRecord(
                job_id=f"{prefix}-{job}", job_status="running", response={"writer": "runner"}
            )
            refused = 0
            while refused < SEEN_DONE and time.monotonic() < cap:
                done_everywhere = finished.is_set()  # before the write: "done" is stored
                if store.put(record).job_status == "done":
                    refused += 1
                elif done_everywhere:
                    break  # "running" taken over a finished job
            refused_per_job.append(refused)
    results.put(("runner", refused_per_job))


def _finisher(target: Target, prefix: str, start: Any, finished: Any, results: Any) -> None:
    with open_store(target.url, **target.options) as store:
        start.wait(60)
        for job in range(JOBS):
            job_id = f"{prefix}-{job}"
            for _ in range(EARLY_RUNNING_WRITES):
                store.put(JobRecord(job_id=job_id, job_status="running"))
            store.put(JobRecord(job_id=job_id, job_status="done", response={"writer": "done"}))
    finished.set()
    results.put(("finisher", []))


def collect(results: Any, processes: list[Any]) -> list[Any]:
    """One result from each of ``processes``; fails as soon as one of them has died without
    giving its result, rather than waiting for it."""
    got: list[Any] = []
    cap = time.monotonic() + CAP_SECONDS + 60
    while len(got) < len(processes):
        try:
            got.append(results.get(timeout=0.5))
        except queue.Empty:
            codes = [p.exitcode for p in processes]
            assert not any(code not in (None, 0) for code in codes), f"exit codes {codes}"
            assert time.monotonic() < cap, "the processes never gave their results"
    return got


def race(target: Target) -> list[list[int]]:
    """Run the race in RUNNERS + 1 fresh processes; return each runner's refusals per job."""
    context = multiprocessing.get_context("spawn")
    start, finished, results = context.Event(), context.Event(), context.Queue()
    prefix = f"race-{uuid.uuid4().hex[:12]}"
    args = (target, prefix, start, finished, results)
    processes = [context.Process(target=_runner, args=args) for _ in range(RUNNERS)]
    processes.append(context.Process(target=_finisher, args=args))
    for process in processes:
        process.start()
    start.set()
    reports = collect(results, processes)
    for process in processes:
        process.join(30)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    with open_store(target.url, **target.options) as store:
        for job in range(JOBS):
            got = store.get(f"{prefix}-{job}")
            assert (got.job_status, got.response) == ("done", {"writer": "done"}), job
    return [refused for kind, refused in reports if kind == "runner"]


# -- the stores --------------------------------------------------------------------------------


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _sql_target(url: str, port: int | None) -> Iterator[Target]:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    if port is not None and not _reachable(port):
        service_unavailable(f"no database server on 127.0.0.1:{port}")
    table = f"race_{uuid.uuid4().hex[:10]}"
    yield Target(url, {"table_name": table})
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        "filesystem",
        pytest.param("sqlite", marks=pytest.mark.extras),
        pytest.param("postgresql", marks=[pytest.mark.extras, pytest.mark.services]),
        pytest.param("mariadb", marks=[pytest.mark.extras, pytest.mark.services]),
        pytest.param("s3", marks=[pytest.mark.extras, pytest.mark.services]),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    kind = request.param
    if kind == "filesystem":
        yield Target(f"file://{tmp_path}", {})
    elif kind == "sqlite":
        yield from _sql_target(f"sqlite:///{tmp_path / 'race.db'}", None)
    elif kind == "postgresql":
        yield from _sql_target("postgresql+psycopg://postgres@127.0.0.1:5432/test", 5432)
    elif kind == "mariadb":
        yield from _sql_target("mysql+pymysql://root@127.0.0.1:3306/test", 3306)
    else:
        yield Target(request.getfixturevalue("s3_store_url"), {})


def test_late_running_writes_from_other_processes_never_undo_done(target: Target) -> None:
    refusals = race(target)
    assert len(refusals) == RUNNERS
    # Every runner kept writing "running" after "done" landed, and was refused each time:
    # the race really happened, on every job.
    assert all(refused == [SEEN_DONE] * JOBS for refused in refusals), refusals


# -- read → modify → put(expect_version=) from many processes ------------------------------------

MARKERS = 4
MARKS = 12  # per process
MAX_TRIES = 5_000  # per mark: a store whose versions never settle fails, not hangs


def _marker(target: Target, job_id: str, worker: int, start: Any, results: Any) -> None:
    """Add this worker's marks to the job's list, each by read → modify → conditional put."""
    conflicts = 0
    with open_store(target.url, **target.options) as store:
        start.wait(60)
        for n in range(MARKS):
            for _ in range(MAX_TRIES):
                seen = store.get(job_id)
                marks = [*seen.response, f"{worker}-{n}"]
                try:
                    store.put(
                        JobRecord(job_id=job_id, job_status="running", response=marks),
                        expect_version=seen.version,
                    )
                    break
                except Conflict:
                    conflicts += 1
    results.put(conflicts)


def test_conditional_writes_from_other_processes_lose_no_update(target: Target) -> None:
    job_id = f"marks-{uuid.uuid4().hex[:12]}"
    with open_store(target.url, **target.options) as store:
        store.put(JobRecord(job_id=job_id, job_status="running", response=[]))
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_marker, args=(target, job_id, worker, start, results))
        for worker in range(MARKERS)
    ]
    for process in processes:
        process.start()
    start.set()
    conflicts = collect(results, processes)
    for process in processes:
        process.join(30)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    with open_store(target.url, **target.options) as store:
        marks = store.get(job_id).response
    assert sorted(marks) == sorted(f"{w}-{n}" for w in range(MARKERS) for n in range(MARKS))
    print(f"FIGURES version race {target.url.split(':')[0]}: conflicts={sum(conflicts)}")
