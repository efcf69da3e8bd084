"""Staging a store outage under a serving app: serve the app from threads of this process, keep
asking for a job from several clients while a :class:`~tests.tcp_proxy.TcpProxy` cuts the store
off, and sort every request by when it ran (:func:`through_an_outage`); :func:`check_phases`
holds them to what is guaranteed."""

from __future__ import annotations

import contextlib
import json
import math
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from jobstatus import StatusService, StorageError
from jobstatus.adapters.wsgi import make_app
from tests.figures import report
from tests.staging import ERROR_PREFIX, KEY, REQUEST_TIMEOUT, Outcome, ask
from tests.tcp_proxy import TcpProxy


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


#: A bound on each phase of an outage, never reached while the app answers: then the test fails.
PHASE_CAP_SECONDS = 120.0


def _wait_until(done: Callable[[], bool], what: str) -> None:
    cap = time.monotonic() + PHASE_CAP_SECONDS
    while not done():
        if time.monotonic() > cap:
            pytest.fail(f"no {what} within {PHASE_CAP_SECONDS:.0f} s")
        time.sleep(0.05)


def through_an_outage(
    store_url: str, proxy: TcpProxy, job_id: str, *, clients: int = 4, outage: float = 3.0,
    **options: Any,
) -> Phases:  # fmt: skip
    """Serve a store reached through ``proxy`` and keep asking for ``job_id`` from ``clients``
    threads. The phases end on counts, not on a clock: normal service until ``clients``
    answers came back; then every connection cut and new ones refused for at least
    ``outage`` seconds and until ``clients`` requests ran wholly inside the outage; then
    traffic again until ``clients`` requests that started after it came back. Same app all
    along."""
    from jobstatus import open_store

    outcomes: list[Outcome] = []
    stop = threading.Event()

    def count(started_after: float = 0.0, ended_before: float = math.inf) -> int:
        return sum(started_after <= o.started and o.ended <= ended_before for o in outcomes)

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
            _wait_until(lambda: count() >= clients, "answers before the outage")
            cutting = time.monotonic()
            with proxy.outage():
                cut_at = time.monotonic()
                # A host app calling the store itself gets a StorageError, not a driver's error.
                for _ in range(5):
                    with pytest.raises(StorageError):
                        store.get(job_id)
                time.sleep(max(0.0, cut_at + outage - time.monotonic()))
                _wait_until(lambda: count(started_after=cut_at) >= clients, "answers during it")
                resuming = time.monotonic()
            resumed_at = time.monotonic()
            _wait_until(lambda: count(started_after=resumed_at) >= clients, "answers after it")
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
