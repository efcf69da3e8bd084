"""StatusService options and failure paths, below any adapter."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jobstatus import JobRecord, StatusService, build_envelope, open_store
from jobstatus.backends.memory import MemoryStore
from jobstatus.config import api_keys_from_env, store_url_from_env
from jobstatus.service import dump_json
from jobstatus.testing.strategies import documents, json_values

JOB = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
PATH = "/v1/toolkit/job/status"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.put(JobRecord(job_id=JOB, job_status="running"))
    return store


def test_queue_length_may_be_a_function(store: MemoryStore) -> None:
    lengths = iter([3, 4])
    service = StatusService(store, api_keys=None, queue_length=lambda: next(lengths))
    assert service.handle(PATH, body(job_id=JOB), None).parsed()["queue_length"] == 3
    assert service.handle(PATH, body(job_id=JOB), None).parsed()["queue_length"] == 4


def test_the_job_id_pattern_is_an_option(store: MemoryStore) -> None:
    store.put(JobRecord(job_id="job-42", job_status="done"))
    service = StatusService(store, api_keys=None, job_id_pattern=r"job-\d+")
    assert service.handle(PATH, body(job_id="job-42"), None).status == 200
    refused = service.handle(PATH, body(job_id="job-42x"), None)
    assert refused.status == 400
    assert refused.parsed() == {"message": "Invalid payload: job_id does not match 'job-\\\\d+'"}


def test_a_loosened_pattern_still_never_escapes_the_store(tmp_path: Any) -> None:
    (tmp_path / "secret.json").write_text(json.dumps({"job_id": "x", "job_status": "done"}))
    service = StatusService(
        open_store(str(tmp_path / "data")), api_keys=None, job_id_pattern=r"(?s).*"
    )
    for job_id in ("../secret", "../../secret", "/etc/passwd", "..", "a\x00b"):
        reply = service.handle(PATH, body(job_id=job_id), None)
        assert reply.status == 400, job_id
        assert reply.parsed()["message"].startswith("Invalid payload: job_id must not contain")


def test_the_body_limit_is_an_option(store: MemoryStore) -> None:
    service = StatusService(store, api_keys=None, max_body_bytes=50)
    assert service.handle(PATH, body(job_id=JOB), None).status == 200
    reply = service.handle(PATH, body(job_id=JOB, pad="x" * 50), None)
    assert reply.parsed() == {"message": "Invalid payload: body is larger than 50 bytes"}


def test_api_keys_must_be_a_collection_of_non_empty_keys(store: MemoryStore) -> None:
    with pytest.raises(TypeError, match="collection"):
        StatusService(store, api_keys="one-key")
    with pytest.raises(ValueError, match="empty"):
        StatusService(store, api_keys=["ok", ""])


def test_the_key_is_never_reported_back(store: MemoryStore) -> None:
    service = StatusService(store, api_keys=["k-one-secret", "k-two-secret"])
    for key in ("k-one-secret", "k-two-secret", "wrong", None):
        for payload in (body(job_id=JOB), b"{", body(job_id="nope")):
            reply = service.handle(PATH, payload, key)
            assert b"secret" not in reply.body
    assert "secret" not in repr(service)


class ExplodingStore(MemoryStore):
    """A store whose driver raises something it did not translate, with a secret in it."""

    def get(self, job_id: str) -> JobRecord:
        raise RuntimeError("connection to postgresql://app:hunter2@db/jobs lost")

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        raise OSError("disk on fire")


def test_an_untranslated_store_failure_is_the_spec_500(caplog: pytest.LogCaptureFixture) -> None:
    service = StatusService(ExplodingStore(), api_keys=None)
    with caplog.at_level(logging.DEBUG, logger="jobstatus"):
        reply = service.handle(PATH, body(job_id=JOB), None)
    assert reply.status == 500
    assert reply.parsed() == {
        "error": "Failed to retrieve job status: RuntimeError: connection to "
        "postgresql://app:***@db/jobs lost",
        "code": 500,
    }
    listing = service.handle("/v1/toolkit/jobs/status", b"", None)
    assert listing.parsed() == {
        "error": "Failed to retrieve job status: OSError: disk on fire",
        "code": 500,
    }
    assert "hunter2" not in caplog.text
    assert "Traceback" not in reply.body.decode()


def test_reading_a_status_does_not_write(store: MemoryStore) -> None:
    class CountingStore(MemoryStore):
        writes = 0

        def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
            CountingStore.writes += 1
            return super().put(record, force=force)

    counting = CountingStore()
    counting.restore([JobRecord(job_id=JOB, job_status="done")])
    service = StatusService(counting, api_keys=None)
    service.handle(PATH, body(job_id=JOB), None)
    service.handle(PATH, body(job_id=JOB.replace("e", "f")), None)
    assert CountingStore.writes == 0


def test_an_unknown_path_is_a_json_404(store: MemoryStore) -> None:
    reply = StatusService(store, api_keys=None).handle("/nope", b"", None)
    assert (reply.status, reply.parsed()) == (404, {"message": "Not found: /nope"})


def test_configuration_from_the_environment() -> None:
    assert store_url_from_env({}) == "./jobstatus-data"
    assert store_url_from_env({"LOCAL_STORAGE_PATH": "/tmp"}) == "/tmp"
    assert (
        store_url_from_env({"LOCAL_STORAGE_PATH": "/tmp", "JOBSTATUS_STORE": "memory://"})
        == "memory://"
    )
    assert api_keys_from_env({}) is None
    assert api_keys_from_env({"API_KEY": "a"}) == ["a"]
    assert api_keys_from_env({"API_KEY": "a", "JOBSTATUS_API_KEYS": "b, c,"}) == ["b", "c"]
    assert api_keys_from_env({"JOBSTATUS_API_KEYS": ""}) == []


@given(
    doc=documents(job_id=st.just(JOB)),
    request_id=json_values(4),
    build_number=st.one_of(st.none(), st.text(max_size=8)),
    queue_length=st.integers(min_value=0, max_value=10**6),
    upstream_wire=st.booleans(),
)
@example(
    doc={"job_id": JOB, "job_status": "done", "response": "é\u2028}{"},
    request_id="}\n",
    build_number='"}{',
    queue_length=0,
    upstream_wire=False,
)
def test_a_200_is_byte_for_byte_the_envelope_builder_output(
    doc: dict[str, Any],
    request_id: Any,
    build_number: str | None,
    queue_length: int,
    upstream_wire: bool,
) -> None:
    """The service splices the record's cached JSON into the answer; the bytes must equal a
    plain ``dump_json(build_envelope(...))`` of the same values."""
    store = MemoryStore()
    store.put(JobRecord.from_dict(doc))
    service = StatusService(
        store,
        api_keys=None,
        build_number=build_number,
        queue_length=queue_length,
        upstream_wire=upstream_wire,
    )
    reply = service.handle(PATH, json.dumps({"job_id": JOB, "id": request_id}).encode(), None)
    got = json.loads(reply.body)
    expected = dump_json(
        build_envelope(
            endpoint=PATH,
            job_id=got["job_id"] if upstream_wire else JOB,
            response=JobRecord.from_dict(doc).to_dict(),
            id=json.loads(json.dumps(request_id)),
            pid=os.getpid(),
            queue_id=service.queue_id,
            run_time=got["run_time"],
            queue_length=queue_length,
            build_number=build_number,
        )
    )
    assert reply.body == expected


def test_a_failing_queue_length_is_the_spec_500_not_a_crash(store: MemoryStore) -> None:
    def broken() -> int:
        raise ZeroDivisionError("division by zero")

    for upstream_wire in (False, True):
        service = StatusService(
            store, api_keys=None, queue_length=broken, upstream_wire=upstream_wire
        )
        reply = service.handle(PATH, body(job_id=JOB), None)
        assert reply.status == 500
        error = {
            "error": "Failed to retrieve job status: ZeroDivisionError: division by zero",
            "code": 500,
        }
        parsed = reply.parsed()
        assert (
            (parsed["message"], parsed["queue_length"]) == (error, None)
            if upstream_wire
            else parsed == error
        )
