"""JobRecord, the envelope and the error bodies."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jobstatus import (
    InvalidRequest,
    JobNotFound,
    JobRecord,
    JobState,
    QueueFull,
    StorageError,
    Unauthorized,
    build_envelope,
)
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.errors import redact
from jobstatus.record import check_job_id
from jobstatus.testing.strategies import documents, json_values
from jobstatus.testing.suite import UNSAFE_JOB_IDS, UPSTREAM_EXAMPLE


@given(documents())
@example({"job_status": "done", "job_id": "x"})  # no upstream keys but the two required
@example({"job_status": "queued", "job_id": "x", "response": None, "queue_id": None})
@example({"job_id": "x", "job_status": "c", "extra": {"nested": [1.5, None, "\u2603"]}})
def test_any_document_round_trips(doc: dict[str, Any]) -> None:
    record = JobRecord.from_dict(doc)
    assert record.to_dict() == doc
    assert JobRecord.from_json(record.to_json()).to_dict() == doc


def test_the_upstream_document_keeps_its_key_order() -> None:
    record = JobRecord.from_dict(UPSTREAM_EXAMPLE)
    assert list(record.to_dict()) == list(UPSTREAM_EXAMPLE)
    assert record.to_json() == json.dumps(UPSTREAM_EXAMPLE, indent=2)


def test_a_new_record_has_the_five_upstream_keys() -> None:
    record = JobRecord(job_id="j", job_status=JobState.RUNNING, process_id=7)
    assert record.job_status == "running"
    assert record.to_dict() == {
        "job_status": "running",
        "job_id": "j",
        "queue_id": None,
        "process_id": 7,
        "response": None,
    }


def test_replacing_an_absent_key_brings_it_back() -> None:
    record = JobRecord.from_dict({"job_id": "j", "job_status": "queued"})
    assert "response" not in record.to_dict()
    assert dataclasses.replace(record, response={"r": 1}).to_dict()["response"] == {"r": 1}


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"job_status": "done"}, "job_id"),
        ({"job_id": 5, "job_status": "done"}, "job_id"),
        ({"job_id": "", "job_status": "done"}, "job_id"),
        ({"job_id": "j"}, "job_status"),
        ({"job_id": "j", "job_status": None}, "job_status"),
        ({"job_id": "j", "job_status": ""}, "job_status"),
        ([], "JSON object"),
    ],
)
def test_a_document_without_string_id_and_status_is_refused(doc: Any, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        JobRecord.from_dict(doc)


def test_extra_cannot_shadow_upstream_keys() -> None:
    with pytest.raises(ValueError, match="upstream keys"):
        JobRecord(job_id="j", job_status="done", extra={"job_id": "other"})


def test_final_states() -> None:
    assert JobRecord(job_id="j", job_status="done").is_final
    assert JobRecord(job_id="j", job_status="failed").is_final
    assert not JobRecord(job_id="j", job_status="running").is_final
    assert not JobRecord(job_id="j", job_status="custom").is_final


@pytest.mark.parametrize("job_id", UNSAFE_JOB_IDS)
def test_unsafe_ids(job_id: str) -> None:
    with pytest.raises(InvalidRequest):
        check_job_id(job_id)


def _refused_by_the_rule(job_id: str) -> bool:
    """The id rule as written out plainly (check_job_id clears usual ids by a quicker path)."""
    try:
        size = len(job_id.encode("utf-8"))
    except UnicodeEncodeError:
        return True
    return (
        not job_id
        or job_id in {".", ".."}
        or re.search(r"[\x00-\x1f\x7f/\\]|\.\.", job_id) is not None
        or size > 250
    )


@given(
    st.text(alphabet=st.sampled_from("a.-/\\\x00\x1f\x7f\x85\u200b\u2028 é\ud800"), max_size=12)
    | st.text(max_size=260)
)
@example("\x85")  # not printable, yet allowed: only C0 controls and DEL are refused
@example("a\u2028b")
@example(".")
@example("..")
def test_check_job_id_refuses_exactly_what_the_rule_refuses(job_id: str) -> None:
    try:
        check_job_id(job_id)
    except InvalidRequest:
        refused = True
    else:
        refused = False
    assert refused == _refused_by_the_rule(job_id)


@given(json_values())
def test_storable_values_serialise(value: Any) -> None:
    record = JobRecord(job_id="j", job_status="done", response=value)
    assert json.loads(record.to_json())["response"] == value


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    record = JobRecord(job_id="j", job_status="done", response="C:\\u0000 is a path")
    assert json.loads(record.to_json())["response"] == "C:\\u0000 is a path"


# -- the envelope ---------------------------------------------------------------------------------


@given(
    run_time=st.floats(min_value=0, max_value=1e6),
    queue_time=st.floats(min_value=0, max_value=1e6),
    response=json_values(),
    request_id=json_values(4),
)
def test_every_envelope_has_the_13_keys(
    run_time: float, queue_time: float, response: Any, request_id: Any
) -> None:
    envelope = build_envelope(
        endpoint="/e",
        job_id="j",
        response=response,
        id=request_id,
        run_time=run_time,
        queue_time=queue_time,
    )
    assert tuple(envelope) == ENVELOPE_KEYS
    assert envelope["run_time"] == round(run_time, 3)
    assert envelope["total_time"] == round(run_time + queue_time, 3)
    assert envelope["id"] == request_id


# -- error bodies ---------------------------------------------------------------------------------


def test_error_bodies() -> None:
    assert (InvalidRequest.status, InvalidRequest("bad").body()) == (
        400,
        {"message": "Invalid payload: bad"},
    )
    assert (Unauthorized.status, Unauthorized().body()) == (401, {"message": "Unauthorized"})
    assert (JobNotFound.status, JobNotFound("j").body()) == (
        404,
        {"error": "Job not found", "job_id": "j"},
    )
    assert (StorageError.status, StorageError("disk full").body()) == (
        500,
        {"error": "Failed to retrieve job status: disk full", "code": 500},
    )
    full = QueueFull(10, queue_length=10, id="r", job_id="j", pid=1, queue_id=2, build_number="b")
    assert QueueFull.status == 429
    assert full.body() == {
        "code": 429,
        "id": "r",
        "job_id": "j",
        "message": "MAX_QUEUE_LENGTH (10) reached",
        "pid": 1,
        "queue_id": 2,
        "queue_length": 10,
        "build_number": "b",
    }


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgresql+psycopg://app:s3cr3t@db:5432/jobs", "s3cr3t"),
        ("mysql://root:p%40ss@host/db failed", "p%40ss"),
        ("connect failed: password=hunter2 host=db", "hunter2"),
        ("aws_secret_access_key='AKIAabc/123'", "AKIAabc/123"),
        ("s3://b/p?endpoint_url=http://x&secret=topsecret&key=id", "topsecret"),
    ],
)
def test_storage_errors_hide_credentials(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert secret not in str(StorageError(text))
    assert secret not in json.dumps(StorageError(text).body())
