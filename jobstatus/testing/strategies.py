"""Hypothesis strategies for job ids, documents and records that every store must keep."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from jobstatus.errors import InvalidRequest
from jobstatus.record import JobRecord, JobState, check_job_id

__all__ = ["documents", "job_ids", "job_statuses", "json_values", "records"]

_SAFE_CHARS = st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/\\")


def _is_safe(job_id: str) -> bool:
    try:
        check_job_id(job_id)
    except InvalidRequest:
        return False
    return True


def job_ids() -> st.SearchStrategy[str]:
    """Ids every store accepts: any printable Unicode but ``/``, ``\\`` and ``..``."""
    return st.one_of(
        st.uuids().map(str),
        st.text(_SAFE_CHARS, min_size=1, max_size=40).filter(_is_safe),
    )


#: Strings a document may hold: any Unicode but NUL and lone surrogates.
_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON values as upstream documents hold them: finite floats, integers within ±2**53."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        _text,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def job_statuses() -> st.SearchStrategy[str]:
    """The upstream states, and now and then a custom one."""
    return st.one_of(
        st.sampled_from([s.value for s in JobState]),
        st.text(_SAFE_CHARS, min_size=1, max_size=12),
    )


_UPSTREAM = {"job_status", "job_id", "queue_id", "process_id", "response"}


@st.composite
def documents(
    draw: st.DrawFn,
    job_id: st.SearchStrategy[str] | None = None,
    job_status: st.SearchStrategy[str] | None = None,
) -> dict[str, Any]:
    """Job documents: the upstream keys (each optional but the two required ones) plus any
    unknown keys."""
    doc: dict[str, Any] = {
        "job_status": draw(job_statuses() if job_status is None else job_status),
        "job_id": draw(job_ids() if job_id is None else job_id),
    }
    for key in ("queue_id", "process_id", "response"):
        if draw(st.booleans()):
            doc[key] = draw(
                json_values()
                if key == "response"
                else st.one_of(st.none(), st.integers(min_value=0, max_value=2**53 - 1))
            )
    extra = draw(
        st.dictionaries(_text.filter(lambda k: k not in _UPSTREAM), json_values(4), max_size=3)
    )
    doc.update(extra)
    return doc


def records(
    job_id: st.SearchStrategy[str] | None = None,
    job_status: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[JobRecord]:
    return documents(job_id, job_status).map(JobRecord.from_dict)
