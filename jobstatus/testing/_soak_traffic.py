"""The soak's clients: threads that poll the servers at a steady rate, and what they saw.

Each client sends one kind of request in a loop, a fresh connection each, at a fixed rate
(a steady load, not a flood: the soak is about time, not throughput):

- ``post``: ``POST /v1/toolkit/job/status`` for a job;
- ``get``: ``GET /v1/toolkit/jobs/{id}`` with the ``ETag`` it last got for that job in
  ``If-None-Match`` (a 304 when the job did not change);
- ``longpoll``: the same GET with ``?wait=``, held until the job changes;
- ``list``: ``GET /v1/toolkit/jobs`` and the pages after it, following ``next_cursor``.

The jobs asked for are mostly the writer's latest (running or just finished), some old ones
(perhaps purged: a 404) and some never written (a 404). Every answer is kept as an
:class:`Answer`: when it was asked, how long it took, its status (0: no answer at all).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from jobstatus.testing._soak_roles import API_KEY, job_id

__all__ = ["Answer", "Client", "Jobs", "clients_for"]

STATUS_PATH = "/v1/toolkit/job/status"
LONG_POLL_WAIT = 5  # seconds a long-poll may be held
TIMEOUT = 30.0  # seconds before a request counts as unanswered


class Answer(NamedTuple):
    op: str
    server: str
    asked_at: float  # time.time()
    seconds: float
    status: int  # 0: connection refused, reset or timed out


class Jobs:
    """The ids the clients ask for, following the writer's progress (:meth:`created`)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.latest = 0

    def created(self, number: int) -> None:
        self.latest = max(self.latest, number)

    def pick(self, rng: random.Random, *, recent: bool = False) -> str:
        """Mostly one of the latest jobs; with ``recent``, only those."""
        roll = 1.0 if recent else rng.random()
        if roll < 0.02:  # never written
            return job_id(self.token, 10**9 + rng.randrange(1000))
        if roll < 0.07:  # any job so far: an old one may have been purged
            return job_id(self.token, rng.randrange(self.latest + 1))
        return job_id(self.token, max(0, self.latest - rng.randrange(24)))


def request(
    port: int, method: str, path: str, body: bytes | None = None, etag: str | None = None
) -> tuple[int, str | None, bytes]:
    """One request on its own connection: status, ETag, body."""
    headers = {"x-api-key": API_KEY}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if etag is not None:
        headers["If-None-Match"] = etag
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.getheader("ETag"), response.read()
    finally:
        conn.close()


@dataclass
class Client:
    """One polling thread: ``op`` against ``server`` on ``port``, ``rate`` requests per second
    (0: one after another, for long-polls)."""

    op: str
    server: str
    port: int
    rate: float
    seed: int

    def run(self, jobs: Jobs, stop: threading.Event, record: Callable[[Answer], None]) -> None:
        rng = random.Random(self.seed)
        etags: dict[str, str] = {}
        slot = time.monotonic()
        while not stop.is_set():
            answers = self._once(jobs, rng, etags)
            for answer in answers:
                record(answer)
            if len(etags) > 1000:
                etags.clear()
            if not self.rate and answers[-1].status not in (200, 304):
                stop.wait(1.0)  # a client backs off after a failure
            elif self.rate:
                slot = max(slot + 1 / self.rate, time.monotonic() - 1)
                stop.wait(max(0.0, slot - time.monotonic()))

    def _ask(
        self, method: str, path: str, body: bytes | None = None, etag: str | None = None
    ) -> tuple[Answer, str | None, bytes]:
        asked_at, started = time.time(), time.perf_counter()
        try:
            status, new_etag, data = request(self.port, method, path, body, etag)
        except OSError:
            status, new_etag, data = 0, None, b""
        answer = Answer(self.op, self.server, asked_at, time.perf_counter() - started, status)
        return answer, new_etag, data

    def _once(self, jobs: Jobs, rng: random.Random, etags: dict[str, str]) -> list[Answer]:
        if self.op == "list":
            return self._walk()
        job = jobs.pick(rng, recent=self.op == "longpoll")
        if self.op == "post":
            body = json.dumps({"job_id": job}).encode()
            return [self._ask("POST", STATUS_PATH, body)[0]]
        path = f"/v1/toolkit/jobs/{job}"
        if self.op == "longpoll":
            path += f"?wait={LONG_POLL_WAIT}"
        answer, etag, _ = self._ask("GET", path, etag=etags.get(job))
        if etag is not None:
            etags[job] = etag
        return [answer]

    def _walk(self, pages: int = 3) -> list[Answer]:
        answers = []
        path = "/v1/toolkit/jobs?limit=20"
        for _ in range(pages):
            answer, _, data = self._ask("GET", path)
            answers.append(answer)
            cursor = json.loads(data).get("next_cursor") if answer.status == 200 else None
            if cursor is None:
                break
            path = f"/v1/toolkit/jobs?limit=20&cursor={cursor}"
        return answers


def clients_for(gunicorn_port: int, uvicorn_port: int) -> list[Client]:
    """The soak's mix, about 100 requests per second: POSTs, conditional GETs and list walks
    on both servers, long-polls on uvicorn only (the server that waits without a thread; the
    mix stays the one the committed soak ran)."""
    mix = [
        ("post", "gunicorn", gunicorn_port, 15.0),
        ("post", "gunicorn", gunicorn_port, 15.0),
        ("get", "gunicorn", gunicorn_port, 15.0),
        ("list", "gunicorn", gunicorn_port, 2.0),
        ("post", "uvicorn", uvicorn_port, 10.0),
        ("get", "uvicorn", uvicorn_port, 15.0),
        ("list", "uvicorn", uvicorn_port, 2.0),
        *[("longpoll", "uvicorn", uvicorn_port, 0.0)] * 4,
    ]
    return [Client(op, server, port, rate, seed) for seed, (op, server, port, rate) in
            enumerate(mix)]  # fmt: skip
