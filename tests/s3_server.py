"""A local S3 endpoint for the tests: moto's S3 server over real HTTP on 127.0.0.1.

:func:`serve_moto` serves moto's application -- what ``moto_server`` and ``ThreadedMotoServer``
run -- from a thread, on a free port, with a request log in front of it so that tests can count
what reaches the server (and see the conditions a write carried). Credentials and the region
come from the environment (``AWS_DEFAULT_REGION=us-east-1``, dummy keys), as a deployment's
would; the region is not passed as ``client_kwargs``, or s3fs would send a location constraint
moto refuses. :func:`serve_strict_moto` runs a second moto server in a subprocess that checks
credentials, for the tests of a wrong key.

The fixtures built on these live in ``tests/s3_fixtures.py`` (a plugin every test module gets
through ``tests/conftest.py``); test modules import only the names below, never a fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from jobstatus.testing._server import MOTO_SERVER

REGION = "us-east-1"
ACCESS_KEY = "jobstatus-test-key"
SECRET_KEY = "jobstatus-test-secret-5ecr3t"
BUCKET = "jobstatus-tests"

#: The request headers that make a write conditional, as logged per request.
CONDITION_HEADERS = ("If-Match", "If-None-Match")


class EndpointUnavailable(Exception):
    """moto is not installed, or its server does not start."""


Request = tuple[str, str]  # (method, path with query)


@dataclass
class S3Endpoint:
    """A running S3 endpoint and what it has been asked."""

    url: str
    #: (method, path with query) of every request, in the order the server got them.
    requests: list[Request] = field(default_factory=list)
    #: The conditional headers (``If-Match``, ``If-None-Match``) of each request, in that order.
    conditions: list[dict[str, str]] = field(default_factory=list)
    _hooks: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def store_url(self, prefix: str | None = None, bucket: str = BUCKET, **query: str) -> str:
        """An ``s3://`` store URL on this endpoint, under a fresh prefix unless one is given."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
        params = "&".join(
            f"{k}={quote(v, safe='')}" for k, v in {"endpoint_url": self.url, **query}.items()
        )
        return f"s3://{bucket}/{prefix}?{params}"

    def create_bucket(self, name: str) -> None:
        import botocore.session

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.url, region_name=REGION
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()

    def backdate(self, bucket: str, key: str, when: float) -> None:
        """Set an object's LastModified, as if written at ``when`` (the in-process server)."""
        from datetime import datetime, timezone

        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        stored = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys[key]
        stored.last_modified = datetime.fromtimestamp(when, tz=timezone.utc).replace(tzinfo=None)

    def requests_during(self, action: Callable[[], Any]) -> list[Request]:
        """The requests the server got while ``action`` ran."""
        start = len(self.requests)
        action()
        return self.requests[start:]

    def conditions_during(self, action: Callable[[], Any]) -> list[tuple[str, str, dict[str, str]]]:
        """The requests the server got while ``action`` ran, with their conditional headers."""
        start = len(self.requests)
        action()
        requests = self.requests[start:]
        return [(*request, self.conditions[start + n]) for n, request in enumerate(requests)]

    def before_next_write(self, path_suffix: str, action: Callable[[], Any]) -> None:
        """Run ``action`` in the server once, when the next write to a path ending in
        ``path_suffix`` arrives and before it is served: a writer coming in between."""
        self._hooks.append((path_suffix, action))

    def _hook_for(self, method: str, path: str) -> Callable[[], Any] | None:
        if method in ("GET", "HEAD"):
            return None
        for n, (suffix, action) in enumerate(self._hooks):
            if path.endswith(suffix):
                del self._hooks[n]
                return action
        return None


def aws_variables() -> dict[str, str]:
    """Dummy credentials and the region the endpoint's clients take from the environment."""
    return {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextmanager
def serve_moto() -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 (a free port), with the bucket ``BUCKET`` created."""
    try:
        import s3fs  # noqa: F401
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server
    except ImportError as exc:
        raise EndpointUnavailable(
            f"the local S3 endpoint needs moto[server] and s3fs: {exc}"
        ) from exc

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    moto_app = DomainDispatcherApplication(create_backend_app)
    # moto checks If-Match / If-None-Match and then writes, without a lock; S3 does both
    # atomically. Writes are serialised here so the endpoint keeps S3's promise.
    writing = threading.Lock()
    endpoint = S3Endpoint("")

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        method = environ["REQUEST_METHOD"]
        headers = {
            name: environ[key]
            for name in CONDITION_HEADERS
            if (key := "HTTP_" + name.upper().replace("-", "_")) in environ
        }
        endpoint.requests.append((method, path))
        endpoint.conditions.append(headers)
        hook = endpoint._hook_for(method, path)
        if hook is not None:
            hook()
        if method in ("GET", "HEAD"):
            result: Iterable[bytes] = moto_app(environ, start_response)
            return result
        with writing:
            return list(moto_app(environ, start_response))

    try:
        server = make_server("127.0.0.1", 0, logged, threaded=True, request_handler=Quiet)
    except OSError as exc:
        raise EndpointUnavailable(f"moto's S3 server cannot listen on 127.0.0.1: {exc}") from exc
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_port}"
    try:
        try:
            endpoint.create_bucket(BUCKET)
        except Exception as exc:
            raise EndpointUnavailable(f"moto's S3 server does not answer: {exc}") from exc
        yield endpoint
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextmanager
def serve_strict_moto() -> Iterator[S3Endpoint]:
    """A second moto server, in a subprocess, that refuses unknown credentials
    (``INITIAL_NO_AUTH_ACTION_COUNT=0`` makes it check every request's)."""
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", MOTO_SERVER],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        raise EndpointUnavailable(f"cannot start moto's server: {exc}") from exc
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            process.kill()
            _, errors = process.communicate(timeout=10)
            raise EndpointUnavailable(f"moto's server did not start: {errors[-500:]}")
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
