"""Prometheus metrics through every adapter, scraped over HTTP and parsed with
prometheus_client's own parser: answers by route and code, store calls by backend and
operation, the waiters of a long-poll, the watcher's reconnects, who may read the page, and
``jobstatus serve --metrics`` summing its gunicorn workers.

Every test but the global-registry one records into a registry of its own, so each reads
exact counts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, StatusService, open_store
from jobstatus.access import Access
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.metrics import METRICS_PATH, MeasuredStore
from jobstatus.service import JOB_PATH, JOB_STATUS_PATH, JOBS_PATH, JOBS_STATUS_PATH
from tests.clients import ADAPTERS, Answer, Client, wsgi_client

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from jobstatus.prometheus import PrometheusMetrics  # noqa: E402

pytestmark = pytest.mark.extras

ROOT = Path(__file__).resolve().parents[1]
KEY = "prometheus-key"
HEADERS = {"x-api-key": KEY}
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
OTHER_ID = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
BROKEN_ID = "5f7d2a10-8c1b-4f6e-a3d9-1e2b3c4d5e6f"
EVERY_ADAPTER = [pytest.param(name, marks=marks) for name, (_, marks) in ADAPTERS.items()]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(call: Client, headers: dict[str, str] = HEADERS, path: str = METRICS_PATH) -> Samples:
    answer = call("GET", path, b"", headers)
    assert answer.status == 200, answer.body[:300]
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.body.decode())


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def post(job_id: str, **fields: Any) -> bytes:
    return json.dumps({"job_id": job_id, **fields}).encode()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[FileSystemStore]:
    """A running job and an unreadable record (reading it is a 500)."""
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        (tmp_path / "jobs" / f"{BROKEN_ID}.json").write_text("{ not a record")
        yield store


def served(store: Any, adapter: str, **options: Any) -> tuple[StatusService, Client]:
    options.setdefault("metrics", PrometheusMetrics(CollectorRegistry()))
    service = StatusService(store, api_keys=[KEY], **options)
    return service, ADAPTERS[adapter][0](service)


# -- answers and store calls -----------------------------------------------------------------------


@pytest.mark.parametrize("adapter", EVERY_ADAPTER)
def test_answers_and_store_calls_are_counted_by_route_and_operation(
    adapter: str, folder: FileSystemStore
) -> None:
    _, call = served(folder, adapter)
    asked = [
        ("POST", JOB_STATUS_PATH, post(JOB_ID), HEADERS),
        ("POST", JOB_STATUS_PATH, post(JOB_ID), HEADERS),
        ("POST", JOB_STATUS_PATH, post(OTHER_ID), HEADERS),
        ("POST", JOB_STATUS_PATH, post(BROKEN_ID), HEADERS),
        ("POST", JOB_STATUS_PATH, post(JOB_ID), {}),
        ("GET", f"/v1/toolkit/jobs/{JOB_ID}", b"", HEADERS),
        ("GET", f"/v1/toolkit/jobs/{OTHER_ID}", b"", HEADERS),
        ("GET", JOBS_PATH, b"", HEADERS),
        ("POST", JOBS_STATUS_PATH, b"{}", HEADERS),
    ]
    statuses = [call(*request).status for request in asked]
    assert statuses == [200, 200, 404, 500, 401, 200, 404, 200, 200]
    samples = scrape(call)
    answers = {
        (labels["route"], labels["code"]): count
        for (name, pairs), count in samples.items()
        if name == "jobstatus_answers_total" and (labels := dict(pairs))
    }
    assert answers == {
        (JOB_STATUS_PATH, "200"): 2,
        (JOB_STATUS_PATH, "404"): 1,
        (JOB_STATUS_PATH, "500"): 1,
        (JOB_STATUS_PATH, "401"): 1,
        (JOB_PATH, "200"): 1,
        (JOB_PATH, "404"): 1,
        (JOBS_PATH, "200"): 1,
        (JOBS_STATUS_PATH, "200"): 1,
    }
    assert value(samples, "jobstatus_answer_seconds_count", route=JOB_STATUS_PATH) == 5
    assert value(samples, "jobstatus_answer_seconds_count", route=JOB_PATH) == 2
    calls = {"backend": "filesystem", "operation": "get"}
    assert value(samples, "jobstatus_store_call_seconds_count", **calls) == 6
    assert value(samples, "jobstatus_store_errors_total", **calls) == 1  # the unreadable one
    assert value(samples, "jobstatus_store_call_seconds_bucket", le="+Inf", **calls) == 6
    listed = {"backend": "filesystem", "operation": "list"}
    assert value(samples, "jobstatus_store_call_seconds_count", **listed) == 2
    assert value(samples, "jobstatus_store_errors_total", **listed) == 0
    again = scrape(call)  # the page's own answer is counted once it is sent
    assert value(again, "jobstatus_answers_total", route=METRICS_PATH, code="200") == 1


def test_every_store_operation_is_timed(tmp_path: Path) -> None:
    metrics = PrometheusMetrics(CollectorRegistry(), path=None)
    with MeasuredStore(FileSystemStore(tmp_path), metrics) as store:
        store.put(JobRecord(job_id="a", job_status="running"))
        store.put(JobRecord(job_id="a", job_status="done"))
        store.restore([JobRecord(job_id="b", job_status="done", updated_at=1.0)])
        store.get("a")
        assert len(list(store.list())) == 2
        store.delete("a")
        store.purge(older_than=2.0)
        (tmp_path / "jobs" / "c.json").write_text("{ not a record")
        with pytest.raises(Exception, match=r"c\.json"):
            store.get("c")
    page = metrics.exposition()
    assert page is not None
    samples = parse(page[1].decode())
    counts = {
        op: value(samples, "jobstatus_store_call_seconds_count", backend="filesystem", operation=op)
        for op in ("get", "put", "restore", "list", "delete", "purge")
    }
    assert counts == {"get": 2, "put": 2, "restore": 1, "list": 1, "delete": 1, "purge": 1}
    errors = value(samples, "jobstatus_store_errors_total", backend="filesystem", operation="get")
    assert errors == 1


# -- waiting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", EVERY_ADAPTER)
def test_the_waiters_gauge_rises_during_a_long_poll_and_falls_after(
    adapter: str, folder: FileSystemStore
) -> None:
    service, call = served(folder, adapter)
    mode = "async" if adapter == "fastapi" else "thread"
    etag = call("GET", f"/v1/toolkit/jobs/{JOB_ID}", b"", HEADERS).headers["etag"]
    answers: list[Answer] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            call(
                "GET",
                f"/v1/toolkit/jobs/{JOB_ID}?wait=30",
                b"",
                {**HEADERS, "If-None-Match": etag},
            )
        )
    )
    waiting.start()
    try:
        until(
            lambda: value(scrape(call), "jobstatus_waiters", mode=mode) == 1,
            "the waiting request to be counted",
        )
    finally:
        folder.put(JobRecord(job_id=JOB_ID, job_status="done"))
        waiting.join(30)
    assert [answer.status for answer in answers] == [200]
    samples = scrape(call)
    assert value(samples, "jobstatus_waiters", mode=mode) == 0
    assert value(samples, "jobstatus_answers_total", route=JOB_PATH, code="200") == 2
    assert value(samples, "jobstatus_answer_seconds_count", route=JOB_PATH) == 1  # held: untimed
    assert service.wait_limits.held(blocking=mode == "thread") == 0


def test_watcher_reconnects_are_counted_when_its_store_fails(tmp_path: Path) -> None:
    """A polled folder replaced by a file while a request waits: each failed poll is a
    reconnect; the folder back, the request gets its change."""
    store = FileSystemStore(tmp_path, notify=False)
    store.put(JobRecord(job_id=JOB_ID, job_status="running"))
    service, call = served(store, "wsgi")
    answers: list[int] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            call("POST", JOB_STATUS_PATH, post(JOB_ID, wait=30), HEADERS).status
        )
    )
    waiting.start()
    until(lambda: service.wait_limits.held(blocking=True) == 1, "the request to wait")
    assert value(scrape(call), "jobstatus_watcher_reconnects_total", reason="error") == 0
    shutil.rmtree(tmp_path / "jobs")
    (tmp_path / "jobs").write_text("not a folder")
    try:
        until(
            lambda: value(scrape(call), "jobstatus_watcher_reconnects_total", reason="error") >= 1,
            "a failed poll to be counted",
        )
    finally:
        (tmp_path / "jobs").unlink()
        store.put(JobRecord(job_id=JOB_ID, job_status="done"))
        waiting.join(30)
    assert answers == [200]
    samples = scrape(call)
    assert value(samples, "jobstatus_store_errors_total", backend="filesystem", operation="list")
    assert value(samples, "jobstatus_watcher_reconnects_total", reason="missed") == 0


# -- the page --------------------------------------------------------------------------------------

OWNER_KEY, PROMETHEUS_KEY = "tenant-key", "scraper-key"
KEYS = {
    KEY: Access(),
    OWNER_KEY: Access(owner="tenant"),
    PROMETHEUS_KEY: Access(scopes=frozenset()),  # reads no job, only the page
}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"x-api-key": "wrong"}, 401),
        ({"x-api-key": OWNER_KEY}, 403),
        ({"Authorization": f"Bearer {OWNER_KEY}"}, 403),
        ({"x-api-key": KEY}, 200),
        ({"x-api-key": PROMETHEUS_KEY}, 200),
        ({"Authorization": f"Bearer {PROMETHEUS_KEY}"}, 200),
        ({"Authorization": f"Basic {PROMETHEUS_KEY}"}, 401),
    ],
)
@pytest.mark.parametrize("adapter", EVERY_ADAPTER)
def test_the_page_is_for_keys_bound_to_no_owner(
    adapter: str, headers: dict[str, str], status: int
) -> None:
    service = StatusService(
        MemoryStore(), api_keys=KEYS, metrics=PrometheusMetrics(CollectorRegistry())
    )
    answer = ADAPTERS[adapter][0](service)("GET", METRICS_PATH, b"", headers)
    assert answer.status == status
    if status != 200:
        assert b"jobstatus_" not in answer.body
        assert answer.headers["content-type"] == "application/json"


def test_a_per_job_token_does_not_read_the_page() -> None:
    pytest.importorskip("itsdangerous")
    service = StatusService(
        MemoryStore(),
        api_keys=[KEY],
        token_secrets=["token-secret"],
        metrics=PrometheusMetrics(CollectorRegistry()),
    )
    token = service.issue_token(JOB_ID)
    call = wsgi_client(service)
    assert call("GET", METRICS_PATH, b"", {"Authorization": f"Bearer {token}"}).status == 401
    assert call("GET", METRICS_PATH, b"", HEADERS).status == 200


def test_without_authentication_the_page_is_open() -> None:
    service = StatusService(
        MemoryStore(), api_keys=None, metrics=PrometheusMetrics(CollectorRegistry())
    )
    assert scrape(wsgi_client(service), {})


def test_the_page_can_move_or_be_left_out() -> None:
    registry = CollectorRegistry()
    moved = StatusService(
        MemoryStore(), api_keys=[KEY], metrics=PrometheusMetrics(registry, path="/ops/metrics")
    )
    call = wsgi_client(moved, prefix="/api")
    assert call("GET", f"/api{METRICS_PATH}", b"", HEADERS).status == 404
    assert value(scrape(call, path="/api/ops/metrics"), "jobstatus_waiters", mode="thread") == 0
    hidden = StatusService(
        MemoryStore(), api_keys=[KEY], metrics=PrometheusMetrics(registry, path=None)
    )
    assert METRICS_PATH not in hidden.routes
    wsgi_client(hidden)("POST", JOB_STATUS_PATH, post(JOB_ID), HEADERS)
    samples = parse(prometheus_client.generate_latest(registry).decode())  # one's own exposition
    assert value(samples, "jobstatus_answers_total", route=JOB_STATUS_PATH, code="404") == 1
    with pytest.raises(ValueError, match="a route is"):
        StatusService(MemoryStore(), api_keys=[KEY], metrics=PrometheusMetrics(path=JOBS_PATH))


def test_true_records_into_the_global_registry_shared_by_every_service() -> None:
    registry = prometheus_client.REGISTRY
    labels = {"route": JOB_STATUS_PATH, "code": "404"}
    before = registry.get_sample_value("jobstatus_answers_total", labels) or 0.0
    first = StatusService(MemoryStore(), api_keys=[KEY], metrics=True)
    second = StatusService(MemoryStore(), api_keys=[KEY], metrics=True)  # no duplicate
    for service in (first, second):
        wsgi_client(service)("POST", JOB_STATUS_PATH, post(JOB_ID), HEADERS)
    assert registry.get_sample_value("jobstatus_answers_total", labels) == before + 2
    page = wsgi_client(first)("GET", METRICS_PATH, b"", HEADERS).body.decode()
    assert "python_info" in page  # the process's own metrics, as Prometheus users expect


def test_fastapi_leaves_the_page_out_of_the_openapi_document() -> None:
    fastapi = pytest.importorskip("fastapi")
    from jobstatus.adapters.fastapi import make_router

    service = StatusService(
        MemoryStore(), api_keys=[KEY], metrics=PrometheusMetrics(CollectorRegistry())
    )
    app = fastapi.FastAPI()
    app.include_router(make_router(service))
    assert METRICS_PATH not in app.openapi()["paths"]
    assert JOB_STATUS_PATH in app.openapi()["paths"]


# -- a real database's failure ---------------------------------------------------------------------

PASSWORD = "Pw-3e9d0c7b1a"


def test_a_postgresql_failure_is_logged_once_and_counted_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A PostgreSQL URL with a password, on a port nothing listens on: the 500 is logged
    once with the request's id, counted as a failed ``get`` of the ``sql`` backend, and the
    password appears nowhere."""
    pytest.importorskip("psycopg")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(1)
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/test"
    with open_store(url, connect_args={"connect_timeout": 5}) as store:
        _, call = served(store, "wsgi")
        answer = call("POST", JOB_STATUS_PATH, post(JOB_ID, id="req-7f"), HEADERS)
        samples = scrape(call)
    assert answer.status == 500
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    message = failures[0].getMessage()
    assert message.startswith(f'500 answering {JOB_STATUS_PATH} (id "req-7f"): StorageError')
    assert "refused" in message.lower()
    logged = caplog.text + "".join(repr(r.args) + repr(r.msg) for r in caplog.records)
    assert PASSWORD not in logged
    assert PASSWORD.encode() not in answer.body
    assert value(samples, "jobstatus_store_errors_total", backend="sql", operation="get") == 1
    assert value(samples, "jobstatus_answers_total", route=JOB_STATUS_PATH, code="500") == 1


# -- jobstatus serve --metrics ---------------------------------------------------------------------


def http(port: int, path: str, *, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
def test_serve_sums_the_metrics_of_its_workers(tmp_path: Path) -> None:
    """Two gunicorn workers answer; every scrape, whichever worker answers it, counts every
    request, a dead worker's included; the folder the values lived in is gone once the
    server stopped."""
    pytest.importorskip("gunicorn")
    with FileSystemStore(tmp_path / "data") as store:
        store.put(JobRecord(job_id=JOB_ID, job_status="done"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSTATUS_", "PROM"))}
    environ.update(PYTHONPATH=str(ROOT), API_KEY=KEY, TMPDIR=str(scratch))
    command = [sys.executable, "-m", "jobstatus", "serve", "--metrics", "--workers", "2"]
    log = tmp_path / "server.log"
    with log.open("w") as errors:
        server = subprocess.Popen(
            [*command, "--port", str(port), "--store", str(tmp_path / "data")],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        until(  # only a hang fails: a loaded machine starts gunicorn slowly
            lambda: _answers(port) is not None or server.poll() is not None, "the server", 90
        )
        assert server.poll() is None, log.read_text()
        [values] = [path for path in scratch.iterdir() if path.name.startswith("jobstatus-")]
        pids: set[int] = set()
        sent = 0
        while len(pids) < 2:  # until both workers answered some
            status, body = http(port, JOB_STATUS_PATH, body=post(JOB_ID), **HEADERS)
            assert status == 200
            pids.add(json.loads(body)["pid"])
            sent += 1
            assert sent < 2000, "one worker answered every request"
        assert any(values.glob("*.db"))
        for _ in range(6):  # each scrape may be answered by either worker: all show the sum
            assert _answers(port) == sent
        killed = min(pids)  # a worker dies: gunicorn replaces it, its live values go, its
        live = values / f"gauge_livesum_{killed}.db"  # counts stay
        assert live.exists()
        os.kill(killed, signal.SIGKILL)
        until(lambda: not live.exists(), "the dead worker's live values to be dropped")
        assert _answers(port) == sent
    finally:
        server.terminate()
        server.wait(60)
    assert "Traceback" not in log.read_text(), log.read_text()
    assert not values.exists()


def _answers(port: int) -> float | None:
    """``jobstatus_answers_total`` of the status route's 200s, as the server's page says."""
    try:
        status, body = http(port, METRICS_PATH, Authorization=f"Bearer {KEY}")
    except OSError:
        return None
    assert status == 200, body[:300]
    samples = parse(body.decode())
    return value(samples, "jobstatus_answers_total", route=JOB_STATUS_PATH, code="200")


def test_serve_without_the_extra_names_it(tmp_path: Path) -> None:
    """A missing prometheus_client is one line naming the extra, before gunicorn starts."""
    pytest.importorskip("gunicorn")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "prometheus_client.py").write_text(  # as when it is not installed
        "raise ModuleNotFoundError('No module named prometheus_client', name='prometheus_client')"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROM")}
    environ.update(PYTHONPATH=f"{blocker}{os.pathsep}{ROOT}", API_KEY=KEY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "jobstatus", "serve", "--metrics", "--port", str(port)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "jobstatus: prometheus_client is not installed; "
        'install it with: pip install "jobstatus[metrics]"\n'
    )
