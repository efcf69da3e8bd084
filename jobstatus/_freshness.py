"""When to come back: entity tags, ``If-None-Match`` and ``Retry-After``.

- A record's ``ETag`` is its store version, quoted: a strong tag (``"3f9a…"``).
- ``If-None-Match`` is read as RFC 9110 says: ``*`` or a comma-separated list of entity tags,
  compared with the weak comparison (``W/"v"`` matches ``"v"``). A header that is not such a
  list is ignored, as if absent.
- ``Retry-After`` (whole seconds) goes with every answer about a job that is not final: from the
  job's own progress rate when it has progress and ``started_at`` -- the time left at the rate
  measured since it started, clamped to ``bounds`` -- else ``default``.
"""

from __future__ import annotations

import math
import re

from jobstatus.record import JobRecord

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_RETRY_AFTER_BOUNDS",
    "IfNoneMatch",
    "etag",
    "parse_if_none_match",
    "retry_after",
]

#: Seconds a client is told to wait before asking again about a job without progress.
DEFAULT_RETRY_AFTER = 2
#: The least and the most seconds an estimate from progress may say.
DEFAULT_RETRY_AFTER_BOUNDS = (1, 30)

# One entity tag (RFC 9110 8.8.3: [W/] DQUOTE *etagc DQUOTE), then a comma or the end.
_TAG = re.compile(r'[ \t]*(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|\Z)')
_EMPTY_ELEMENT = re.compile(r"[ \t]*,")
_TAG_TEXT = re.compile(r"[\x21\x23-\x7e\x80-\xff]*")


def etag(version: str) -> str:
    """The ``ETag`` header of a record with this version (a strong entity tag)."""
    return f'"{version}"'


class IfNoneMatch:
    """A parsed ``If-None-Match``: ``*`` (any current record matches) or a set of tags."""

    __slots__ = ("any", "tags")

    def __init__(self, any: bool, tags: frozenset[str] | set[str]) -> None:
        self.any = any
        self.tags = tags

    def __repr__(self) -> str:
        return "IfNoneMatch(*)" if self.any else f"IfNoneMatch({sorted(self.tags)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IfNoneMatch) and (self.any, self.tags) == (other.any, other.tags)

    __hash__ = None  # type: ignore[assignment]

    def matches(self, version: str | None) -> bool:
        """True when a record with ``version`` matches (weak comparison)."""
        if version is None:
            return False
        return self.any or version in self.tags


_ANY = IfNoneMatch(True, frozenset())


def parse_if_none_match(header: str | None) -> IfNoneMatch | None:
    """The condition of an ``If-None-Match`` header; None when absent or not well-formed."""
    if header is None:
        return None
    # The usual header, one strong tag sent back as it came: no list to parse.
    if header[:1] == '"' and header.count('"') == 2 and header[-1:] == '"' and "," not in header:
        tag = header[1:-1]
        if _TAG_TEXT.fullmatch(tag):
            return IfNoneMatch(False, {tag})
    text = header.strip(" \t")
    if text == "*":
        return _ANY
    tags: set[str] = set()
    position, end = 0, len(text)
    while position < end:
        match = _TAG.match(text, position)
        if match is None:
            empty = _EMPTY_ELEMENT.match(text, position)  # "a, , b": empty elements are allowed
            if empty is None:
                return None
            position = empty.end()
            continue
        tags.add(match.group(1))
        position = match.end()
    return IfNoneMatch(False, frozenset(tags)) if tags else None


def retry_after(
    record: JobRecord,
    now: float,
    *,
    default: int = DEFAULT_RETRY_AFTER,
    bounds: tuple[int, int] = DEFAULT_RETRY_AFTER_BOUNDS,
) -> int | None:
    """Whole seconds until the job is worth asking about again; None once it is final."""
    if record.is_final:
        return None
    progress, started = record.progress, record.started_at
    if progress is None or started is None:
        return default
    fraction = progress.fraction
    elapsed = now - started.timestamp()
    if not fraction or fraction <= 0 or elapsed <= 0:
        return default
    remaining = elapsed * (1 - min(fraction, 1.0)) / fraction
    low, high = bounds
    return min(max(math.ceil(remaining), low), high)
