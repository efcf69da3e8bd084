"""The HTTP conformance suite: every case on every adapter, the same status and JSON body.

Each case runs once per adapter in ``tests/clients.py``; the ``same_everywhere`` test then asks
every adapter the same questions and demands identical answers (modulo pid and measured times).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, StatusService
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.envelope import ENVELOPE_KEYS
from jobstatus.store import Store
from jobstatus.testing.suite import UPSTREAM_EXAMPLE
from tests.clients import ADAPTERS, Answer, Client

KEY = "test-key-1"
JOB_ID = UPSTREAM_EXAMPLE["job_id"]
OTHER_ID = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
STATUS = "/v1/toolkit/job/status"
LISTING = "/v1/toolkit/jobs/status"

ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]


#: The 200 example of the upstream endpoint's document (see docs/endpoint.rst, "The contract"):
#: the envelope, in the documented key order, around the job file UPSTREAM_EXAMPLE. The values
#: that vary per process and request (pid, the measured times) are the document's.
SPEC_200_EXAMPLE: dict[str, Any] = {
    "endpoint": STATUS,
    "code": 200,
    "id": None,
    "job_id": JOB_ID,
    "response": UPSTREAM_EXAMPLE,
    "message": "success",
    "pid": 123456,
    "queue_id": 140368864456064,
    "run_time": 0.001,
    "queue_time": 0.0,
    "total_time": 0.001,
    "queue_length": 0,
    "build_number": "1.0.0",
}


def test_the_spec_example_is_an_envelope_in_the_documented_order() -> None:
    assert tuple(SPEC_200_EXAMPLE) == ENVELOPE_KEYS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
        yield store


def make_service(store: Store, **options: Any) -> StatusService:
    options.setdefault("api_keys", [KEY, "rotated-key-2"])
    return StatusService(store, build_number="1.0.0", queue_id=140368864456064, **options)


@pytest.fixture(params=ADAPTER_PARAMS)
def adapter(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def client(adapter: str, store: Store) -> Client:
    return ADAPTERS[adapter][0](make_service(store))


def post(
    client: Client,
    path: str,
    body: bytes | str | dict[str, Any] | None,
    key: str | None = KEY,
    **headers: str,
) -> Answer:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if key is not None:
        headers["x-api-key"] = key
    return client("POST", path, body or b"", {k.replace("_", "-"): v for k, v in headers.items()})


def assert_json(answer: Answer, status: int) -> Any:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    return answer.json()


# -- 200 ------------------------------------------------------------------------------------------


def test_the_spec_example_byte_for_byte(client: Client) -> None:
    answer = post(client, STATUS, {"job_id": JOB_ID})
    assert answer.status == 200
    # The spec's example, serialised as we serialise (compact, as Flask's jsonify does), with the
    # values that vary per process (pid, measured times) put back in from the spec.
    expected = json.dumps(SPEC_200_EXAMPLE, separators=(",", ":")) + "\n"
    got = answer.body.decode("ascii")
    outer = list(
        re.finditer(
            r'"pid":\d+,"queue_id":140368864456064,"run_time":[0-9.]+,'
            r'"queue_time":[0-9.]+,"total_time":[0-9.]+',
            got,
        )
    )[-1]
    got = (
        got[: outer.start()] + '"pid":123456,"queue_id":140368864456064,"run_time":0.001,'
        '"queue_time":0.0,"total_time":0.001' + got[outer.end() :]
    )
    assert got == expected


def test_the_envelope_has_the_13_keys_in_order(client: Client) -> None:
    body = assert_json(post(client, STATUS, {"job_id": JOB_ID, "id": {"req": 7}}), 200)
    assert tuple(body) == ENVELOPE_KEYS
    assert body["id"] == {"req": 7}
    assert body["job_id"] == JOB_ID
    assert body["response"] == UPSTREAM_EXAMPLE
    assert body["code"] == 200
    assert body["message"] == "success"
    assert body["run_time"] >= 0
    assert body["total_time"] == body["run_time"]
    assert body["build_number"] == "1.0.0"


def test_any_content_type_is_read_as_json(client: Client) -> None:
    for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
        answer = post(client, STATUS, {"job_id": JOB_ID}, content_type=content_type)
        assert assert_json(answer, 200)["job_id"] == JOB_ID


def test_an_uppercase_uuid_is_a_valid_id(client: Client, store: Store) -> None:
    store.put(JobRecord(job_id=JOB_ID.upper(), job_status="queued"))
    assert assert_json(post(client, STATUS, {"job_id": JOB_ID.upper()}), 200)["response"] == {
        "job_status": "queued",
        "job_id": JOB_ID.upper(),
        "queue_id": None,
        "process_id": None,
        "response": None,
    }


def test_every_configured_key_is_accepted(client: Client) -> None:
    assert post(client, STATUS, {"job_id": JOB_ID}, key="rotated-key-2").status == 200


def test_the_listing_endpoint(client: Client, store: Store) -> None:
    store.put(JobRecord(job_id=OTHER_ID, job_status="running"))
    store.restore([JobRecord(job_id="ancient", job_status="done", updated_at=1_000_000_000)])
    body = assert_json(post(client, LISTING, None), 200)
    assert tuple(body) == ENVELOPE_KEYS
    assert body["endpoint"] == LISTING
    assert body["response"] == {OTHER_ID: "running", JOB_ID: "done"}
    assert list(body["response"]) == [OTHER_ID, JOB_ID]  # newest first
    wide = assert_json(post(client, LISTING, {"since_seconds": 2e9}), 200)
    assert wide["response"] == {OTHER_ID: "running", JOB_ID: "done", "ancient": "done"}
    assert assert_json(post(client, LISTING, {"since_seconds": 0}), 200)["response"] == {}


# -- 400 ------------------------------------------------------------------------------------------

BAD_BODIES = {
    "missing body": (b"", "missing JSON body"),
    "blank body": (b"  \n", "missing JSON body"),
    "not JSON": (b"{job_id: 1}", "body is not valid JSON"),
    "truncated JSON": (b'{"job_id": "', "body is not valid JSON"),
    "NaN": (b'{"job_id": NaN}', "body is not valid JSON"),
    "not an object": (b'["job_id"]', "is not of type 'object'"),
    "a string": (b'"job_id"', "is not of type 'object'"),
    "null": (b"null", "None is not of type 'object'"),
    "no job_id": (b'{"id": 1}', "'job_id' is a required property"),
    "job_id a number": (b'{"job_id": 42}', "42 is not of type 'string' at body['job_id']"),
    "job_id null": (b'{"job_id": null}', "None is not of type 'string'"),
    "job_id not a UUID": (b'{"job_id": "not-a-uuid"}', "job_id must be a UUID"),
    "job_id a path": (b'{"job_id": "../../etc/passwd"}', "job_id must be a UUID"),
    "UUID with a suffix": ((f'{{"job_id": "{JOB_ID}/../x"}}').encode(), "job_id must be a UUID"),
    "UUID with a newline": ((f'{{"job_id": "{JOB_ID}\\n"}}').encode(), "job_id must be a UUID"),
    "not UTF-8": (b'{"job_id": "\xff\xfe"}', "body is not UTF-8"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "body is larger than"),
    "too large": (b'{"job_id": "' + b"x" * 70_000 + b'"}', "body is larger than 65536 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_malformed_body_is_a_400_that_says_what_is_wrong(client: Client, case: str) -> None:
    body, says = BAD_BODIES[case]
    answer = assert_json(post(client, STATUS, body), 400)
    assert list(answer) == ["message"]
    assert answer["message"].startswith("Invalid payload: ")
    assert says in answer["message"]


def test_nesting_within_the_size_limit_is_a_400(client: Client) -> None:
    answer = assert_json(post(client, STATUS, b"[" * 30_000 + b"]" * 30_000), 400)
    assert answer == {"message": "Invalid payload: body is nested too deeply"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"since_seconds": "600"}',
        b'{"since_seconds": -1}',
        b'{"since_seconds": true}',
        b"[]",
        b"nope",
    ],
)
def test_a_malformed_listing_body_is_a_400(client: Client, body: bytes) -> None:
    assert assert_json(post(client, LISTING, body), 400)["message"].startswith("Invalid payload: ")


# -- 401 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong", KEY + " ", KEY.upper(), "tést"])
def test_a_missing_wrong_or_empty_key_is_a_401(client: Client, key: str | None) -> None:
    for path in (STATUS, LISTING):
        assert assert_json(post(client, path, {"job_id": JOB_ID}, key=key), 401) == {
            "message": "Unauthorized"
        }


def test_auth_comes_before_the_body(client: Client) -> None:
    assert post(client, STATUS, b"not json", key="wrong").status == 401


def test_an_empty_key_list_accepts_nobody(adapter: str, store: Store) -> None:
    client = ADAPTERS[adapter][0](make_service(store, api_keys=[]))
    assert post(client, STATUS, {"job_id": JOB_ID}).status == 401


def test_auth_can_be_turned_off(adapter: str, store: Store) -> None:
    client = ADAPTERS[adapter][0](make_service(store, api_keys=None))
    assert post(client, STATUS, {"job_id": JOB_ID}, key=None).status == 200


# -- 404, 405, 500 --------------------------------------------------------------------------------


def test_an_unknown_job_is_the_spec_404(client: Client) -> None:
    assert assert_json(post(client, STATUS, {"job_id": OTHER_ID}), 404) == {
        "error": "Job not found",
        "job_id": OTHER_ID,
    }


def test_other_methods_are_a_json_405(client: Client) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = client(method, STATUS, b"", {"x-api-key": KEY})
        assert assert_json(answer, 405) == {"message": "Method not allowed"}
        assert answer.headers["allow"] == "POST"


def test_a_corrupt_record_is_the_spec_500(client: Client, store: Store) -> None:
    assert isinstance(store, FileSystemStore)
    (store.jobs_dir / f"{OTHER_ID}.json").write_text('{"job_status": "run')
    body = assert_json(post(client, STATUS, {"job_id": OTHER_ID}), 500)
    assert list(body) == ["error", "code"]
    assert body["code"] == 500
    assert body["error"].startswith("Failed to retrieve job status: ")
    assert f"{OTHER_ID}.json is not a job record" in body["error"]
    assert "Traceback" not in body["error"]


def test_the_wsgi_app_answers_other_paths_with_a_json_404(store: Store) -> None:
    """A blueprint or router leaves other paths to its host app; the bare WSGI app owns them."""
    client = ADAPTERS["wsgi"][0](make_service(store))
    answer = client("POST", "/v1/toolkit/nothing-here", b"{}", {"x-api-key": KEY})
    assert assert_json(answer, 404) == {"message": "Not found: /v1/toolkit/nothing-here"}


# -- reading writes nothing -----------------------------------------------------------------------


def test_answering_writes_nothing(client: Client, store: Store, tmp_path: Path) -> None:
    def snapshot() -> dict[str, tuple[int, bytes]]:
        return {
            str(p): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(tmp_path.rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    records_before = [(r.to_dict(), r.updated_at) for r in store.list()]
    for body in ({"job_id": JOB_ID}, {"job_id": OTHER_ID}, b"bad"):
        post(client, STATUS, body)
    post(client, LISTING, None)
    assert snapshot() == before
    assert [(r.to_dict(), r.updated_at) for r in store.list()] == records_before


# -- upstream-wire mode ---------------------------------------------------------------------------


def test_upstream_wire_mode(adapter: str, store: Store) -> None:
    client = ADAPTERS[adapter][0](make_service(store, upstream_wire=True))
    ok = assert_json(post(client, STATUS, {"job_id": JOB_ID, "id": "r1"}), 200)
    again = assert_json(post(client, STATUS, {"job_id": JOB_ID}), 200)
    assert ok["response"] == UPSTREAM_EXAMPLE
    assert ok["id"] == "r1"
    assert ok["job_id"] != JOB_ID
    assert ok["job_id"] != again["job_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", ok["job_id"])
    missing = assert_json(post(client, STATUS, {"job_id": OTHER_ID, "id": "r2"}), 404)
    assert tuple(missing) == ENVELOPE_KEYS
    assert missing["code"] == 404
    assert missing["id"] == "r2"
    assert missing["response"] is None
    assert missing["message"] == {"error": "Job not found", "job_id": OTHER_ID}
    assert missing["job_id"] not in (OTHER_ID, ok["job_id"])
    # 400 and 401 keep their shapes
    assert assert_json(post(client, STATUS, b"{}"), 400)["message"].startswith("Invalid payload")
    assert assert_json(post(client, STATUS, b"{}", key="bad"), 401) == {"message": "Unauthorized"}


# -- the same answers from every adapter ----------------------------------------------------------

QUESTIONS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", STATUS, json.dumps({"job_id": JOB_ID, "id": 3}).encode(), {"x-api-key": KEY}),
    ("POST", STATUS, json.dumps({"job_id": OTHER_ID}).encode(), {"x-api-key": KEY}),
    ("POST", STATUS, b"{", {"x-api-key": KEY}),
    ("POST", STATUS, b"{}", {}),
    ("POST", LISTING, b"", {"x-api-key": KEY}),
    ("GET", STATUS, b"", {"x-api-key": KEY}),
]


def _comparable(answer: Answer) -> tuple[int, Any]:
    body = answer.json()
    if isinstance(body, dict) and "pid" in body:
        for varying in ("pid", "run_time", "total_time"):
            body[varying] = None
    return answer.status, body


def test_every_adapter_gives_the_same_answers(store: Store) -> None:
    answers: dict[str, list[tuple[int, Any]]] = {}
    for name, (factory, _marks) in ADAPTERS.items():
        try:
            client = factory(make_service(store))
        except ImportError:
            continue  # tests_core: that adapter's framework is not installed
        answers[name] = [_comparable(client(*question)) for question in QUESTIONS]
    reference = answers.pop("wsgi")
    assert [status for status, _ in reference] == [200, 404, 400, 401, 200, 405]
    for name, got in answers.items():
        assert got == reference, name
