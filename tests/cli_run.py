"""Running the ``jobstatus`` command in tests: in this process, or as a user would."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from jobstatus.cli import main
from jobstatus.record import JobRecord
from jobstatus.store import Store

ROOT = Path(__file__).resolve().parents[1]

#: The variables a test must not inherit from the shell that runs it.
CONFIG_VARIABLES = frozenset(
    {"JOBSTATUS_STORE", "LOCAL_STORAGE_PATH", "API_KEY", "JOBSTATUS_API_KEYS"}
    | {"JOBSTATUS_JOB_ID_PATTERN"}
)


def cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """``main(args)`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stderr
    sys.stdin, sys.stderr = io.StringIO(stdin), err
    try:
        code = main(list(args), out=out)
    finally:
        sys.stdin, sys.stderr = saved
    return code, out.getvalue(), err.getvalue()


def run(
    *args: str,
    stdin: str = "",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m jobstatus ARGS`` in a fresh process, with no configuration inherited."""
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobstatus", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


def one_line_error(stderr: str) -> bool:
    """A single ``jobstatus…`` line on stderr, with no traceback."""
    return stderr.startswith("jobstatus") and stderr.count("\n") == 1 and "Traceback" not in stderr


class Spy:
    """A store that records every call and hands it to ``store``, or raises ``fail[name]``,
    or answers ``answers[name]`` instead. It has no ``exists`` (the method is optional);
    :class:`SpyWithExists` has one."""

    WRITES = frozenset({"put", "restore", "delete", "purge"})

    def __init__(
        self,
        store: Store,
        *,
        fail: dict[str, BaseException] | None = None,
        answers: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.fail = fail or {}
        self.answers = answers or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, kwargs))
        if name in self.fail:
            raise self.fail[name]
        if name in self.answers:
            return self.answers[name]
        return getattr(self.store, name)(*args, **kwargs)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def get(self, job_id: str) -> JobRecord:
        return cast(JobRecord, self._call("get", job_id))

    def put(self, record: JobRecord, **options: Any) -> JobRecord:
        return cast(JobRecord, self._call("put", record, **options))

    def restore(self, records: Iterable[JobRecord]) -> int:
        return cast(int, self._call("restore", list(records)))

    def delete(self, job_id: str) -> bool:
        return cast(bool, self._call("delete", job_id))

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        return iter(cast(Iterable[JobRecord], self._call("list", **filters)))

    def purge(self, **options: Any) -> int:
        return cast(int, self._call("purge", **options))

    def close(self) -> None:
        self.calls.append(("close", {}))

    def __enter__(self) -> Spy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SpyWithExists(Spy):
    def exists(self) -> bool:
        return cast(bool, self._call("exists"))


def stand_in(monkeypatch: pytest.MonkeyPatch, *stores: Spy) -> None:
    """The command's next ``open_store`` calls return ``stores``, in order."""
    queue = list(stores)
    monkeypatch.setattr("jobstatus.cli.common.open_store", lambda url: queue.pop(0))
