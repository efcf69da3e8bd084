"""Listing recent jobs: the pages of ``GET /v1/toolkit/jobs`` and the map of the POST route.

``GET /v1/toolkit/jobs?status=running,queued&since_seconds=600&limit=100&cursor=…`` answers
``{"jobs": [...], "next_cursor": ...}``, newest first, paged by keyset on ``(updated_at,
job_id)``: a page holds the jobs strictly after the cursor's position in that order. A walk
through every page while writers run lists every job that was not written during the walk
exactly once (a job written meanwhile moves to the top, where the walk has been already: it
may be missed or listed twice). The cursor fixes the window's start and the status filter for
the whole walk; ``limit`` may change from page to page.

``POST /v1/toolkit/jobs/status`` answers ``job_id → job_status``; its body is built as the
records come, so a window of any size is answered in bounded memory (:func:`status_map`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from jobstatus._answers import Answers
from jobstatus._cursor import CursorSigner, Position
from jobstatus.errors import InvalidRequest, redact
from jobstatus.lifecycle import format_timestamp, utc_from_epoch
from jobstatus.record import JobRecord, dump_compact
from jobstatus.store import Store
from jobstatus.wire import Reply, StreamedReply

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_SINCE_SECONDS",
    "MAX_LIMIT",
    "STREAM_AFTER",
    "ListQuery",
    "list_page",
    "page_reply",
    "read_list_query",
    "status_filter",
    "status_map",
    "status_reply",
]

log = logging.getLogger("jobstatus.service")

#: The window of both list routes when the request gives none, in seconds.
DEFAULT_SINCE_SECONDS = 600
#: Jobs per page when the request gives no ``limit``.
DEFAULT_LIMIT = 100
#: The most jobs a page may hold.
MAX_LIMIT = 1000
#: A POST listing of more jobs than this is streamed rather than built whole.
STREAM_AFTER = 1000
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class ListQuery:
    """One page to list: the window's start (seconds since the epoch), the states, how many,
    and the position the page starts after (None: the newest)."""

    since: float
    statuses: tuple[str, ...] | None
    limit: int
    after: tuple[float, str] | None = None


def status_filter(value: object) -> tuple[str, ...] | None:
    """``"running,queued"`` or ``["running", "queued"]`` as a tuple of states; None for
    None. :class:`InvalidRequest` for a blank state."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequest("status must be a state or a list of states")
    states = tuple(dict.fromkeys(name.strip() for name in names))
    if not states or not all(states):
        raise InvalidRequest("status names an empty state")
    return states


def number(name: str, text: str) -> float:
    """A query parameter that must be a non-negative decimal number (an exponent allowed)."""
    if not _NUMBER.fullmatch(text):
        raise InvalidRequest(f"{name} must be a number, got {text[:40]!r}")
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest(f"{name} is too large")
    return value


def read_list_query(params: dict[str, str], signer: CursorSigner, now: float) -> ListQuery:
    """The page a ``GET /v1/toolkit/jobs`` query asks for; :class:`InvalidRequest` if bad."""
    limit = DEFAULT_LIMIT
    if "limit" in params:
        text = params["limit"]
        if not (
            text.isascii() and text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_LIMIT
        ):
            raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    cursor = params.get("cursor")
    if cursor is not None:
        position: Position = signer.load(cursor)
        return ListQuery(
            position.since, position.statuses, limit, (position.updated_at, position.job_id)
        )
    since_seconds = float(DEFAULT_SINCE_SECONDS)
    if "since_seconds" in params:
        since_seconds = number("since_seconds", params["since_seconds"])
    statuses = status_filter(params["status"]) if "status" in params else None
    return ListQuery(now - since_seconds, statuses, limit)


def list_page(store: Store, query: ListQuery) -> tuple[list[JobRecord], bool]:
    """The page's records, newest first, and whether more follow."""
    want = query.limit + 1
    after = query.after
    page: list[tuple[tuple[float, str], JobRecord]] = []
    oldest = -math.inf  # the updated_at of the last record kept, once the page is full
    for record in store.list(since=query.since, status=query.statuses):
        key = (record.updated_at or 0.0, record.job_id)
        if after is not None and key >= after:
            continue
        if len(page) >= want and key[0] < oldest:
            break  # the store lists newest first: nothing older can enter the page
        page.append((key, record))
        if len(page) >= want:
            page.sort(key=_first, reverse=True)
            del page[want:]
            oldest = page[-1][0][0]
    page.sort(key=_first, reverse=True)
    records = [record for _key, record in page]
    return records[: query.limit], len(records) > query.limit


def _first(item: tuple[tuple[float, str], JobRecord]) -> tuple[float, str]:
    return item[0]


def next_position(records: list[JobRecord], query: ListQuery) -> Position:
    """The position after the last record of a page (the next page starts there)."""
    last = records[-1]
    return Position(last.updated_at or 0.0, last.job_id, query.since, query.statuses)


def entry(record: JobRecord) -> dict[str, Any]:
    """A job as a page lists it: id, state, ``updated_at`` and, when set, progress and the
    created, started and ended times (RFC 3339, UTC, milliseconds)."""
    item: dict[str, Any] = {
        "job_id": record.job_id,
        "job_status": record.job_status,
        "updated_at": format_timestamp(utc_from_epoch(record.updated_at or 0.0)),
    }
    if record.progress is not None:
        item["progress"] = record.progress.to_dict()
    for name in ("created_at", "started_at", "ended_at"):
        moment = getattr(record, name)
        if moment is not None:
            item[name] = format_timestamp(moment)
    return item


def page_json(records: list[JobRecord], cursor: str | None) -> str:
    """The ``response`` of a page, as compact JSON."""
    return dump_compact({"jobs": [entry(r) for r in records], "next_cursor": cursor})


def status_map(records: Iterable[JobRecord], *, chunk: int = 500) -> Iterator[str]:
    """``{"<job_id>":"<job_status>",…}`` in pieces of ``chunk`` jobs: joined, exactly what
    ``dump_compact({r.job_id: r.job_status for r in records})`` gives for distinct ids."""
    yield "{"
    pieces: list[str] = []
    first = True
    for record in records:
        pieces.append(f"{dump_compact(record.job_id)}:{dump_compact(record.job_status)}")
        if len(pieces) >= chunk:
            yield ("" if first else ",") + ",".join(pieces)
            first, pieces = False, []
    if pieces:
        yield ("" if first else ",") + ",".join(pieces)
    yield "}"


# -- the two routes' answers --------------------------------------------------------------------

JOBS_ENDPOINT = "/v1/toolkit/jobs"


def page_reply(
    store: Store,
    answers: Answers,
    signer: CursorSigner,
    params: dict[str, str],
    started: float,
) -> Reply:
    """The 200 of ``GET /v1/toolkit/jobs``: one page, and the cursor of the next."""
    query = read_list_query(params, signer, time.time())
    records, more = list_page(store, query)
    cursor = signer.dump(next_position(records, query)) if more else None
    response = page_json(records, cursor)
    return Reply(200, answers.success_body(JOBS_ENDPOINT, 200, None, None, response, started))


def status_reply(
    store: Store, answers: Answers, endpoint: str, payload: dict[str, Any], started: float
) -> Reply:
    """The 200 of ``POST /v1/toolkit/jobs/status``; past :data:`STREAM_AFTER` jobs its body
    is streamed as the store yields the records."""
    since_seconds = payload.get("since_seconds", DEFAULT_SINCE_SECONDS)
    records = iter(store.list(since=time.time() - since_seconds, status=payload.get("status")))
    first = list(islice(records, STREAM_AFTER))
    request_id = payload.get("id")
    if len(first) < STREAM_AFTER:
        response = "".join(status_map(first))
        return Reply(200, answers.success_body(endpoint, 200, request_id, None, response, started))
    head = answers.head(endpoint, 200, request_id, None).encode("ascii")
    stream = _stream(answers, endpoint, chain(first, records), started)
    return StreamedReply(200, head, stream=stream)


def _stream(
    answers: Answers, endpoint: str, records: Iterator[JobRecord], started: float
) -> Iterator[bytes]:
    """The rest of a long listing, as the store yields it. A store failing now can no longer
    change the status line: the body ends short (not JSON), and the failure is logged."""
    try:
        for piece in status_map(records):
            yield piece.encode("ascii")
        yield answers.tail(started).encode("ascii")
    except Exception as exc:
        log.error("the listing of %s broke off: %s", endpoint, redact(str(exc)))
