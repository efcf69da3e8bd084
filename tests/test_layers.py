"""Dependencies point one way: no core module imports a backend or an adapter.

The core is every module of ``jobstatus/`` outside ``backends/``, ``adapters/`` and the
command line (``cli``, ``__main__``), which, like the package's ``__init__``, may use them all.
Each core module is imported alone in a fresh interpreter whose ``jobstatus`` package is an
empty shell (``jobstatus/__init__.py`` does not run), so what it pulls in is its own doing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jobstatus"
NOT_CORE = {"__init__", "__main__", "cli"}
CORE = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem not in NOT_CORE)

PROBE = """
import importlib, json, sys, types
shell = types.ModuleType("jobstatus")
shell.__path__ = [sys.argv[1]]
sys.modules["jobstatus"] = shell
importlib.import_module("jobstatus." + sys.argv[2])
print(json.dumps(sorted(sys.modules)))
"""


def test_the_core_is_every_module_but_the_layers_above_it() -> None:
    assert {"errors", "record", "_schema", "service", "store", "tracker", "_serve"} <= set(CORE)
    assert "openapi" not in CORE  # it serves the FastAPI adapter only: adapters/_openapi.py


@pytest.mark.parametrize("module", CORE)
def test_a_core_module_imports_no_backend_and_no_adapter(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE), module],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert f"jobstatus.{module}" in loaded
    above = [
        name for name in loaded if name.startswith(("jobstatus.backends", "jobstatus.adapters"))
    ]
    assert above == [], f"jobstatus.{module} imports {above}"
