"""What is particular to each adapter: mounting under a prefix, reading no more of a body than
needed, FastAPI's event loop and OpenAPI document, a missing framework, and the example apps
driven end to end. The shared HTTP contract is tests/test_http.py, run on every adapter."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobstatus import ConfigurationError, JobRecord, StatusService
from jobstatus.backends.memory import MemoryStore
from jobstatus.schema import JOB_STATUS_SCHEMA, JOBS_STATUS_SCHEMA
from tests.clients import post_endless_body

pytestmark = pytest.mark.extras

KEY = "test-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
OTHER_ID = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
STATUS = "/v1/toolkit/job/status"
LISTING = "/v1/toolkit/jobs/status"
ROOT = Path(__file__).resolve().parents[1]
ALL_ANSWERS = {"200", "400", "401", "404", "429", "500"}


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

    app = fastapi_app(service_for(store))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {STATUS, LISTING}
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


# -- the example apps, end to end ---------------------------------------------------------------


class RecordingStore(MemoryStore):
    """A memory store that remembers the states written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[str] = []

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        self.states.append(record.job_status)
        return super().put(record, force=force)


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


UPSTREAM_202_KEYS = {
    "code",
    "id",
    "job_id",
    "message",
    "pid",
    "queue_id",
    "max_queue_length",
    "queue_length",
    "build_number",
}


def drive(post: Callable[[str, dict[str, Any]], tuple[int, Any]]) -> tuple[str, dict[str, Any]]:
    """Submit a word count, poll until done, return the job id and the final status answer."""
    status, accepted = post("/v1/demo/wordcount", {"text": "to be or not to be", "id": "req-1"})
    assert status == 202, accepted
    assert set(accepted) == UPSTREAM_202_KEYS
    assert (accepted["code"], accepted["message"]) == (202, "processing")
    job_id = accepted["job_id"]
    deadline = time.monotonic() + 20  # a bound on the wait, not a speed assertion
    while True:
        status, answer = post(STATUS, {"job_id": job_id})
        assert status == 200, answer
        if answer["response"]["job_status"] in ("done", "failed") or time.monotonic() > deadline:
            return job_id, answer
        time.sleep(0.02)


def check_done(job_id: str, answer: dict[str, Any]) -> None:
    assert (answer["endpoint"], answer["job_id"]) == (STATUS, job_id)
    record = answer["response"]
    assert record["job_status"] == "done"
    assert (record["job_id"], record["process_id"]) == (job_id, answer["pid"])
    work = record["response"]  # the processing endpoint's envelope, as upstream writes it
    assert (work["endpoint"], work["code"], work["message"]) == (
        "/v1/demo/wordcount",
        200,
        "success",
    )
    assert (work["job_id"], work["id"]) == (job_id, "req-1")
    assert work["response"] == {"words": 6}
    assert work["total_time"] >= work["run_time"] >= 0


def test_flask_example_end_to_end() -> None:
    pytest.importorskip("flask")
    store = RecordingStore()
    client = load_example("flask_app").create_app(store, [KEY], seconds=0.05).test_client()

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        answer = client.post(path, json=body, headers={"x-api-key": KEY})
        return answer.status_code, answer.get_json()

    check_done(*drive(post))
    assert store.states == ["queued", "running", "done"]
    assert client.post("/v1/demo/wordcount", json={"text": "x"}).status_code == 401
    assert (
        client.post("/v1/demo/wordcount", json={"text": 1}, headers={"x-api-key": KEY}).status_code
        == 400
    )


def test_flask_example_answers_429_when_its_queue_is_full() -> None:
    pytest.importorskip("flask")
    app = load_example("flask_app").create_app(
        RecordingStore(), [KEY], seconds=2, max_queue_length=1
    )
    client = app.test_client()
    answers = [
        client.post("/v1/demo/wordcount", json={"text": "a b", "id": n}, headers={"x-api-key": KEY})
        for n in range(3)
    ]
    assert answers[0].status_code == 202
    # While the first job waits or runs (two seconds), one more fits in the queue: one of the
    # other two is refused, in the upstream queue-overflow shape, naming its own request.
    full = [(n, a.get_json()) for n, a in enumerate(answers) if a.status_code == 429]
    assert len(full) >= 1, [a.status_code for a in answers]
    n, body = full[0]
    assert set(body) == UPSTREAM_202_KEYS - {"max_queue_length"}
    assert (body["code"], body["id"], body["message"]) == (429, n, "MAX_QUEUE_LENGTH (1) reached")


def test_fastapi_example_end_to_end() -> None:
    pytest.importorskip("fastapi")
    store = RecordingStore()
    app = load_example("fastapi_app").create_app(store, [KEY], seconds=0.05)

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        answer = asgi_request(app, "POST", path, json=body, headers={"x-api-key": KEY})
        return answer.status_code, answer.json()

    check_done(*drive(post))
    assert store.states == ["queued", "running", "done"]
    assert asgi_request(app, "POST", "/v1/demo/wordcount", json={"text": "x"}).status_code == 401
    # Both the demo's endpoint and the status endpoints share the one security scheme.
    paths = app.openapi()["paths"]
    assert paths["/v1/demo/wordcount"]["post"]["security"] == paths[STATUS]["post"]["security"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "examples/flask_app.py"],
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", "{port}"],
    ],
    ids=["flask", "fastapi"],
)
def test_each_example_runs_with_the_command_in_its_docstring(command: list[str]) -> None:
    port = free_port()
    env = {**os.environ, "API_KEY": KEY, "PORT": str(port), "JOBSTATUS_STORE": "memory://"}
    process = subprocess.Popen(
        [part.format(port=port) for part in command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"x-api-key": KEY, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return int(error.code), json.loads(error.read())

    try:
        deadline = time.monotonic() + 20
        while True:  # wait for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline, "the example never started listening"
                time.sleep(0.05)
        check_done(*drive(post))
    finally:
        process.terminate()
        process.communicate(timeout=10)
