"""The example host apps (examples/): each driven end to end, both giving the same answers, and
each run with the commands its docstring gives, on the port it states."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobstatus import JobRecord
from jobstatus.backends.memory import MemoryStore

pytestmark = pytest.mark.extras

KEY = "test-key"
STATUS = "/v1/toolkit/job/status"
JOBS = "/v1/toolkit/jobs"
SUBMIT = "/v1/demo/wordcount"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FRAMEWORKS = {"flask_app": "flask", "fastapi_app": "fastapi"}
#: The upstream 202 body's keys in the upstream order, then where to poll.
ACCEPTED_KEYS = [
    "code",
    "id",
    "job_id",
    "message",
    "pid",
    "queue_id",
    "max_queue_length",
    "queue_length",
    "build_number",
    "poll",
]

# (status, lower-case headers, raw body)
Answer = tuple[int, dict[str, str], bytes]
Post = Callable[..., Answer]


class RecordingStore(MemoryStore):
    """A memory store that remembers the states written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[str] = []

    def put(self, record: JobRecord, **conditions: Any) -> JobRecord:
        self.states.append(record.job_status)
        return super().put(record, **conditions)


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``python examples/NAME.py`` does: the examples' folder is on sys.path."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def load_example(name: str) -> ModuleType:
    pytest.importorskip(FRAMEWORKS[name])
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


def client(name: str, store: MemoryStore, **options: Any) -> Post:
    """``post(path, body: bytes, key=KEY, method="POST", **headers)`` against the example app,
    in-process; the body is sent as given, with no Content-Type."""
    app = load_example(name).create_app(store, [KEY], **options)
    if name == "flask_app":
        test_client = app.test_client()

        def post_flask(
            path: str, body: bytes, key: str | None = KEY, method: str = "POST", **headers: str
        ) -> Answer:
            headers = {name.replace("_", "-"): value for name, value in headers.items()}
            if key is not None:
                headers["x-api-key"] = key
            answer = test_client.open(path, method=method, data=body, headers=headers)
            return answer.status_code, {k.lower(): v for k, v in answer.headers}, answer.data

        return post_flask
    import httpx

    def post_asgi(
        path: str, body: bytes, key: str | None = KEY, method: str = "POST", **headers: str
    ) -> Answer:
        headers = {name.replace("_", "-"): value for name, value in headers.items()}
        if key is not None:
            headers["x-api-key"] = key

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, path, content=body, headers=headers)

        answer = asyncio.run(send())
        return answer.status_code, dict(answer.headers), answer.content

    return post_asgi


def poll_until_final(post: Post, location: str) -> dict[str, Any]:
    """Long-poll the job's route as the docs' "Polling" page says: its ETag back in
    ``If-None-Match``, with ``?wait=``; each answer comes when the job changes."""
    status, headers, body = post(location, b"", method="GET")
    for _ in range(10):  # queued → running → done is two changes; ten is a bound
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        if answer["response"]["job_status"] in ("done", "failed"):
            return answer
        etag = headers["etag"]
        status, headers, body = post(f"{location}?wait=20", b"", method="GET", if_none_match=etag)
    raise AssertionError(f"not final after ten changes: {body!r}")


def check_done(job_id: str, answer: dict[str, Any]) -> None:
    assert (answer["endpoint"], answer["job_id"]) == (f"{JOBS}/{job_id}", job_id)
    record = answer["response"]
    assert record["job_status"] == "done"
    assert (record["job_id"], record["process_id"]) == (job_id, answer["pid"])
    work = record["response"]  # the processing endpoint's envelope, as upstream writes it
    assert (work["endpoint"], work["code"], work["message"]) == (SUBMIT, 200, "success")
    assert (work["job_id"], work["id"]) == (job_id, "req-1")
    assert work["response"] == {"words": 6}
    assert work["total_time"] >= work["run_time"] >= 0


@pytest.fixture(params=list(FRAMEWORKS))
def name(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def test_a_job_is_recorded_and_polled_where_the_202_says(name: str) -> None:
    store = RecordingStore()
    post = client(name, store, seconds=0.05)
    body = b'{"text": "to be or not to be", "id": "req-1"}'
    status, headers, raw = post(SUBMIT, body)
    assert status == 202, raw
    accepted = json.loads(raw)
    assert list(accepted) == ACCEPTED_KEYS  # on the wire, in this order, in both apps
    assert (accepted["code"], accepted["message"], accepted["id"]) == (202, "processing", "req-1")
    job_id = accepted["job_id"]
    assert headers["location"] == f"{JOBS}/{job_id}"
    assert accepted["poll"] == {"method": "GET", "path": f"{JOBS}/{job_id}"}
    check_done(job_id, poll_until_final(post, headers["location"]))
    assert store.states == ["queued", "running", "done"]


# Requests both apps must refuse alike: (body, key) → (status, body).
REFUSED = {
    "empty object": (b"{}", KEY, 400, "Invalid payload: 'text' is a required property"),
    "text not a string": (b'{"text": 1}', KEY, 400, "Invalid payload: 1 is not of type 'string'"),
    "not an object": (b"[]", KEY, 400, "Invalid payload: [] is not of type 'object'"),
    "no body": (b"", KEY, 400, "Invalid payload: missing JSON body"),
    "no key": (b'{"text": "a"}', None, 401, "Unauthorized"),
    "wrong key": (b'{"text": "a"}', "nope", 401, "Unauthorized"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_both_apps_refuse_a_bad_submission_with_the_same_answer(case: str) -> None:
    body, key, status, message = REFUSED[case]
    answers = {name: client(name, MemoryStore())(SUBMIT, body, key) for name in FRAMEWORKS}
    for got_status, headers, raw in answers.values():
        assert got_status == status, raw
        assert headers["content-type"] == "application/json"
        assert json.loads(raw).get("message", "").startswith(message), raw
    assert len({raw for _, _, raw in answers.values()}) == 1, answers  # byte for byte


def test_a_full_queue_is_the_upstream_429(name: str) -> None:
    post = client(name, RecordingStore(), seconds=2, max_queue_length=1)
    answers = [post(SUBMIT, json.dumps({"text": "a b", "id": n}).encode()) for n in range(3)]
    assert answers[0][0] == 202
    # While the first job waits or runs (two seconds), one more fits in the queue: one of the
    # other two is refused, in the upstream queue-overflow shape, naming its own request.
    full = [(n, json.loads(raw)) for n, (status, _, raw) in enumerate(answers) if status == 429]
    assert len(full) >= 1, [status for status, _, _ in answers]
    n, body = full[0]
    assert list(body) == [k for k in ACCEPTED_KEYS if k not in ("max_queue_length", "poll")]
    assert (body["code"], body["id"], body["message"]) == (429, n, "MAX_QUEUE_LENGTH (1) reached")


def test_the_fastapi_example_documents_its_route_beside_the_status_routes() -> None:
    app = load_example("fastapi_app").create_app(MemoryStore(), [KEY])
    paths = app.openapi()["paths"]
    submit = paths[SUBMIT]["post"]
    assert submit["security"] == paths[STATUS]["post"]["security"]  # one security scheme
    assert submit["operationId"] == "submitWordCount"
    schema = submit["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["text"]
    assert "422" not in submit["responses"]


# -- the docstrings: install line, port, and the commands, run as written -----------------------

DOCUMENTED_PORTS = {"flask_app": 8081, "fastapi_app": 8082}


def docstring(name: str) -> str:
    text = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text()), clean=False)
    assert text, name
    return text


def run_commands(name: str) -> list[str]:
    """The commands that start the example: indented literal lines and ``inline`` ones."""
    text = docstring(name)
    indented = re.findall(r"^ {4}(API_KEY=\S+ (?:python|uvicorn) .*)$", text, re.M)
    inline = re.findall(r"``(API_KEY=\S+ (?:python|uvicorn) [^`]*)``", text)
    return indented + [" ".join(command.split()) for command in inline]


@pytest.mark.parametrize("example", list(FRAMEWORKS))
def test_each_docstring_names_its_install_line_and_its_own_port(example: str) -> None:
    text = docstring(example)
    assert f'pip install -e ".[{FRAMEWORKS[example]}]"' in text
    port = DOCUMENTED_PORTS[example]
    assert f"127.0.0.1:{port}" in text
    assert {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)} == {port}
    source = (EXAMPLES / f"{example}.py").read_text()
    assert f"PORT = {port}\n" in source  # the default it listens on
    assert run_commands(example)
    # Distinct from `jobstatus serve` (8080) and from each other: all three can run at once.
    from jobstatus._serve import serve

    default = serve.__kwdefaults__["port"]
    assert len({default, *DOCUMENTED_PORTS.values()}) == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: A bound that only a hung example reaches: a loaded CI machine can take many seconds to
#: import a framework and start a server, or to run a job.
STARTUP_CAP = 90.0


@contextmanager
def started(command: str, documented_port: int) -> Iterator[int]:
    """Start a documented command from the repository root on a free port (in place of the
    documented one); yield the port once the server listens."""
    port = free_port()
    words = shlex.split(command.replace(str(documented_port), str(port)))
    env = {**os.environ, "PORT": str(port), "JOBSTATUS_STORE": "memory://", "PYTHONPATH": str(ROOT)}
    while "=" in words[0]:
        variable, _, value = words.pop(0).partition("=")
        env[variable] = value
    program = {"python": [sys.executable], "uvicorn": [sys.executable, "-m", "uvicorn"]}
    argv = program[words[0]] + words[1:]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + STARTUP_CAP
        while True:  # wait for the server to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline, "the example never started listening"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=10)


def curl(command: str, documented_port: int, port: int, **replace: str) -> str:
    for old, new in {str(documented_port): str(port), **replace}.items():
        command = command.replace(old, new)
    done = subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "index"),
    [("flask_app", 0), ("fastapi_app", 0), ("fastapi_app", 1)],
    ids=["flask-python", "fastapi-python", "fastapi-uvicorn"],
)
def test_each_example_runs_and_answers_its_docstring_curls(example: str, index: int) -> None:
    pytest.importorskip(FRAMEWORKS[example])
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    documented = DOCUMENTED_PORTS[example]
    text = docstring(example)
    submit, poll = (
        " ".join(c.replace("\\\n", " ").split())
        for c in re.findall(r"^ {4}(curl (?:.*\\\n)*.*)$", text, re.M)
    )
    assert "-i" in submit.split()  # shows the Location header
    command = run_commands(example)[index]
    with started(command, documented) as port:
        head, _, body = curl(submit, documented, port).replace("\r\n", "\n").partition("\n\n")
        assert head.startswith("HTTP/1.1 202"), head
        job_id = json.loads(body)["job_id"]
        assert re.search(rf"^location: {JOBS}/{job_id}$", head, re.M | re.I), head
        deadline = time.monotonic() + STARTUP_CAP
        while True:
            answer = json.loads(curl(poll, documented, port, **{"<the job_id above>": job_id}))
            if answer["response"]["job_status"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer["response"]["response"]["response"] == {"words": 6}
