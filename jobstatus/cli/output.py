"""How the commands print: times, counts, tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO, Any

from jobstatus.record import JobRecord

__all__ = ["count", "record_json", "rfc3339", "short_time", "table", "write_json"]


def rfc3339(stamp: float | None) -> str | None:
    """Seconds since the epoch as RFC 3339 UTC with milliseconds: ``2026-11-30T03:06:31.123Z``
    (the milliseconds truncated, never rounded up into a later second)."""
    if stamp is None:
        return None
    moment = datetime.fromtimestamp(stamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short_time(stamp: float | None) -> str:
    """To the second, for tables and messages: ``2026-11-30T03:06:31Z``; ``-`` for none."""
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def count(number: int, noun: str) -> str:
    """``1 job``, ``0 jobs``, ``20,000 records``: thousands separated, the noun agreeing."""
    return f"{number:,} {noun if number == 1 else noun + 's'}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    """Left-aligned columns two spaces apart, the header first; no trailing blanks."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


def record_json(record: JobRecord) -> dict[str, Any]:
    """A record as the ``--json`` outputs show it: its id, state and ``updated_at`` (RFC 3339)
    beside the stored document, which is never changed."""
    return {
        "job_id": record.job_id,
        "job_status": record.job_status,
        "updated_at": rfc3339(record.updated_at),
        "document": record.to_dict(),
    }


def write_json(value: Any, out: IO[str]) -> None:
    """One JSON value on one line."""
    out.write(json.dumps(value, ensure_ascii=False) + "\n")
