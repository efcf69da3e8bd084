"""The job's whole life through JobTracker: timestamps, progress, cancel, expiry.

Each test runs on the memory store and on the filesystem store; the conformance suite
(jobstatus.testing) proves the store side on every backend.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jobstatus import (
    JobCancelled,
    JobNotFound,
    JobRecord,
    JobState,
    JobTracker,
    Progress,
    open_store,
)
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import ExpectedVersion, Store
from jobstatus.testing.suite import UPSTREAM_EXAMPLE

ENDPOINT = "/v1/media/transcribe"


class CountingStore(MemoryStore):
    """A memory store that counts the writes it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[JobRecord] = []

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        self.writes.append(record)
        return super().put(record, force=force, expect_version=expect_version)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "data")
    with open_store(url) as opened:
        yield opened


# -- timestamps -----------------------------------------------------------------------------------


def test_submit_run_and_end_are_stamped_in_order(store: Store) -> None:
    tracker = JobTracker(store)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    job_id = tracker.submit(endpoint=ENDPOINT)
    queued = store.get(job_id)
    with tracker.run(job_id):
        running = store.get(job_id)
    done = store.get(job_id)
    assert queued.created_at is not None
    assert queued.created_at >= before
    assert (queued.started_at, queued.ended_at) == (None, None)
    assert running.created_at == queued.created_at
    assert running.started_at is not None
    assert running.ended_at is None
    assert done.created_at == queued.created_at
    assert done.started_at == running.started_at
    assert done.ended_at is not None
    assert queued.created_at <= running.started_at <= done.ended_at


def test_a_run_without_submit_was_created_when_it_started(store: Store) -> None:
    with JobTracker(store).run(endpoint=ENDPOINT) as run:
        pass
    record = store.get(run.job_id)
    assert record.created_at == record.started_at
    assert record.ended_at is not None


def test_a_job_submitted_elsewhere_keeps_its_created_at_and_owner(store: Store) -> None:
    job_id = JobTracker(store, owner="alice").submit(endpoint=ENDPOINT)
    created = store.get(job_id).created_at
    with JobTracker(store).run(job_id, endpoint=ENDPOINT):
        pass
    record = store.get(job_id)
    assert (record.created_at, record.owner, record.job_status) == (created, "alice", "done")


def test_an_upstream_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    path = jobs / f"{UPSTREAM_EXAMPLE['job_id']}.json"
    original = json.dumps(UPSTREAM_EXAMPLE, indent=2).encode()
    path.write_bytes(original)
    store = open_store(str(tmp_path))
    record = store.get(UPSTREAM_EXAMPLE["job_id"])
    assert record.to_json().encode() == original
    store.put(record, force=True)
    assert path.read_bytes() == original


# -- progress -------------------------------------------------------------------------------------


def test_progress_is_written_at_most_once_per_interval_and_never_lost() -> None:
    store = CountingStore()
    tracker = JobTracker(store, progress_interval=3600)
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        for n in range(1, 10_001):
            run.progress(current=n, total=10_000, message=f"item {n}")
        assert store.get(job_id).progress == Progress(current=1, total=10_000, message="item 1")
    statuses = [w.job_status for w in store.writes]
    assert statuses == ["queued", "running", "running", "done"]
    final = store.get(job_id)
    assert final.progress == Progress(current=10_000, total=10_000, message="item 10000")


def test_a_tracked_job_without_progress_costs_three_writes() -> None:
    store = CountingStore()
    tracker = JobTracker(store)
    with tracker.run(tracker.submit(endpoint=ENDPOINT)) as run:
        run.result = "ok"
    assert [w.job_status for w in store.writes] == ["queued", "running", "done"]


def test_progress_interval_zero_writes_every_call(store: Store) -> None:
    tracker = JobTracker(store, progress_interval=0)
    with tracker.run(endpoint=ENDPOINT) as run:
        for percent in (10, 20.5, 30):
            run.progress(percent=percent)
            assert store.get(run.job_id).progress == Progress(percent=percent)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"percent": 140}, "between 0 and 100"),
        ({"percent": -1}, "between 0 and 100"),
        ({"percent": float("nan")}, "between 0 and 100"),
        ({"percent": True}, "must be a number"),
        ({"percent": "50"}, "must be a number"),
        ({"current": 5, "total": 4}, "exceeds total"),
        ({"current": -1}, "non-negative integer"),
        ({"total": 2.5}, "non-negative integer"),
        ({"message": 7}, "must be a string"),
    ],
)
def test_bad_progress_is_refused_at_the_writer(
    store: Store, fields: dict[str, Any], complaint: str
) -> None:
    tracker = JobTracker(store, progress_interval=0)
    with tracker.run(endpoint=ENDPOINT) as run:
        with pytest.raises(ValueError, match=complaint):
            run.progress(**fields)
        run.progress(percent=1)
    assert store.get(run.job_id).progress == Progress(percent=1)


def test_bad_lifecycle_values_never_reach_a_store() -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        JobRecord(job_id="j", job_status="running", started_at=naive)
    with pytest.raises(ValueError, match="owner"):
        JobRecord(job_id="j", job_status="running", owner="")
    with pytest.raises(ValueError, match="between 0 and 100"):
        JobRecord(job_id="j", job_status="running", progress={"percent": 140})
    with pytest.raises(ValueError, match="both"):
        JobRecord(job_id="j", job_status="x", owner="a", extra={"owner": "b"})


def test_values_other_writers_stored_are_kept_as_they_are() -> None:
    doc = {
        "job_status": "running",
        "job_id": "j",
        "created_at": 1_700_000_000,
        "progress": "half-way",
        "owner": "",
        "started_at": "2026-11-30T03:06:31.123Z",
    }
    record = JobRecord.from_dict(doc)
    assert record.created_at is None
    assert record.progress is None
    assert record.started_at == datetime(2026, 11, 30, 3, 6, 31, 123000, tzinfo=timezone.utc)
    assert record.to_dict()["created_at"] == 1_700_000_000
    assert record.to_dict()["progress"] == "half-way"
    assert record.to_dict()["owner"] == ""


# -- cancel ---------------------------------------------------------------------------------------


def test_a_queued_job_is_cancelled_at_once_and_never_runs(store: Store) -> None:
    tracker = JobTracker(store, build_number="7")
    job_id = tracker.submit(endpoint=ENDPOINT, id="client-1")
    cancelled = tracker.cancel(job_id)
    assert cancelled.job_status == JobState.CANCELLED
    assert cancelled.ended_at is not None
    assert cancelled.response["code"] == 499
    assert cancelled.response["message"] == "cancelled"
    assert cancelled.response["endpoint"] == ENDPOINT
    assert cancelled.response["id"] == "client-1"
    assert tracker.queue_length == 0
    with tracker.run(job_id, endpoint=ENDPOINT) as run:
        assert run.already_final
    assert store.get(job_id).to_dict() == cancelled.to_dict()


def test_a_running_job_is_asked_to_stop_and_records_cancelled(store: Store) -> None:
    tracker = JobTracker(store, progress_interval=0)
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        run.progress(percent=10)
        asked = tracker.cancel(job_id)
        assert asked.job_status == "running"
        assert asked.cancel_requested_at is not None
        assert asked.progress == Progress(percent=10)
        assert not run.cancel_requested
        run.progress(percent=20)  # the write conflicts, reads the request, keeps it
        assert run.cancel_requested
        stored = store.get(job_id)
        assert stored.cancel_requested_at == asked.cancel_requested_at
        assert stored.progress == Progress(percent=20)
        run.result = "finished anyway"
    final = store.get(job_id)
    assert final.job_status == "cancelled"
    assert final.response["code"] == 499
    assert final.cancel_requested_at == asked.cancel_requested_at
    assert final.progress == Progress(percent=20)


def test_check_cancelled_ends_the_block_quietly(store: Store) -> None:
    tracker = JobTracker(store)
    job_id = tracker.submit(endpoint=ENDPOINT)
    reached_the_end = False
    with tracker.run(job_id) as run:
        run.check_cancelled()  # nothing asked yet: returns
        tracker.cancel(job_id)
        run.check_cancelled()
        reached_the_end = True  # pragma: no cover - check_cancelled raised
    assert not reached_the_end
    assert store.get(job_id).job_status == "cancelled"


def test_a_cancel_from_another_job_is_not_swallowed(store: Store) -> None:
    tracker = JobTracker(store)
    with pytest.raises(JobCancelled), tracker.run(endpoint=ENDPOINT) as run:
        raise JobCancelled("some-other-job")
    assert store.get(run.job_id).job_status == "failed"


def test_cancelling_a_final_or_unknown_job(store: Store) -> None:
    tracker = JobTracker(store)
    with tracker.run(endpoint=ENDPOINT) as run:
        run.result = 42
    done = store.get(run.job_id)
    assert tracker.cancel(run.job_id).to_dict() == done.to_dict()
    assert store.get(run.job_id).job_status == "done"
    with pytest.raises(JobNotFound):
        tracker.cancel("no-such-job")


def test_progress_writes_never_overwrite_a_cancel_request(store: Store) -> None:
    tracker = JobTracker(store, progress_interval=0)
    job_id = tracker.submit(endpoint=ENDPOINT)
    stop = threading.Event()

    def report() -> None:
        with tracker.run(job_id) as run:
            n = 0
            while not run.cancel_requested and not stop.is_set():
                n = (n + 1) % 100
                run.progress(percent=n)

    worker = threading.Thread(target=report)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while store.get(job_id).job_status != "running" and time.monotonic() < deadline:
            time.sleep(0.001)
        tracker.cancel(job_id)
    finally:
        worker.join(timeout=10)
        stop.set()
        worker.join()
    final = store.get(job_id)
    assert final.job_status == "cancelled"
    assert final.cancel_requested_at is not None


# -- expiry ---------------------------------------------------------------------------------------


def test_ttls_set_expires_at_per_outcome(store: Store) -> None:
    tracker = JobTracker(store, result_ttl=3600, failure_ttl=60.5)
    with tracker.run(endpoint=ENDPOINT) as ok:
        pass
    with pytest.raises(RuntimeError), tracker.run(endpoint=ENDPOINT) as bad:
        raise RuntimeError("boom")
    cancelled = tracker.cancel(tracker.submit(endpoint=ENDPOINT))
    for job_id, ttl in ((ok.job_id, 3600), (bad.job_id, 60.5)):
        record = store.get(job_id)
        assert record.ended_at is not None
        assert record.expires_at is not None
        assert (record.expires_at - record.ended_at).total_seconds() == pytest.approx(
            ttl, abs=0.002
        )
    assert cancelled.expires_at is not None
    queued = JobTracker(store).submit(endpoint=ENDPOINT)
    assert store.get(queued).expires_at is None


def test_an_expired_result_reads_as_absent_until_purged(store: Store) -> None:
    tracker = JobTracker(store, result_ttl=0.2)
    with tracker.run(endpoint=ENDPOINT) as run:
        pass
    assert store.get(run.job_id).job_status == "done"
    time.sleep(0.3)
    with pytest.raises(JobNotFound):
        store.get(run.job_id)
    assert [r.job_id for r in store.list()] == []
    assert store.purge(expired=True) == 1


@pytest.mark.parametrize(
    "options",
    [{"progress_interval": -1}, {"result_ttl": 0}, {"failure_ttl": -5}],
)
def test_bad_tracker_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        JobTracker(MemoryStore(), **options)  # type: ignore[arg-type]


def test_the_process_id_is_recorded_on_every_write(store: Store) -> None:
    tracker = JobTracker(store)
    job_id = tracker.submit(endpoint=ENDPOINT)
    assert store.get(job_id).process_id == os.getpid()
    assert tracker.cancel(job_id).process_id == os.getpid()
