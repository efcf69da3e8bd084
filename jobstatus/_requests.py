"""Reading requests: a route's body or query turned into the payload its steps take, or the
:class:`~jobstatus.InvalidRequest` (a 400) that says what is wrong with it.

Every reader checks what its route accepts and nothing more: the JSON schema of a body, the job
id against the service's pattern, a ``wait`` within (0, ``max_wait``], and no query parameter
the route does not know (a typo such as ``?limt=5`` is a 400, not silently ignored).
"""

from __future__ import annotations

import re
from typing import Any

from jobstatus._listing import number, status_filter
from jobstatus._schema import (
    JOB_STATUS_SCHEMA,
    JOBS_STATUS_SCHEMA,
    UUID_PATTERN,
    RequestValidator,
    accepts_job_status,
    accepts_jobs_status,
    parse_json_body,
)
from jobstatus.errors import InvalidRequest
from jobstatus.wire import Request, parse_query

__all__ = ["JOB_PREFIX", "RequestReader"]

#: ``/v1/toolkit/jobs/`` -- what the job route's path starts with, before the job id.
JOB_PREFIX = "/v1/toolkit/jobs/"
_JOB_QUERY = frozenset({"wait"})
_LIST_QUERY = frozenset({"status", "since_seconds", "limit", "cursor"})


class RequestReader:
    """The request readers of one service: its job id pattern, body limit and longest wait."""

    def __init__(self, *, job_id_pattern: str, max_body_bytes: int, max_wait: float) -> None:
        self.job_id_pattern = job_id_pattern
        self._job_id = re.compile(job_id_pattern)
        self.max_body_bytes = max_body_bytes
        self.max_wait = max_wait
        self._validate_job = RequestValidator(JOB_STATUS_SCHEMA, accepts_job_status)
        self._validate_jobs = RequestValidator(JOBS_STATUS_SCHEMA, accepts_jobs_status)

    def job_request(self, request: Request) -> dict[str, Any]:
        """The body of a POST naming one job: ``{"job_id": …, "id"?: …, "wait"?: …}``."""
        payload = self._validate_job(parse_json_body(request.body, max_bytes=self.max_body_bytes))
        self.check_id(payload["job_id"])
        if "wait" in payload:
            wait = payload["wait"]
            payload["wait"] = self.wait(None if isinstance(wait, str) else wait)
        return payload

    def job_query(self, request: Request) -> dict[str, Any]:
        """``GET /v1/toolkit/jobs/{job_id}?wait=…`` with its ``If-None-Match``."""
        job_id = request.path[len(JOB_PREFIX) :]
        params = _known(parse_query(request.query), _JOB_QUERY)
        self.check_id(job_id)
        wait = params.get("wait")
        return {
            "job_id": job_id,
            "wait": None if wait is None else self.wait(wait),
            "if_none_match": request.if_none_match,
        }

    def jobs_request(self, request: Request) -> dict[str, Any]:
        """The body of the POST listing (empty: the defaults)."""
        payload = self._validate_jobs(
            parse_json_body(request.body, max_bytes=self.max_body_bytes, allow_empty=True)
        )
        if "status" in payload:
            payload["status"] = status_filter(payload["status"])
        return payload

    @staticmethod
    def list_query(request: Request) -> dict[str, Any]:
        """The query of ``GET /v1/toolkit/jobs`` (read by the listing itself)."""
        return _known(parse_query(request.query), _LIST_QUERY)

    def check_id(self, job_id: str) -> None:
        """A 400 unless ``job_id`` matches the service's pattern."""
        if not self._job_id.fullmatch(job_id):
            raise InvalidRequest(
                "job_id must be a UUID"
                if self.job_id_pattern == UUID_PATTERN
                else f"job_id does not match {self.job_id_pattern!r}"
            )

    def wait(self, seconds: object) -> float:
        """A request's ``wait``: a number of seconds in (0, max_wait], else a 400 (a query's
        text is a plain decimal number; a body's value a JSON number)."""
        if isinstance(seconds, str):
            seconds = _decimal(seconds)
        if type(seconds) not in (int, float) or not 0 < seconds <= self.max_wait:  # type: ignore[operator]
            raise InvalidRequest(
                f"wait must be a number of seconds above 0 and at most {self.max_wait:g}"
            )
        return float(seconds)  # type: ignore[arg-type]


def _decimal(text: str) -> float | None:
    try:
        return number("wait", text)
    except InvalidRequest:
        return None


def _known(params: dict[str, str], names: frozenset[str]) -> dict[str, Any]:
    """``params`` when it names only ``names``; an unknown parameter is a 400."""
    unknown = params.keys() - names
    if unknown:
        listed = ", ".join(sorted(repr(name[:40]) for name in unknown)[:5])
        raise InvalidRequest(f"unknown query parameter {listed}; known: {', '.join(sorted(names))}")
    return dict(params)
