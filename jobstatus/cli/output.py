"""How the commands print: times, counts, tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO, Any

from jobstatus.lifecycle import Progress, format_timestamp
from jobstatus.record import JobRecord

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def rfc3339(stamp: float | None) -> str | None:
    """Seconds since the epoch as RFC 3339 UTC with milliseconds, as documents hold their
    times: ``2026-11-30T03:06:31.123Z`` (the milliseconds cut, never rounded up)."""
    if stamp is None:
        return None
    return format_timestamp(datetime.fromtimestamp(stamp, timezone.utc))


def short_time(moment: float | datetime | None) -> str:
    """Seconds since the epoch, or an aware datetime, to the second for tables and messages:
    ``2026-11-30T03:06:31Z``; ``-`` for none."""
    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_text(progress: Progress | None, *, width: int | None = None) -> str:
    """``3/10 30% resizing``: the count, the percentage and the message that are set, on one
    line (cut to ``width``); ``-`` for none."""
    if progress is None:
        return "-"
    parts = []
    if progress.current is not None:
        total = "" if progress.total is None else f"/{progress.total:,}"
        parts.append(f"{progress.current:,}{total}")
    if progress.percent is not None:
        parts.append(f"{progress.percent:g}%")
    elif progress.fraction is not None:
        parts.append(f"{progress.fraction:.0%}")
    if progress.message:
        parts.append(" ".join(progress.message.split()))
    text = " ".join(parts) or "-"
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


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
    """A record as the ``--json`` outputs show it: its id, state, ``updated_at`` (RFC 3339) and
    ``version`` (null where the store keeps none) beside the document exactly as stored."""
    return {
        "job_id": record.job_id,
        "job_status": record.job_status,
        "updated_at": rfc3339(record.updated_at),
        "version": record.version,
        "document": record.to_dict(),
    }


def write_json(value: Any, out: IO[str]) -> None:
    """One JSON value on one line."""
    out.write(json.dumps(value, ensure_ascii=False) + "\n")
