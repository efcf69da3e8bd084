"""Conformance tests of versions, conditional writes, expiry and the lifecycle keys.

Mixed into :class:`~jobstatus.testing.StoreTests`; a store passes them through the protocol
alone.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobstatus.errors import Conflict, JobNotFound
from jobstatus.lifecycle import Progress
from jobstatus.record import JobRecord
from jobstatus.store import ABSENT, Store, list_owned

__all__ = ["LifecycleTests"]

_PAST = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _job(job_status: str = "queued", job_id: str = "job-1", **fields: Any) -> JobRecord:
    return JobRecord(job_id=job_id, job_status=job_status, **fields)


def _in(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


class LifecycleTests:
    """Versions, ``expect_version``, final-is-final, expiry and the lifecycle keys."""

    # -- versions ---------------------------------------------------------------------------

    def test_every_record_read_or_written_has_a_version(self, store: Store) -> None:
        stored = store.put(_job())
        assert isinstance(stored.version, str)
        assert stored.version
        assert store.get("job-1").version == stored.version
        assert [r.version for r in store.list()] == [stored.version]

    def test_the_version_changes_with_the_document(self, store: Store) -> None:
        seen = {store.put(_job("queued")).version}
        for n, status in enumerate(["running", "running", "done"]):
            version = store.put(_job(status, response={"n": n})).version
            assert version not in seen
            seen.add(version)
            assert store.get("job-1").version == version

    def test_a_restored_record_has_a_version(self, store: Store) -> None:
        store.restore([_job("running", updated_at=1_600_000_000)])
        got = store.get("job-1")
        assert got.version
        assert store.put(_job("done"), expect_version=got.version).job_status == "done"

    # -- conditional writes -----------------------------------------------------------------

    def test_a_put_with_the_stored_version_writes(self, store: Store) -> None:
        first = store.put(_job("queued"))
        second = store.put(_job("running"), expect_version=first.version)
        assert second.job_status == "running"
        assert second.version != first.version
        assert store.get("job-1").version == second.version

    def test_a_stale_version_is_a_conflict_and_writes_nothing(self, store: Store) -> None:
        first = store.put(_job("queued"))
        second = store.put(_job("running", response="kept"))
        with pytest.raises(Conflict) as info:
            store.put(_job("running", response="lost"), expect_version=first.version)
        assert info.value.job_id == "job-1"
        assert info.value.status == 409
        got = store.get("job-1")
        assert (got.response, got.version) == ("kept", second.version)

    def test_a_version_for_a_missing_job_is_a_conflict(self, store: Store) -> None:
        with pytest.raises(Conflict):
            store.put(_job(), expect_version="no-such-version")
        with pytest.raises(JobNotFound):
            store.get("job-1")

    def test_absent_writes_only_a_new_job(self, store: Store) -> None:
        created = store.put(_job("queued"), expect_version=ABSENT)
        assert created.job_status == "queued"
        with pytest.raises(Conflict):
            store.put(_job("running"), expect_version=ABSENT)
        assert store.get("job-1").job_status == "queued"

    def test_force_does_not_skip_the_version_check(self, store: Store) -> None:
        first = store.put(_job("done"))
        store.put(_job("failed"), force=True)
        with pytest.raises(Conflict):
            store.put(_job("queued"), force=True, expect_version=first.version)
        assert store.get("job-1").job_status == "failed"

    def test_the_version_is_checked_before_the_final_rule(self, store: Store) -> None:
        queued = store.put(_job("queued"))
        done = store.put(_job("done", response="result"))
        with pytest.raises(Conflict):
            store.put(_job("running"), expect_version=queued.version)
        kept = store.put(_job("running"), expect_version=done.version)
        assert (kept.job_status, kept.version) == ("done", done.version)

    def test_read_modify_write_loses_no_update(self, store: Store) -> None:
        store.put(_job("running", response=[]))
        errors: list[BaseException] = []

        def add_marks(worker: int) -> None:
            try:
                for n in range(10):
                    while True:
                        seen = store.get("job-1")
                        marks = [*seen.response, f"{worker}-{n}"]
                        try:
                            store.put(_job("running", response=marks), expect_version=seen.version)
                            break
                        except Conflict:
                            continue
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=add_marks, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        marks = store.get("job-1").response
        assert sorted(marks) == sorted(f"{w}-{n}" for w in range(4) for n in range(10))

    # -- expiry ------------------------------------------------------------------------------

    def test_an_expired_record_reads_as_absent(self, store: Store) -> None:
        store.put(_job("done", expires_at=_PAST))
        later = store.put(_job("done", job_id="job-2", expires_at=_in(3600)))
        with pytest.raises(JobNotFound):
            store.get("job-1")
        assert store.get("job-2").expires_at == later.expires_at
        assert [r.job_id for r in store.list()] == ["job-2"]
        assert [r.job_id for r in store.list(status="done", limit=5)] == ["job-2"]

    def test_an_expired_record_is_gone_for_writers(self, store: Store) -> None:
        store.put(_job("done", response="old", expires_at=_PAST))
        fresh = store.put(_job("queued"), expect_version=ABSENT)
        assert fresh.job_status == "queued"
        store.put(_job("failed", job_id="job-2", expires_at=_PAST))
        assert store.put(_job("running", job_id="job-2")).job_status == "running"

    def test_a_record_expires_when_its_time_comes(self, store: Store) -> None:
        store.put(_job("done", expires_at=_in(0.3)))
        assert store.get("job-1").job_status == "done"
        time.sleep(0.4)
        with pytest.raises(JobNotFound):
            store.get("job-1")

    def test_purge_expired_deletes_only_expired_records(self, store: Store) -> None:
        store.put(_job("done", job_id="gone", expires_at=_PAST))
        store.put(_job("failed", job_id="gone-too", expires_at=_PAST))
        store.put(_job("done", job_id="later", expires_at=_in(3600)))
        store.put(_job("running", job_id="forever"))
        assert store.purge(expired=True, status="failed") == 1
        assert store.purge(expired=True) == 1
        assert store.purge(expired=True) == 0
        assert sorted(r.job_id for r in store.list()) == ["forever", "later"]
        assert store.delete("gone") is False

    def test_purge_expired_and_old_together(self, store: Store) -> None:
        store.restore([_job("done", job_id="old", updated_at=1_600_000_000)])
        store.put(_job("done", job_id="expired", expires_at=_PAST))
        store.put(_job("done", job_id="kept"))
        assert store.purge(older_than=1_600_000_100, expired=True) == 2
        assert [r.job_id for r in store.list()] == ["kept"]

    def test_purge_needs_a_criterion(self, store: Store) -> None:
        with pytest.raises(ValueError, match="purge needs"):
            store.purge()

    # -- the lifecycle keys --------------------------------------------------------------------

    def test_the_lifecycle_keys_round_trip(self, store: Store) -> None:
        record = _job(
            "running",
            created_at=_in(-60),
            started_at=_in(-30),
            progress=Progress(percent=42.5, message="frames", current=17, total=40),
            expires_at=_in(3600),
            cancel_requested_at=_in(-1),
            owner="alice",
        )
        store.put(record)
        got = store.get("job-1")
        assert got == record
        assert got.to_dict() == record.to_dict()
        assert list(got.to_dict()) == list(record.to_dict())
        ended = store.put(_job("done", ended_at=_in(0), owner="alice"))
        assert store.get("job-1").to_dict() == ended.to_dict()

    def test_a_document_without_lifecycle_keys_has_none(self, store: Store) -> None:
        store.put(_job("done", response={"r": 1}))
        doc = store.get("job-1").to_dict()
        assert list(doc) == ["job_status", "job_id", "queue_id", "process_id", "response"]

    # -- owners ------------------------------------------------------------------------------

    def test_one_owners_records_are_listed_as_list_orders_them(self, store: Store) -> None:
        """:func:`~jobstatus.store.list_owned` (the store's ``list_owned`` when it has one)
        yields exactly the owner's records that ``list`` yields, in the same order, with the
        same ``since``, ``status`` and ``limit``; an owner changed by a write moves the job."""
        owners = ["alice", "bob", None, "alice", "bob", "alice", None]
        states = ["queued", "running", "done", "running", "done", "failed", "running"]
        store.restore(
            _job(state, f"job-{n}", owner=owner, updated_at=1_700_000_000 + n)
            for n, (owner, state) in enumerate(zip(owners, states, strict=True))
        )
        store.restore([_job("done", "job-0", owner="bob", updated_at=1_700_000_010)])
        cases: list[dict[str, Any]] = [{}, {"limit": 1}, {"status": ["running", "done"]}]
        cases.append({"since": 1_700_000_003})
        for owner in ("alice", "bob", "carol"):
            for options in cases:
                unbounded = {name: value for name, value in options.items() if name != "limit"}
                listed = [r for r in store.list(**unbounded) if r.owner == owner]
                listed = listed[: options.get("limit", len(listed))]
                owned = list(list_owned(store, owner, **options))
                assert owned == listed, (owner, options)
        assert [r.job_id for r in list_owned(store, "alice")] == ["job-5", "job-3"]
        assert [r.job_id for r in list_owned(store, "bob")] == ["job-0", "job-4", "job-1"]
        with pytest.raises(ValueError, match="limit"):
            list_owned(store, "alice", limit=-1)
