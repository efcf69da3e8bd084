"""What the benchmark scripts share: the 1 KB record they read and the in-process WSGI call.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from jobstatus import JobRecord
from jobstatus.backends.memory import MemoryStore
from jobstatus.record import check_job_id

JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
KEY = "benchmark-key"
BODY = json.dumps({"job_id": JOB_ID}).encode()
STATUS_PATH = "/v1/toolkit/job/status"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def upstream_document(
    job_id: str = JOB_ID, status: str = "done", **envelope: Any
) -> dict[str, Any]:
    """The spec's example job document for ``job_id``; ``envelope`` replaces keys of its inner
    envelope."""
    return {
        "job_status": status,
        "job_id": job_id,
        "queue_id": 140368864456064,
        "process_id": 123456,
        "response": {
            "endpoint": "/v1/media/transcribe",
            "code": 200,
            "id": "transcribe_job_123",
            "job_id": job_id,
            "response": "Transcription completed successfully.",
            "message": "success",
            "pid": 123456,
            "queue_id": 140368864456064,
            "run_time": 5.234,
            "queue_time": 1.123,
            "total_time": 6.357,
            "queue_length": 0,
            "build_number": "1.0.0",
            **envelope,
        },
    }


def one_kb_record(job_id: str = JOB_ID, status: str = "done") -> JobRecord:
    """The spec's example record, its inner ``response`` padded to about 1 KB of JSON."""

    def record(padding: str) -> JobRecord:
        return JobRecord.from_dict(upstream_document(job_id, status, response=padding))

    return record("x" * (1024 - len(record("").to_json())))


def call(app: WSGIApp, body: bytes = BODY) -> bytes:
    """POST ``body`` to the status path of ``app`` in-process; the answer, which must be a 200."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": STATUS_PATH,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_X_API_KEY": KEY,
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, h: status.append(s)))
    if not status[0].startswith("200") or not answer:
        raise RuntimeError(f"unexpected answer {status} {answer[:300]!r}")
    return answer


def rate(work: Callable[[int], object], seconds: float, *, batch: int = 20) -> float:
    """Calls per second of ``work(n)`` over about ``seconds``, timed every ``batch`` calls."""
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(batch):
            work(count)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def alternate(
    contenders: dict[str, Callable[[int], object]], rounds: int, seconds: float
) -> dict[str, list[float]]:
    """Calls per second of each contender, ``rounds`` times, contenders taking turns so that
    each sees the same machine; after a short warm-up of each."""
    for work in contenders.values():  # warm up: connections, prepared statements, caches
        rate(work, min(seconds, 0.3))
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            results[name].append(rate(work, seconds))
    return results


class FixedStore(MemoryStore):
    """Hands back one parsed record: the service's own cost, with no storage at all."""

    def __init__(self) -> None:
        super().__init__()
        self.record = one_kb_record()

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        return self.record
