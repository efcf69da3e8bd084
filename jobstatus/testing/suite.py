"""Example-based conformance tests every store passes; subclass :class:`StoreTests`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from jobstatus.errors import InvalidRequest, JobNotFound
from jobstatus.record import MAX_JOB_ID_BYTES, JobRecord
from jobstatus.repair import repair
from jobstatus.store import Store
from jobstatus.testing.lifecycle import LifecycleTests
from jobstatus.testing.machine import BASE_TIME, clear, run_store_state_machine
from jobstatus.testing.strategies import documents

__all__ = ["UPSTREAM_EXAMPLE", "UNSAFE_JOB_IDS", "StoreTests"]

#: The job file of the upstream endpoint's documented example (the record its 200 example
#: answers with).
UPSTREAM_EXAMPLE: dict[str, Any] = {
    "job_status": "done",
    "job_id": "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7",
    "queue_id": 140368864456064,
    "process_id": 123456,
    "response": {
        "endpoint": "/v1/media/transcribe",
        "code": 200,
        "id": "transcribe_job_123",
        "job_id": "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7",
        "response": "Transcription completed successfully.",
        "message": "success",
        "pid": 123456,
        "queue_id": 140368864456064,
        "run_time": 5.234,
        "queue_time": 1.123,
        "total_time": 6.357,
        "queue_length": 0,
        "build_number": "1.0.0",
    },
}

#: Ids that could name something outside the store; every store refuses each of them.
UNSAFE_JOB_IDS = [
    "",
    ".",
    "..",
    "../etc/passwd",
    "a/../../b",
    "a/b",
    "/abs",
    "a\\b",
    "..\\..\\x",
    "x\x00y",
    "x\ny",
    "tab\there",
    "del\x7f",
    "x" * (MAX_JOB_ID_BYTES + 1),
    "é" * (MAX_JOB_ID_BYTES // 2 + 1),
]


def _record(job_id: str = "job-1", job_status: str = "queued", **fields: Any) -> JobRecord:
    return JobRecord(job_id=job_id, job_status=job_status, **fields)


class StoreTests(LifecycleTests):
    """Subclass in a test module and provide a ``store`` fixture yielding an empty store.

    ``timestamp_resolution`` is the finest ``updated_at`` the store keeps (1.0 for object
    stores that keep whole seconds); tests that need distinct stamps wait that long.
    """

    timestamp_resolution: float = 0.0
    state_machine_examples: int = 40

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("provide a `store` fixture that yields an empty store")

    def _tick(self) -> None:
        """Wait long enough that the next write gets a later stamp."""
        time.sleep(max(self.timestamp_resolution, 0.002) * 1.05)

    # -- get / put ---------------------------------------------------------------------------

    def test_get_missing_raises_job_not_found(self, store: Store) -> None:
        with pytest.raises(JobNotFound) as info:
            store.get("no-such-job")
        assert info.value.job_id == "no-such-job"
        assert info.value.body() == {"error": "Job not found", "job_id": "no-such-job"}

    def test_put_then_get_round_trips_the_upstream_document(self, store: Store) -> None:
        record = JobRecord.from_dict(UPSTREAM_EXAMPLE)
        store.put(record)
        got = store.get(UPSTREAM_EXAMPLE["job_id"])
        assert got.to_dict() == UPSTREAM_EXAMPLE
        assert list(got.to_dict()) == list(UPSTREAM_EXAMPLE)

    def test_put_returns_the_stored_record_stamped_now(self, store: Store) -> None:
        before = time.time()
        stored = store.put(_record())
        after = time.time()
        assert stored.to_dict() == _record().to_dict()
        assert stored.updated_at is not None
        assert before - self.timestamp_resolution - 0.01 <= stored.updated_at <= after + 0.01
        assert store.get("job-1").updated_at == stored.updated_at

    def test_put_replaces(self, store: Store) -> None:
        store.put(_record(job_status="queued"))
        store.put(_record(job_status="running", process_id=42))
        got = store.get("job-1")
        assert (got.job_status, got.process_id) == ("running", 42)

    def test_unknown_and_absent_keys_survive(self, store: Store) -> None:
        doc = {
            "job_id": "job-x",
            "job_status": "custom",
            "extra": {"a": [1, 2.5, None]},
            "ünïcode": "✓",
        }
        store.put(JobRecord.from_dict(doc))
        assert store.get("job-x").to_dict() == doc

    def test_any_document_round_trips(self, store: Store) -> None:
        @given(doc=documents())
        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def round_trip(doc: dict[str, Any]) -> None:
            store.put(JobRecord.from_dict(doc), force=True)
            try:
                assert store.get(doc["job_id"]).to_dict() == doc
            finally:
                store.delete(doc["job_id"])

        round_trip()

    # -- final states ------------------------------------------------------------------------

    @pytest.mark.parametrize("final", ["done", "failed", "cancelled"])
    @pytest.mark.parametrize("late", ["queued", "running", "submitted", "custom"])
    def test_a_final_job_is_not_moved_back(self, store: Store, final: str, late: str) -> None:
        store.put(_record(job_status=final, response={"result": 1}))
        kept = store.put(_record(job_status=late))
        assert kept.job_status == final
        assert kept.response == {"result": 1}
        assert store.get("job-1").job_status == final

    def test_force_moves_a_final_job_back(self, store: Store) -> None:
        store.put(_record(job_status="done"))
        assert store.put(_record(job_status="running"), force=True).job_status == "running"
        assert store.get("job-1").job_status == "running"

    @pytest.mark.parametrize("second", ["done", "failed", "cancelled"])
    def test_a_final_job_keeps_its_first_final_state(self, store: Store, second: str) -> None:
        first = store.put(_record(job_status="done", response="first"))
        kept = store.put(_record(job_status=second, response="second"))
        assert (kept.job_status, kept.response) == ("done", "first")
        assert kept.version == first.version
        assert store.get("job-1").response == "first"

    def test_concurrent_late_writes_never_undo_done(self, store: Store) -> None:
        store.put(_record(job_status="running"))
        errors: list[BaseException] = []

        def write(status: str) -> None:
            try:
                for _ in range(20):
                    store.put(_record(job_status=status))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=("running",)) for _ in range(4)]
        threads.append(threading.Thread(target=store.put, args=(_record(job_status="done"),)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert store.get("job-1").job_status == "done"

    # -- ids and documents that are refused ---------------------------------------------------

    @pytest.mark.parametrize("job_id", UNSAFE_JOB_IDS)
    def test_unsafe_ids_are_refused(self, store: Store, job_id: str) -> None:
        with pytest.raises(InvalidRequest):
            store.get(job_id)
        with pytest.raises(InvalidRequest):
            store.put(_record(job_id=job_id))
        with pytest.raises(InvalidRequest):
            store.delete(job_id)
        with pytest.raises(InvalidRequest):
            store.restore([_record(job_id=job_id)])
        assert list(store.list()) == []

    def test_the_longest_id_is_accepted(self, store: Store) -> None:
        job_id = "é" * (MAX_JOB_ID_BYTES // 2)
        store.put(_record(job_id=job_id))
        assert store.get(job_id).job_id == job_id
        assert [r.job_id for r in store.list()] == [job_id]

    @pytest.mark.parametrize(
        "response", [float("nan"), float("inf"), "nul\x00byte", "lone \ud800", {1j}]
    )
    def test_unstorable_documents_are_refused(self, store: Store, response: Any) -> None:
        with pytest.raises(InvalidRequest):
            store.put(_record(response=response))
        with pytest.raises(JobNotFound):
            store.get("job-1")

    # -- delete ------------------------------------------------------------------------------

    def test_delete(self, store: Store) -> None:
        store.put(_record())
        assert store.delete("job-1") is True
        assert store.delete("job-1") is False
        with pytest.raises(JobNotFound):
            store.get("job-1")

    # -- repair ------------------------------------------------------------------------------

    def test_repair_of_a_clean_store_finds_nothing_and_changes_nothing(self, store: Store) -> None:
        stored = store.put(_record(job_status="running"))
        for dry_run in (True, False):
            report = repair(store, dry_run=dry_run, grace=0)
            assert (report.leftovers, report.clean) == ([], True)
        assert store.get("job-1") == stored
        assert [r.job_id for r in store.list()] == ["job-1"]

    # -- list --------------------------------------------------------------------------------

    def test_list_is_newest_first_with_filters(self, store: Store) -> None:
        for n, status in enumerate(["queued", "running", "done", "failed"]):
            store.put(_record(job_id=f"job-{n}", job_status=status))
            self._tick()
        assert [r.job_id for r in store.list()] == ["job-3", "job-2", "job-1", "job-0"]
        assert [r.job_id for r in store.list(status="done")] == ["job-2"]
        assert [r.job_id for r in store.list(status=["queued", "failed"])] == ["job-3", "job-0"]
        assert [r.job_id for r in store.list(limit=2)] == ["job-3", "job-2"]
        assert list(store.list(limit=0)) == []
        with pytest.raises(ValueError, match="negative"):
            list(store.list(limit=-1))
        cut = store.get("job-2").updated_at
        assert cut is not None
        assert [r.job_id for r in store.list(since=cut)] == ["job-3", "job-2"]
        assert all(r.updated_at is not None for r in store.list())

    def test_list_of_an_empty_store(self, store: Store) -> None:
        assert list(store.list()) == []
        assert list(store.list(since=0, status="done", limit=5)) == []

    # -- restore and purge ---------------------------------------------------------------------

    def test_restore_keeps_updated_at_and_overrides_final(self, store: Store) -> None:
        store.put(_record(job_status="done"))
        old = _record(job_status="running", updated_at=BASE_TIME + 7)
        assert store.restore([old, _record(job_id="job-2", updated_at=BASE_TIME)]) == 2
        got = store.get("job-1")
        assert (got.job_status, got.updated_at) == ("running", BASE_TIME + 7)
        assert [r.job_id for r in store.list()] == ["job-1", "job-2"]
        assert [r.job_id for r in store.list(since=BASE_TIME + 1)] == ["job-1"]

    def test_purge_deletes_only_older_records_of_the_given_states(self, store: Store) -> None:
        store.restore(
            [
                _record(job_id="old-done", job_status="done", updated_at=BASE_TIME),
                _record(job_id="old-failed", job_status="failed", updated_at=BASE_TIME + 1),
                _record(job_id="old-running", job_status="running", updated_at=BASE_TIME + 2),
                _record(job_id="new-done", job_status="done", updated_at=BASE_TIME + 100),
            ]
        )
        store.put(_record(job_id="fresh", job_status="done"))
        assert store.purge(older_than=BASE_TIME + 50, status=["done", "failed"]) == 2
        assert {r.job_id for r in store.list()} == {"old-running", "new-done", "fresh"}
        assert store.purge(older_than=BASE_TIME + 2) == 0  # strictly older
        assert store.purge(older_than=BASE_TIME + 3) == 1
        assert store.purge(older_than=time.time() + 60, status="done") == 2
        assert list(store.list()) == []

    # -- many writers ----------------------------------------------------------------------------

    def test_threads_writing_at_once(self, store: Store) -> None:
        errors: list[BaseException] = []

        def write(worker: int) -> None:
            try:
                for n in range(25):
                    store.put(
                        _record(
                            job_id="shared",
                            job_status="running",
                            response={"worker": worker, "n": n},
                        )
                    )
                    store.put(
                        _record(job_id=f"own-{worker}", job_status="running", response={"n": n})
                    )
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert store.get("shared").response["n"] == 24
        assert {store.get(f"own-{w}").response["n"] for w in range(4)} == {24}
        assert len(list(store.list())) == 5

    # -- the state machine ------------------------------------------------------------------------

    def test_state_machine_agrees_with_the_memory_model(self, store: Store) -> None:
        run_store_state_machine(
            lambda: store,
            resolution=self.timestamp_resolution,
            max_examples=self.state_machine_examples,
        )
        clear(store)

    # -- transition rules ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("first", "then"),
        [
            ("queued", "running"),
            ("running", "queued"),
            ("queued", "submitted"),
            ("submitted", "running"),
            ("running", "custom"),
            ("custom", "queued"),
            ("Done", "running"),  # states are case-sensitive: "Done" is a custom state
            ("queued", "done"),
            ("running", "failed"),
        ],
    )
    def test_a_job_that_is_not_final_moves_freely(
        self, store: Store, first: str, then: str
    ) -> None:
        store.put(_record(job_status=first))
        assert store.put(_record(job_status=then)).job_status == then
        assert store.get("job-1").job_status == then

    def test_a_refused_late_write_keeps_the_whole_record_and_its_stamp(self, store: Store) -> None:
        """The stored record comes back untouched: document and ``updated_at`` alike, so a
        stream of late retries neither rewrites a finished job nor keeps it from a purge."""
        done = store.put(
            _record(
                job_status="done", queue_id=7, process_id=8, response={"r": 1}, extra={"kept": True}
            )
        )
        self._tick()
        late = store.put(_record(job_status="running", queue_id=1, process_id=2, response=None))
        assert late.to_dict() == done.to_dict()
        assert late.updated_at == done.updated_at
        got = store.get("job-1")
        assert got.to_dict() == done.to_dict()
        assert got.updated_at == done.updated_at

    def test_a_refused_final_write_keeps_the_stamp(self, store: Store) -> None:
        first = store.put(_record(job_status="failed", response="boom"))
        self._tick()
        second = store.put(_record(job_status="done", response="ok"))
        assert second.updated_at == first.updated_at
        assert store.get("job-1").to_dict() == first.to_dict()

    def test_a_forced_job_is_no_longer_final(self, store: Store) -> None:
        store.put(_record(job_status="done"))
        store.put(_record(job_status="queued"), force=True)
        assert store.put(_record(job_status="running")).job_status == "running"
        assert store.get("job-1").job_status == "running"

    def test_a_force_write_of_a_final_state_replaces(self, store: Store) -> None:
        store.put(_record(job_status="done", response=1))
        assert store.put(_record(job_status="failed", response=2), force=True).response == 2
        assert store.get("job-1").to_dict() == _record(job_status="failed", response=2).to_dict()

    @pytest.mark.parametrize("final", ["done", "failed"])
    def test_a_restored_final_job_is_final_too(self, store: Store, final: str) -> None:
        store.restore([_record(job_status=final, response="r", updated_at=BASE_TIME)])
        kept = store.put(_record(job_status="running"))
        assert (kept.job_status, kept.response, kept.updated_at) == (final, "r", BASE_TIME)
        assert store.get("job-1").job_status == final

    def test_a_restored_running_job_over_a_final_one_is_not_final(self, store: Store) -> None:
        store.put(_record(job_status="done"))
        store.restore([_record(job_status="running", updated_at=BASE_TIME)])
        assert store.put(_record(job_status="queued")).job_status == "queued"

    def test_a_deleted_final_job_can_start_over(self, store: Store) -> None:
        store.put(_record(job_status="done"))
        assert store.delete("job-1") is True
        assert store.put(_record(job_status="queued")).job_status == "queued"
        assert store.get("job-1").job_status == "queued"

    def test_the_final_rule_is_per_job(self, store: Store) -> None:
        store.put(_record(job_id="finished", job_status="done"))
        store.put(_record(job_id="other", job_status="queued"))
        assert store.put(_record(job_id="other", job_status="running")).job_status == "running"
        assert store.put(_record(job_id="finished", job_status="running")).job_status == "done"
        assert {r.job_id: r.job_status for r in store.list()} == {
            "finished": "done",
            "other": "running",
        }
