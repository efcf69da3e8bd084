"""The writer process of a crash trial, and how the parent forks, waits for and kills it.

Private to ``jobstatus.testing._crash``. The writer and the parent share one page of memory
(:class:`Shared`): the numbers at the indexes below, then a failing writer's message.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from jobstatus.store import ABSENT, Store
from jobstatus.testing._crash_ops import Op, perform, record_of

__all__ = [
    "ALL_DONE",
    "ELAPSED",
    "EVENTS",
    "FINISHED",
    "GO",
    "READY",
    "REWRITTEN",
    "STARTED",
    "WRITING",
    "Observed",
    "Shared",
    "fork",
    "kill",
    "pause",
    "wait",
    "writer",
]

# The indexes of the shared numbers.
READY, STARTED, FINISHED, WRITING, EVENTS, ELAPSED, REWRITTEN, GO = range(8)
ALL_DONE = 2  # READY once every operation returned
_MESSAGE = 64  # byte offset of a failing writer's message
_WAIT_CAP = 60.0  # seconds a step of a trial may take before the trial says it hung

#: job id -> what ``get`` shows: (seq, status), None (no record) or "unreadable".
Observed = dict[str, Any]


class Shared:
    """A page of memory the writer and the parent share across ``fork``."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, mmap.PAGESIZE)
        self.numbers = memoryview(self._map).cast("q")

    def reset(self) -> None:
        self._map[:] = bytes(len(self._map))

    def message(self) -> str:
        return self._map[_MESSAGE:].rstrip(b"\0").decode("utf-8", "replace")

    def say(self, text: str) -> None:
        data = text.encode("utf-8")[: len(self._map) - _MESSAGE]
        self._map[_MESSAGE : _MESSAGE + len(data)] = data


def fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        return os.fork()


def writer(
    store: Store, rewrite: Observed | None, ops: list[Op], shared: Shared, kill_at_event: int
) -> NoReturn:
    """The forked writer: first the next writer of the previous trial (``rewrite``), then,
    once the parent says go, the operations. Never returns: dies by SIGKILL, or exits 3 when
    a write raised."""
    numbers = shared.numbers
    try:
        if rewrite is not None:
            _rewrite(store, rewrite)
        numbers[REWRITTEN] = 1
        while not numbers[GO]:
            time.sleep(0.0005)
        if kill_at_event:

            def hook(event: str, args: tuple[Any, ...]) -> None:
                if numbers[WRITING]:
                    numbers[EVENTS] += 1
                    if numbers[EVENTS] == kill_at_event:
                        os.kill(os.getpid(), signal.SIGKILL)

            sys.addaudithook(hook)
        since = [0]

        def writing(flag: bool) -> None:
            # ELAPSED adds up the time inside store calls, past the first (which connects)
            numbers[WRITING] = int(flag)
            now = time.perf_counter_ns()
            if flag:
                since[0] = now
            elif numbers[STARTED] > 1:
                numbers[ELAPSED] += now - since[0]

        numbers[READY] = 1
        for n, op in enumerate(ops, 1):
            numbers[STARTED] = n
            perform(store, op, writing)
            numbers[FINISHED] = n
        numbers[READY] = ALL_DONE
        while True:  # wait for the parent's SIGKILL
            time.sleep(1)
    except BaseException as exc:
        shared.say(f"{type(exc).__name__}: {exc}")
    os._exit(3)


def _rewrite(store: Store, observed: Observed) -> None:
    """Write every job again: its record as it is, or (for a job without one) a record and
    its delete. Each write needs the job's lock, wherever the store has one."""
    for job_id, state in observed.items():
        if isinstance(state, tuple):
            store.put(record_of(job_id, *state), force=True)
        elif state is None:
            store.put(record_of(job_id, 1, "running"), expect_version=ABSENT)
            store.delete(job_id)


def wait(pid: int, until: Callable[[], bool], cap: float = _WAIT_CAP) -> int | None:
    """Poll until ``until()`` or the process ended; its wait status if it ended, else None."""
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if until():
            return None
        time.sleep(0.0005)
    return None


def pause(seconds: float) -> None:
    """Wait ``seconds``; below a millisecond by spinning, which ``sleep`` cannot resolve."""
    if seconds >= 0.001:
        time.sleep(seconds)
        return
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def kill(pid: int) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]
