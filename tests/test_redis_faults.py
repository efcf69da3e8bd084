"""The Redis store when things go wrong: other processes racing, fork(), gunicorn --preload, an
outage through a proxy, a Redis restart, a hung Redis, a wrong password.

The figures each test measures are printed on the terminal (``FIGURES …`` lines).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from jobstatus import (  # noqa: E402
    Conflict,
    JobNotFound,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus.backends.redis import RedisStore  # noqa: E402
from tests.figures import report  # noqa: E402
from tests.forks import FORK_WORKERS, check_fork_load, serve_preloaded  # noqa: E402
from tests.outages import check_phases, through_an_outage  # noqa: E402
from tests.redis_server import RedisServer, shared_prefix, shared_redis_url  # noqa: E402
from tests.staging import JOB_ID, KEY  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

pytestmark = [pytest.mark.extras, pytest.mark.services]

PASSWORD = "s3cr3t-Redis-pa55"
WORKERS = 4
MARKS = 25


# -- several processes, one record -------------------------------------------------------------


def _add_marks(url: str, worker: int, start: Any, conflicts: Any) -> None:
    """Read, add one mark, put with the version read; on a Conflict read again."""
    with open_store(url) as store:
        start.wait(60)
        for n in range(MARKS):
            while True:
                seen = store.get("shared")
                marks = [*seen.response, f"{worker}-{n}"]
                try:
                    store.put(
                        JobRecord(job_id="shared", job_status="running", response=marks),
                        expect_version=seen.version,
                    )
                    break
                except Conflict:
                    with conflicts.get_lock():
                        conflicts.value += 1


@pytest.mark.slow
def test_processes_reading_and_writing_one_record_lose_no_mark(
    capsys: pytest.CaptureFixture[str],
) -> None:
    context = multiprocessing.get_context("spawn")
    with shared_prefix("race") as (url, _prefix):
        with open_store(url) as store:
            store.put(JobRecord(job_id="shared", job_status="running", response=[]))
        start = context.Barrier(WORKERS)
        conflicts = context.Value("i", 0)
        processes = [
            context.Process(target=_add_marks, args=(url, w, start, conflicts))
            for w in range(WORKERS)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(300)
        assert [p.exitcode for p in processes] == [0] * WORKERS
        with open_store(url) as store:
            marks = store.get("shared").response
    report(capsys, "redis read-modify-write", processes=WORKERS, marks=len(marks),
           conflicts_retried=conflicts.value)  # fmt: skip
    assert sorted(marks) == sorted(f"{w}-{n}" for w in range(WORKERS) for n in range(MARKS))
    assert conflicts.value > 0  # the processes really did collide


# -- fork() ------------------------------------------------------------------------------------


def _in_child(work: Any) -> bytes:
    """Run ``work()`` in a forked child; its one-byte answer (never returning into pytest)."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = work()
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("host_client", [False, True])
def test_a_forked_child_gets_its_own_connections(host_client: bool) -> None:
    """As under gunicorn --preload: the parent used the store before forking. The child talks
    to Redis on connections of its own (another CLIENT ID); the parent's still work after."""
    with shared_prefix("fork") as (url, prefix):
        client = redis.Redis.from_url(shared_redis_url()) if host_client else None
        store = RedisStore(client, prefix=prefix) if client else RedisStore.from_url(url)
        store.put(JobRecord(job_id="j", job_status="running"))
        parent_id = store.client.client_id()

        def child() -> int:
            ok = store.get("j").job_status == "running"
            store.put(JobRecord(job_id="child", job_status="done"))
            own = store.client.client_id() != parent_id
            return 0 if ok and own else 2

        assert _in_child(child) == b"\x00"
        assert store.client.client_id() == parent_id  # the parent's connection, untouched
        assert store.get("child").job_status == "done"
        assert store.get("j").job_status == "running"
        store.close()
        if client is not None:
            client.close()


@pytest.mark.slow
def test_gunicorn_preload_shares_no_redis_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    tag = f"jsfork_{uuid.uuid4().hex[:8]}"
    with shared_prefix("gunicorn") as (url, _prefix):
        counter = redis.Redis.from_url(shared_redis_url())

        def count_sessions() -> int:
            return sum(1 for c in counter.client_list() if c.get("name") == tag)

        load, problems, sessions = serve_preloaded(
            f"{url}&client_name={tag}", {}, tmp_path, count_sessions=count_sessions
        )
        counter.close()
    check_fork_load(load, problems, capsys, "redis", sessions)
    assert sessions is not None
    assert sessions >= FORK_WORKERS + 1  # the master's connection and each worker's own


# -- an outage, a restart, a hang --------------------------------------------------------------


@pytest.mark.slow
def test_an_outage_through_a_proxy_is_survived(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with shared_prefix("outage") as (url, prefix):
        with open_store(url) as direct:
            direct.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
        port = redis.Redis.from_url(shared_redis_url()).connection_pool.connection_kwargs["port"]
        with TcpProxy(port) as proxy:
            proxied = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&socket_timeout=2"
            phases = through_an_outage(proxied, proxy, JOB_ID)
    check_phases(phases, JOB_ID, capsys, caplog, "redis")


def test_a_redis_restart_is_survived(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server goes away (its data with it: nothing is saved) and comes back on the same
    port: calls in between fail with a StorageError without the password; afterwards the same
    store writes and reads again (new connections, scripts loaded again), and its change feed
    is subscribed again."""
    server = RedisServer(tmp_path, password=PASSWORD).start()
    try:
        store = RedisStore.from_url(server.url, socket_timeout=2)
        feed = store.changes()
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        assert feed.get(timeout=5) == JOB_ID
        server.stop()
        failures = []
        for call in (
            lambda: store.get(JOB_ID),
            lambda: store.put(JobRecord(job_id=JOB_ID, job_status="done")),
            lambda: list(store.list()),
            lambda: feed.get(timeout=1),
        ):
            with pytest.raises(StorageError) as info:
                call()
            failures.append(str(info.value))
        server.start()
        assert feed.get(timeout=0.5) is None  # reconnected and subscribed again
        with pytest.raises(JobNotFound):
            store.get(JOB_ID)  # the restarted server kept nothing
        assert store.put(JobRecord(job_id=JOB_ID, job_status="done")).job_status == "done"
        assert store.get(JOB_ID).job_status == "done"
        assert feed.get(timeout=5) == JOB_ID
        feed.close()
        store.close()
    finally:
        server.stop()
    assert all("ConnectionError" in text for text in failures), failures
    for text in [*failures, caplog.text]:
        assert PASSWORD not in text


def test_a_hung_redis_fails_calls_within_the_timeout(tmp_path: Path) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. Each call fails with a
    StorageError once socket_timeout passed (never retried on a timeout), the HTTP answer is the
    spec's 500, and once the server runs again the same store answers."""
    with RedisServer(tmp_path) as server:
        store = open_store(f"{server.url}?socket_timeout=0.3&socket_connect_timeout=0.3")
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        service = StatusService(store, api_keys=[KEY])
        with server.paused():
            with pytest.raises(StorageError, match="Timeout"):
                store.get(JOB_ID)
            with pytest.raises(StorageError, match="Timeout"):
                store.put(JobRecord(job_id=JOB_ID, job_status="done"))
            reply = service.handle("/v1/toolkit/job/status", f'{{"job_id": "{JOB_ID}"}}'.encode(),
                                   KEY)  # fmt: skip
            assert reply.status == 500
        assert store.get(JOB_ID).job_status in ("running", "done")
        store.close()


def test_a_subscription_survives_a_redis_restart(tmp_path: Path) -> None:
    """The store's subscription (what the watcher of long-polls uses) reports writes, tells its
    subscriber that changes may have been missed once Redis is back (``None``), then reports
    writes again; once closed, nothing."""
    seen: list[str | None] = []
    arrived = threading.Condition()

    def callback(job_id: str | None) -> None:
        with arrived:
            seen.append(job_id)
            arrived.notify_all()

    def wait_for(value: str | None) -> None:
        with arrived:
            assert arrived.wait_for(lambda: value in seen, timeout=30), seen

    server = RedisServer(tmp_path).start()
    try:
        store = RedisStore.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
        subscription = store.subscribe(callback)
        store.put(JobRecord(job_id=JOB_ID, job_status="running"))
        wait_for(JOB_ID)
        server.stop()
        server.start()
        wait_for(None)  # subscribed again: what was published meanwhile may be lost
        seen.clear()
        store.put(JobRecord(job_id=JOB_ID, job_status="done"))
        wait_for(JOB_ID)
        subscription.close()
        seen.clear()
        with store.changes() as feed:  # another subscriber sees the write: it was published
            store.put(JobRecord(job_id=JOB_ID, job_status="cancelled"), force=True)
            assert feed.get(timeout=5) == JOB_ID
        assert seen == []  # the closed subscription's thread had ended
        store.close()
    finally:
        server.stop()
