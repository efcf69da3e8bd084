"""Records to rows and rows to records: the document text, the columns, the version."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from jobstatus.backends.sql._table import KEY_LENGTH
from jobstatus.errors import InvalidRequest, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.store import expiry_of

__all__ = ["Decoder", "parse_version", "row_of", "version_of_row"]

# The most parsed records kept for lookups of the same row again.
_RECENT_MAX = 1024
# The version counter is an INTEGER column: a larger one is no version the table can hold.
_COUNTER_MAX = 2**31 - 1

_dump_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def row_of(record: JobRecord, updated_at: float | None) -> dict[str, Any]:
    """The row of ``record``, stamped ``updated_at`` (now, when None); refuses with
    :class:`~jobstatus.InvalidRequest` what the table cannot hold."""
    check_job_id(record.job_id)
    for name, value in (("job_status", record.job_status), ("owner", record.owner)):
        if value is not None and len(value) > KEY_LENGTH:
            raise InvalidRequest(
                f"{name} is longer than {KEY_LENGTH} characters (the SQL store's limit)"
            )
    stamp = time.time() if updated_at is None else float(updated_at)
    return {
        "job_id": record.job_id,
        "job_status": record.job_status,
        "document": _storable_json(record),
        "updated_at": stamp,
        "version": 1,
        "expires_at": expiry_of(record),
        "owner": record.owner,
        "now": stamp,
    }


def _storable_json(record: JobRecord) -> str:
    """The document as compact JSON text, refused exactly when :meth:`JobRecord.to_json` refuses
    it: in any doubt (an error, an escaped NUL) ``to_json`` decides and raises."""
    try:
        text = _dump_compact(record.to_dict())
        text.encode("utf-8")  # a lone surrogate cannot be stored
    except (TypeError, ValueError, RecursionError):
        record.to_json()  # raises InvalidRequest, saying what is wrong
        raise
    if "\\u0000" in text:  # a NUL character, or a backslash followed by "u0000"
        record.to_json()
    return text


def version_of_row(counter: int, updated_at: float) -> str:
    """A row's version: its write counter and its ``updated_at``. The counter changes with
    every write of the row; the stamp tells a row apart from an earlier one of the same job
    that was deleted (its counter started again at 1)."""
    return f"{counter}-{updated_at!r}"


def parse_version(version: str) -> tuple[int, float] | None:
    """The counter and stamp of a version :func:`version_of_row` made; None for a string no
    row can have (it matches nothing)."""
    counter, _, stamp = version.partition("-")
    try:
        parsed = int(counter), float(stamp)
    except ValueError:
        return None
    if not (0 < parsed[0] <= _COUNTER_MAX and math.isfinite(parsed[1])):
        return None
    return parsed


class Decoder:
    """Rows to records, each parsed once while the row stays the same.

    A record polled again and again is parsed once: the last record of up to 1,024 jobs is
    served again when the row's text, stamp and counter are the very same, so it can never be
    stale.
    """

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._recent: dict[str, tuple[str, float, int, JobRecord]] = {}

    def record(self, job_id: str, document: str, updated_at: float, counter: int) -> JobRecord:
        recent = self._recent.get(job_id)
        if (
            recent is not None
            and recent[1] == updated_at
            and recent[2] == counter
            and recent[0] == document
        ):
            return recent[3]
        stamp = float(updated_at)
        try:
            record = JobRecord.from_json(
                document, updated_at=stamp, version=version_of_row(counter, stamp)
            )
        except InvalidRequest as exc:
            raise StorageError(
                f"job {job_id!r} in table {self.table_name} is not a job record: {exc}"
            ) from exc
        recent_jobs = self._recent
        if len(recent_jobs) >= _RECENT_MAX:
            recent_jobs.clear()
        recent_jobs[job_id] = (document, updated_at, counter, record)
        return record
