"""Heartbeats: a run that writes nothing for a while still shows it is alive.

A run's heartbeat is its last write (the record's ``updated_at``): progress writes count, and a
run that has not written for ``interval`` seconds gets its record written again, unchanged but
for any progress still held back. One daemon thread per tracker and process does this for every
run in the process; it exists only while runs do, and a forked child starts its own.
:meth:`JobTracker.reap <jobstatus.JobTracker.reap>` fails the ``running`` jobs whose heartbeat
stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class _Beating(Protocol):
    last_write: float

    def beat(self) -> None: ...


class Heartbeat:
    """Rewrites the record of every registered run that has not written for ``interval``."""

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"heartbeat_interval must be positive, got {interval!r}")
        self.interval = interval
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._runs: dict[int, _Beating] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, run: _Beating) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._runs, self._thread = os.getpid(), {}, None
            self._runs[id(run)] = run
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._beat_until_idle, name="jobstatus-heartbeat", daemon=True
                )
                self._thread.start()

    def remove(self, run: _Beating) -> None:
        with self._lock:
            self._runs.pop(id(run), None)
        self._wake.set()

    def _beat_until_idle(self) -> None:
        while True:
            with self._lock:
                runs = list(self._runs.values())
                if not runs:
                    self._thread = None
                    return
            now = time.monotonic()
            next_due = now + self.interval
            for run in runs:
                if run.last_write + self.interval <= now:
                    try:
                        run.beat()
                    except Exception as exc:  # the store failed: try again next interval
                        log.warning("heartbeat write failed: %s", exc)
                        run.last_write = now
                next_due = min(next_due, run.last_write + self.interval)
            self._wake.wait(max(0.005, next_due - time.monotonic()))
            self._wake.clear()
