"""The keys a document carries beyond the upstream ones: timestamps, progress, expiry, owner.

Each is written only when set, so a document without them is byte for byte the upstream one.
Values are checked strictly when a record is built (a bad value is a :class:`ValueError` at the
writer and never reaches a store) and leniently when a stored document is read: a value this
release cannot read -- another writer's ``created_at`` in its own format, say -- stays in the
record's ``extra`` exactly as stored, so the document still round-trips.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["TIMESTAMP_KEYS", "Progress", "format_timestamp", "parse_timestamp"]

#: The timestamp keys, in the order a document lists them.
TIMESTAMP_KEYS = ("created_at", "started_at", "ended_at", "expires_at", "cancel_requested_at")
#: Every key this module owns, in document order (after the upstream keys, before ``extra``).
LIFECYCLE_KEYS = ("created_at", "started_at", "ended_at", "progress", "expires_at",
                  "cancel_requested_at", "owner")  # fmt: skip


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``: ``2026-11-30T03:06:31.123Z``."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` or ``±hh:mm``) as an aware UTC datetime,
    cut to milliseconds; :class:`ValueError` for anything else."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        raise ValueError(f"an RFC 3339 timestamp needs an offset: {text!r}")
    return utc_milliseconds(moment)


def utc_milliseconds(moment: datetime) -> datetime:
    """An aware datetime in UTC, cut to whole milliseconds: what a document can hold, so a
    record equals itself after a trip through any store. Naive datetimes are refused."""
    if not isinstance(moment, datetime):
        raise ValueError(f"a timestamp must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"a timestamp must be timezone-aware, got naive {moment.isoformat()}")
    utc = moment.astimezone(timezone.utc)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)


def utc_from_epoch(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC datetime, cut to milliseconds."""
    return utc_milliseconds(datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds))


@dataclass(frozen=True)
class Progress:
    """How far a running job is: any of a percentage, a message and a count of a total.

    ``percent`` is 0 to 100 (int or float); ``current`` and ``total`` are non-negative integers
    with ``current <= total`` when both are given.
    """

    percent: float | None = None
    message: str | None = None
    current: int | None = None
    total: int | None = None

    def __post_init__(self) -> None:
        percent = self.percent
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)):
                raise ValueError(f"progress percent must be a number, got {percent!r}")
            if not (math.isfinite(percent) and 0 <= percent <= 100):
                raise ValueError(f"progress percent must be between 0 and 100, got {percent!r}")
        if self.message is not None and not isinstance(self.message, str):
            raise ValueError(f"progress message must be a string, got {self.message!r}")
        for name in ("current", "total"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"progress {name} must be a non-negative integer, got {value!r}")
        if self.current is not None and self.total is not None and self.current > self.total:
            raise ValueError(f"progress current ({self.current}) exceeds total ({self.total})")

    def to_dict(self) -> dict[str, Any]:
        """The document's ``progress`` object: all four keys, ``null`` where unset."""
        return {
            "percent": self.percent,
            "message": self.message,
            "current": self.current,
            "total": self.total,
        }

    @property
    def fraction(self) -> float | None:
        """How much is done, from 0 to 1, taken from ``percent``, else from ``current``/``total``
        (None when neither says)."""
        if self.percent is not None:
            return self.percent / 100
        if self.current is not None and self.total:
            return self.current / self.total
        return None

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Progress:
        """Read a document's ``progress``; :class:`ValueError` unless it is a valid one."""
        if not isinstance(value, Mapping) or not set(value) <= _PROGRESS_KEYS:
            raise ValueError(f"not a progress object: {value!r}")
        return cls(**value)


_PROGRESS_KEYS = frozenset(("percent", "message", "current", "total"))


def checked_lifecycle(name: str, value: Any) -> Any:
    """``value`` as the typed attribute ``name`` holds it; :class:`ValueError` if it is not one.

    Timestamps: aware datetimes (normalised to UTC milliseconds). ``progress``: a
    :class:`Progress` or a mapping of its fields. ``owner``: a non-empty string.
    """
    if value is None:
        return None
    if name == "progress":
        return value if isinstance(value, Progress) else Progress.from_dict(value)
    if name == "owner":
        if not isinstance(value, str) or not value:
            raise ValueError(f"owner must be a non-empty string, got {value!r}")
        return value
    try:
        return utc_milliseconds(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def read_lifecycle(name: str, value: Any) -> Any:
    """A stored document's value for ``name`` as its typed attribute; :class:`ValueError` when
    this release cannot read it (the caller then keeps it in ``extra`` as stored)."""
    if name == "progress":
        return Progress.from_dict(value)
    if name == "owner":
        return checked_lifecycle(name, value)
    return parse_timestamp(value)


def dump_lifecycle(name: str, value: Any) -> Any:
    """The document's JSON value for a typed attribute."""
    if name == "progress":
        return value.to_dict()
    if name == "owner":
        return value
    return format_timestamp(value)
