"""Every check of the project, one session each: ``nox -s tests``, ``nox -l`` lists them.

Every test session goes through :func:`_tests`: it installs the package with the session's
extras and runs pytest with strict markers and warnings as errors (pyproject.toml), a fixed
hash seed, and the session's marker selection. Services (PostgreSQL, MariaDB) are expected on
loopback; the S3 endpoint is started by the tests themselves.

- ``nox -s quick``: the inner loop. No services, no slow tests, spread over every core.
- ``nox -s tests``: the whole suite against the services, with branch coverage measured and
  held to ``fail_under`` (pyproject's ``[tool.coverage.report]``).
- ``nox -s build``: the sdist and the wheel, checked, installed in a clean virtualenv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_core", "lint", "typing", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

ROOT = Path(__file__).resolve().parent
# standardwebhooks: the reference verifier the webhook tests check signatures with.
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "pytest-xdist>=3.5", "standardwebhooks>=1.0"]
SERVICE_TOOLS = [
    "moto[server]>=5",
    "httpx",
    "schemathesis>=3.30",
    "openapi-spec-validator",
    "dramatiq[redis]>=2.0",
    "selenium>=4.20",  # the dashboard's browser tests (Chromium from the system's packages)
    "hatchling>=1.24",  # the test that the wheel ships the dashboard's files
]
#: ``patch = ["subprocess"]`` (pyproject) needs coverage 7.10: the xdist workers and the
#: processes the tests start (the CLI, writers, gunicorn) are measured too.
COVERAGE = "coverage[toml]>=7.10"
PLOTTING = "matplotlib>=3.8"


def _tests(
    session: nox.Session,
    *,
    extras: str,
    select: str | None = None,
    tools: tuple[str, ...] = (),
    workers: str | None = None,
    coverage: bool = False,
) -> None:
    """The one helper behind the test sessions: install ``.[extras]`` with the test tools,
    run pytest on the tests ``select`` picks (a ``-m`` expression), in ``workers`` xdist
    processes if given, under coverage if asked."""
    session.install("-e", f".[{extras}]", *TEST_TOOLS, *tools, *([COVERAGE] if coverage else []))
    args = ["pytest", *(["-m", select] if select else []), *(["-n", workers] if workers else [])]
    env = {
        "PYTHONHASHSEED": "0",
        "JOBSTATUS_REQUIRE_SERVICES": os.environ.get("JOBSTATUS_REQUIRE_SERVICES", "0"),
    }
    if not coverage:
        session.run(*args, *session.posargs, env=env)
        return
    session.run("coverage", "erase")
    try:
        session.run("coverage", "run", "-m", *args, *session.posargs, env=env)
    finally:
        session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def quick(session: nox.Session) -> None:
    """The inner loop: every test that needs no service and is not slow, on every core."""
    _tests(
        session,
        extras="all,testing",
        select="not services and not slow",
        tools=tuple(SERVICE_TOOLS),
        workers="auto",
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite with every extra, against the real services, on every core, with
    branch coverage."""
    _tests(session, extras="all,testing", tools=tuple(SERVICE_TOOLS), workers="auto", coverage=True)


@nox.session
def tests_core(session: nox.Session) -> None:
    """The core alone, no extras installed: proves it imports no framework and no driver."""
    _tests(session, extras="testing", select="not extras and not services", workers="auto")


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
    """Draw the benchmark charts from benchmarks/results, build the HTML docs with warnings
    as errors and run their doctests; ``nox -s docs -- serve`` also serves them on
    http://127.0.0.1:8000."""
    # The FastAPI examples in the docs run through starlette's TestClient, which needs httpx2.
    # matplotlib draws the benchmark charts and the docs' state diagram; standardwebhooks
    # verifies the webhooks page's receivers.
    session.install(
        "-e",
        ".[all,testing]",
        "sphinx>=7",
        "furo",
        "httpx",
        "httpx2",
        PLOTTING,
        "standardwebhooks>=1.0",
        "selenium>=4.20",  # the dashboard's screenshots (Chromium from the system's packages)
    )
    session.run("python", "benchmarks/plot.py")
    common = ["-E", "-W", "--keep-going", "-n", "docs"]
    session.run("sphinx-build", "-b", "doctest", *common, "docs/_build/doctest")
    session.run("sphinx-build", "-b", "html", *common, "docs/_build/html")
    if "serve" in session.posargs:
        session.run(
            "python", "-m", "http.server", "8000", "-b", "127.0.0.1", "-d", "docs/_build/html"
        )


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks (not part of CI), then draw their charts: the figures land in
    benchmarks/results/, the charts in docs/_static/benchmarks/."""
    tools = ["moto[server]>=5", "celery>=5.3", "rq>=2", "hiredis", "selenium>=4.20", PLOTTING]
    session.install("-e", ".[all,testing]", *tools)
    for script in sorted(os.listdir("benchmarks")):
        if script.startswith("bench_") and script.endswith(".py"):
            session.run("python", f"benchmarks/{script}", *session.posargs)
    session.run("python", "benchmarks/plot.py")


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel, ``twine check`` them, check that the wheel holds every
    file of the package that git tracks (``py.typed``, data files), then install the wheel in
    a clean virtualenv and import it there."""
    session.install("build>=1", "twine>=5")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        session.error(f"expected one wheel and one sdist in dist/, found {os.listdir(dist)}")
    session.run("twine", "check", "--strict", str(wheels[0]), str(sdists[0]))
    tracked = subprocess.run(
        ["git", "ls-files", "jobstatus"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    with zipfile.ZipFile(wheels[0]) as wheel:
        missing = sorted(set(tracked) - set(wheel.namelist()))
    if not tracked or missing:
        session.error(f"the wheel lacks files git tracks under jobstatus/: {missing or tracked}")
    with tempfile.TemporaryDirectory() as clean:
        venv = Path(clean) / "venv"
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        session.run(python, "-m", "pip", "install", "-q", str(wheels[0]), external=True)
        check = (
            "import importlib.metadata, jobstatus, jobstatus._version as v; "
            "assert importlib.metadata.version('jobstatus') == v.__version__; "
            f"assert jobstatus.__file__.startswith({str(venv)!r}), jobstatus.__file__; "
            "print('installed jobstatus', v.__version__, 'from', jobstatus.__file__)"
        )
        with session.chdir(clean):  # not the checkout: the import must find the wheel's copy
            session.run(python, "-c", check, external=True)
