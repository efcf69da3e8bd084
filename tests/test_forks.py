"""gunicorn ``--preload``: a store opened in the master before it forks its workers.

What is guaranteed: every worker answers every job with that job's own record, no worker goes
on using the master's connection or session (the servers count one session per worker), and
gunicorn's error log shows no SSL error, no "commands out of sync", no traceback. The figures
are printed on the terminal (``FIGURES …`` lines) and copied into docs/reliability.rst.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord
from jobstatus.testing.server import Gunicorn
from tests import s3_server
from tests.figures import report
from tests.staging import KEY, SQL_SERVERS, ask, drop_table, require_port

pytestmark = [pytest.mark.extras, pytest.mark.services, pytest.mark.slow]

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


#: The clients stop once this many answers came back and every worker gave some of them.
FORK_ANSWERS = 400
#: A bound on the run, never reached while the server answers: then the test fails.
FORK_CAP_SECONDS = 120.0


@dataclass
class ForkLoad:
    answers: int = 0
    wrong: list[str] = field(default_factory=list)
    worker_pids: set[int] = field(default_factory=set)

    def enough(self) -> bool:
        return self.answers >= FORK_ANSWERS and len(self.worker_pids) >= FORK_WORKERS


def hammer(port: int, clients: int = 8) -> ForkLoad:
    """Ask for the jobs from ``clients`` threads until the load is :meth:`~ForkLoad.enough`;
    every answer must be its own job's record."""
    load = ForkLoad()
    lock = threading.Lock()
    cap = time.monotonic() + FORK_CAP_SECONDS

    def client(offset: int) -> None:
        n = offset
        while time.monotonic() < cap:
            job_id = FORK_JOBS[n % len(FORK_JOBS)]
            n += clients
            outcome = ask(port, job_id)
            with lock:
                if load.enough():
                    return
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
    count_sessions: Callable[[], int] | None = None,
) -> tuple[ForkLoad, list[str], int | None]:
    """Write the jobs, serve them with gunicorn --preload and 4 workers, hammer it; return the
    load, the error log's problem lines, and the server sessions open after the load."""
    from jobstatus import open_store

    with open_store(store_url, **options) as store:
        for job_id in FORK_JOBS:
            store.put(JobRecord(job_id=job_id, job_status="done", response={"job": job_id}))
    (work_dir / "preload_app.py").write_text(PRELOAD_APP)
    env = {
        "FORK_TEST_STORE": store_url,
        "FORK_TEST_OPTIONS": json.dumps(options),
        "FORK_TEST_JOB": FORK_JOBS[0],
        "FORK_TEST_KEY": KEY,
    }
    command = ["-m", "gunicorn", "--preload", "--workers", str(FORK_WORKERS), "--bind",
               "127.0.0.1:0", "--pythonpath", str(work_dir), "--log-level", "info",
               "preload_app:app"]  # fmt: skip
    with Gunicorn(command, workers=FORK_WORKERS, log_dir=work_dir, env=env) as server:
        load = hammer(server.port)
        sessions = None if count_sessions is None else count_sessions()
        problems = server.problems()
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
    assert load.enough()  # every forked worker answered
    assert load.wrong == []
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


def test_gunicorn_preload_shares_no_s3_session(
    s3_endpoint: s3_server.S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    load, problems, _ = serve_preloaded(s3_endpoint.store_url(), {}, tmp_path)
    check_fork_load(load, problems, capsys, "s3")
