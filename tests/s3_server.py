"""A local S3 endpoint for the tests: moto's S3 server over real HTTP on 127.0.0.1.

``s3_endpoint`` (session scope) serves moto's application -- what ``moto_server`` and
``ThreadedMotoServer`` run -- from a thread, on a free port, with a request log in front of it
so that tests can count what reaches the server. Credentials and the region come from the
environment (``AWS_DEFAULT_REGION=us-east-1``, dummy keys), as a deployment's would; the region is
not passed as ``client_kwargs``, or s3fs would send a location constraint moto refuses.

``strict_s3_endpoint`` runs a second moto server in a subprocess that checks credentials, for
the tests of a wrong key.

Use from a test module (no conftest change needed)::

    from tests.s3_server import s3_endpoint  # noqa: F401  (a fixture)

A missing moto, or a server that does not start, is a skip on a laptop and a failure when
``JOBSTATUS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import service_unavailable

REGION = "us-east-1"
ACCESS_KEY = "jobstatus-test-key"
SECRET_KEY = "jobstatus-test-secret-5ecr3t"
BUCKET = "jobstatus-tests"

# Serves moto in a child process and prints its port; INITIAL_NO_AUTH_ACTION_COUNT=0 in the
# environment makes it check every request's credentials.
_SERVE_MOTO = """
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app),
                     threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


@dataclass
class S3Endpoint:
    """A running S3 endpoint and what it has been asked."""

    url: str
    #: (method, path with query) of every request, in the order the server got them.
    requests: list[tuple[str, str]] = field(default_factory=list)

    def store_url(self, prefix: str | None = None, bucket: str = BUCKET, **query: str) -> str:
        """An ``s3://`` store URL on this endpoint, under a fresh prefix unless one is given."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
        params = "&".join(
            f"{k}={quote(v, safe='')}" for k, v in {"endpoint_url": self.url, **query}.items()
        )
        return f"s3://{bucket}/{prefix}?{params}"

    def create_bucket(self, name: str) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=self.url, skip_instance_cache=True)
        try:
            fs.call_s3("create_bucket", Bucket=name)
        finally:
            s3fs.S3FileSystem.close_session(fs.loop, fs._s3creator)

    def backdate(self, bucket: str, key: str, when: float) -> None:
        """Set an object's LastModified, as if written at ``when`` (the in-process server)."""
        from datetime import datetime, timezone

        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
        stored.last_modified = datetime.fromtimestamp(when, tz=timezone.utc).replace(tzinfo=None)

    def requests_during(self, action: Callable[[], Any]) -> list[tuple[str, str]]:
        """The requests the server got while ``action`` ran."""
        start = len(self.requests)
        action()
        return self.requests[start:]


def _aws_environment() -> dict[str, str]:
    return {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[dict[str, str]]:
    """Dummy credentials and the region, through the environment; no profile or config file."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _aws_environment().items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield _aws_environment()


@pytest.fixture(scope="session")
def s3_endpoint(aws_environment: dict[str, str]) -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 (a free port), with the bucket ``BUCKET`` created."""
    try:
        import s3fs  # noqa: F401
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server
    except ImportError as exc:
        service_unavailable(f"the local S3 endpoint needs moto[server] and s3fs: {exc}")
        raise  # unreachable: service_unavailable raises

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    log: list[tuple[str, str]] = []
    moto_app = DomainDispatcherApplication(create_backend_app)
    # moto checks If-Match / If-None-Match and then writes, without a lock; S3 does both
    # atomically. Writes are serialised here so the endpoint keeps S3's promise.
    writing = threading.Lock()

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        log.append((environ["REQUEST_METHOD"], path))
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            result: Iterable[bytes] = moto_app(environ, start_response)
            return result
        with writing:
            return list(moto_app(environ, start_response))

    try:
        server = make_server("127.0.0.1", 0, logged, threaded=True, request_handler=Quiet)
    except OSError as exc:
        service_unavailable(f"moto's S3 server cannot listen on 127.0.0.1: {exc}")
        raise
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    endpoint = S3Endpoint(f"http://127.0.0.1:{server.server_port}", log)
    try:
        endpoint.create_bucket(BUCKET)
    except Exception as exc:
        server.shutdown()
        service_unavailable(f"moto's S3 server does not answer: {exc}")
    yield endpoint
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture(scope="session")
def strict_s3_endpoint(aws_environment: dict[str, str]) -> Iterator[S3Endpoint]:
    """A second moto server, in a subprocess, that refuses unknown credentials."""
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE_MOTO],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        service_unavailable(f"cannot start moto's server: {exc}")
        raise
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            process.kill()
            _, errors = process.communicate(timeout=10)
            service_unavailable(f"moto's server did not start: {errors[-500:]}")
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
