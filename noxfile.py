"""Every check of the project, one session each: ``nox -s tests``, ``nox -l`` lists them.

The test sessions share one helper; pytest runs with strict markers and warnings as errors
(pyproject.toml). Services (PostgreSQL, MariaDB) are expected on loopback; the S3 endpoint is
started by the tests themselves.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "tests_core", "lint", "typing", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

# standardwebhooks: the reference verifier the webhook tests check signatures with.
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "standardwebhooks>=1.0"]
SERVICE_TOOLS = [
    "moto[server]>=5",
    "httpx",
    "schemathesis>=3.30",
    "openapi-spec-validator",
    "dramatiq[redis]>=2.0",
    "selenium>=4.20",  # the dashboard's browser tests (Chromium from the system's packages)
    "hatchling>=1.24",  # the test that the wheel ships the dashboard's files
]


def _run_pytest(session: nox.Session, *extra_args: str) -> None:
    """The one helper behind the test sessions."""
    session.run(
        "pytest",
        *extra_args,
        *session.posargs,
        env={
            "PYTHONHASHSEED": "0",
            "JOBSTATUS_REQUIRE_SERVICES": os.environ.get("JOBSTATUS_REQUIRE_SERVICES", "0"),
        },
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite with every extra, against the real services."""
    session.install("-e", ".[all,testing]", *TEST_TOOLS, *SERVICE_TOOLS)
    _run_pytest(session)


@nox.session
def tests_core(session: nox.Session) -> None:
    """The core alone, no extras installed: proves it imports no framework and no driver."""
    session.install("-e", ".[testing]", *TEST_TOOLS)
    _run_pytest(session, "-m", "not extras and not services")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and the examples."""
    session.install("-e", ".[all,testing]", "mypy>=1.10", "types-jsonschema")
    session.run("mypy", "jobstatus")
    if os.path.isdir("examples") and any(f.endswith(".py") for f in os.listdir("examples")):
        session.run("mypy", "examples")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs with warnings as errors and run their doctests;
    ``nox -s docs -- serve`` also serves them on http://127.0.0.1:8000."""
    # The FastAPI examples in the docs run through starlette's TestClient, which needs httpx2.
    session.install(
        "-e",
        ".[all,testing]",
        "sphinx>=7",
        "furo",
        "httpx",
        "httpx2",
        "matplotlib",
        "standardwebhooks>=1.0",  # the webhooks page's receivers verify with it
        "selenium>=4.20",  # the dashboard's screenshots (Chromium from the system's packages)
    )
    common = ["-E", "-W", "--keep-going", "-n", "docs"]
    session.run("sphinx-build", "-b", "doctest", *common, "docs/_build/doctest")
    session.run("sphinx-build", "-b", "html", *common, "docs/_build/html")
    if "serve" in session.posargs:
        session.run(
            "python", "-m", "http.server", "8000", "-b", "127.0.0.1", "-d", "docs/_build/html"
        )


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks (not part of CI); figures land in benchmarks/results/."""
    session.install("-e", ".[all]", "moto[server]>=5", "celery>=5.3", "rq>=2", "hiredis")
    for script in sorted(os.listdir("benchmarks")):
        if script.startswith("bench_") and script.endswith(".py"):
            session.run("python", f"benchmarks/{script}", *session.posargs)
