"""What a service tells an operator, without prometheus_client: the hooks of
:class:`~jobstatus.metrics.ServiceMetrics` as the service, its measured store and its watcher
call them, the measured store passing the store conformance suite, and every 500 logged once
with the request's ``id`` and never a credential.

The recorder here is a :class:`ServiceMetrics` that keeps what it is told, as a host's own
recorder (statsd, OpenTelemetry) would. The Prometheus recorder is tests/test_prometheus.py.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import ConfigurationError, JobRecord, StatusService, StorageError, open_store
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.metrics import METRICS_PATH, MeasuredStore, ServiceMetrics, backend_name
from jobstatus.service import JOB_PATH, JOB_STATUS_PATH, JOBS_PATH, JOBS_STATUS_PATH
from jobstatus.store import list_owned
from jobstatus.testing import ChangeNotificationTests, StoreTests
from jobstatus.wire import Request
from tests.clients import ADAPTERS, call_wsgi

KEY = "metrics-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
OTHER_ID = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
BROKEN_ID = "5f7d2a10-8c1b-4f6e-a3d9-1e2b3c4d5e6f"
SECRET = "Pw-7c1e9a0b3d"
HEADERS = {"x-api-key": KEY}


class Recorder(ServiceMetrics):
    """Keeps every hook call, in order, thread-safely."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def _keep(self, hook: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((hook, args))

    def answered(self, route: str, status: int, seconds: float | None) -> None:
        self._keep("answered", route, status, seconds)

    def store_called(self, backend: str, operation: str, seconds: float, failed: bool) -> None:
        self._keep("store_called", backend, operation, seconds, failed)

    def waiters_changed(self, mode: str, change: int) -> None:
        self._keep("waiters_changed", mode, change)

    def watcher_reconnected(self, reason: str) -> None:
        self._keep("watcher_reconnected", reason)

    def of(self, hook: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for name, args in self.calls if name == hook]


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (bounded generously: a stuck test fails, not hangs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def post(job_id: str, **fields: Any) -> bytes:
    return json.dumps({"job_id": job_id, **fields}).encode()


@pytest.fixture
def folder_store(tmp_path: Path) -> Iterator[FileSystemStore]:
    """A folder with one running job and one unreadable record (its reads are a 500)."""
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        (tmp_path / "jobs" / f"{BROKEN_ID}.json").write_text("{ not a record")
        yield store


# -- the hooks -------------------------------------------------------------------------------------


def test_without_metrics_nothing_is_wrapped_and_no_page_is_mounted() -> None:
    store = MemoryStore()
    service = StatusService(store, api_keys=[KEY])
    assert service.metrics is None
    assert service.store is store
    assert METRICS_PATH not in service.routes
    assert service.respond(Request("GET", METRICS_PATH, b"", KEY)).status == 404  # type: ignore[union-attr]


def test_every_answer_is_told_once_by_route_never_by_job_id(
    folder_store: FileSystemStore,
) -> None:
    recorder = Recorder()
    service = StatusService(folder_store, api_keys=[KEY], metrics=recorder)
    assert METRICS_PATH not in service.routes  # a recorder without a page mounts none
    asked = [
        Request("POST", JOB_STATUS_PATH, post(JOB_ID), KEY),
        Request("POST", JOB_STATUS_PATH, post(OTHER_ID), KEY),
        Request("POST", JOB_STATUS_PATH, post(BROKEN_ID), KEY),
        Request("POST", JOB_STATUS_PATH, post(JOB_ID), "wrong"),
        Request("POST", JOB_STATUS_PATH, b"not json", KEY),
        Request("GET", JOB_STATUS_PATH, b"", KEY),
        Request("GET", f"/v1/toolkit/jobs/{JOB_ID}", b"", KEY),
        Request("DELETE", f"/v1/toolkit/jobs/{JOB_ID}", b"", KEY),
        Request("GET", JOBS_PATH, b"", KEY),
        Request("POST", JOBS_STATUS_PATH, b"{}", KEY),
    ]
    statuses = [service.respond(request).status for request in asked]  # type: ignore[union-attr]
    assert statuses == [200, 404, 500, 401, 400, 405, 200, 405, 200, 200]
    told = recorder.of("answered")
    assert [(route, status) for route, status, _ in told] == [
        (JOB_STATUS_PATH, 200),
        (JOB_STATUS_PATH, 404),
        (JOB_STATUS_PATH, 500),
        (JOB_STATUS_PATH, 401),
        (JOB_STATUS_PATH, 400),
        (JOB_STATUS_PATH, 405),
        (JOB_PATH, 200),
        (JOB_PATH, 405),
        (JOBS_PATH, 200),
        (JOBS_STATUS_PATH, 200),
    ]
    assert all(isinstance(seconds, float) and seconds >= 0 for _, _, seconds in told)


def test_every_store_call_is_told_with_its_outcome(folder_store: FileSystemStore) -> None:
    recorder = Recorder()
    service = StatusService(folder_store, api_keys=[KEY], metrics=recorder, allow_cancel=True)
    assert isinstance(service.store, MeasuredStore)
    assert service.store.store is folder_store
    for job_id in (JOB_ID, OTHER_ID, BROKEN_ID):
        service.respond(Request("POST", JOB_STATUS_PATH, post(job_id), KEY))
    service.respond(Request("GET", JOBS_PATH, b"", KEY))
    service.respond(Request("POST", "/v1/toolkit/job/cancel", post(JOB_ID), KEY))
    told = [(backend, op, failed) for backend, op, _, failed in recorder.of("store_called")]
    # A missing job is an answer, not a failure; the unreadable record is one.
    assert told[:4] == [
        ("filesystem", "get", False),
        ("filesystem", "get", False),
        ("filesystem", "get", True),
        ("filesystem", "list", False),
    ]
    assert ("filesystem", "put", False) in told[4:]  # the cancel wrote the request to stop


def test_the_measured_store_times_every_operation_and_passes_the_rest_through(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    inner = FileSystemStore(tmp_path / "data")
    with MeasuredStore(inner, recorder) as store:
        assert not store.exists()  # the store's own attribute, untouched
        store.put(JobRecord(job_id="a", job_status="running"))
        store.restore([JobRecord(job_id="b", job_status="done", updated_at=1.0)])
        store.get("a")
        listing = store.list(limit=1)
        assert [record.job_id for record in listing] == ["a"]
        store.delete("a")
        assert store.purge(older_than=2.0) == 1
        assert store.root == inner.root  # a backend's own attribute
    operations = [op for _, op, _, _ in recorder.of("store_called")]
    assert operations == ["put", "restore", "get", "list", "delete", "purge"]
    assert {backend for backend, *_ in recorder.of("store_called")} == {"filesystem"}
    assert repr(store) == f"MeasuredStore({inner!r})"


def test_a_listing_is_timed_when_read_to_its_end_or_dropped() -> None:
    recorder = Recorder()
    store = MeasuredStore(MemoryStore(), recorder)
    store.restore(JobRecord(job_id=f"job-{n}", job_status="done") for n in range(5))
    listing = store.list()
    next(listing)
    assert [op for _, op, _, _ in recorder.of("store_called")] == ["restore"]  # not yet
    listing.close()  # dropped half-read
    assert [op for _, op, _, _ in recorder.of("store_called")] == ["restore", "list"]
    assert len(list(store.list())) == 5
    assert [op for _, op, _, _ in recorder.of("store_called")] == ["restore", "list", "list"]


def test_a_listing_that_fails_midway_is_a_failed_call(tmp_path: Path) -> None:
    recorder = Recorder()
    inner = FileSystemStore(tmp_path, notify=False)
    inner.put(JobRecord(job_id="a", job_status="done"))
    store = MeasuredStore(inner, recorder)
    listing = store.list()
    shutil.rmtree(tmp_path / "jobs")
    (tmp_path / "jobs").write_text("not a folder")
    with pytest.raises(StorageError):
        list(listing)
    assert recorder.of("store_called")[-1][1:] == ("list", pytest.approx(0, abs=60), True)


@pytest.mark.extras
def test_an_owner_listing_is_measured_where_the_store_has_an_index(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    recorder = Recorder()
    with open_store(f"sqlite:///{tmp_path}/jobs.db") as inner:
        store = MeasuredStore(inner, recorder)
        store.put(JobRecord(job_id="a", job_status="done", owner="ann"))
        store.put(JobRecord(job_id="b", job_status="done", owner="bob"))
        assert [record.job_id for record in list_owned(store, "ann")] == ["a"]
    operations = [op for _, op, _, _ in recorder.of("store_called")]
    assert operations == ["put", "put", "list_owned"]
    assert not hasattr(MeasuredStore(MemoryStore(), recorder), "list_owned")  # none to offer


def test_the_backend_label_is_the_class_name(tmp_path: Path) -> None:
    assert backend_name(MemoryStore()) == "memory"
    assert backend_name(FileSystemStore(tmp_path)) == "filesystem"
    assert backend_name(Recorder()) == "recorder"


def test_a_long_poll_is_told_when_answered_and_its_waiter_counted(
    folder_store: FileSystemStore,
) -> None:
    recorder = Recorder()
    service = StatusService(folder_store, api_keys=[KEY], metrics=recorder)
    pending = service.respond(Request("POST", JOB_STATUS_PATH, post(JOB_ID, wait=30), KEY))
    assert not hasattr(pending, "status")  # held
    answered: list[int] = []
    waiting = threading.Thread(target=lambda: answered.append(pending.result().status))  # type: ignore[union-attr]
    waiting.start()
    until(lambda: recorder.of("waiters_changed") == [("thread", 1)], "the waiter to be counted")
    assert recorder.of("answered") == []
    folder_store.put(JobRecord(job_id=JOB_ID, job_status="done"))
    waiting.join(30)
    assert answered == [200]
    assert recorder.of("waiters_changed") == [("thread", 1), ("thread", -1)]
    assert recorder.of("answered") == [(JOB_STATUS_PATH, 200, None)]  # held: not timed


def test_the_watcher_tells_when_its_change_feed_missed_changes(tmp_path: Path) -> None:
    """The folder is removed under a waiting request: the kernel's watch reports it, the
    watcher re-reads what it waits on, and tells a reconnect."""
    recorder = Recorder()
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        service = StatusService(store, api_keys=[KEY], metrics=recorder)
        if not service.watcher.notified and service.watcher.token() is None:
            pytest.skip("no change notification for folders here (inotify)")
        pending = service.respond(Request("POST", JOB_STATUS_PATH, post(JOB_ID, wait=30), KEY))
        answered: list[int] = []
        waiting = threading.Thread(target=lambda: answered.append(pending.result().status))  # type: ignore[union-attr]
        waiting.start()
        until(lambda: service.wait_limits.held(blocking=True) == 1, "the request to wait")
        shutil.rmtree(tmp_path / "jobs")
        waiting.join(30)
        assert answered == [404]  # the job went with its folder
        until(  # the folder's own event may come after its files'
            lambda: ("missed",) in recorder.of("watcher_reconnected"), "the feed's reconnect"
        )


def test_the_watcher_tells_when_its_store_fails(tmp_path: Path) -> None:
    """A polled store whose folder is replaced by a file: each poll fails, the watcher
    tells each retry; the folder back, the waiting request gets the change."""
    recorder = Recorder()
    store = FileSystemStore(tmp_path, notify=False)
    store.put(JobRecord(job_id=JOB_ID, job_status="running"))
    service = StatusService(store, api_keys=[KEY], metrics=recorder)
    pending = service.respond(Request("POST", JOB_STATUS_PATH, post(JOB_ID, wait=30), KEY))
    answered: list[int] = []
    waiting = threading.Thread(target=lambda: answered.append(pending.result().status))  # type: ignore[union-attr]
    waiting.start()
    until(lambda: service.wait_limits.held(blocking=True) == 1, "the request to wait")
    shutil.rmtree(tmp_path / "jobs")
    (tmp_path / "jobs").write_text("not a folder")
    until(lambda: ("error",) in recorder.of("watcher_reconnected"), "a failed poll")
    (tmp_path / "jobs").unlink()
    store.put(JobRecord(job_id=JOB_ID, job_status="done"))
    waiting.join(30)
    assert answered == [200]
    failed = [op for _, op, _, failed in recorder.of("store_called") if failed]
    assert "list" in failed  # the watcher's polls go through the measured store too


# -- the measured store is a store -----------------------------------------------------------------


class TestMeasuredStore(StoreTests, ChangeNotificationTests):
    """The conformance suite through the wrapper: it changes no answer, and passes the
    store's change notification through."""

    state_machine_examples = 10  # the memory store's own run checks the model; this, the wrapper

    @pytest.fixture
    def store(self) -> Iterator[MeasuredStore]:
        with MeasuredStore(MemoryStore(), ServiceMetrics()) as store:
            yield store


# -- every 500 logged once, never a credential -----------------------------------------------------


class FailingStore(MemoryStore):
    """A store whose reads fail as a database driver's would: with a URL in the message."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get(self, job_id: str) -> JobRecord:
        raise self.error


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "".join(repr(r.args) + repr(r.msg) for r in caplog.records)


@pytest.mark.parametrize(
    "adapter", [pytest.param(name, marks=marks) for name, (_, marks) in ADAPTERS.items()]
)
@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            StorageError(f"cannot read from postgresql://app:{SECRET}@db.internal/jobs: refused"),
            "500 answering",
        ),
        (
            RuntimeError(f"connect(password={SECRET}, host='db.internal') failed"),
            "unexpected failure answering",
        ),
    ],
)
def test_a_500_is_logged_once_with_the_request_id_and_never_a_credential(
    adapter: str, error: Exception, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)  # every record of every logger, below DEBUG too
    factory = ADAPTERS[adapter][0]
    call = factory(StatusService(FailingStore(error), api_keys=[KEY], metrics=Recorder()))
    answer = call("POST", JOB_STATUS_PATH, post(JOB_ID, id="request-42"), HEADERS)
    assert answer.status == 500
    assert answer.json()["error"].startswith("Failed to retrieve job status: ")
    [logged] = failures(caplog)
    message = logged.getMessage()
    assert message.startswith(f'{kind} {JOB_STATUS_PATH} (id "request-42"): ')
    assert type(error).__name__ in message
    assert "db.internal" in message  # the failure itself, minus its secret
    assert SECRET not in everything_logged(caplog)
    assert SECRET.encode() not in answer.body


def test_a_500_of_a_get_is_logged_with_its_path(caplog: pytest.LogCaptureFixture) -> None:
    service = StatusService(FailingStore(StorageError("disk on fire")), api_keys=[KEY])
    answer = call_wsgi(make_app(service), "GET", f"/v1/toolkit/jobs/{JOB_ID}", headers=HEADERS)
    assert answer.status == 500
    [logged] = failures(caplog)
    assert logged.getMessage() == (
        f"500 answering /v1/toolkit/jobs/{JOB_ID} (id null): StorageError: disk on fire"
    )


def test_answers_below_500_are_not_logged_as_failures(
    folder_store: FileSystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    service = StatusService(folder_store, api_keys=[KEY])
    for request in (
        Request("POST", JOB_STATUS_PATH, post(OTHER_ID), KEY),
        Request("POST", JOB_STATUS_PATH, post(JOB_ID), None),
        Request("POST", JOB_STATUS_PATH, b"[]", KEY),
    ):
        assert service.respond(request).status in (400, 401, 404)  # type: ignore[union-attr]
    assert failures(caplog) == []


# -- a missing extra -------------------------------------------------------------------------------


def test_prometheus_metrics_without_the_extra_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes the import fail
    with pytest.raises(ConfigurationError, match=r'pip install "jobstatus\[metrics\]"'):
        StatusService(MemoryStore(), api_keys=[KEY], metrics=True)
