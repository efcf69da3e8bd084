"""Who may see what, over HTTP on every adapter: owners, scopes, per-job tokens."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobstatus import JobRecord, StatusService, open_store
from jobstatus.access import Access
from jobstatus.store import Store
from tests.clients import ADAPTERS, Answer, Client

pytestmark = pytest.mark.extras  # tokens need itsdangerous

STATUS = "/v1/toolkit/job/status"
LISTING = "/v1/toolkit/jobs/status"
PAGES = "/v1/toolkit/jobs"
CANCEL = "/v1/toolkit/job/cancel"
ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]

KEYS = {
    "alice-key": Access(owner="alice"),
    "bob-key": Access(owner="bob"),
    "ops-key": Access(),
    "reader-key": Access(scopes=frozenset({"read"})),
    "lister-key": Access(owner="alice", scopes=frozenset({"list"})),
}
ALICE_JOB = str(uuid.UUID(int=1))
BOB_JOB = str(uuid.UUID(int=2))
NOBODYS_JOB = str(uuid.UUID(int=3))
UNKNOWN = str(uuid.UUID(int=4))


def jobs(store: Store) -> None:
    for job_id, owner in ((ALICE_JOB, "alice"), (BOB_JOB, "bob"), (NOBODYS_JOB, None)):
        store.put(JobRecord(job_id=job_id, job_status="running", owner=owner))


@pytest.fixture(params=ADAPTER_PARAMS)
def adapter(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def service() -> StatusService:
    store = open_store("memory://")
    jobs(store)
    return StatusService(store, api_keys=KEYS, token_secrets=["t1"], allow_cancel=True)


@pytest.fixture
def client(adapter: str, service: StatusService) -> Client:
    return ADAPTERS[adapter][0](service)


def ask(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = None,
    token: str | None = None,
) -> Answer:
    headers = {}
    if key is not None:
        headers["x-api-key"] = key
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = b"" if body is None else json.dumps(body).encode()
    return client(method, path, data, headers)


def status(client: Client, job_id: str, key: str | None = None, token: str | None = None) -> Answer:
    return ask(client, "POST", STATUS, {"job_id": job_id}, key, token)


def test_an_owner_sees_only_their_jobs(client: Client) -> None:
    assert status(client, ALICE_JOB, "alice-key").status == 200
    assert ask(client, "GET", f"{PAGES}/{ALICE_JOB}", key="alice-key").status == 200
    for other in (BOB_JOB, NOBODYS_JOB):
        assert status(client, other, "alice-key").status == 404
        assert ask(client, "GET", f"{PAGES}/{other}", key="alice-key").status == 404
    assert status(client, NOBODYS_JOB, "ops-key").status == 200


def test_another_owners_job_answers_exactly_like_an_unknown_one(client: Client) -> None:
    for method, path, body in (
        ("POST", STATUS, {"job_id": "{id}"}),
        ("GET", f"{PAGES}/{{id}}", None),
        ("POST", CANCEL, {"job_id": "{id}"}),
    ):
        answers = []
        for job_id in (BOB_JOB, UNKNOWN):
            real_path = path.replace("{id}", job_id)
            real_body = None if body is None else {"job_id": job_id}
            answers.append(ask(client, method, real_path, real_body, "alice-key"))
        hidden, unknown = answers
        assert hidden.status == unknown.status == 404
        assert hidden.body.replace(BOB_JOB.encode(), UNKNOWN.encode()) == unknown.body
        assert dict(hidden.headers) == dict(unknown.headers)


def test_lists_hold_only_the_owners_jobs(client: Client) -> None:
    listing = ask(client, "POST", LISTING, {}, "alice-key").json()["response"]
    assert listing == {ALICE_JOB: "running"}
    page = ask(client, "GET", PAGES, key="alice-key").json()["response"]
    assert [entry["job_id"] for entry in page["jobs"]] == [ALICE_JOB]
    everything = ask(client, "POST", LISTING, {}, "ops-key").json()["response"]
    assert set(everything) == {ALICE_JOB, BOB_JOB, NOBODYS_JOB}


def test_an_owner_cancels_only_their_jobs(client: Client, service: StatusService) -> None:
    assert ask(client, "POST", CANCEL, {"job_id": BOB_JOB}, "alice-key").status == 404
    assert service.store.get(BOB_JOB).cancel_requested_at is None
    assert ask(client, "POST", CANCEL, {"job_id": ALICE_JOB}, "alice-key").status == 202


@pytest.mark.parametrize(
    ("key", "method", "path", "body"),
    [
        ("reader-key", "POST", LISTING, {}),
        ("reader-key", "GET", PAGES, None),
        ("reader-key", "POST", CANCEL, {"job_id": ALICE_JOB}),
        ("lister-key", "POST", STATUS, {"job_id": ALICE_JOB}),
        ("lister-key", "GET", f"{PAGES}/{ALICE_JOB}", None),
        ("lister-key", "POST", STATUS, {"job_id": "not even a uuid"}),
    ],
)
def test_a_key_without_the_scope_gets_403_before_anything_else(
    client: Client, key: str, method: str, path: str, body: Any
) -> None:
    answer = ask(client, method, path, body, key)
    assert (answer.status, answer.json()) == (403, {"message": "Forbidden"})


def test_a_token_reads_its_job_and_nothing_else(client: Client, service: StatusService) -> None:
    token = service.issue_token(BOB_JOB, ttl=60)
    assert status(client, BOB_JOB, token=token).json()["response"]["job_id"] == BOB_JOB
    got = ask(client, "GET", f"{PAGES}/{BOB_JOB}", token=token)
    assert got.status == 200
    etag = got.headers["etag"]
    unchanged = client("GET", f"{PAGES}/{BOB_JOB}", b"", {
        "authorization": f"Bearer {token}", "if-none-match": etag})  # fmt: skip
    assert unchanged.status == 304
    for answer in (
        status(client, ALICE_JOB, token=token),
        ask(client, "GET", f"{PAGES}/{ALICE_JOB}", token=token),
        ask(client, "POST", LISTING, {}, token=token),
        ask(client, "GET", PAGES, token=token),
        ask(client, "POST", CANCEL, {"job_id": BOB_JOB}, token=token),
        status(client, BOB_JOB, token=token[:-2]),
        status(client, BOB_JOB, token=token + "x"),
    ):
        assert (answer.status, answer.json()) == (401, {"message": "Unauthorized"})
    other = StatusService(open_store("memory://"), api_keys=KEYS, token_secrets=["t2"])
    assert status(client, BOB_JOB, token=other.issue_token(BOB_JOB)).status == 401


def test_a_host_authorize_callable_failing_is_a_500_in_the_spec_shape(adapter: str) -> None:
    def authorize(key: str) -> Access | None:
        raise RuntimeError("the key service is down: password=hunter2")

    client = ADAPTERS[adapter][0](StatusService(open_store("memory://"), api_keys=authorize))
    answer = status(client, ALICE_JOB, "any-key")
    assert answer.status == 500
    assert answer.json()["code"] == 500
    assert answer.json()["error"].startswith("Failed to retrieve job status: ")
    assert b"hunter2" not in answer.body


_owners = st.sampled_from(["ann", "ben", "cy", None])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.tuples(st.uuids(), _owners), min_size=1, max_size=8, unique_by=lambda r: r[0]
    ),
    owners=st.sets(st.sampled_from(["ann", "ben", "cy"]), min_size=1),
)
def test_no_key_ever_sees_another_owners_job(
    adapter: str, records: list[tuple[uuid.UUID, str | None]], owners: set[str]
) -> None:
    store = open_store("memory://")
    for job_id, owner in records:
        store.put(JobRecord(job_id=str(job_id), job_status="queued", owner=owner))
    keys = {f"key-{owner}": Access(owner=owner) for owner in owners}
    client = ADAPTERS[adapter][0](StatusService(store, api_keys=keys))
    for owner in owners:
        key = f"key-{owner}"
        mine = {str(job_id) for job_id, o in records if o == owner}
        listed = ask(client, "POST", LISTING, {}, key).json()["response"]
        assert set(listed) == mine
        paged = ask(client, "GET", PAGES, key=key).json()["response"]["jobs"]
        assert {entry["job_id"] for entry in paged} == mine
        for job_id, _ in records:
            expected = 200 if str(job_id) in mine else 404
            assert status(client, str(job_id), key).status == expected
