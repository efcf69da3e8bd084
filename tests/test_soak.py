"""Soak, in short: the scenario of ``benchmarks/soak.py`` for a minute on each store whose
server restarts -- PostgreSQL and Redis, private servers of the test's own, stopped for 3 s
half-way -- held to the same checks (:mod:`jobstatus.testing._soak_checks`).

gunicorn (4 workers) and uvicorn serve the store; a writer creates, progresses and
finishes jobs; clients POST, GET with ``If-None-Match``, long-poll and walk list pages; done
jobs are purged every 15 s. After a 20 s warm-up the RSS and open descriptors of every server
process and the servers' store connections must stay flat (the medians of the 10 s after the
warm-up and of the last 10 s), every answer must be one the route may give (a 500 only
during the restart), and every job read back must be the writer's last write (or purged).

Why these two stores: the restart is what no other test does to a live gunicorn + uvicorn
pair, and the filesystem and SQLite stores under a writer are covered by ``test_load.py``; the
30-minute runs of all four are ``benchmarks/soak.py``'s. The load is paced, not flooded, so the
figures do not depend on how busy the machine is; nothing asserts on time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus.testing._private_servers import PrivatePostgres, PrivateRedis, ServerUnavailable
from jobstatus.testing._soak import Plan, run_soak
from jobstatus.testing._soak_checks import judge
from tests.conftest import service_unavailable
from tests.figures import report

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.extras]

PLAN = Plan(
    seconds=60,
    warmup=20,
    window=10,
    sample_every=1,
    latency_window=10,
    purge_every=15,
    purge_age=15,
    restart_pause=3,
)


@pytest.fixture(params=["postgresql", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    for module in ("gunicorn", "uvicorn", "fastapi"):
        pytest.importorskip(module)
    pytest.importorskip("psycopg" if request.param == "postgresql" else "redis")
    with contextlib.ExitStack() as stack:
        try:
            private = PrivatePostgres() if request.param == "postgresql" else PrivateRedis(tmp_path)
            yield stack.enter_context(private)
        except ServerUnavailable as exc:
            service_unavailable(str(exc))


def test_a_minute_of_load_with_a_restart_leaves_the_servers_as_they_were(
    server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = "postgresql" if isinstance(server, PrivatePostgres) else "redis"
    result = run_soak(backend, server.url, PLAN, work_dir=tmp_path, restartable=server)
    figures, failures = judge(result)
    report(capsys, f"soak {backend}", **{k: v for k, v in figures.items() if k != "writer"})
    assert failures == []
    assert len(result["restarts"]) == 1
    assert figures["restarts"][0]["failed_requests"] > 0  # the restart did cut the store off
    assert figures["purges"]["deleted"] > 0
    assert figures["final"]["purged"] > 0
    assert {"post", "get", "longpoll", "list"} <= set(figures["requests"])
    assert {"200", "304", "404"} <= set(figures["statuses"])
