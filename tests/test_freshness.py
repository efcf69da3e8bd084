"""The small rules of polling: If-None-Match as RFC 9110 reads it, Retry-After from progress,
and signed list cursors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobstatus import InvalidRequest, JobRecord, Progress, StatusService
from jobstatus._cursor import CursorSigner, Position
from jobstatus._freshness import etag, parse_if_none_match, retry_after
from jobstatus.backends.memory import MemoryStore


@pytest.mark.parametrize(
    ("header", "any_", "tags"),
    [
        ('"v1"', False, {"v1"}),
        ('W/"v1"', False, {"v1"}),
        ('"v1", W/"v2",, "v3" ', False, {"v1", "v2", "v3"}),
        ('"a,b"', False, {"a,b"}),
        ('""', False, {""}),
        ("*", True, set()),
        (" * ", True, set()),
    ],
)
def test_if_none_match_lists(header: str, any_: bool, tags: set[str]) -> None:
    condition = parse_if_none_match(header)
    assert condition is not None
    assert (condition.any, set(condition.tags)) == (any_, tags)


@pytest.mark.parametrize("header", [None, "", ",", "v1", '"v1" "v2"', '"v1', 'w/"v1"', '*, "v"'])
def test_a_header_that_is_no_tag_list_is_ignored(header: str | None) -> None:
    assert parse_if_none_match(header) is None


def test_matching_is_the_weak_comparison_and_star_matches_any_record() -> None:
    condition = parse_if_none_match('W/"abc"')
    assert condition is not None
    assert condition.matches("abc")
    assert not condition.matches("abd")
    star = parse_if_none_match("*")
    assert star is not None
    assert star.matches("anything")
    assert not star.matches(None)  # no record: nothing to match
    assert etag("abc") == '"abc"'


@given(st.lists(st.text(st.characters(codec="ascii", exclude_characters='"\r\n'), max_size=8),
                min_size=1, max_size=4))  # fmt: skip
def test_every_list_of_tags_parses_back(tags: list[str]) -> None:
    printable = [t for t in tags if all(0x21 <= ord(c) <= 0x7E for c in t)]
    if not printable:
        return
    header = ", ".join(f'"{tag}"' for tag in printable)
    condition = parse_if_none_match(header)
    assert condition is not None
    assert set(condition.tags) == set(printable)


STARTED = datetime(2026, 11, 30, 3, 0, 0, tzinfo=timezone.utc)


def running(percent: float | None, elapsed: float | None) -> JobRecord:
    """A job started ``elapsed`` seconds before ``now`` (below), ``percent`` done."""
    return JobRecord(
        job_id="j",
        job_status="running",
        progress=None if percent is None else Progress(percent=percent),
        started_at=None if elapsed is None else STARTED - timedelta(seconds=elapsed),
    )


def test_retry_after_from_progress_and_its_defaults() -> None:
    now = STARTED.timestamp()
    assert retry_after(running(25, 30), now) == 30  # 90 s left: capped at 30
    assert retry_after(running(75, 30), now) == 10
    assert retry_after(running(50, 3), now) == 3
    assert retry_after(running(None, 30), now) == 2  # no progress: the default
    assert retry_after(running(50, None), now) == 2  # no start: no rate
    assert retry_after(running(0, 30), now) == 2  # no progress yet: no rate
    assert retry_after(running(75, 30), now, default=5, bounds=(12, 60)) == 12
    done = JobRecord(job_id="j", job_status="done")
    assert retry_after(done, now) is None


def test_the_service_refuses_unusable_retry_settings() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        StatusService(MemoryStore(), api_keys=None, retry_after_bounds=(10, 5))
    with pytest.raises(ValueError, match="max_wait"):
        StatusService(MemoryStore(), api_keys=None, max_wait=0)


def test_a_cursor_round_trips_and_any_change_is_refused() -> None:
    signer = CursorSigner.from_configuration(None, [b"k1", b"k2"])
    position = Position(1764472391.1234567, "job-ü/1", 1764471791.0, ("running", "queued"))
    cursor = signer.dump(position)
    assert cursor.isascii()
    assert signer.load(cursor) == position
    same_keys = CursorSigner.from_configuration(None, iter([b"k2", b"k1"]))
    assert same_keys.load(cursor) == position  # another process of the deployment
    for other in (
        CursorSigner.from_configuration(None, [b"k1"]),
        CursorSigner.from_configuration("secret", [b"k1", b"k2"]),
    ):
        with pytest.raises(InvalidRequest):
            other.load(cursor)
    for bad in (cursor[:-1], cursor + "=", cursor.replace(".", ".."), "x" * 5000, "é.é"):
        with pytest.raises(InvalidRequest):
            signer.load(bad)


def test_a_service_signs_with_its_keys_even_from_a_generator() -> None:
    store = MemoryStore()
    store.put(JobRecord(job_id="a", job_status="queued"))
    store.put(JobRecord(job_id="b", job_status="queued"))
    one = StatusService(store, api_keys=(key for key in ["k"]))
    two = StatusService(store, api_keys=["k"])
    from jobstatus.wire import Request

    page = one.respond(Request("GET", "/v1/toolkit/jobs", api_key="k", query="limit=1"))
    cursor = page.parsed()["response"]["next_cursor"]  # type: ignore[union-attr]
    follow = two.respond(Request("GET", "/v1/toolkit/jobs", api_key="k", query=f"cursor={cursor}"))
    assert follow.status == 200  # type: ignore[union-attr]
    assert [j["job_id"] for j in follow.parsed()["response"]["jobs"]] == ["a"]  # type: ignore[union-attr]
