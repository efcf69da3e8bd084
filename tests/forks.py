"""Staging gunicorn ``--preload``: an app module that opens the store in the master, served
with :data:`FORK_WORKERS` forked workers and asked for its jobs from several clients
(:func:`serve_preloaded`); :func:`check_fork_load` holds the answers to what is guaranteed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord
from jobstatus.testing._server import Gunicorn
from tests.figures import report
from tests.staging import KEY, ask

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
