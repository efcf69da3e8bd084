"""What the endpoint protects: ids that try to leave the store, bodies too large to read, the
API keys, and the credentials inside store URLs.

Every claim of docs/security.rst is one of these tests.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import (
    InvalidRequest,
    JobNotFound,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus._schema import DEFAULT_MAX_BODY_BYTES
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.record import check_job_id
from jobstatus.service import JOB_STATUS_PATH, JOBS_STATUS_PATH
from jobstatus.store import Store
from tests import s3_server
from tests.clients import ADAPTERS, call_wsgi, post_endless_body

ANY_ID = r"(?s).*"
CANARY = "CANARY-9d2e7b41c0a8"
KEYS = ["key-new-7f3a9c", "key-old-1b5e2d", "key-spare-44c0e1"]

ADAPTER_PARAMS = [pytest.param(name, marks=marks, id=name) for name, (_, marks) in ADAPTERS.items()]

# -- ids that try to leave jobs/ ----------------------------------------------------------------

#: Ids that could name a path or key outside ``jobs/``: traversal, separators, absolute paths,
#: NUL and other control characters, over-long ids. Every store refuses each one.
ESCAPES = [
    "", ".", "..", "../canary", "../../canary", "..\\canary", "../.jobstatus-locks/00",
    "x/canary", "x/../../canary", "/etc/passwd", "//etc/passwd", "../../../../../../etc/passwd",
    "%2e%2e/canary", "\u2025/canary", "\uff0e\uff0e/canary", "canary\x00", "x\x00/../../canary",
    "./canary", "jobs/../canary", "..\\..\\canary", "\\\\server\\share", "a\nb", "a\rb",
    "\x1b[31m", "x" * 251, "é" * 126, "..:canary", "a..b",
    "::memory://canary", "..%2fcanary", "...", "..\u2215canary",
]  # fmt: skip

#: Ids that look like escapes but name nothing special: stores take them literally (no
#: decoding, no glob, no home folder), so they are simply not found.
LITERALS = [
    "%2e%2e%2fcanary", "%2e%2e%5ccanary", "\u2025", "\uff0e\uff0ecanary", ".\u2215canary",
    "~", "~root", "$HOME", "${HOME}", "*", "?", "[a-z]*", "**", "canary", "canary.json", "CON",
    "nul", ".hidden", " ", "jobs", "x" * 250, "?versionId=1",
    "#fragment", "a;b", "s3:bucket",
]  # fmt: skip


def is_refused(job_id: str) -> bool:
    try:
        check_job_id(job_id)
    except InvalidRequest:
        return True
    return False


def test_the_escapes_are_refused_and_the_literals_are_not() -> None:
    assert [i for i in ESCAPES if not is_refused(i)] == []
    assert [i for i in LITERALS if is_refused(i)] == []


def plant_canaries_beside(store: Store, write: Callable[[str, bytes], None]) -> None:
    """Records ``a`` and ``b`` in the store, and canary job documents outside ``jobs/`` that an
    escaping id would reach (``write`` puts bytes at a path relative to the store's root)."""
    store.put(JobRecord(job_id="a", job_status="done"))
    store.put(JobRecord(job_id="b", job_status="running"))
    canary = json.dumps({"job_status": "done", "job_id": CANARY}).encode()
    for where in ("canary.json", "jobs/x/canary.json", ".jobstatus-locks/00.json", "jobs.json"):
        write(where, canary)


def check_no_escape(store: Store) -> None:
    """Through the endpoint (id pattern loosened to anything) and through the store itself:
    escapes are a 400 / InvalidRequest, literals a 404 / JobNotFound, nothing is changed."""
    service = StatusService(store, api_keys=None, job_id_pattern=ANY_ID)
    for job_id in ESCAPES + LITERALS:
        body = json.dumps({"job_id": job_id}).encode()
        reply = service.handle(JOB_STATUS_PATH, body, None)
        assert CANARY.encode() not in reply.body
        expected = (400, InvalidRequest) if job_id in ESCAPES else (404, JobNotFound)
        assert reply.status == expected[0], (job_id, reply)
        with pytest.raises(expected[1]):
            store.get(job_id)
        if job_id in ESCAPES:
            with pytest.raises(InvalidRequest):
                store.put(JobRecord(job_id=job_id, job_status="done"))
            with pytest.raises(InvalidRequest):
                store.delete(job_id)
        else:
            assert store.delete(job_id) is False  # "*" deletes nothing
    assert sorted(r.job_id for r in store.list()) == ["a", "b"]
    assert CANARY.encode() not in service.handle(JOBS_STATUS_PATH, b"{}", None).body


def test_no_id_leaves_a_filesystem_store(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path / "store")

    def write(where: str, data: bytes) -> None:
        path = tmp_path / "store" / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    plant_canaries_beside(store, write)
    (tmp_path / "canary.json").write_bytes(b'{"job_status": "done", "job_id": "' + CANARY.encode())
    check_no_escape(store)


def test_no_id_leaves_a_memory_store() -> None:
    store = MemoryStore()
    plant_canaries_beside(store, lambda where, data: None)
    check_no_escape(store)


@pytest.mark.extras
def test_no_id_leaves_an_fsspec_object_store() -> None:
    pytest.importorskip("fsspec")
    import uuid

    import fsspec

    prefix = f"escapes-{uuid.uuid4().hex}"
    store = open_store(f"fsspec+memory://bucket/{prefix}")
    memory = fsspec.filesystem("memory")

    plant_canaries_beside(store, lambda where, data: memory.pipe(f"/bucket/{prefix}/{where}", data))
    try:
        check_no_escape(store)
    finally:
        memory.rm(f"/bucket/{prefix}", recursive=True)


# -- a body over the limit is refused before it is read whole -------------------------------------


class CountingStream(io.RawIOBase):
    """An endless request body that counts the bytes taken from it."""

    def __init__(self) -> None:
        self.taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        view[:] = b"a" * len(view)
        self.taken += len(view)
        return len(view)

    def read(self, size: int = -1) -> bytes:  # an endless body is never read "to the end"
        assert size is not None, "the whole body was asked for"
        assert size >= 0, "the whole body was asked for"
        return super().read(size) or b""


def wsgi_apps(service: StatusService) -> Iterator[tuple[str, Any]]:
    yield "wsgi", make_app(service)
    with contextlib.suppress(ImportError):
        from flask import Flask

        from jobstatus.adapters.flask import make_blueprint

        flask_app = Flask(__name__)
        flask_app.register_blueprint(make_blueprint(service))
        yield "flask", flask_app


@pytest.mark.parametrize("declared", [100 * 1024 * 1024, None], ids=["content-length", "chunked"])
def test_an_oversized_body_is_refused_unread_by_wsgi_apps(declared: int | None) -> None:
    service = StatusService(MemoryStore(), api_keys=KEYS)
    for name, app in wsgi_apps(service):
        stream = CountingStream()
        answer = call_wsgi(
            app,
            "POST",
            JOB_STATUS_PATH,
            stream,
            {"x-api-key": KEYS[0], "content-type": "application/json"},
            content_length=declared,
            chunked=declared is None,
        )
        assert answer.status == 400, name
        assert answer.json() == {
            "message": f"Invalid payload: body is larger than {DEFAULT_MAX_BODY_BYTES} bytes"
        }
        # The limit plus one byte, and at most one buffer's worth more.
        assert stream.taken <= DEFAULT_MAX_BODY_BYTES + 1 + 64 * 1024, (name, stream.taken)


@pytest.mark.extras
def test_an_oversized_body_is_refused_unread_by_fastapi() -> None:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    from jobstatus.adapters.fastapi import make_router

    app = FastAPI()
    app.include_router(make_router(StatusService(MemoryStore(), api_keys=KEYS)))
    chunk = b"a" * 4096
    answer, pulled = post_endless_body(app, JOB_STATUS_PATH, KEYS[0], chunk)
    assert answer.status == 400
    assert b"larger than" in answer.body
    assert pulled * len(chunk) <= DEFAULT_MAX_BODY_BYTES + 1 + len(chunk)


# -- API keys ------------------------------------------------------------------------------------


def test_every_key_check_does_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """One keyed-hash lookup (a per-process secret salt: where a key lands says nothing an
    attacker can use) and exactly one constant-time comparison per request, for a known key,
    an unknown one and none alike: the time taken says neither whether a key matched nor
    which, whatever the number of keys."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    service = StatusService(MemoryStore(), api_keys=KEYS)
    body = b'{"job_id": "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"}'
    tries = [*KEYS, None, "", "wrong", KEYS[0][:-1], KEYS[0] + "x", KEYS[0].upper()]
    for key in tries:
        calls.clear()
        status = service.handle(JOB_STATUS_PATH, body, key).status
        assert status == (404 if key in KEYS else 401), key
        assert len(calls) == 1, key
        given, against = calls[0]
        assert given == (key or "").encode()
        if key in KEYS:
            assert against == given
        else:
            assert against not in {k.encode() for k in KEYS}


def drive_requests(service: StatusService, tries: list[str | None]) -> list[tuple[int, bytes]]:
    """Every answer kind, with each key, on every adapter: 200, 400, 401, 404, 405, 500."""
    answers = []
    for factory, _ in ADAPTERS.values():
        try:
            call = factory(service)
        except ImportError:
            continue  # the framework is not installed (the core test session)
        for key in tries:
            headers = {} if key is None else {"x-api-key": key}
            for method, path, body in [
                ("POST", JOB_STATUS_PATH, b'{"job_id": "stored"}'),
                ("POST", JOB_STATUS_PATH, b'{"job_id": "missing"}'),
                ("POST", JOB_STATUS_PATH, b'{"job_id": "broken"}'),
                ("POST", JOB_STATUS_PATH, b"not json"),
                ("POST", JOBS_STATUS_PATH, b""),  # lists past the broken file: a warning
                ("GET", JOB_STATUS_PATH, b""),
            ]:
                answer = call(method, path, body, headers)
                answers.append((answer.status, answer.body + repr(answer.headers).encode()))
    return answers


def test_no_key_is_ever_logged_or_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileSystemStore(tmp_path)
    store.put(JobRecord(job_id="stored", job_status="done"))
    (tmp_path / "jobs" / "broken.json").write_text("{ not a record")  # a 500
    service = StatusService(store, api_keys=KEYS, job_id_pattern=ANY_ID)
    wrong = "wrong-key-5a6b7c"
    caplog.set_level(1)  # every record of every logger, below DEBUG too
    answers = drive_requests(service, [*KEYS, wrong, None])

    statuses = {status for status, _ in answers}
    assert {200, 400, 401, 404, 405, 500} <= statuses
    assert any(r.levelno >= logging.WARNING for r in caplog.records)  # the logs were seen
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in [*KEYS, wrong]:
        assert secret not in logged
        assert not any(secret.encode() in text for _, text in answers), secret
    assert not any(k in repr(service) for k in KEYS)


# -- credentials in store URLs -------------------------------------------------------------------

PASSWORD = "Pw-0f8e3d1c9b"


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def full_text(exc: BaseException) -> str:
    """The exception as a host app would log it: message, chain and traceback."""
    return "".join(traceback.format_exception(exc))


def check_credentials_stay_hidden(
    url: str, secrets: list[str], caplog: pytest.LogCaptureFixture, **options: Any
) -> StorageError:
    """Open a store that fails on use; the secrets appear nowhere a host or a client sees."""
    caplog.set_level(1)
    store = open_store(url, **options)
    try:
        for secret in secrets:
            assert secret not in repr(store)
            assert secret not in str(store)
        with pytest.raises(StorageError) as raised:
            store.get("some-job")
        reply = StatusService(store, api_keys=None, job_id_pattern=ANY_ID).handle(
            JOB_STATUS_PATH, b'{"job_id": "some-job"}', None
        )
        with pytest.raises(StorageError) as raised_on_write:
            store.put(JobRecord(job_id="some-job", job_status="done"))
    finally:
        store.close()
    assert reply.status == 500
    assert reply.parsed()["error"].startswith("Failed to retrieve job status: ")
    logged = caplog.text + "".join(repr(r.args) + repr(r.msg) for r in caplog.records)
    for secret in secrets:
        for exc in (raised.value, raised_on_write.value):
            assert secret not in str(exc)
            assert secret not in full_text(exc)
        assert secret.encode() not in reply.body
        assert secret not in logged
    return raised.value


@pytest.mark.extras
@pytest.mark.services
def test_a_postgresql_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg")
    error = check_credentials_stay_hidden(
        f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test",
        [PASSWORD],
        caplog,
        connect_args={"connect_timeout": 5},
    )
    assert "refused" in str(error).lower()


@pytest.mark.extras
@pytest.mark.services
def test_a_mariadb_password_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    """A real server that refuses the password: its own message names the user, not the
    password."""
    pytest.importorskip("pymysql")
    from tests.conftest import service_unavailable

    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=2).close()
    except OSError:
        service_unavailable("MariaDB is not running on 127.0.0.1:3306")
    error = check_credentials_stay_hidden(
        f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:3306/test",
        [PASSWORD],
        caplog,
        connect_args={"connect_timeout": 5},
    )
    assert "denied" in str(error).lower()


@pytest.mark.extras
@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://user:{PASSWORD}@host:notaport/db",
        f"postgresql+nosuchdriver://user:{PASSWORD}@host/db",
        f"nosuchscheme://user:{PASSWORD}@host/db",
        f"mysql+pymysql://user:{PASSWORD}@/db?charset=utf8mb4&unknown_option=1",
    ],
)
def test_a_password_never_shows_in_a_configuration_error(url: str) -> None:
    """Refused when opened, or on first use: either way, not a word of the password."""
    pytest.importorskip("sqlalchemy")
    with pytest.raises(Exception) as raised:
        use_store(url)
    assert PASSWORD not in full_text(raised.value)


def use_store(url: str) -> None:
    with open_store(url) as store:
        assert PASSWORD not in repr(store)
        store.get("x")


S3_SECRET = "s3-Secret+Key/0a1b2c3d4e5f"


@pytest.mark.extras
@pytest.mark.services
@pytest.mark.parametrize("given_as", ["query", "option"])
def test_an_s3_secret_key_never_shows(
    s3_endpoint: s3_server.S3Endpoint, caplog: pytest.LogCaptureFixture, given_as: str
) -> None:
    """A bucket that does not exist: every call fails, at the S3 server, after signing with the
    secret; the secret shows nowhere (botocore's own DEBUG lines included)."""
    credentials = {"key": "AKIAJOBSTATUSTEST", "secret": S3_SECRET}
    if given_as == "query":
        url, options = s3_endpoint.store_url(bucket="no-such-bucket", **credentials), {}
    else:
        url, options = s3_endpoint.store_url(bucket="no-such-bucket"), credentials
    error = check_credentials_stay_hidden(url, [S3_SECRET], caplog, **options)
    assert "NoSuchBucket" in str(error)
    assert any(r.name.startswith("botocore") and r.levelno == logging.DEBUG for r in caplog.records)
