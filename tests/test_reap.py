"""Heartbeats and the reaper: a job whose worker died does not stay ``running`` for ever."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobstatus import Conflict, JobRecord, JobTracker, open_store
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import ExpectedVersion, Store

ENDPOINT = "/v1/media/transcribe"


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_a_quiet_run_writes_heartbeats() -> None:
    store = MemoryStore()
    tracker = JobTracker(store, heartbeat_interval=0.05)
    release = threading.Event()
    stamps: list[float] = []

    def work() -> None:
        with tracker.run(endpoint=ENDPOINT) as run:
            stamps.append(store.get(run.job_id).updated_at or 0.0)
            release.wait(20)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        wait_for(lambda: bool(stamps))
        job_id = next(iter(store.list())).job_id
        wait_for(lambda: (store.get(job_id).updated_at or 0.0) > stamps[0])
        beat = store.get(job_id)
        assert beat.job_status == "running"
        assert beat.started_at is not None
    finally:
        release.set()
        worker.join()
    assert store.get(job_id).job_status == "done"


def test_a_heartbeat_carries_progress_held_back() -> None:
    store = MemoryStore()
    tracker = JobTracker(store, progress_interval=3600, heartbeat_interval=0.05)
    with tracker.run(endpoint=ENDPOINT) as run:
        run.progress(percent=1)
        run.progress(percent=42)  # held back by the interval
        wait_for(lambda: getattr(store.get(run.job_id).progress, "percent", None) == 42)


def test_reap_fails_stale_running_jobs_only() -> None:
    store = MemoryStore()
    old = time.time() - 600
    store.restore(
        [
            JobRecord(job_id="lost", job_status="running", updated_at=old),
            JobRecord(job_id="queued-long-ago", job_status="queued", updated_at=old),
            JobRecord(job_id="alive", job_status="running"),
        ]
    )
    tracker = JobTracker(store)
    assert tracker.reap(stale_after=300, dry_run=True) == 1
    assert store.get("lost").job_status == "running"
    assert tracker.reap(stale_after=300) == 1
    lost = store.get("lost")
    assert lost.job_status == "failed"
    assert lost.response["code"] == 500
    assert lost.response["message"].startswith("worker lost: no heartbeat since 20")
    assert lost.ended_at is not None
    assert store.get("alive").job_status == "running"
    assert store.get("queued-long-ago").job_status == "queued"
    assert tracker.reap(stale_after=300) == 0
    with pytest.raises(ValueError):
        tracker.reap(stale_after=0)


class WorkerComesBack(MemoryStore):
    """Just before the reaper's conditional write, the 'lost' worker finishes the job."""

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        if record.job_status == "failed" and expect_version is not None:
            super().put(JobRecord(job_id=record.job_id, job_status="done", response="late"))
        return super().put(record, force=force, expect_version=expect_version)


def test_a_worker_that_comes_back_first_wins() -> None:
    store = WorkerComesBack()
    store.restore([JobRecord(job_id="slow", job_status="running", updated_at=time.time() - 600)])
    assert JobTracker(store).reap(stale_after=60) == 0
    assert (store.get("slow").job_status, store.get("slow").response) == ("done", "late")
    with pytest.raises(Conflict):
        store.put(JobRecord(job_id="slow", job_status="failed"), expect_version="stale")


# -- real workers, killed --------------------------------------------------------------------------


def _worker(url: str, job_id: str, ready: Any) -> None:
    """Run one job for ever, heartbeating every 50 ms, until killed."""
    with open_store(url) as store:
        tracker = JobTracker(store, heartbeat_interval=0.05)
        with tracker.run(job_id, endpoint=ENDPOINT):
            ready.set()
            while True:
                time.sleep(1)


@pytest.fixture(
    params=["filesystem", pytest.param("sqlite", marks=pytest.mark.extras)],
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "filesystem":
        return f"file://{tmp_path}"
    pytest.importorskip("sqlalchemy")
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.mark.slow
def test_a_killed_worker_is_reaped_and_a_live_one_is_not(url: str) -> None:
    context = multiprocessing.get_context("spawn")
    processes = {}
    for name in ("killed", "alive"):
        ready = context.Event()
        process = context.Process(target=_worker, args=(url, name, ready), daemon=True)
        process.start()
        assert ready.wait(60), f"the {name} worker did not start"
        processes[name] = process
    try:
        assert processes["killed"].pid is not None
        os.kill(processes["killed"].pid, signal.SIGKILL)
        processes["killed"].join(10)
        store: Store
        with open_store(url) as store:
            killed_at = store.get("killed").updated_at or 0.0
            # the dead worker's heartbeat stops; the live one's goes on
            wait_for(lambda: time.time() - killed_at > 1.0)
            assert store.get("killed").updated_at == killed_at
            reaped = JobTracker(store).reap(stale_after=1.0)
            assert reaped == 1
            assert store.get("killed").job_status == "failed"
            assert store.get("alive").job_status == "running"
    finally:
        for process in processes.values():
            process.kill()
            process.join(10)


def test_the_reap_command(tmp_path: Path) -> None:
    from tests.cli_run import cli

    url = str(tmp_path / "data")
    with open_store(url) as store:
        store.restore(
            [
                JobRecord(job_id="lost-1", job_status="running", updated_at=time.time() - 900),
                JobRecord(job_id="lost-2", job_status="running", updated_at=time.time() - 900),
                JobRecord(job_id="alive", job_status="running"),
            ]
        )
    assert cli("reap", "--store", url, "--stale-after", "5m", "--dry-run") == (
        0,
        "would fail 2 lost jobs\n",
        "",
    )
    code, out, err = cli("reap", "--store", url, "--stale-after", "5m", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"reaped": 2, "dry_run": False}
    with open_store(url) as store:
        assert {r.job_id: r.job_status for r in store.list()} == {
            "lost-1": "failed",
            "lost-2": "failed",
            "alive": "running",
        }
    with pytest.raises(SystemExit) as usage:
        cli("reap", "--store", url)
    assert usage.value.code == 2
    missing = cli("reap", "--store", str(tmp_path / "nowhere"), "--stale-after", "5m")
    assert missing[0] == 1
    assert "store does not exist" in missing[2]
