"""The integrations package imports no queue library; each module imports its own and, when it
is missing, says which extra to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from jobstatus import ConfigurationError
from tests.queue_workers import ROOT

QUEUE_LIBRARIES = ("celery", "kombu", "rq", "redis", "dramatiq")


def test_the_package_and_the_core_import_no_queue_library() -> None:
    code = (
        "import sys, jobstatus, jobstatus.integrations, jobstatus.executor\n"
        f"print(sorted(set({QUEUE_LIBRARIES!r}) & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [("celery", "celery", "celery"), ("rq", "rq", "rq"), ("dramatiq", "dramatiq", "dramatiq")],
)
def test_a_missing_queue_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, library: str, extra: str
) -> None:
    name = f"jobstatus.integrations.{module}"
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, library, None)  # "import celery" now raises ImportError
    with pytest.raises(ConfigurationError, match=rf'pip install "jobstatus\[{extra}\]"'):
        importlib.import_module(name)
    monkeypatch.delitem(sys.modules, name, raising=False)
