"""A hypothesis state machine comparing a store with the in-memory reference model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from jobstatus.backends.memory import MemoryStore
from jobstatus.errors import Conflict, JobNotFound
from jobstatus.record import JobRecord, JobState
from jobstatus.store import ABSENT, ExpectedVersion, Store
from jobstatus.testing.strategies import documents, job_ids

__all__ = ["BASE_TIME", "StoreStateMachine", "clear", "run_store_state_machine"]

#: Restored records carry whole-second stamps from BASE_TIME on, far in the past, so that
#: ``since`` and ``older_than`` bounds give the same answer on stores that keep whole seconds.
BASE_TIME = 1_600_000_000
_OFFSETS = st.integers(min_value=0, max_value=5)
_STATES = [s.value for s in JobState]
#: How a put states what it expects: nothing, the version last seen, a stale one, no record.
_EXPECTATIONS = ["none", "current", "stale", "absent"]


def clear(store: Store) -> None:
    """Delete every record through the protocol alone."""
    for record in list(store.list()):
        store.delete(record.job_id)


class StoreStateMachine(RuleBasedStateMachine):
    """Runs each step on ``store`` and on a :class:`MemoryStore`; the answers must agree.

    Set :attr:`make_store` (a function returning the store under test, emptied by the machine)
    before running, or use :func:`run_store_state_machine`.
    """

    make_store: Callable[[], Store]
    #: The finest ``updated_at`` the store keeps, in seconds (object stores: 1.0).
    resolution: float = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).make_store()
        clear(self.store)
        self.model = MemoryStore()
        self.ids: list[str] = []
        #: The (version, document) of each job id last seen in the store and in the model, None
        #: when absent.
        self.seen: dict[str, tuple[str, dict[str, Any]] | None] = {}
        self.model_seen: dict[str, str | None] = {}

    @initialize(ids=st.lists(job_ids(), min_size=1, max_size=4, unique=True))
    def pick_ids(self, ids: list[str]) -> None:
        """A few ids, so that steps collide on the same records."""
        self.ids = ids

    def _id(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.ids), label="job_id")

    def _doc(self, data: st.DataObject, job_id: str) -> dict[str, Any]:
        return data.draw(
            documents(
                job_id=st.just(job_id), job_status=st.sampled_from([*_STATES, "custom-state"])
            ),
            label="document",
        )

    def _check_same(self, got: JobRecord, want: JobRecord) -> None:
        assert got.to_dict() == want.to_dict()
        self._saw(got)
        self.model_seen[want.job_id] = want.version

    def _saw(self, got: JobRecord) -> None:
        """Remember the store's version; a changed document must come with a new version."""
        assert got.version, "every record a store returns has a version"
        doc = got.to_dict()
        before = self.seen.get(got.job_id)
        if before is not None and before[1] != doc:
            assert got.version != before[0], "the document changed but its version did not"
        self.seen[got.job_id] = (got.version, doc)

    def _refresh(self) -> None:
        """Learn every id's version again, after steps that return no records."""
        for job_id in self.ids:
            try:
                self._saw(self.store.get(job_id))
            except JobNotFound:
                self.seen[job_id] = None
            try:
                self.model_seen[job_id] = self.model.get(job_id).version
            except JobNotFound:
                self.model_seen[job_id] = None

    def _expectations(self, job_id: str, how: str) -> tuple[ExpectedVersion, ExpectedVersion]:
        """What the put expects, for the store and for the model alike."""
        if how == "stale":
            return "stale-version", "stale-version"
        if how == "absent" or (how == "current" and self.model_seen.get(job_id) is None):
            return ABSENT, ABSENT
        if how == "current":
            seen = self.seen.get(job_id)
            return (seen[0] if seen else "never-seen"), self.model_seen.get(job_id)
        return None, None

    @rule(data=st.data(), force=st.booleans(), how=st.sampled_from(_EXPECTATIONS))
    def put(self, data: st.DataObject, force: bool, how: str) -> None:
        job_id = self._id(data)
        record = JobRecord.from_dict(self._doc(data, job_id))
        expect, model_expect = self._expectations(job_id, how)
        try:
            want: JobRecord | None = self.model.put(
                record, force=force, expect_version=model_expect
            )
        except Conflict:
            want = None
        before = time.time()
        try:
            got: JobRecord | None = self.store.put(record, force=force, expect_version=expect)
        except Conflict:
            got = None
        after = time.time()
        if want is None:
            assert got is None, "the model refused the write as a conflict, the store wrote"
            return
        assert got is not None, "the store raised Conflict where the model wrote"
        self._check_same(got, want)
        assert got.updated_at is not None
        if want.updated_at is not None and want.updated_at >= before:
            # the model wrote (the job was not kept final): the store stamps the current time
            assert before - self.resolution - 1 <= got.updated_at <= after + 1

    @rule(data=st.data(), offset=_OFFSETS)
    def restore(self, data: st.DataObject, offset: int) -> None:
        job_id = self._id(data)
        record = JobRecord.from_dict(self._doc(data, job_id), updated_at=BASE_TIME + offset)
        assert self.store.restore([record]) == 1
        self.model.restore([record])
        assert self.store.get(job_id).updated_at == BASE_TIME + offset
        self._refresh()

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        job_id = self._id(data)
        try:
            want: JobRecord | None = self.model.get(job_id)
        except JobNotFound:
            want = None
        try:
            got: JobRecord | None = self.store.get(job_id)
        except JobNotFound as exc:
            missing_id, got = exc.job_id, None
        if want is None:
            assert got is None, f"the store has {got!r}, the model has nothing"
            assert missing_id == job_id
        else:
            assert got is not None, "the store lost a record the model has"
            self._check_same(got, want)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job_id = self._id(data)
        assert self.store.delete(job_id) == self.model.delete(job_id)
        self.seen[job_id] = self.model_seen[job_id] = None

    @rule(
        since=st.one_of(st.none(), _OFFSETS.map(lambda k: BASE_TIME + k)),
        status=st.one_of(st.none(), st.sampled_from(_STATES), st.sets(st.sampled_from(_STATES))),
        limit=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    )
    def list(self, since: float | None, status: Any, limit: int | None) -> None:
        got = list(self.store.list(since=since, status=status, limit=limit))
        full = list(self.store.list(since=since, status=status))
        want = list(self.model.list(since=since, status=status))
        docs = sorted(_key(r) for r in full)
        assert docs == sorted(_key(r) for r in want)
        stamps = [r.updated_at or 0.0 for r in full]
        assert stamps == sorted(stamps, reverse=True), "list must be newest first"
        if limit is None:
            assert sorted(_key(r) for r in got) == docs
        else:
            assert len(got) == min(limit, len(full))
            got_keys = {_key(r) for r in got}
            assert got_keys <= set(docs)
            if got:  # a limited list holds the newest: nothing left out is newer
                oldest_kept = min(r.updated_at or 0.0 for r in got)
                assert all(
                    (r.updated_at or 0.0) <= oldest_kept for r in full if _key(r) not in got_keys
                )

    @rule(
        offset=st.integers(min_value=0, max_value=6),
        status=st.one_of(st.none(), st.sampled_from(_STATES), st.sets(st.sampled_from(_STATES))),
    )
    def purge(self, offset: int, status: Any) -> None:
        older_than = BASE_TIME + offset
        assert self.store.purge(older_than=older_than, status=status) == self.model.purge(
            older_than=older_than, status=status
        )
        self._refresh()

    @precondition(lambda self: bool(self.ids))
    @rule(status=st.one_of(st.none(), st.sets(st.sampled_from(_STATES))))
    def purge_everything_up_to_now(self, status: Any) -> None:
        older_than = time.time() + 3600
        assert self.store.purge(older_than=older_than, status=status) == self.model.purge(
            older_than=older_than, status=status
        )
        self._refresh()

    def teardown(self) -> None:
        clear(self.store)


def _key(record: JobRecord) -> tuple[str, str]:
    import json

    return record.job_id, json.dumps(record.to_dict(), sort_keys=True)


def run_store_state_machine(
    make_store: Callable[[], Store],
    *,
    resolution: float = 0.0,
    max_examples: int = 40,
    step_count: int = 25,
) -> None:
    """Run :class:`StoreStateMachine` on the store ``make_store`` returns (it is emptied first)."""
    from hypothesis.stateful import run_state_machine_as_test

    machine = type(
        "StoreUnderTest",
        (StoreStateMachine,),
        {"make_store": staticmethod(make_store), "resolution": resolution},
    )
    run_as_test: Callable[..., None] = run_state_machine_as_test  # typed or not, by version
    run_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=step_count,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
