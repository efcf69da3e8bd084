"""JobTracker's run one step at a time -- start, finish, requeue, attach -- as the task-queue
integrations use it, the on_cancel hook, and the shared QueueRecorder. Memory and filesystem
stores; the integrations themselves run against real workers in test_integration_*.py."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import (
    InvalidRequest,
    JobCancelled,
    JobNotFound,
    JobRecord,
    JobState,
    JobTracker,
    Progress,
    open_store,
)
from jobstatus.backends.memory import MemoryStore
from jobstatus.integrations import QueueRecorder, check_cancelled, progress
from jobstatus.run import current_run
from jobstatus.store import ExpectedVersion, Store

ENDPOINT = "tasks.transcribe"


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else str(tmp_path / "data")
    with open_store(url) as opened:
        yield opened


def queued_elsewhere(store: Store, job_id: str, **extra: Any) -> JobRecord:
    """A ``queued`` record as another process (the publisher) writes it."""
    QueueRecorder(JobTracker(store, owner="alice")).enqueued(job_id, **extra)
    return store.get(job_id)


# -- start / finish ------------------------------------------------------------------------------


def test_start_and_finish_record_what_run_records(store: Store) -> None:
    tracker = JobTracker(store, build_number="9")
    queued = queued_elsewhere(store, "job-1")
    run = tracker.start("job-1", endpoint=ENDPOINT)
    running = store.get("job-1")
    assert running.job_status == "running"
    assert (running.created_at, running.owner) == (queued.created_at, "alice")
    assert running.extra == {"attempt": 1}  # the publisher's keys are kept
    run.result = {"words": 3}
    tracker.finish(run)
    done = store.get("job-1")
    assert done.job_status == "done"
    assert done.response["response"] == {"words": 3}
    assert (done.response["endpoint"], done.response["build_number"]) == (ENDPOINT, "9")
    assert done.created_at == queued.created_at
    assert done.extra == {"attempt": 1}


def test_finish_with_an_error_records_failed_with_the_message_redacted(store: Store) -> None:
    tracker = JobTracker(store)
    run = tracker.start(endpoint=ENDPOINT)
    tracker.finish(run, ConnectionError("cannot reach postgresql://app:hunter2@db/app"))
    failed = store.get(run.job_id)
    assert failed.job_status == "failed"
    assert failed.response["code"] == 500
    assert failed.response["message"] == "cannot reach postgresql://app:***@db/app"


def test_an_exception_inside_run_is_redacted_too(store: Store) -> None:
    tracker = JobTracker(store)
    with pytest.raises(RuntimeError), tracker.run(endpoint=ENDPOINT) as run:
        raise RuntimeError("token=abc123 was refused")
    assert store.get(run.job_id).response["message"] == "token=*** was refused"


def test_finish_with_the_jobs_own_cancel_records_cancelled(store: Store) -> None:
    tracker = JobTracker(store)
    run = tracker.start(endpoint=ENDPOINT)
    tracker.finish(run, JobCancelled(run.job_id))
    assert store.get(run.job_id).job_status == "cancelled"


def test_an_unstorable_result_records_failed_and_raises(store: Store) -> None:
    tracker = JobTracker(store)
    run = tracker.start(endpoint=ENDPOINT)
    run.result = {1, 2}  # a set is not JSON
    with pytest.raises(InvalidRequest):
        tracker.finish(run)
    failed = store.get(run.job_id)
    assert failed.job_status == "failed"
    assert failed.response["message"].startswith("unstorable result: ")


def test_start_keeps_other_keys_and_sets_extra_but_never_lifecycle_keys(store: Store) -> None:
    store.put(JobRecord(job_id="job-2", job_status="queued", extra={"webhook": {"url": "x"}}))
    run = JobTracker(store).start(
        "job-2", endpoint=ENDPOINT, extra={"attempt": 3, "created_at": "bogus"}
    )
    assert run.record is not None
    assert run.record.extra == {"webhook": {"url": "x"}, "attempt": 3}


class SubmitterWins(MemoryStore):
    """A store where the publisher's ``queued`` write lands between the worker's read and
    its write, as when a worker is quicker than the publisher's after-publish hook."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def get(self, job_id: str) -> JobRecord:
        if not self.raced:
            self.raced = True
            QueueRecorder(JobTracker(self, owner="publisher")).enqueued(job_id)
            raise JobNotFound(job_id)
        return super().get(job_id)


def test_a_worker_quicker_than_the_publisher_keeps_its_created_at() -> None:
    store = SubmitterWins()
    run = JobTracker(store).start("job-3", endpoint=ENDPOINT)
    running = store.get("job-3")
    assert running.job_status == "running"
    assert running.owner == "publisher"
    assert running.extra == {"attempt": 1}
    assert running.started_at is not None
    assert running.created_at is not None
    assert running.created_at <= running.started_at  # never later, however the race went
    assert run.record is not None
    assert run.record.to_dict() == running.to_dict()


# -- requeue / attach ----------------------------------------------------------------------------


def test_requeue_waits_again_with_the_next_attempt_and_the_pending_progress(store: Store) -> None:
    tracker = JobTracker(store, progress_interval=3600)
    queued = queued_elsewhere(store, "job-4")
    run = tracker.start("job-4", endpoint=ENDPOINT)
    run.progress(percent=10)
    run.progress(percent=20)  # not written yet: it rides on the requeue
    tracker.requeue(run, extra={"attempt": 2})
    again = store.get("job-4")
    assert again.job_status == "queued"
    assert (again.started_at, again.ended_at) == (None, None)
    assert again.created_at == queued.created_at
    assert again.progress == Progress(percent=20)
    assert again.extra == {"attempt": 2}
    second = tracker.start("job-4", endpoint=ENDPOINT)
    assert second.record is not None
    assert second.record.extra == {"attempt": 2}
    assert second.record.progress is None  # a new attempt starts afresh


def test_requeue_of_a_job_asked_to_stop_records_cancelled(store: Store) -> None:
    tracker = JobTracker(store)
    run = tracker.start(endpoint=ENDPOINT)
    tracker.cancel(run.job_id)
    tracker.requeue(run, extra={"attempt": 2})
    assert store.get(run.job_id).job_status == "cancelled"


def test_attach_ends_a_job_whose_work_is_elsewhere(store: Store) -> None:
    worker = JobTracker(store)
    started = worker.start("job-5", endpoint=ENDPOINT)
    started.progress(percent=40)
    supervisor = JobTracker(store)
    run = supervisor.attach("job-5", endpoint=ENDPOINT)
    assert not run.already_final
    supervisor.finish(run, JobCancelled("job-5"))
    ended = store.get("job-5")
    assert ended.job_status == "cancelled"
    assert ended.response["run_time"] >= 0
    assert started.record is not None
    assert ended.started_at == started.record.started_at
    assert ended.progress == Progress(percent=40)


def test_attach_to_a_final_job_writes_nothing(store: Store) -> None:
    tracker = JobTracker(store)
    with tracker.run(endpoint=ENDPOINT) as run:
        run.result = "ok"
    before = store.get(run.job_id)
    late = tracker.attach(run.job_id, endpoint=ENDPOINT)
    assert late.already_final
    tracker.finish(late, RuntimeError("too late"))
    assert store.get(run.job_id).version == before.version
    with pytest.raises(JobNotFound):
        tracker.attach("no-such-job", endpoint=ENDPOINT)


# -- on_cancel -----------------------------------------------------------------------------------


def test_on_cancel_hears_every_cancel_of_a_job_that_was_not_final(store: Store) -> None:
    heard: list[JobRecord] = []
    tracker = JobTracker(store, on_cancel=heard.append)
    waiting = tracker.submit(endpoint=ENDPOINT)
    assert tracker.cancel(waiting).job_status == "cancelled"
    tracker.cancel(waiting)  # final now: not heard again
    running = tracker.start(endpoint=ENDPOINT)
    tracker.cancel(running.job_id)
    tracker.cancel(running.job_id)  # still running: the queue is asked again
    assert [(r.job_id, r.job_status) for r in heard] == [
        (waiting, "cancelled"),
        (running.job_id, "running"),
        (running.job_id, "running"),
    ]
    assert heard[1].cancel_requested_at is not None


def test_a_failing_on_cancel_propagates_after_the_record_is_written(store: Store) -> None:
    def revoke(record: JobRecord) -> None:
        raise ConnectionError("the broker is down")

    tracker = JobTracker(store, on_cancel=revoke)
    job_id = tracker.submit(endpoint=ENDPOINT)
    with pytest.raises(ConnectionError):
        tracker.cancel(job_id)
    assert store.get(job_id).job_status == "cancelled"


# -- the current run, progress and check_cancelled from inside the work --------------------------


def test_current_run_is_the_run_of_the_block(store: Store) -> None:
    tracker = JobTracker(store, progress_interval=0)
    assert current_run() is None
    with tracker.run(endpoint=ENDPOINT) as run:
        assert current_run() is run
        progress(percent=50, message="half")
        assert store.get(run.job_id).progress == Progress(percent=50, message="half")
    assert current_run() is None


def test_check_cancelled_stops_the_work(store: Store) -> None:
    tracker = JobTracker(store)
    with tracker.run(endpoint=ENDPOINT) as run:
        check_cancelled()
        tracker.cancel(run.job_id)
        check_cancelled()
        pytest.fail("check_cancelled did not raise")  # pragma: no cover
    assert store.get(run.job_id).job_status == "cancelled"


def test_progress_outside_a_task_checks_and_writes_nothing() -> None:
    progress(percent=5)
    check_cancelled()
    with pytest.raises(ValueError, match="between 0 and 100"):
        progress(percent=101)


class BrokenStore(MemoryStore):
    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        if record.job_status == JobState.RUNNING and record.progress is not None:
            raise OSError("disk full, password=hunter2")
        return super().put(record, force=force, expect_version=expect_version)


def test_a_failing_store_never_breaks_the_task(caplog: pytest.LogCaptureFixture) -> None:
    tracker = JobTracker(BrokenStore(), progress_interval=0)
    with tracker.run(endpoint=ENDPOINT) as run:
        progress(percent=10)  # logged, not raised
        run.result = "finished anyway"
    assert tracker.store.get(run.job_id).job_status == "done"
    assert "disk full" in caplog.text
    assert "hunter2" not in caplog.text


# -- the recorder ---------------------------------------------------------------------------------


def test_enqueued_never_overwrites_a_record(store: Store) -> None:
    recorder = QueueRecorder(JobTracker(store))
    run = recorder.started("job-6", endpoint=ENDPOINT, attempt=1)  # the worker was quicker
    assert run is not None
    recorder.enqueued("job-6")
    assert store.get("job-6").job_status == "running"
    recorder.release("job-6")


def test_the_recorder_follows_a_job_through_a_retry(store: Store) -> None:
    recorder = QueueRecorder(JobTracker(store))
    recorder.enqueued("job-7")
    recorder.started("job-7", endpoint=ENDPOINT)
    assert recorder.retrying("job-7")
    assert (store.get("job-7").job_status, store.get("job-7").extra) == ("queued", {"attempt": 2})
    assert not recorder.retrying("job-7")  # no run here any more
    recorder.started("job-7", endpoint=ENDPOINT)
    recorder.succeeded("job-7", 42)
    recorder.release("job-7")
    done = store.get("job-7")
    assert (done.job_status, done.extra, done.response["response"]) == ("done", {"attempt": 2}, 42)


def test_the_recorder_ends_a_job_it_does_not_run(store: Store) -> None:
    QueueRecorder(JobTracker(store)).started("job-8", endpoint=ENDPOINT)
    supervisor = QueueRecorder(JobTracker(store))
    supervisor.failed("job-8", RuntimeError("worker lost"), endpoint=ENDPOINT)
    assert store.get("job-8").response["message"] == "worker lost"
    supervisor.stopped("never-recorded", endpoint=ENDPOINT)  # nothing to end: nothing written
    with pytest.raises(JobNotFound):
        store.get("never-recorded")


def test_runs_started_in_threads_are_each_their_own_current_run(store: Store) -> None:
    recorder = QueueRecorder(JobTracker(store, progress_interval=0))
    seen: dict[str, Any] = {}

    def work(job_id: str) -> None:
        recorder.started(job_id, endpoint=ENDPOINT)
        progress(message=job_id)
        seen[job_id] = current_run()
        recorder.succeeded(job_id, job_id)
        recorder.release(job_id)

    threads = [threading.Thread(target=work, args=(f"t-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(4):
        record = store.get(f"t-{n}")
        assert record.progress == Progress(message=f"t-{n}")
        assert seen[f"t-{n}"].job_id == f"t-{n}"


# -- pickling -------------------------------------------------------------------------------------


def test_job_cancelled_keeps_its_job_id_through_pickle() -> None:
    again = pickle.loads(pickle.dumps(JobCancelled("job-9")))
    assert again.job_id == "job-9"


def test_a_memory_store_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="lives in one process"):
        pickle.dumps(MemoryStore())


def test_a_pickled_tracker_forgets_its_waiting_jobs_and_hook(tmp_path: Path) -> None:
    tracker = JobTracker(open_store(str(tmp_path)), queue_id=7, on_cancel=print)
    tracker.submit(endpoint=ENDPOINT)
    twin = pickle.loads(pickle.dumps(tracker))
    assert (twin.queue_id, twin.queue_length, twin.on_cancel) == (7, 0, None)
    assert tracker.queue_length == 1


def test_an_abandoned_or_already_final_run_has_no_heartbeat() -> None:
    store = MemoryStore()
    tracker = JobTracker(store, heartbeat_interval=0.02)
    live = tracker.start(endpoint=ENDPOINT)
    abandoned = tracker.start(endpoint=ENDPOINT)
    tracker.abandon(abandoned)
    with tracker.run(endpoint=ENDPOINT) as finished:
        pass
    late = tracker.start(finished.job_id, endpoint=ENDPOINT)  # a redelivery of a final job
    assert late.already_final
    quiet = {run.job_id: store.get(run.job_id).updated_at for run in (abandoned, finished)}
    beats: list[float | None] = [store.get(live.job_id).updated_at]
    deadline = time.monotonic() + 30
    while len(set(beats)) < 3:  # the live run beat twice: the others had their turns too
        assert time.monotonic() < deadline, "the live run never beat"
        beats.append(store.get(live.job_id).updated_at)
        time.sleep(0.005)
    assert {job_id: store.get(job_id).updated_at for job_id in quiet} == quiet
    tracker.finish(live)
