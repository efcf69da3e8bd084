"""The core's boundaries: what importing it pulls in, and the errors for missing extras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobstatus import ConfigurationError, open_store
from jobstatus.backends import known_schemes

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = [
    "flask",
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "psycopg",
    "pymysql",
    "fsspec",
    "s3fs",
    "botocore",
    "gunicorn",
    "uvicorn",
    "werkzeug",
]


def test_the_core_imports_no_framework_and_no_driver() -> None:
    code = (
        "import sys, json, jobstatus, jobstatus.cli, jobstatus.adapters.wsgi, "
        "jobstatus.backends.memory, jobstatus.backends.filesystem\n"
        "jobstatus.open_store('memory://'); jobstatus.open_store('/tmp/x-jobstatus-probe')\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "jobstatus" in loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded.intersection(FORBIDDEN))


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store("nosuch://localhost/0")
    message = str(info.value)
    assert "unknown store scheme 'nosuch'" in message
    for scheme in ("memory", "file", "sqlite", "postgresql", "mysql", "s3", "fsspec", "redis"):
        assert scheme in message
        assert scheme in known_schemes()


def test_a_password_in_an_unknown_url_is_hidden() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store("nosuch://user:hunter2@localhost/0")
    assert "hunter2" not in str(info.value)


def test_a_missing_extra_names_the_pip_install_line() -> None:
    """In a process where SQLAlchemy and fsspec cannot be imported."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sqlalchemy', 'fsspec', 's3fs', 'gunicorn'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from jobstatus import open_store, ConfigurationError\n"
        "for url in ('sqlite:///x.db', 's3://bucket/p'):\n"
        "    try:\n"
        "        open_store(url)\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc)\n"
        "from jobstatus.cli import main\n"
        "sys.exit(main(['serve', '--store', 'memory://']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"API_KEY": "k", "PATH": ""},
    )
    lines = result.stdout.splitlines()
    assert lines[0] == 'sqlalchemy is not installed; install it with: pip install "jobstatus[sql]"'
    assert lines[1].startswith(
        'fsspec is not installed; install it with: pip install "jobstatus[s3]"'
    )
    assert result.returncode == 2
    assert result.stderr == (
        'jobstatus: gunicorn is not installed; install it with: pip install "jobstatus[serve]"\n'
    )
