"""Load: ``jobstatus serve`` (gunicorn, 4 workers) on loopback for 30 s per store, while a
writer process updates 100 jobs in a loop: only 200s and 404s, every answer the job asked for,
nothing in gunicorn's error log, and every record's final state the writer's last write.

The scenario is :mod:`jobstatus.testing._load` (benchmarks/bench_load.py reports the same one);
the figures (p50/p99, requests and writes per second) are printed on the terminal and copied
into docs/reliability.rst.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobstatus.testing._load import JOBS, run_load
from tests.conftest import service_unavailable
from tests.figures import report

pytestmark = [pytest.mark.slow, pytest.mark.extras]


#: Seconds of load per store: 30 in CI; JOBSTATUS_LOAD_SECONDS sets another number locally.
SECONDS = float(os.environ.get("JOBSTATUS_LOAD_SECONDS", "30"))


def postgresql_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
    except OSError:
        service_unavailable("PostgreSQL is not running on 127.0.0.1:5432")
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


STORES: dict[str, Callable[[Path, Any], str]] = {
    "file": lambda tmp, request: f"file://{tmp / 'data'}",
    "sqlite": lambda tmp, request: f"sqlite:///{tmp / 'jobs.db'}",
    "postgresql": lambda tmp, request: postgresql_url(),
    "s3": lambda tmp, request: request.getfixturevalue("s3_endpoint").store_url(),
}
STORE_PARAMS = [
    pytest.param("file"),
    pytest.param("sqlite"),
    pytest.param("postgresql", marks=pytest.mark.services),
    pytest.param("s3", marks=pytest.mark.services),
]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    pytest.importorskip("gunicorn")
    if request.param != "file":
        pytest.importorskip("sqlalchemy" if request.param != "s3" else "s3fs")
    return STORES[request.param](tmp_path, request)


@pytest.mark.parametrize("store_url", STORE_PARAMS, indirect=True)
def test_under_load_nothing_fails_and_nothing_is_lost(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: Any
) -> None:
    name = request.node.callspec.id
    result = run_load(name, store_url, seconds=SECONDS, work_dir=tmp_path)
    figures = result.figures()
    report(capsys, f"load {name}", **figures)
    load = result.load
    assert load.requests > 100
    assert {"200", "404"} <= set(load.statuses)
    assert load.unexpected == 0, load  # only 200 and 404, no connection error, no timeout
    assert load.bad_bodies == 0
    assert result.writes >= JOBS  # the writer went round every job
    assert result.final_state_mismatches == []
    assert result.error_log_problems == []
