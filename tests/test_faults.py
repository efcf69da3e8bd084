"""Faults production brings, staged for real: a read-only or full disk, an upstream writer
rewriting job files in place, a database or S3 endpoint that restarts, gunicorn forking a
store opened before the fork.

The figures each test measures are printed on the terminal (``FIGURES …`` lines, shown even
without ``-s``) and copied into docs/reliability.rst.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import http.client
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from jobstatus import JobRecord, StatusService, StorageError
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.testing.suite import UPSTREAM_EXAMPLE
from tests import s3_server
from tests.clients import wsgi_client
from tests.conftest import service_unavailable
from tests.tcp_proxy import TcpProxy

KEY = "fault-test-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
STATUS = "/v1/toolkit/job/status"
ERROR_PREFIX = "Failed to retrieve job status: "


def report(capsys: pytest.CaptureFixture[str], name: str, **figures: Any) -> None:
    """Print one line of figures on the terminal, captured or not."""
    with capsys.disabled():
        print(f"\nFIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def upstream_document(n: int, job_id: str = JOB_ID) -> dict[str, Any]:
    """A job file as the upstream queue writes it (the upstream documentation's example),
    numbered."""
    doc = copy.deepcopy(UPSTREAM_EXAMPLE)
    doc.update(job_status="running" if n % 2 else "queued", job_id=job_id)
    doc["response"].update(job_id=job_id, response=f"step {n}", n=n)
    return doc


def no_temp_files(store: FileSystemStore) -> list[str]:
    """Names in jobs/ that are not records: what a failed write left behind."""
    if not store.jobs_dir.exists():
        return []
    return sorted(p.name for p in store.jobs_dir.iterdir() if not p.name.endswith(".json"))


# -- the proxy these tests stage outages with ---------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A loopback server echoing every line back, one thread per client."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_the_proxy_forwards_cuts_refuses_and_resumes(echo_server: int) -> None:
    with TcpProxy(echo_server) as proxy:
        before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.sendall(b"ping")
        assert before.recv(4) == b"ping"

        with proxy.outage():
            assert before.recv(4) == b""  # the open connection was closed under the client
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.close()

        after = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        after.sendall(b"pong")
        assert after.recv(4) == b"pong"
        after.close()
        assert proxy.accepted == 2
        assert proxy.cut_connections == 1


# -- filesystem faults: a read-only folder, a full disk ------------------------------------------


def _mount_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs with 64 inodes: small enough to fill in a moment. Mounting needs root
    (CI runs as root); elsewhere the tests skip, or fail under JOBSTATUS_REQUIRE_SERVICES=1."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None:
        service_unavailable("no mount command: the filesystem fault tests need a tmpfs")
    mounted = _mount_command("-t", "tmpfs", "-o", "size=256k,nr_inodes=64", "tmpfs", str(folder))
    if mounted.returncode != 0:
        service_unavailable(
            f"cannot mount a tmpfs ({mounted.stderr.strip()}): the filesystem fault tests "
            "need root, or a machine that lets this user mount"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def remount_read_only(folder: Path) -> None:
    remounted = _mount_command("-o", "remount,ro", str(folder))
    assert remounted.returncode == 0, remounted.stderr


def test_a_read_only_folder_refuses_writes_and_keeps_serving(small_disk: Path) -> None:
    store = FileSystemStore(small_disk)
    old = store.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    remount_read_only(small_disk)

    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id=JOB_ID, job_status="done", response={"step": 2}))
    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id="new-job", job_status="queued"))
    with pytest.raises(StorageError, match="Read-only file system"):
        store.delete(JOB_ID)
    with pytest.raises(StorageError, match="Read-only file system"):
        store.restore([JobRecord(job_id=JOB_ID, job_status="failed")])

    assert store.get(JOB_ID).to_dict() == old.to_dict()
    assert store.get(JOB_ID).updated_at == old.updated_at
    assert no_temp_files(store) == []
    # The endpoint only reads: it goes on answering from the read-only folder.
    answer = wsgi_client(StatusService(store, api_keys=[KEY]))(
        "POST", STATUS, json.dumps({"job_id": JOB_ID}).encode(), {"x-api-key": KEY}
    )
    assert answer.status == 200
    assert answer.json()["response"] == old.to_dict()


def test_a_read_only_folder_never_written_to(small_disk: Path) -> None:
    remount_read_only(small_disk)
    store = FileSystemStore(small_disk / "data")
    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id=JOB_ID, job_status="queued"))
    assert list(store.list()) == []


def fill(folder: Path, *, inodes: bool) -> int:
    """Use up the free space (or the free inodes) of the filesystem holding ``folder``; return
    the errno of the write that failed."""
    filler = folder / "filler"
    filler.mkdir(exist_ok=True)
    try:
        if inodes:
            for n in range(10_000):
                (filler / f"{n}").touch()
        else:
            with open(filler / "blob", "wb", buffering=0) as blob:
                for _ in range(10_000):
                    blob.write(b"\0" * 4096)
    except OSError as exc:
        return exc.errno or 0
    raise AssertionError("the filesystem never filled up")


@pytest.mark.parametrize("exhausted", ["space", "inodes"])
def test_a_full_disk_refuses_writes_and_keeps_the_record(small_disk: Path, exhausted: str) -> None:
    store = FileSystemStore(small_disk)
    old = store.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    assert fill(small_disk, inodes=exhausted == "inodes") == errno.ENOSPC

    big = JobRecord(job_id=JOB_ID, job_status="done", response={"log": "x" * 16_000})
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(big)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(JobRecord(job_id="another-job", job_status="queued"))
    assert store.get(JOB_ID).to_dict() == old.to_dict()
    assert no_temp_files(store) == []

    # Space freed: the very same store writes again.
    shutil.rmtree(small_disk / "filler")
    assert store.put(big).to_dict() == big.to_dict()
    assert store.get(JOB_ID).to_dict() == big.to_dict()
    assert no_temp_files(store) == []


# -- an upstream writer rewriting job files in place ---------------------------------------------

# The upstream queue's way of writing a job file: open(path, "w") truncates it, json.dump
# writes it. A reader between the two sees an empty or partial file.
UPSTREAM_WRITER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[4])
from tests.test_faults import upstream_document
path, period, stop_file = sys.argv[1], float(sys.argv[2]), sys.argv[3]
n = 0
while not os.path.exists(stop_file):
    with open(path, "w") as f:
        json.dump(upstream_document(n), f, indent=2)
    n += 1
    if period:
        time.sleep(period)
print(n)
"""


@dataclass
class PollCount:
    polls: int = 0
    failures: int = 0
    naive_reads: int = 0
    naive_failures: int = 0
    versions: set[int] = field(default_factory=set)


def poll_while_rewritten(root: Path, period: float, seconds: float) -> tuple[PollCount, int]:
    """Poll the status endpoint while another process rewrites the job file the upstream way;
    each round also reads the file once the naive way (open, json.load), for comparison."""
    path = root / "jobs" / f"{JOB_ID}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(upstream_document(0), indent=2))
    stop_file = root / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_WRITER, str(path), str(period), str(stop_file),
         str(Path(__file__).resolve().parents[1])],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    call = wsgi_client(StatusService(FileSystemStore(root), api_keys=[KEY]))
    body = json.dumps({"job_id": JOB_ID}).encode()
    count = PollCount()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = call("POST", STATUS, body, {"x-api-key": KEY})
            count.polls += 1
            if answer.status == 200:
                count.versions.add(answer.json()["response"]["response"]["n"])
            else:
                count.failures += 1
            count.naive_reads += 1
            try:
                with open(path) as file:
                    json.load(file)
            except ValueError:
                count.naive_failures += 1
    finally:
        stop_file.touch()
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0
    return count, int(out)


def test_an_upstream_writer_at_20_hz_never_fails_a_poll(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count, writes = poll_while_rewritten(tmp_path, period=0.05, seconds=5.0)
    report(
        capsys,
        "upstream writer 20 Hz",
        writes=writes,
        polls=count.polls,
        failures=count.failures,
        naive_reads=count.naive_reads,
        naive_failures=count.naive_failures,
    )
    assert writes > 40
    assert len(count.versions) > 20  # the polls saw the file change all along
    assert count.polls > 1000
    assert count.failures == 0


def test_an_upstream_writer_at_full_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At full speed the file is being rewritten almost always; the failure rate is a figure
    for the docs, not a promise."""
    count, writes = poll_while_rewritten(tmp_path, period=0.0, seconds=4.0)
    report(
        capsys,
        "upstream writer full speed",
        writes=writes,
        polls=count.polls,
        failures=count.failures,
        failure_rate=f"{count.failures / count.polls:.4%}",
        naive_reads=count.naive_reads,
        naive_failures=count.naive_failures,
        naive_failure_rate=f"{count.naive_failures / count.naive_reads:.4%}",
    )
    assert writes > 1000
    assert count.polls > 100
    assert len(count.versions) > 10


# -- a database or S3 endpoint that restarts ----------------------------------------------------

#: A client gives up on a request after this long: such a request counts as hung. The stores'
#: own timeouts (connect 3 s, read 5 s) are well within it.
REQUEST_TIMEOUT = 20.0
SQL_TIMEOUTS: dict[str, dict[str, Any]] = {
    "postgresql": {"connect_args": {"connect_timeout": 3}},
    "mariadb": {"connect_args": {"connect_timeout": 3, "read_timeout": 5, "write_timeout": 5}},
}
S3_TIMEOUTS = (
    "config_kwargs.connect_timeout=3&config_kwargs.read_timeout=5"
    "&config_kwargs.retries.max_attempts=2"
)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def served(app: Any) -> Iterator[int]:
    """Serve a WSGI app on a free loopback port from threads of this process."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no answer (the request failed or hung)
    body: bytes
    problem: str | None = None


def ask(port: int, job_id: str) -> Outcome:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", STATUS, json.dumps({"job_id": job_id}), {"x-api-key": KEY})
        response = conn.getresponse()
        return Outcome(started, time.monotonic(), response.status, response.read())
    except OSError as exc:
        return Outcome(started, time.monotonic(), None, b"", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


@dataclass
class Phases:
    """Requests by when they ran: before the cut, during the outage, after the resume, and
    those that straddled a change."""

    before: list[Outcome] = field(default_factory=list)
    during: list[Outcome] = field(default_factory=list)
    after: list[Outcome] = field(default_factory=list)
    straddling: list[Outcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in ("before", "during", "after",
                                                             "straddling")}  # fmt: skip


def through_an_outage(
    store_url: str, proxy: TcpProxy, job_id: str, *, clients: int = 4, outage: float = 3.0,
    **options: Any,
) -> Phases:  # fmt: skip
    """Serve a store reached through ``proxy`` and keep asking for ``job_id`` from ``clients``
    threads: 1.5 s of normal service, ``outage`` seconds with every connection cut and new ones
    refused, then 2 s after the proxy lets traffic through again. Same app all along."""
    from jobstatus import open_store

    outcomes: list[Outcome] = []
    stop = threading.Event()
    with (
        open_store(store_url, **options) as store,
        served(make_app(StatusService(store, api_keys=[KEY]))) as port,
    ):

        def keep_asking() -> None:
            while not stop.is_set():
                outcomes.append(ask(port, job_id))

        threads = [threading.Thread(target=keep_asking) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            cutting = time.monotonic()
            with proxy.outage():
                cut_at = time.monotonic()
                # A host app calling the store itself gets a StorageError, not a driver's error.
                for _ in range(5):
                    with pytest.raises(StorageError):
                        store.get(job_id)
                    time.sleep(outage / 10)
                time.sleep(outage / 2)
                resuming = time.monotonic()
            resumed_at = time.monotonic()
            time.sleep(2.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 5)
        final = ask(port, job_id)  # the very same app, still serving
    phases = Phases()
    for outcome in outcomes:
        if outcome.ended < cutting:
            phases.before.append(outcome)
        elif outcome.started >= cut_at and outcome.ended <= resuming:
            phases.during.append(outcome)
        elif outcome.started > resumed_at:
            phases.after.append(outcome)
        else:
            phases.straddling.append(outcome)
    phases.after.append(final)
    return phases


def is_spec_500(outcome: Outcome) -> bool:
    if outcome.status != 500:
        return False
    body = json.loads(outcome.body)
    return (
        set(body) == {"error", "code"}
        and body["code"] == 500
        and body["error"].startswith(ERROR_PREFIX)
        and len(body["error"]) > len(ERROR_PREFIX)
    )


def is_the_record(outcome: Outcome, job_id: str) -> bool:
    return outcome.status == 200 and json.loads(outcome.body)["response"]["job_id"] == job_id


def check_phases(
    phases: Phases,
    job_id: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    every = phases.before + phases.during + phases.after + phases.straddling
    slowest_failure = max((o.ended - o.started for o in phases.during), default=0.0)
    report(
        capsys,
        f"outage {name}",
        **phases.counts(),
        during_500=sum(is_spec_500(o) for o in phases.during),
        hung_or_failed=sum(o.status is None for o in every),
        slowest_answer_during_s=f"{slowest_failure:.2f}",
    )
    assert [o.problem for o in every if o.status is None] == []  # none hung, none dropped
    assert phases.before
    assert phases.during
    assert phases.after
    assert all(is_the_record(o, job_id) for o in phases.before), [
        o for o in phases.before if o.status != 200
    ][:3]
    assert all(is_spec_500(o) for o in phases.during), phases.during[:3]
    assert all(is_the_record(o, job_id) for o in phases.after), [
        o for o in phases.after if o.status != 200
    ][:3]
    assert all(is_the_record(o, job_id) or is_spec_500(o) for o in phases.straddling)
    # Every failure was the store's StorageError: none reached the service untranslated.
    untranslated = [r.getMessage() for r in caplog.records if "unexpected failure" in r.msg]
    assert untranslated == [], untranslated[:3]


def require_port(port: int, what: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
    except OSError:
        service_unavailable(f"{what} is not running on 127.0.0.1:{port}")


SQL_SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:{port}/test", 5432, "PostgreSQL"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:{port}/test", 3306, "MariaDB"),
}


@pytest.mark.extras
@pytest.mark.services
@pytest.mark.parametrize("database", list(SQL_SERVERS))
def test_a_database_restart_is_survived(
    database: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("sqlalchemy")
    from jobstatus import open_store

    url, port, name = SQL_SERVERS[database]
    require_port(port, name)
    table = f"jobstatus_faults_{uuid.uuid4().hex[:10]}"
    with open_store(url.format(port=port), table_name=table) as direct:
        direct.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
        try:
            with TcpProxy(port) as proxy:
                phases = through_an_outage(
                    url.format(port=proxy.port), proxy, JOB_ID, table_name=table,
                    **SQL_TIMEOUTS[database],
                )  # fmt: skip
        finally:
            drop_table(url.format(port=port), table)
    check_phases(phases, JOB_ID, capsys, caplog, database)


@pytest.mark.extras
@pytest.mark.services
def test_an_s3_endpoint_restart_is_survived(
    s3_endpoint: s3_server.S3Endpoint,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from jobstatus import open_store

    prefix = f"faults-{uuid.uuid4().hex[:10]}"
    with open_store(s3_endpoint.store_url(prefix)) as direct:
        direct.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    moto_port = int(s3_endpoint.url.rsplit(":", 1)[1])
    with TcpProxy(moto_port) as proxy:
        url = f"s3://{s3_server.BUCKET}/{prefix}?endpoint_url=http://127.0.0.1:{proxy.port}"
        phases = through_an_outage(f"{url}&{S3_TIMEOUTS}", proxy, JOB_ID)
    check_phases(phases, JOB_ID, capsys, caplog, "s3")


# -- gunicorn --preload: a store opened before the fork -----------------------------------------


def bench_load() -> Any:
    """benchmarks/bench_load.py, whose gunicorn runner the fork and load tests share."""
    import importlib.util

    if "bench_load" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"
        spec = importlib.util.spec_from_file_location("bench_load", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_load"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_load"]


# Opens the store at import time and reads a record: with --preload the gunicorn master does
# this, holding an open connection (a session, a pool) when it forks the workers.
PRELOAD_APP = """
import json, os
from jobstatus import StatusService, open_store
from jobstatus.adapters.wsgi import make_app

store = open_store(os.environ["FORK_TEST_STORE"], **json.loads(os.environ["FORK_TEST_OPTIONS"]))
store.get(os.environ["FORK_TEST_JOB"])
app = make_app(StatusService(store, api_keys=[os.environ["FORK_TEST_KEY"]]))
"""

FORK_WORKERS = 4
FORK_JOBS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"fork/{i}")) for i in range(50)]


@dataclass
class ForkLoad:
    answers: int = 0
    wrong: list[str] = field(default_factory=list)
    worker_pids: set[int] = field(default_factory=set)


def hammer(port: int, seconds: float, clients: int = 8) -> ForkLoad:
    """Ask for the jobs from ``clients`` threads; every answer must be its own job's record."""
    load = ForkLoad()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        n = offset
        while time.monotonic() < deadline:
            job_id = FORK_JOBS[n % len(FORK_JOBS)]
            n += clients
            outcome = ask(port, job_id)
            with lock:
                load.answers += 1
                if outcome.status != 200:
                    load.wrong.append(f"{outcome.status} {outcome.problem} {outcome.body[:200]!r}")
                    continue
                answer = json.loads(outcome.body)
                load.worker_pids.add(answer["pid"])
                if answer["response"] != {"job_status": "done", "job_id": job_id,
                                          "queue_id": None, "process_id": None,
                                          "response": {"job": job_id}}:  # fmt: skip
                    load.wrong.append(f"asked {job_id}, got {answer['response']}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load


def serve_preloaded(
    store_url: str,
    options: dict[str, Any],
    work_dir: Path,
    seconds: float = 5.0,
    count_sessions: Callable[[], int] | None = None,
) -> tuple[ForkLoad, list[str], int | None]:
    """Write the jobs, serve them with gunicorn --preload and 4 workers, hammer it; return the
    load, the error log's problem lines, and the server sessions open after the load."""
    from jobstatus import open_store

    with open_store(store_url, **options) as store:
        for job_id in FORK_JOBS:
            store.put(JobRecord(job_id=job_id, job_status="done", response={"job": job_id}))
    (work_dir / "preload_app.py").write_text(PRELOAD_APP)
    bench = bench_load()
    env = {
        "FORK_TEST_STORE": store_url,
        "FORK_TEST_OPTIONS": json.dumps(options),
        "FORK_TEST_JOB": FORK_JOBS[0],
        "FORK_TEST_KEY": KEY,
    }
    command = ["-m", "gunicorn", "--preload", "--workers", str(FORK_WORKERS), "--bind",
               "127.0.0.1:0", "--pythonpath", str(work_dir), "--log-level", "info",
               "preload_app:app"]  # fmt: skip
    with bench.Gunicorn(command, workers=FORK_WORKERS, log_dir=work_dir, env=env) as server:
        load = hammer(server.port, seconds)
        sessions = None if count_sessions is None else count_sessions()
        problems = [line for line in server.log().splitlines() if bench.LOG_PROBLEMS.search(line)]
    return load, problems, sessions


def check_fork_load(
    load: ForkLoad,
    problems: list[str],
    capsys: pytest.CaptureFixture[str],
    name: str,
    sessions: int | None = None,
) -> None:
    report(
        capsys,
        f"gunicorn --preload {name}",
        workers=FORK_WORKERS,
        answers=load.answers,
        wrong=len(load.wrong),
        workers_answering=len(load.worker_pids),
        log_problems=len(problems),
        **({} if sessions is None else {"server_sessions": sessions}),
    )
    assert load.answers > 200
    assert load.wrong == []
    assert len(load.worker_pids) > 1  # the load did spread over several forked workers
    assert problems == []  # no SSL error, bad record mac, commands out of sync, traceback


@contextlib.contextmanager
def tagged_sessions(database: str) -> Iterator[tuple[str, dict[str, Any], Callable[[], int]]]:
    """A store URL and options whose server sessions carry a tag of their own (PostgreSQL: the
    application name; MariaDB: a user made for the test, dropped after it), and a function
    counting the server's sessions with that tag."""
    tag = f"jsfork_{uuid.uuid4().hex[:8]}"
    if database == "postgresql":
        import psycopg

        def count_postgresql() -> int:
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
                query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                row = conn.execute(query, (tag,)).fetchone()
                return int(row[0]) if row else 0

        url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        yield url, {"connect_args": {"application_name": tag}}, count_postgresql
        return
    import pymysql

    admin = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{tag}'@'127.0.0.1'")
            cursor.execute(f"GRANT ALL ON test.* TO '{tag}'@'127.0.0.1'")

        def count_mariadb() -> int:
            with admin.cursor() as cursor:
                query = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s"
                cursor.execute(query, (tag,))
                row = cursor.fetchone()
                return int(row[0]) if row else 0

        yield f"mysql+pymysql://{tag}@127.0.0.1:3306/test", {}, count_mariadb
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{tag}'@'127.0.0.1'")
        admin.close()


def drop_table(url: str, table: str) -> None:
    from jobstatus import open_store
    from jobstatus.backends.sql import SQLStore

    with open_store(url, table_name=table) as store:
        assert isinstance(store, SQLStore)
        with store.engine.begin() as conn:
            store.table.drop(conn, checkfirst=True)


@pytest.mark.extras
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("database", list(SQL_SERVERS))
def test_gunicorn_preload_shares_no_database_connection(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("sqlalchemy")
    _, port, name = SQL_SERVERS[database]
    require_port(port, name)
    table = f"jobstatus_forks_{uuid.uuid4().hex[:10]}"
    with tagged_sessions(database) as (url, options, count_sessions):
        try:
            load, problems, sessions = serve_preloaded(
                url, {**options, "table_name": table}, tmp_path, count_sessions=count_sessions
            )
        finally:
            drop_table(url, table)
    check_fork_load(load, problems, capsys, database, sessions)
    # The master's session and each worker's own: no worker kept using the master's.
    assert sessions is not None
    assert sessions >= FORK_WORKERS + 1


@pytest.mark.extras
@pytest.mark.services
@pytest.mark.slow
def test_gunicorn_preload_shares_no_s3_session(
    s3_endpoint: s3_server.S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    load, problems, _ = serve_preloaded(s3_endpoint.store_url(), {}, tmp_path)
    check_fork_load(load, problems, capsys, "s3")
