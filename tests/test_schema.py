"""The request schemas: jsonschema decides; the shortcuts never accept what it refuses."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import example, given
from hypothesis import strategies as st

from jobstatus._schema import (
    JOB_STATUS_SCHEMA,
    JOBS_STATUS_SCHEMA,
    accepts_job_status,
    accepts_jobs_status,
)
from jobstatus.testing.strategies import json_values

payloads = st.one_of(
    json_values(),
    st.dictionaries(
        st.sampled_from(["job_id", "since_seconds", "id", "x"]), json_values(3), max_size=3
    ),
)


@given(payloads)
@example({"job_id": "x"})
@example({"job_id": True})
@example([])
def test_the_job_status_shortcut_is_exactly_the_schema(payload: Any) -> None:
    assert accepts_job_status(payload) == jsonschema.Draft202012Validator(
        JOB_STATUS_SCHEMA
    ).is_valid(payload)


@given(payloads)
@example({"since_seconds": True})
@example({"since_seconds": -0.5})
@example({"since_seconds": 0})
@example({})
def test_the_jobs_status_shortcut_never_accepts_what_the_schema_refuses(payload: Any) -> None:
    if accepts_jobs_status(payload):
        assert jsonschema.Draft202012Validator(JOBS_STATUS_SCHEMA).is_valid(payload)
