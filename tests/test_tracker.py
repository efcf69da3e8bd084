"""JobTracker: the upstream records, honest timings, failures, duplicates, and forks."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, QueueFull, open_store
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.lifecycle import format_timestamp
from jobstatus.store import Store
from jobstatus.tracker import JobTracker

ENDPOINT = "/v1/media/transcribe"
UPSTREAM_KEYS = ["job_status", "job_id", "queue_id", "process_id", "response"]
ROUNDING = 0.0005  # build_envelope rounds each time to 3 places


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def tracker(store: Store) -> JobTracker:
    return JobTracker(store, build_number="1.4.2", queue_id=140368864456064)


def test_the_whole_lifecycle_writes_the_upstream_records(store: Store, tracker: JobTracker) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT, id="transcribe_job_123")
    queued = store.get(job_id)
    assert list(queued.to_dict()) == [*UPSTREAM_KEYS, "created_at"]
    assert queued.created_at is not None
    assert queued.to_dict() == {
        "job_status": "queued",
        "job_id": job_id,
        "queue_id": 140368864456064,
        "process_id": os.getpid(),
        "response": None,
        "created_at": format_timestamp(queued.created_at),
    }
    with tracker.run(job_id) as run:
        running = store.get(job_id)
        assert (running.job_status, running.process_id, running.response) == (
            "running",
            os.getpid(),
            None,
        )
        assert run.job_id == job_id
        run.result = "Transcription completed successfully."
    done = store.get(job_id).to_dict()
    assert list(done) == [*UPSTREAM_KEYS, "created_at", "started_at", "ended_at"]
    assert done["created_at"] <= done["started_at"] <= done["ended_at"]
    assert (done["job_status"], done["job_id"], done["process_id"]) == ("done", job_id, os.getpid())
    envelope = done["response"]
    assert list(envelope) == list(ENVELOPE_KEYS)
    assert list(envelope) == [
        "endpoint",
        "code",
        "id",
        "job_id",
        "response",
        "message",
        "pid",
        "queue_id",
        "run_time",
        "queue_time",
        "total_time",
        "queue_length",
        "build_number",
    ]
    times = {key: envelope.pop(key) for key in ("run_time", "queue_time", "total_time")}
    assert envelope == {
        "endpoint": ENDPOINT,
        "code": 200,
        "id": "transcribe_job_123",
        "job_id": job_id,
        "response": "Transcription completed successfully.",
        "message": "success",
        "pid": os.getpid(),
        "queue_id": 140368864456064,
        "queue_length": 0,
        "build_number": "1.4.2",
    }
    assert all(isinstance(value, float) and value >= 0 for value in times.values())


def test_queue_time_runs_from_submit_to_start_and_run_time_from_start_to_end(
    store: Store, tracker: JobTracker
) -> None:
    waited, worked = 0.05, 0.03
    before_submit = time.monotonic()
    job_id = tracker.submit(endpoint=ENDPOINT)
    time.sleep(waited)
    with tracker.run(job_id) as run:
        started_by = time.monotonic()
        time.sleep(worked)
        run.result = "ok"
    after = time.monotonic()
    envelope = store.get(job_id).response
    queue_time, run_time = envelope["queue_time"], envelope["run_time"]
    assert queue_time >= waited - ROUNDING
    assert run_time >= worked - ROUNDING
    # consistent with what this test saw from outside, and with each other
    assert queue_time <= started_by - before_submit + ROUNDING
    assert queue_time + run_time <= after - before_submit + 2 * ROUNDING
    assert envelope["total_time"] == pytest.approx(queue_time + run_time, abs=3 * ROUNDING)


def test_the_stamps_of_the_three_records_are_in_order(store: Store, tracker: JobTracker) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    queued_at = store.get(job_id).updated_at
    with tracker.run(job_id):
        running_at = store.get(job_id).updated_at
    done_at = store.get(job_id).updated_at
    assert queued_at is not None
    assert running_at is not None
    assert done_at is not None
    assert queued_at <= running_at <= done_at


def test_an_exception_records_failed_with_code_500_and_is_re_raised(
    store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT, id="r-1")

    def work() -> None:
        with tracker.run(job_id) as run:
            run.result = "never stored"
            raise ValueError("boom")

    with pytest.raises(ValueError, match=r"^boom$"):
        work()
    record = store.get(job_id)
    assert record.job_status == "failed"
    envelope = record.response
    assert list(envelope) == list(ENVELOPE_KEYS)
    assert (envelope["code"], envelope["response"], envelope["message"]) == (500, None, "boom")
    assert (envelope["endpoint"], envelope["id"], envelope["job_id"]) == (ENDPOINT, "r-1", job_id)
    assert envelope["total_time"] == pytest.approx(
        envelope["queue_time"] + envelope["run_time"], abs=3 * ROUNDING
    )


def test_an_exception_without_a_message_is_named(store: Store, tracker: JobTracker) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    with pytest.raises(KeyboardInterrupt), tracker.run(job_id):
        raise KeyboardInterrupt
    record = store.get(job_id)
    assert (record.job_status, record.response["message"]) == ("failed", "KeyboardInterrupt")


def test_an_error_code_records_failed_with_the_result_as_message(
    store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        run.code, run.result = 400, "media_url is not reachable"
    record = store.get(job_id)
    assert record.job_status == "failed"
    assert (record.response["code"], record.response["response"], record.response["message"]) == (
        400,
        None,
        "media_url is not reachable",
    )


def test_a_duplicate_run_of_a_finished_job_leaves_the_first_outcome(
    store: Store, tracker: JobTracker
) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        run.result = "first"
    first = store.get(job_id)
    seen: list[bool] = []

    def redelivered() -> None:  # a second worker runs the same job and fails
        with tracker.run(job_id, endpoint=ENDPOINT) as again:
            seen.append(again.already_final)
            raise RuntimeError("duplicate")

    with pytest.raises(RuntimeError):
        redelivered()
    assert seen == [True]
    with tracker.run(job_id, endpoint=ENDPOINT) as again:
        again.result = "second"
    kept = store.get(job_id)
    assert kept.to_dict() == first.to_dict()
    assert kept.updated_at == first.updated_at


def test_queue_length_counts_the_jobs_waiting_to_start(store: Store, tracker: JobTracker) -> None:
    first, _, _ = (tracker.submit(endpoint=ENDPOINT) for _ in range(3))
    assert tracker.queue_length == 3
    with tracker.run(first):
        assert tracker.queue_length == 2
    assert store.get(first).response["queue_length"] == 2


def test_a_full_queue_raises_queue_full_and_writes_nothing(store: Store) -> None:
    tracker = JobTracker(store, build_number="b", queue_id=7, max_queue_length=2)
    first = tracker.submit(endpoint=ENDPOINT)
    tracker.submit(endpoint=ENDPOINT)
    with pytest.raises(QueueFull) as info:
        tracker.submit(endpoint=ENDPOINT, id="req-3", job_id="third")
    assert info.value.status == 429
    assert info.value.body() == {
        "code": 429,
        "id": "req-3",
        "job_id": "third",
        "message": "MAX_QUEUE_LENGTH (2) reached",
        "pid": os.getpid(),
        "queue_id": 7,
        "queue_length": 2,
        "build_number": "b",
    }
    assert len(list(store.list())) == 2
    with tracker.run(first):
        pass
    tracker.submit(endpoint=ENDPOINT)  # room again once a job started
    assert len(list(store.list())) == 3


def test_hand_off_records_submitted(store: Store, tracker: JobTracker) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    record = tracker.hand_off(job_id, response={"execution": "projects/p/jobs/j/executions/e"})
    assert tracker.queue_length == 0
    assert record.created_at is not None
    assert (
        record.to_dict()
        == store.get(job_id).to_dict()
        == {
            "job_status": "submitted",
            "job_id": job_id,
            "queue_id": tracker.queue_id,
            "process_id": os.getpid(),
            "response": {"execution": "projects/p/jobs/j/executions/e"},
            "created_at": format_timestamp(record.created_at),
        }
    )


def test_a_job_that_skips_the_queue(store: Store, tracker: JobTracker) -> None:
    with tracker.run(endpoint=ENDPOINT, id="direct") as run:
        run.result = {"ok": True}
    envelope = store.get(run.job_id).response
    assert (envelope["queue_time"], envelope["id"], envelope["response"]) == (
        0.0,
        "direct",
        {"ok": True},
    )
    assert envelope["total_time"] == envelope["run_time"]


def test_a_job_submitted_by_another_process_needs_its_endpoint(store: Store) -> None:
    web = JobTracker(store, queue_id=1)
    worker = JobTracker(store, queue_id=1)
    job_id = web.submit(endpoint=ENDPOINT, id="from-web")
    time.sleep(0.02)
    with pytest.raises(TypeError, match="needs endpoint"), worker.run(job_id):
        pass  # pragma: no cover - never entered
    assert store.get(job_id).job_status == "queued"  # nothing was written
    with worker.run(job_id, endpoint=ENDPOINT, id="from-web") as run:
        run.result = "ok"
    envelope = store.get(job_id).response
    assert envelope["queue_time"] >= 0.02 - ROUNDING  # from the stored queued record
    assert (envelope["endpoint"], envelope["id"]) == (ENDPOINT, "from-web")


def test_the_default_queue_id_is_the_trackers_own(store: Store) -> None:
    one, two = JobTracker(store), JobTracker(store)
    assert one.queue_id != two.queue_id
    assert store.get(one.submit(endpoint=ENDPOINT)).queue_id == one.queue_id


# -- a host that forks ----------------------------------------------------------------------


def _child(tracker: JobTracker, inherited: str, own: int, results: Any) -> None:
    """In a forked worker: run a job the parent queued, then queue and run jobs of its own."""
    with tracker.run(inherited) as run:
        run.result = f"ran in {os.getpid()}"
    ids = [tracker.submit(endpoint=ENDPOINT, id=n) for n in range(own)]
    for job_id in ids:
        with tracker.run(job_id) as run:
            run.result = os.getpid()
    results.put((os.getpid(), inherited, ids))


def test_a_host_that_forks_records_correctly_in_every_process(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    tracker = JobTracker(store, build_number="fork")  # made before the fork, like gunicorn's app
    parent = os.getpid()
    inherited = [tracker.submit(endpoint=ENDPOINT, id=f"parent-{n}") for n in range(2)]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [
        context.Process(target=_child, args=(tracker, job_id, 5, results)) for job_id in inherited
    ]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(job_id for _, job_id, _ in reports) == sorted(inherited)
    assert len({pid for pid, _, _ in reports} - {parent}) == 2

    for pid, job_id, _ in reports:
        record = store.get(job_id)
        assert (record.job_status, record.process_id) == ("done", pid)
        assert record.response["pid"] == pid
        assert record.response["response"] == f"ran in {pid}"
        assert record.response["id"] in {"parent-0", "parent-1"}  # remembered across the fork
    for pid, _, ids in reports:
        for n, job_id in enumerate(ids):
            record = store.get(job_id)
            assert (record.job_status, record.process_id, record.response["id"]) == ("done", pid, n)
    # the parent still records, and still remembers what it queued
    assert tracker.queue_length == 2
    with tracker.run(inherited[0]) as run:
        assert run.already_final is True  # a child finished it
    with tracker.run(endpoint=ENDPOINT) as run:
        run.result = "parent"
    assert store.get(run.job_id).process_id == parent
    assert len(list(store.list())) == 2 + 2 * 5 + 1


def test_the_envelope_of_a_record_round_trips_through_every_store_layer(tmp_path: Path) -> None:
    """What the tracker writes is a plain document: a filesystem store reads it back whole."""
    store = open_store(f"file://{tmp_path}")
    tracker = JobTracker(store, build_number="1.0.0")
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        run.result = {"text": "ünïcode ✓", "segments": [1, 2.5, None]}
    document = JobRecord.from_json((tmp_path / "jobs" / f"{job_id}.json").read_text()).to_dict()
    assert document == store.get(job_id).to_dict()
    assert document["response"]["response"] == {"text": "ünïcode ✓", "segments": [1, 2.5, None]}
