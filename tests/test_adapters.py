"""What is particular to each adapter: mounting under a prefix, reading no more of a body than
needed, FastAPI's event loop and OpenAPI document, and a missing framework. The shared HTTP
contract is tests/test_http.py, run on every adapter; the example apps are test_examples.py."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jobstatus import ConfigurationError, JobRecord, StatusService
from jobstatus._schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA
from jobstatus.backends.memory import MemoryStore
from tests.clients import post_endless_body

pytestmark = pytest.mark.extras

KEY = "test-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
OTHER_ID = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
STATUS = "/v1/toolkit/job/status"
LISTING = "/v1/toolkit/jobs/status"
JOB = "/v1/toolkit/jobs/{job_id}"
JOBS = "/v1/toolkit/jobs"
ALL_ANSWERS = {"200", "400", "401", "403", "404", "500"}  # never 429: a read is never queued


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    with MemoryStore() as store:
        store.put(JobRecord(job_id=JOB_ID, job_status="done", response={"words": 3}))
        yield store


def service_for(store: MemoryStore, **options: Any) -> StatusService:
    return StatusService(store, api_keys=[KEY], build_number="1.0.0", **options)


def asgi_request(app: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request to an ASGI app, in-process (httpx's ASGI transport)."""
    import httpx

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def fastapi_app(service: StatusService, prefix: str = "") -> Any:
    fastapi = pytest.importorskip("fastapi")
    from jobstatus.adapters.fastapi import make_router

    app = fastapi.FastAPI()
    app.include_router(make_router(service), prefix=prefix)
    return app


def flask_app(*blueprints: tuple[Any, str]) -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    for blueprint, prefix in blueprints:
        app.register_blueprint(blueprint, url_prefix=prefix)
    return app


# -- mounting ---------------------------------------------------------------------------------


def test_flask_blueprint_under_a_url_prefix(store: MemoryStore) -> None:
    pytest.importorskip("flask")
    from jobstatus.adapters.flask import make_blueprint

    client = flask_app((make_blueprint(service_for(store)), "/api")).test_client()
    answer = client.post("/api" + STATUS, json={"job_id": JOB_ID}, headers={"x-api-key": KEY})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["endpoint"] == STATUS  # the service's endpoint, wherever it is mounted
    assert body["response"]["response"] == {"words": 3}
    assert (
        client.post(STATUS, json={"job_id": JOB_ID}, headers={"x-api-key": KEY}).status_code == 404
    )
    refused = client.get("/api" + STATUS)
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "POST"
    assert refused.get_json() == {"message": "Method not allowed"}


def test_two_flask_blueprints_each_with_its_own_name_and_store(store: MemoryStore) -> None:
    pytest.importorskip("flask")
    from jobstatus.adapters.flask import make_blueprint

    other = MemoryStore()
    other.put(JobRecord(job_id=OTHER_ID, job_status="running"))
    app = flask_app(
        (make_blueprint(service_for(store)), "/a"),
        (make_blueprint(service_for(other), name="other"), "/b"),
    )
    client = app.test_client()

    def status(prefix: str, job_id: str) -> int:
        return int(
            client.post(
                prefix + STATUS, json={"job_id": job_id}, headers={"x-api-key": KEY}
            ).status_code
        )

    assert [status("/a", JOB_ID), status("/a", OTHER_ID)] == [200, 404]
    assert [status("/b", JOB_ID), status("/b", OTHER_ID)] == [404, 200]


def test_fastapi_router_under_a_prefix(store: MemoryStore) -> None:
    app = fastapi_app(service_for(store), prefix="/api")
    answer = asgi_request(
        app, "POST", "/api" + STATUS, json={"job_id": JOB_ID}, headers={"x-api-key": KEY}
    )
    assert answer.status_code == 200
    assert answer.json()["endpoint"] == STATUS
    assert asgi_request(app, "POST", STATUS, json={"job_id": JOB_ID}).status_code == 404
    assert "/api" + STATUS in app.openapi()["paths"]


# -- an oversized body is never read whole ---------------------------------------------------


class EndlessBody:
    """A request body that never ends, counting what the adapter reads of it."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "the adapter asked for the whole body"
        self.bytes_read += size
        return b" " * size


@pytest.mark.parametrize("length", [10**9, None], ids=["content-length", "chunked"])
def test_flask_reads_at_most_max_body_bytes_plus_one(
    store: MemoryStore, length: int | None
) -> None:
    pytest.importorskip("flask")
    from werkzeug.test import EnvironBuilder

    from jobstatus.adapters.flask import make_blueprint

    service = service_for(store, max_body_bytes=1000)
    app = flask_app((make_blueprint(service), ""))
    environ = EnvironBuilder(STATUS, method="POST", headers={"x-api-key": KEY}).get_environ()
    body = EndlessBody()
    environ["wsgi.input"] = body
    if length is None:  # a chunked request: the server terminates the stream
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(length)
    seen: list[str] = []
    answer = b"".join(app(environ, lambda status, headers: seen.append(status)))
    assert seen == ["400 BAD REQUEST"]
    assert json.loads(answer) == {"message": "Invalid payload: body is larger than 1000 bytes"}
    assert body.bytes_read == 1001


def test_fastapi_reads_no_more_chunks_than_needed(store: MemoryStore) -> None:
    app = fastapi_app(service_for(store, max_body_bytes=1000))
    answer, chunks_read = post_endless_body(app, STATUS, KEY, b" " * 600)
    assert answer.status == 400
    assert answer.json() == {"message": "Invalid payload: body is larger than 1000 bytes"}
    assert chunks_read == 2  # 1200 bytes: enough to know the body is more than 1000


# -- FastAPI: a slow store does not hold up other requests -----------------------------------


class SlowStore(MemoryStore):
    """A store whose get of one job blocks until released, as a slow database would."""

    slow_id = OTHER_ID

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def get(self, job_id: str) -> JobRecord:
        if job_id == self.slow_id:
            self.entered.set()
            self.release.wait(timeout=5)
        return super().get(job_id)


def test_fastapi_slow_store_does_not_block_the_event_loop() -> None:
    import httpx

    store = SlowStore()
    for job_id in (JOB_ID, OTHER_ID):
        store.put(JobRecord(job_id=job_id, job_status="done"))
    app = fastapi_app(service_for(store))
    headers = {"x-api-key": KEY}

    async def scenario() -> tuple[int, int, bool]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            slow = asyncio.create_task(
                client.post(STATUS, json={"job_id": OTHER_ID}, headers=headers)
            )
            assert await asyncio.to_thread(store.entered.wait, 5), "the slow request never ran"
            fast = await client.post(STATUS, json={"job_id": JOB_ID}, headers=headers)
            slow_was_in_flight = not slow.done()
            store.release.set()
            return fast.status_code, (await slow).status_code, slow_was_in_flight

    fast_status, slow_status, slow_was_in_flight = asyncio.run(scenario())
    assert (fast_status, slow_status) == (200, 200)
    assert slow_was_in_flight  # the fast answer came while the slow store was still busy


# -- FastAPI: the OpenAPI document ------------------------------------------------------------


@pytest.mark.parametrize("upstream_wire", [False, True], ids=["documented", "upstream-wire"])
def test_openapi_document_is_valid_and_complete(store: MemoryStore, upstream_wire: bool) -> None:
    pytest.importorskip("openapi_spec_validator")
    from openapi_spec_validator import validate

    document = fastapi_app(service_for(store, upstream_wire=upstream_wire)).openapi()
    validate(document)
    scheme = {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert list(document["components"]["securitySchemes"].values()) == [scheme]
    name = next(iter(document["components"]["securitySchemes"]))
    for path, answers in ((STATUS, ALL_ANSWERS), (LISTING, ALL_ANSWERS - {"404"})):
        operation = document["paths"][path]["post"]
        assert list(document["paths"][path]) == ["post"]  # the 405 route is not documented
        assert set(operation["responses"]) == answers  # no 422: the service answers 400
        for answer in operation["responses"].values():
            media = answer["content"]["application/json"]
            assert media["example"]
            # (FastAPI drops null values from examples, so an example may show fewer keys)
            assert set(media["example"]) <= set(media["schema"]["required"])
        assert operation["security"] == [{name: []}]
        assert "parameters" not in operation  # the key is a security scheme, not a parameter
    for path, answers in ((JOB, ALL_ANSWERS | {"304"}), (JOBS, ALL_ANSWERS - {"404"})):
        operation = document["paths"][path]["get"]
        assert list(document["paths"][path]) == ["get"]
        assert set(operation["responses"]) == answers
        assert operation["security"] == [{name: []}]
        assert "requestBody" not in operation
    job = document["paths"][JOB]["get"]
    where = {(p["name"], p["in"]) for p in job["parameters"]}
    assert where == {("job_id", "path"), ("wait", "query"), ("If-None-Match", "header")}
    assert "content" not in job["responses"]["304"]
    assert set(job["responses"]["304"]["headers"]) == {"ETag", "Cache-Control", "Retry-After"}
    assert job["responses"]["200"]["headers"]["ETag"]["required"] is True
    page = document["paths"][JOBS]["get"]
    assert {p["name"] for p in page["parameters"]} == {"status", "since_seconds", "limit", "cursor"}
    body = document["paths"][STATUS]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == JOB_STATUS_SCHEMA["required"]
    assert schema["properties"]["job_id"]["pattern"].startswith("^(?:[0-9a-fA-F]{8}-")
    listing = document["paths"][LISTING]["post"]["requestBody"]
    assert listing["required"] is False
    assert listing["content"]["application/json"]["schema"] == JOBS_STATUS_SCHEMA
    not_found = document["paths"][STATUS]["post"]["responses"]["404"]
    example = not_found["content"]["application/json"]["example"]
    if upstream_wire:
        assert example["message"] == {"error": "Job not found", "job_id": JOB_ID}
    else:
        assert example == {"error": "Job not found", "job_id": JOB_ID}


def test_openapi_operations_are_named_for_client_generators(store: MemoryStore) -> None:
    """Explicit operation ids (not FastAPI's ``endpoint_v1_…_post``), one tag, a summary and a
    description each: what a client generator turns into method names and docs."""
    app = fastapi_app(service_for(store), prefix="/api")
    operations = {
        path: operation
        for path, item in app.openapi()["paths"].items()
        for operation in item.values()
    }
    assert {path: op["operationId"] for path, op in operations.items()} == {
        "/api" + STATUS: "getJobStatus",
        "/api" + LISTING: "listJobStatuses",
        "/api" + JOB: "getJob",
        "/api" + JOBS: "listJobs",
    }
    for operation in operations.values():
        assert operation["tags"] == ["job status"]
        assert operation["summary"]
        assert len(operation["description"]) > len(operation["summary"])
    assert "job_id" in operations["/api" + STATUS]["description"]
    assert "since_seconds" in operations["/api" + LISTING]["description"]
    assert "If-None-Match" in operations["/api" + JOB]["description"]
    assert "next_cursor" in operations["/api" + JOBS]["description"]
    # Two routers in one app (two stores) get the same names: the host prefixes or renames
    # them itself; one router never documents a name twice.
    assert len({op["operationId"] for op in operations.values()}) == len(operations)


def test_openapi_documents_only_answers_the_service_gives(store: MemoryStore) -> None:
    """Every documented example is what the route answers for that case; 429 is not one."""
    app = fastapi_app(service_for(store))
    responses = app.openapi()["paths"][STATUS]["post"]["responses"]
    assert "429" not in responses
    missing = asgi_request(app, "POST", STATUS, json={}, headers={"x-api-key": KEY})
    assert missing.json() == responses["400"]["content"]["application/json"]["example"]
    no_key = asgi_request(app, "POST", STATUS, json={"job_id": JOB_ID})
    assert no_key.json() == responses["401"]["content"]["application/json"]["example"]


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    store: MemoryStore,
) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    app = fastapi_app(service_for(store, max_wait=0.05))  # a matching * waits at most that
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {STATUS, LISTING, JOB, JOBS}
    statuses: set[int] = set()
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @given(case=cases, with_key=st.booleans())
        @settings(
            max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any, with_key: bool) -> None:
            headers = {"x-api-key": KEY} if with_key else {}
            statuses.add(case.call_and_validate(headers=headers, checks=checks).status_code)

        run()
    assert {200, 400, 401} <= statuses


# -- a missing framework names the extra to install --------------------------------------------


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_a_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, framework: str
) -> None:
    monkeypatch.setitem(sys.modules, framework, None)  # makes `import framework` fail
    monkeypatch.delitem(sys.modules, f"jobstatus.adapters.{framework}", raising=False)
    with pytest.raises(ConfigurationError, match=rf'pip install "jobstatus\[{framework}\]"'):
        importlib.import_module(f"jobstatus.adapters.{framework}")
