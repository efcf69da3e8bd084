"""Bad input on the HTTP layer: a hypothesis fuzz of every adapter, and schemathesis with all
of its checks against the FastAPI app's OpenAPI document.

The fuzz runs :data:`FUZZ_CASES` cases per adapter on a filesystem store with a service whose id
pattern accepts anything, next to canary files that hold valid job documents: whatever the
request -- a POST body, a GET path, its ``wait``, ``cursor``, ``status``, ``limit`` and
``since_seconds``, an ``If-None-Match`` -- the answer is never a 5xx, always JSON (a 304 has no
body), never holds a canary, and the service opens no file outside the store's ``jobs/`` folder
(seen through an audit hook, not inferred).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobstatus import JobRecord, StatusService
from jobstatus._schema import DEFAULT_MAX_BODY_BYTES, MAX_NESTING_DEPTH
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.service import JOB_STATUS_PATH, JOBS_PATH, JOBS_STATUS_PATH
from tests.clients import ADAPTERS, Answer, Client

#: Cases per adapter: at least 10,000 in CI; JOBSTATUS_FUZZ_CASES sets another number locally.
FUZZ_CASES = int(os.environ.get("JOBSTATUS_FUZZ_CASES", "10000"))

KEYS = ["fuzz-key-new", "fuzz-key-old"]
CANARY = "CANARY-3f9a1c7e55d04b8e"
STORED_IDS = ["e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7", "plain-id", "ünïcödé ✓", ".dotted", " "]
RUNNING_ID = "still-running"  # the one job a wait can be held on
ROUTES = [JOB_STATUS_PATH, JOBS_STATUS_PATH, JOBS_PATH]
ANY_ID = r"(?s).*"
#: The service's max_wait in the fuzz: a held request costs at most this.
FUZZ_MAX_WAIT = 0.002


def report(capsys: pytest.CaptureFixture[str], name: str, **figures: Any) -> None:
    """Print one line of figures on the terminal, captured or not."""
    with capsys.disabled():
        print(f"\nFIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# -- a sandbox: the store, and canaries around it -----------------------------------------------


@dataclass
class Sandbox:
    root: Path  # holds the canaries and the store's folder
    store_root: Path
    canaries: list[Path] = field(default_factory=list)


def make_sandbox(base: Path) -> Sandbox:
    """``base/store/jobs/<id>.json`` for each stored id, and canary job documents that an id
    escaping ``jobs/`` could reach: beside the store, in it, in the lock folder, above it."""
    sandbox = Sandbox(root=base, store_root=base / "store")
    store = FileSystemStore(sandbox.store_root)
    for job_id in STORED_IDS:
        store.put(JobRecord(job_id=job_id, job_status="done", response={"ok": job_id}))
    store.put(JobRecord(job_id=RUNNING_ID, job_status="running", response={"ok": RUNNING_ID}))
    for where in ("canary", "store/canary", "store/.jobstatus-locks/canary", "store/jobs/x/canary"):
        path = base / f"{where}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"job_status": "done", "job_id": CANARY, "secret": CANARY}))
        sandbox.canaries.append(path)
    return sandbox


# -- seeing every file the service opens ------------------------------------------------------

_watch = threading.local()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        opened = getattr(_watch, "opened", None)
        if opened is not None and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))


_hook_installed = False


def watch_opens() -> None:
    """Install the audit hook once per process (audit hooks cannot be removed; this one costs
    an attribute lookup per audit event outside a watched call)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True


def call_watched(call: Any, *args: Any) -> tuple[Answer, list[str]]:
    """Call a client; return its answer and every path opened in this thread meanwhile."""
    _watch.opened = []
    try:
        answer: Answer = call(*args)
        return answer, _watch.opened
    finally:
        _watch.opened = None


def outside_the_store(opened: list[str], sandbox: Sandbox) -> list[str]:
    """Opened paths inside the sandbox but outside ``store/jobs/``, and paths elsewhere that are
    not part of Python itself (a module imported on first use)."""
    jobs = os.path.join(os.path.realpath(sandbox.store_root / "jobs"), "")
    root = os.path.join(os.path.realpath(sandbox.root), "")
    python_dirs = tuple(
        os.path.join(os.path.realpath(p), "") for p in {*sys.path, sys.prefix, sys.base_prefix} if p
    )
    bad = []
    for path in opened:
        real = os.path.realpath(path)
        if real.startswith(root):
            if not real.startswith(jobs):
                bad.append(path)
        elif not real.startswith(python_dirs):
            bad.append(path)
    return bad


# -- what to send --------------------------------------------------------------------------------

# Ids that try to leave jobs/: traversal, separators, absolute paths, encodings of them.
ESCAPES = [
    "..", ".", "../canary", "../../canary", "..\\canary", "../.jobstatus-locks/canary",
    "x/canary", "x/../../canary", "/etc/passwd", "//etc/passwd", "../../../../../../etc/passwd",
    "%2e%2e%2fcanary", "..%2fcanary", "%2e%2e/canary", "..%5ccanary", "\u2025/canary",
    "\uff0e\uff0e\uff0fcanary", "..\u2215canary", "canary\x00", "x\x00/../../canary",
    "./canary", "jobs/../canary", "~/canary", "$HOME", "*", "?", "[a-z]*", "canary.json",
    "canary.json\x00", "CON", "nul", "..:canary", "\\\\server\\share",
]  # fmt: skip

_header_text = st.text(
    st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=40
)
_any_text = st.text(max_size=12)
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _any_text
# Two levels at most, which hypothesis draws far faster than st.recursive; the deep bodies
# have a strategy of their own below.
_json_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=4),
    st.dictionaries(_any_text, _scalars | st.lists(_scalars, max_size=3), max_size=4),
)
_ids = st.one_of(
    st.sampled_from(STORED_IDS),
    st.sampled_from(ESCAPES),
    st.builds(str.__add__, st.sampled_from(ESCAPES), _any_text),
    st.builds(str.__add__, _any_text, st.sampled_from(ESCAPES)),
    st.text(),  # any code point: NUL, controls, lone surrogates, astral planes
    st.text(min_size=240, max_size=300),
    st.uuids().map(str),
)


_waits = st.one_of(
    st.floats(0, FUZZ_MAX_WAIT * 2), st.integers(-2, 2), _scalars, st.just(FUZZ_MAX_WAIT)
)
_statuses = st.one_of(
    st.sampled_from(["done", "running", "done,running", "", ",", " , done"]),
    st.lists(st.sampled_from(["done", "running", "", "queued"]) | _any_text, max_size=4),
    _json_values,
)


def _encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text; without ensure_ascii a lone surrogate becomes invalid UTF-8 on the wire."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _sized(size: int) -> bytes:
    """A job request of exactly ``size`` bytes (or just the padding when it cannot be)."""
    head, tail = b'{"job_id": "', b'"}'
    return head + b"a" * max(size - len(head) - len(tail), 0) + tail


def _nested(depth: int, opener: bytes, closer: bytes, wrap: bool) -> bytes:
    body = opener * depth + b"1" + closer * depth
    return b'{"job_id": ' + body + b"}" if wrap else body


LIMIT = DEFAULT_MAX_BODY_BYTES
# Duplicate keys, JSON's missing constants, huge numbers, a BOM, padding up to the limit,
# escaped NUL and lone surrogates, escaped slashes, empty and blank bodies.
ODD_BODIES = [
    b'{"job_id": "plain-id", "job_id": "../canary"}', b'{"job_id": NaN}', b"Infinity",
    b'{"since_seconds": 1e999999}', b'{"since_seconds": -0}', b"1" * 5000,
    b'{"since_seconds": ' + b"9" * 5000 + b"}", b"\xef\xbb\xbf" + b'{"job_id": "plain-id"}',
    b'{"job_id": "plain-id"}' + b" " * (LIMIT - 21), b"[" * 100_000, b'"\\ud800"',
    b'{"job_id": "\\u0000"}', b'{"job_id": "\\ud800"}', b'{"job_id": "..\\/canary"}', b"",
    b" \t\n", b"null", b"{}", b"[]",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json", "application/json; charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
    "*/*", "", "application/json; charset=utf-16",
]  # fmt: skip
bodies = st.one_of(
    st.builds(  # well-formed, for a stored record: the answers that read the store
        lambda job_id, extra, a: _encode({"job_id": job_id, **extra}, a),
        st.sampled_from(STORED_IDS),
        st.dictionaries(_any_text, _json_values, max_size=2),
        st.booleans(),
    ),
    st.binary(max_size=300),
    _json_values.flatmap(lambda v: st.booleans().map(lambda a: _encode(v, a))),
    st.builds(
        lambda doc, a: _encode(doc, a),
        st.fixed_dictionaries(
            {"job_id": _ids | st.just(RUNNING_ID)},
            optional={"id": _json_values, "wait": _waits},
        ),
        st.booleans(),
    ),
    st.builds(
        lambda doc, a: _encode(doc, a),
        st.fixed_dictionaries(
            {},
            optional={"since_seconds": _json_values, "job_id": _ids, "status": _statuses},
        ),
        st.booleans(),
    ),
    st.integers(LIMIT - 3, LIMIT + 3).map(_sized),
    st.integers(1, 20 * LIMIT).map(_sized),
    st.builds(
        _nested,
        st.integers(1, 200_000),
        st.sampled_from([b"[", b'{"a":']),
        st.sampled_from([b"]", b"}"]),
        st.booleans(),
    ),
    st.sampled_from(ODD_BODIES),
)

_content_types = st.one_of(st.sampled_from(CONTENT_TYPES), _header_text)
_header_names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=1, max_size=12
).filter(
    lambda n: (
        n.lower() not in {"content-length", "x-api-key", "content-type", "host", "if-none-match"}
    )
)


#: Mostly the routes; now and then a path next to them. "JOB" is a job's GET path.
PATHS = [*ROUTES, "JOB"] * 10 + [
    "/", "/v1/toolkit/job/status/", "/v1/toolkit/job/../jobs/status",
    "/v1/toolkit/job/status/../../../etc/passwd", "/V1/TOOLKIT/JOB/STATUS",
]  # fmt: skip
JOB_PREFIX = JOBS_PATH + "/"
# Ids for a GET path: one path segment (no "/", not "." or "..": clients resolve those).
_path_ids = st.one_of(
    st.sampled_from([*STORED_IDS, RUNNING_ID, "status"]),
    _ids.filter(lambda i: i and "/" not in i and i not in (".", "..")),
)
_query_values = st.one_of(
    st.sampled_from(["", "0", "-1", "0.001", "0.002", "1", "30", "nan", "inf", "1e3", "abc"]),
    _header_text,
)
CURSORS: list[str] = []  # valid cursors, drawn by each fuzz run before it starts


def _cursor(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["valid", "tampered", "any"]))
    if kind == "any" or not CURSORS:
        return draw(_header_text)
    cursor = draw(st.sampled_from(CURSORS))
    if kind == "tampered":
        at = draw(st.integers(0, len(cursor) - 1))
        cursor = cursor[:at] + draw(st.characters(codec="ascii")) + cursor[at + 1 :]
    return cursor


@st.composite
def queries(draw: st.DrawFn, path: str) -> str:
    """A query string for a GET route: its own parameters, well-formed or not, and others."""
    names = ["wait"] if path.startswith(JOB_PREFIX) else ["status", "since_seconds", "limit"]
    fields: list[tuple[str, str]] = []
    for name in draw(st.lists(st.sampled_from([*names, "cursor", "other"]), max_size=4)):
        value = _cursor(draw) if name == "cursor" else draw(_query_values)
        fields.append((name, value))
    query = urlencode(fields)
    if draw(st.booleans()):  # now and then raw bytes and broken escapes
        query += draw(st.sampled_from(["&wait=%ff", "&%zz", "&a=%", "&&", "&limit=1%00"]))
    return query


def _if_none_match(draw: st.DrawFn, job_id: str | None) -> str:
    """Mostly the asked job's own version (a 304 to earn), else any tags, ``*`` or junk."""
    own = VERSIONS.get(job_id or "")
    tags = [f'"{v}"' for v in VERSIONS.values()] + [f'W/"{v}"' for v in VERSIONS.values()]
    choices = [
        st.sampled_from([*tags, "*", '"x", *', ",", ""]),
        st.lists(st.sampled_from(tags), min_size=1, max_size=3).map(", ".join),
        _header_text,
    ]
    if own is not None:
        choices += [st.sampled_from([f'"{own}"', f'W/"{own}"', f'"x", "{own}"'])] * 3
    return draw(st.one_of(choices))


VERSIONS: dict[str, str] = {}  # job id → version of the stored records, read by each fuzz run


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    """(method, path, body, headers): mostly well-aimed requests, now and then anything."""
    path = draw(st.sampled_from(PATHS))
    job_id = None
    if path == "JOB":
        job_id = draw(_path_ids)
        path = JOB_PREFIX + quote(job_id, safe="")
    wanted = "GET" if path.startswith(JOBS_PATH) and path != JOBS_STATUS_PATH else "POST"
    method = draw(st.sampled_from([wanted] * 15 + ["GET", "POST", "PUT", "DELETE", "PATCH"]))
    if method == "GET" and draw(st.booleans()):
        path += "?" + draw(queries(path))
    headers: dict[str, str] = {}
    key = draw(st.sampled_from([*KEYS * 4, "", None, "wrong"]))
    if key == "wrong":
        key = draw(_header_text)
    if key is not None:
        headers["x-api-key"] = key
    content_type = draw(st.one_of(st.none(), _content_types))
    if content_type is not None:
        headers["content-type"] = content_type
    if method == "GET" and draw(st.booleans()):
        headers["if-none-match"] = _if_none_match(draw, job_id)
    headers.update(draw(st.dictionaries(_header_names, _header_text, max_size=3)))
    return method, path, b"" if method == "GET" else draw(bodies), headers


# -- the fuzz ------------------------------------------------------------------------------------

Request = tuple[str, str, bytes, dict[str, str]]


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    served: int = 0  # 200s for a stored record


def route_of(path: str) -> str | None:
    """The route a request path asks for (the GET job route for ``/v1/toolkit/jobs/<id>``),
    or None for a path the blueprint and the router do not mount."""
    path = path.partition("?")[0]
    if path in ROUTES:
        return path
    if path.startswith(JOB_PREFIX) and len(path) > len(JOB_PREFIX):
        return "JOB"
    return None


def check_answer(answer: Answer, request: Request, tally: Tally, adapter: str) -> Any:
    """Every rule an answer must follow, whatever the request; returns the parsed body."""
    method, path, _body, headers = request
    tally.statuses[answer.status] = tally.statuses.get(answer.status, 0) + 1
    assert answer.status < 500, answer
    route = route_of(path)
    if route is None and adapter != "wsgi":
        return None  # a path the blueprint or router does not mount: the host app's own 404
    assert CANARY.encode() not in answer.body
    if answer.status == 304:
        assert (route, method, answer.body) == ("JOB", "GET", b""), answer
        assert "if-none-match" in headers
        assert answer.headers["etag"].strip('"') in VERSIONS.values()
        return None
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    parsed = answer.json()  # never a non-JSON body
    assert isinstance(parsed, dict)
    wanted = "GET" if route in ("JOB", JOBS_PATH) else "POST"
    if route is not None and method == wanted:
        # Authentication comes first, whatever the body.
        assert (answer.status == 401) == (headers.get("x-api-key") not in KEYS), answer
        assert not any(k.encode() in answer.body for k in KEYS)
    if answer.status == 200 and route in (JOB_STATUS_PATH, "JOB"):
        job_id = parsed["job_id"]
        assert job_id in [*STORED_IDS, RUNNING_ID]
        assert parsed["response"]["response"] == {"ok": job_id}
        tally.served += 1
    return parsed


def comparable(parsed: Any) -> Any:
    """An answer without what differs from call to call: the measured times, and a page's
    cursor, which holds the window's start (now - since_seconds) and so the moment of the
    call (only whether there is one must agree)."""
    if not isinstance(parsed, dict):
        return parsed
    same = {k: v for k, v in parsed.items() if k not in ("run_time", "total_time")}
    page = same.get("response")
    if isinstance(page, dict) and isinstance(page.get("next_cursor"), str):
        same["response"] = {**page, "next_cursor": "<a cursor>"}
    return same


def rewritten_by_test_client(request: Request) -> bool:
    """Werkzeug's test client (behind the Flask client) sends an empty form of its own making
    when the body is empty and the content type is a form's: the adapters then see different
    bodies, so their answers are not compared (each is still checked)."""
    _method, _path, body, headers = request
    kind = headers.get("content-type", "").strip().lower()
    return not body and kind.startswith(("multipart/", "application/x-www-form-urlencoded"))


def fuzz_adapters(names: list[str], base: Path) -> dict[str, Tally]:
    """Send every drawn request to each adapter in ``names``; check each answer, the files
    opened, and that the adapters agree on the status and the body."""
    sandbox = make_sandbox(base)
    store = FileSystemStore(sandbox.store_root)
    service = StatusService(store, api_keys=KEYS, job_id_pattern=ANY_ID, max_wait=FUZZ_MAX_WAIT)
    clients = {name: ADAPTERS[name][0](service) for name in names}
    tallies = {name: Tally() for name in names}
    VERSIONS.clear()
    VERSIONS.update({i: str(store.get(i).version) for i in [*STORED_IDS, RUNNING_ID]})
    CURSORS[:] = valid_cursors(clients[names[0]])
    watch_opens()

    @given(request=requests())
    @settings(
        max_examples=FUZZ_CASES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def fuzz(request: Request) -> None:
        answers = {}
        for name, call in clients.items():
            tallies[name].cases += 1
            answer, opened = call_watched(call, *request)
            parsed = check_answer(answer, request, tallies[name], name)
            assert outside_the_store(opened, sandbox) == []
            if route_of(request[1]) is not None and not rewritten_by_test_client(request):
                answers[name] = (answer.status, comparable(parsed))
        assert len(set(map(repr, answers.values()))) <= 1, answers

    fuzz()
    for canary in sandbox.canaries:
        assert CANARY in canary.read_text()  # untouched
    return tallies


def valid_cursors(client: Client) -> list[str]:
    """A few cursors the service gave (the walk of its list, one job per page)."""
    cursors: list[str] = []
    url = f"{JOBS_PATH}?limit=1&since_seconds=100000"
    while len(cursors) < 4:
        answer = client("GET", url, b"", {"x-api-key": KEYS[0]})
        cursor = answer.json()["response"]["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
        url = f"{JOBS_PATH}?limit=1&cursor={cursor}"
    assert cursors
    return cursors


def check_tallies(tallies: dict[str, Tally], capsys: pytest.CaptureFixture[str]) -> None:
    for name, tally in tallies.items():
        report(
            capsys,
            f"fuzz {name}",
            cases=tally.cases,
            failures=0,
            statuses=dict(sorted(tally.statuses.items())),
            served=tally.served,
        )
        assert tally.cases >= FUZZ_CASES
        assert tally.served > 0  # the fuzz reached the store, not only the validation
        assert {200, 304, 400, 401, 404, 405}.issubset(tally.statuses)


def frameworks_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("flask", "fastapi"))


@pytest.mark.slow
def test_no_input_breaks_the_wsgi_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The core session's fuzz, where no framework is installed."""
    if frameworks_installed():
        pytest.skip("fuzzed with every other adapter, by the test below, where they are installed")
    check_tallies(fuzz_adapters(["wsgi"], tmp_path), capsys)


@pytest.mark.slow
@pytest.mark.extras
def test_no_input_breaks_any_adapter_and_all_answer_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every adapter of tests/clients.py (the framework ones need their extras), the same
    requests to each: the WSGI app fuzzed again as the reference the others must match."""
    for name, (factory, _) in ADAPTERS.items():
        try:
            factory(StatusService(FileSystemStore(tmp_path / "probe"), api_keys=KEYS))
        except ImportError as exc:
            pytest.fail(f"adapter {name} cannot be built: {exc}")
    check_tallies(fuzz_adapters(list(ADAPTERS), tmp_path), capsys)


def test_the_audit_hook_sees_a_read_outside_the_store(tmp_path: Path) -> None:
    """The fuzz's file check can fail: a read of a canary is reported."""
    sandbox = make_sandbox(tmp_path)
    watch_opens()
    _, opened = call_watched(lambda: (sandbox.canaries[0].read_text(), Answer(200, {}, b"")))
    assert outside_the_store(opened, sandbox) == [str(sandbox.canaries[0])]


# -- schemathesis, all checks on -----------------------------------------------------------------


@pytest.fixture
def fastapi_app(tmp_path: Path) -> Any:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    from jobstatus.adapters.fastapi import make_router

    store = FileSystemStore(tmp_path)
    store.put(JobRecord(job_id=STORED_IDS[0], job_status="done", response={"ok": 1}))
    app = FastAPI()
    app.include_router(make_router(StatusService(store, api_keys=KEYS, max_wait=FUZZ_MAX_WAIT)))
    return app


@pytest.mark.extras
@pytest.mark.slow
def test_schemathesis_with_every_check(
    fastapi_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import CHECKS, load_all_checks
    from schemathesis.generation import GenerationMode

    load_all_checks()
    checks = CHECKS.get_all()
    checks_with_cursor = [c for c in checks if c.__name__ != "positive_data_acceptance"]
    schema = schemathesis.openapi.from_asgi("/openapi.json", fastapi_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {*ROUTES, JOB_PREFIX + "{job_id}"}
    statuses: dict[int, int] = {}
    cases = 0
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @given(case=strategy, key=st.sampled_from([*KEYS, None]))
        @settings(max_examples=300, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case: Any, key: str | None) -> None:
            nonlocal cases
            cases += 1
            headers = {} if key is None else {"x-api-key": key}
            # A cursor is opaque: only a next_cursor the service signed is one, so a
            # schema-valid string is still refused (400), as documented.
            opaque = "cursor" in (case.query or {})
            response = case.call_and_validate(
                headers=headers, checks=checks_with_cursor if opaque else checks
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        run()
    report(
        capsys,
        "schemathesis",
        checks=len(checks),
        cases=cases,
        failures=0,
        statuses=dict(sorted(statuses.items())),
    )
    assert {200, 400, 401, 404}.issubset(statuses)


# -- bodies nested deeply ----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 900, 988, 991, 5000])
@pytest.mark.parametrize(
    "shape",
    [
        lambda d: b"[" * d + b"]" * d,
        lambda d: b'{"job_id": ' + b"[" * d + b"]" * d + b"}",
        lambda d: b'{"job_id": "plain-id", "id": ' + b"[" * d + b"]" * d + b"}",
        lambda d: b'{"job_id": ' + b'{"a":' * d + b"1" + b"}" * (d - 1),  # and malformed
    ],
    ids=["array", "job_id", "id", "malformed"],
)
def test_a_deep_body_is_the_same_400_at_any_stack_depth(depth: int, shape: Any) -> None:
    """Found by the fuzz: a body nested ~990 deep parsed, then jsonschema's message overflowed
    the stack (a 500); and how deep the parser got before giving up depended on the caller's
    stack (adapters disagreed). Now any body nested past MAX_NESTING_DEPTH is refused first."""
    service = StatusService(MemoryStore(), api_keys=None, job_id_pattern=ANY_ID)
    body = shape(depth)

    def at_depth(frames: int) -> Any:
        if frames:
            return at_depth(frames - 1)
        return service.handle(JOB_STATUS_PATH, body, None)

    for frames in (0, 200, 600):
        reply = at_depth(frames)
        assert (reply.status, reply.parsed()) == (
            400,
            {"message": "Invalid payload: body is nested too deeply"},
        ), frames


def test_the_nesting_limit_counts_only_brackets_outside_strings() -> None:
    deep_text = "[" * 5000
    body = json.dumps({"job_id": "plain-id", "id": deep_text}).encode()
    service = StatusService(MemoryStore(), api_keys=None, job_id_pattern=ANY_ID)
    service.store.put(JobRecord(job_id="plain-id", job_status="done"))
    reply = service.handle(JOB_STATUS_PATH, body, None)
    assert reply.status == 200
    assert reply.parsed()["id"] == deep_text
    at_limit = b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH
    assert service.handle(JOBS_STATUS_PATH, at_limit, None).status == 400  # the schema's 400
    assert b"nested" not in service.handle(JOBS_STATUS_PATH, at_limit, None).body
