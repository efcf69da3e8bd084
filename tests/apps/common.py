"""What the test apps of every queue share: the gates the tests open, and the bodies of the
tasks that wait -- for a gate, for a cancel, or to be killed."""

from __future__ import annotations

import time
from pathlib import Path

from jobstatus.integrations import check_cancelled, progress

DEADLINE = 120.0  # no task waits longer than this for the test


def gate(folder: str, name: str) -> None:
    """Wait until the test creates ``folder/name`` (or the deadline passes)."""
    path, deadline = Path(folder) / name, time.monotonic() + DEADLINE
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened gate {name}")
        time.sleep(0.01)


def steps(folder: str, total: int, release: str) -> str:
    """Report ``total`` steps, then wait for the gate ``release``."""
    for n in range(1, total + 1):
        progress(current=n, total=total, message=f"step {n}")
    gate(folder, release)
    return f"{total} steps"


def patient() -> str:
    """Report progress until a client cancels the job (``check_cancelled`` raises)."""
    deadline, n = time.monotonic() + DEADLINE, 0
    while time.monotonic() < deadline:
        n += 1
        progress(percent=min(n, 99), message="waiting")
        check_cancelled()
        time.sleep(0.01)
    return "never cancelled"


def sleeper(folder: str) -> str:
    """Report progress once, then wait for a gate nobody opens: for cancels and kills."""
    progress(percent=1, message="asleep")
    gate(folder, "never")
    return "woke up"
