"""The response envelope of the upstream service, built in the spec's key order."""

from __future__ import annotations

from typing import Any

__all__ = ["ENVELOPE_KEYS", "build_envelope"]

#: The 13 keys of every 200 answer, in the order the upstream service documents them.
ENVELOPE_KEYS = (
    "endpoint",
    "code",
    "id",
    "job_id",
    "response",
    "message",
    "pid",
    "queue_id",
    "run_time",
    "queue_time",
    "total_time",
    "queue_length",
    "build_number",
)


def build_envelope(
    *,
    endpoint: str | None,
    job_id: str | None,
    response: Any,
    code: int = 200,
    id: Any = None,
    message: Any = "success",
    pid: int | None = None,
    queue_id: int | None = None,
    run_time: float = 0.0,
    queue_time: float = 0.0,
    total_time: float | None = None,
    queue_length: int | None = 0,
    build_number: str | None = None,
) -> dict[str, Any]:
    """Return the upstream envelope; times are seconds rounded to 3 places.

    ``total_time`` defaults to ``queue_time + run_time``.
    """
    if total_time is None:
        total_time = queue_time + run_time
    return {
        "endpoint": endpoint,
        "code": code,
        "id": id,
        "job_id": job_id,
        "response": response,
        "message": message,
        "pid": pid,
        "queue_id": queue_id,
        "run_time": round(run_time, 3),
        "queue_time": round(queue_time, 3),
        "total_time": round(total_time, 3),
        "queue_length": queue_length,
        "build_number": build_number,
    }
