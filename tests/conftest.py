"""Shared fixtures. Real services are found at their usual loopback addresses; a missing one is
a skip on a laptop and a failure when JOBSTATUS_REQUIRE_SERVICES=1 (as .ci/run sets)."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("JOBSTATUS_REQUIRE_SERVICES") == "1"

# The local S3 endpoint's fixtures (s3_endpoint, strict_s3_endpoint, aws_environment,
# s3_store_url) and the dashboard's browser fixtures (driver, make_page), for every test module.
pytest_plugins = ["tests.s3_fixtures", "tests.dashboard_page"]


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when services are required."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (JOBSTATUS_REQUIRE_SERVICES=1: a missing service is a failure)")
    pytest.skip(reason)
