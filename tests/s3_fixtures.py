"""The S3 fixtures, a pytest plugin that ``tests/conftest.py`` registers for every module.

- ``aws_environment`` (session): dummy credentials and the region, through the environment;
  no profile or config file.
- ``s3_endpoint`` (session): moto's S3 server in this process (``tests/s3_server.py``), with the
  bucket ``BUCKET``; it logs every request it gets.
- ``strict_s3_endpoint`` (session): a moto server in a subprocess that checks credentials.
- ``s3_store_url``: an ``s3://`` store URL under a fresh prefix of ``s3_endpoint``: an empty
  store.

A missing moto or s3fs, or a server that does not start, is a skip on a laptop and a failure
when ``JOBSTATUS_REQUIRE_SERVICES=1``. Nothing here imports moto or s3fs until a fixture runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import service_unavailable
from tests.s3_server import (
    EndpointUnavailable,
    S3Endpoint,
    aws_variables,
    serve_moto,
    serve_strict_moto,
)


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[dict[str, str]]:
    """Dummy credentials and the region, through the environment; no profile or config file."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_variables().items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_CONFIG_FILE", os.devnull)
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield aws_variables()


@pytest.fixture(scope="session")
def s3_endpoint(aws_environment: dict[str, str]) -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 (a free port), with the bucket ``BUCKET`` created."""
    try:
        with serve_moto() as endpoint:
            yield endpoint
    except EndpointUnavailable as exc:
        service_unavailable(str(exc))


@pytest.fixture(scope="session")
def strict_s3_endpoint(aws_environment: dict[str, str]) -> Iterator[S3Endpoint]:
    """A second moto server, in a subprocess, that refuses unknown credentials."""
    try:
        with serve_strict_moto() as endpoint:
            yield endpoint
    except EndpointUnavailable as exc:
        service_unavailable(str(exc))


@pytest.fixture
def s3_store_url(s3_endpoint: S3Endpoint) -> str:
    """A store URL under a prefix of its own on the local endpoint: an empty store."""
    return s3_endpoint.store_url()
