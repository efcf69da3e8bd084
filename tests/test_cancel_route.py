"""``POST /v1/toolkit/job/cancel`` on every adapter: mounted only when allowed, the same
authentication and validation as the status route, 202 while the job winds down, 200 once it
is final, the spec's 404 for an unknown job."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from jobstatus import JobTracker, StatusService, open_store
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.store import Store
from tests.clients import ADAPTERS, Answer, Client

KEY = "cancel-key"
CANCEL = "/v1/toolkit/job/cancel"
ENDPOINT = "/v1/media/transcribe"
UNKNOWN = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"

ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("memory://") as store:
        yield store


@pytest.fixture
def tracker(store: Store) -> JobTracker:
    return JobTracker(store, build_number="2.0", failure_ttl=3600)


@pytest.fixture(params=ADAPTER_PARAMS)
def client(request: pytest.FixtureRequest, store: Store, tracker: JobTracker) -> Client:
    service = StatusService(store, api_keys=[KEY], build_number="2.0", allow_cancel=tracker)
    return ADAPTERS[request.param][0](service)


def cancel(client: Client, body: object, key: str | None = KEY) -> Answer:
    headers = {} if key is None else {"x-api-key": key}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client("POST", CANCEL, data, headers)


def test_a_queued_job_is_cancelled_with_200(client: Client, tracker: JobTracker) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    answer = cancel(client, {"job_id": job_id, "id": "req-9"})
    assert answer.status == 200
    envelope = answer.json()
    assert list(envelope) == list(ENVELOPE_KEYS)
    assert (envelope["endpoint"], envelope["code"], envelope["id"]) == (CANCEL, 200, "req-9")
    assert envelope["job_id"] == job_id
    document = envelope["response"]
    assert document["job_status"] == "cancelled"
    assert document["response"]["code"] == 499
    assert "expires_at" in document  # the host tracker's failure_ttl applies


def test_a_running_job_is_asked_to_stop_with_202(
    client: Client, tracker: JobTracker, store: Store
) -> None:
    job_id = tracker.submit(endpoint=ENDPOINT)
    with tracker.run(job_id) as run:
        answer = cancel(client, {"job_id": job_id})
        assert answer.status == 202
        envelope = answer.json()
        assert envelope["code"] == 202
        assert envelope["response"]["job_status"] == "running"
        assert envelope["response"]["cancel_requested_at"].endswith("Z")
        again = cancel(client, {"job_id": job_id})
        assert again.status == 202
        assert again.json()["response"] == envelope["response"]
        run.check_cancelled()  # raises JobCancelled: the block ends here
    assert store.get(job_id).job_status == "cancelled"
    assert cancel(client, {"job_id": job_id}).status == 200


def test_a_final_job_is_left_as_it_is(client: Client, tracker: JobTracker, store: Store) -> None:
    with tracker.run(endpoint=ENDPOINT) as run:
        run.result = "all done"
    before = store.get(run.job_id)
    answer = cancel(client, {"job_id": run.job_id})
    assert answer.status == 200
    assert answer.json()["response"] == before.to_dict()
    assert store.get(run.job_id).version == before.version


def test_unknown_unauthorized_and_malformed(client: Client) -> None:
    missing = cancel(client, {"job_id": UNKNOWN})
    assert (missing.status, missing.json()) == (404, {"error": "Job not found", "job_id": UNKNOWN})
    for key in (None, "wrong"):
        denied = cancel(client, {"job_id": UNKNOWN}, key=key)
        assert (denied.status, denied.json()) == (401, {"message": "Unauthorized"})
    for body in (b"", b"not json", b"[]", {"job_id": 7}, {"job_id": "not-a-uuid"}):
        bad = cancel(client, body)
        assert bad.status == 400
        assert bad.json()["message"].startswith("Invalid payload: ")


@pytest.mark.parametrize("adapter", ADAPTER_PARAMS)
def test_the_route_is_not_mounted_unless_allowed(adapter: str, store: Store) -> None:
    client = ADAPTERS[adapter][0](StatusService(store, api_keys=[KEY]))
    answer = cancel(client, {"job_id": UNKNOWN})
    assert answer.status == 404
    # the path is unknown (the host's own 404 under Flask), not the job
    assert b"Job not found" not in answer.body


@pytest.mark.extras
def test_openapi_documents_the_cancel_route(store: Store, tracker: JobTracker) -> None:
    fastapi = pytest.importorskip("fastapi")
    from jobstatus.adapters.fastapi import make_router

    app = fastapi.FastAPI()
    app.include_router(make_router(StatusService(store, api_keys=[KEY], allow_cancel=tracker)))
    operation = app.openapi()["paths"][CANCEL]["post"]
    assert operation["operationId"] == "cancelJob"
    answers = operation["responses"]
    assert sorted(answers) == ["200", "202", "400", "401", "403", "404", "500"]
    running = answers["202"]["content"]["application/json"]["example"]
    assert running["code"] == 202
    assert running["response"]["job_status"] == "running"
    assert "cancel_requested_at" in running["response"]
    assert answers["200"]["content"]["application/json"]["example"]["code"] == 200
