"""Answers that wait: what :meth:`StatusService.respond <jobstatus.StatusService.respond>`
returns for a long-poll, and the caps on how many wait at once.

A :class:`Pending` holds a registered :class:`~jobstatus.watch.Waiter` and knows how to build
the answer once the job changed, went away or the wait ran out. The adapter decides how to
wait for it:

- WSGI and Flask call :meth:`Pending.result`, which blocks the worker thread. At most
  ``max_waiters`` requests of a service block at once; past that, a wait answers at once
  (as if it had run out), so waiting clients can never take every worker thread.
- ASGI (FastAPI) awaits :meth:`Pending.result_async`, which holds no thread (an asyncio future
  the watcher resolves thread-safely) and ends early, freeing the waiter, when the client
  disconnects. At most ``max_async_waiters`` requests of a service await at once.

Either way the answer comes at the deadline at the latest, whatever the store does, and the
waiter is released however the wait ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jobstatus.metrics import ServiceMetrics
from jobstatus.watch import Waiter
from jobstatus.wire import Reply

__all__ = ["DEFAULT_MAX_ASYNC_WAITERS", "DEFAULT_MAX_WAITERS", "Pending", "WaitLimits"]

#: Requests of one service that may block a thread while they wait (WSGI, Flask).
DEFAULT_MAX_WAITERS = 8
#: Requests of one service that may wait at once without a thread (ASGI).
DEFAULT_MAX_ASYNC_WAITERS = 10_000


class WaitLimits:
    """How many requests of a service wait now, blocking a thread or not, and the caps; each
    change is told to ``metrics`` (:meth:`~jobstatus.metrics.ServiceMetrics.waiters_changed`)."""

    def __init__(
        self, max_waiters: int, max_async_waiters: int, metrics: ServiceMetrics | None = None
    ) -> None:
        if max_waiters < 0 or max_async_waiters < 0:
            raise ValueError("max_waiters and max_async_waiters must not be negative")
        self._caps = {True: max_waiters, False: max_async_waiters}
        self._held = {True: 0, False: 0}
        self._lock = threading.Lock()
        self._metrics = metrics

    def held(self, *, blocking: bool) -> int:
        """How many wait now."""
        return self._held[blocking]

    def take(self, *, blocking: bool) -> bool:
        with self._lock:
            if self._held[blocking] >= self._caps[blocking]:
                return False
            self._held[blocking] += 1
        if self._metrics is not None:
            self._metrics.waiters_changed(_MODES[blocking], 1)
        return True

    def give(self, *, blocking: bool) -> None:
        with self._lock:
            self._held[blocking] -= 1
        if self._metrics is not None:
            self._metrics.waiters_changed(_MODES[blocking], -1)


_MODES = {True: "thread", False: "async"}


class Pending:
    """An answer held until its job changes, it goes away, or its wait runs out.

    ``finish(woken)`` builds the answer from ``waiter.current`` (woken: the job changed or went
    away; not woken: the wait ran out or could not be held).
    """

    def __init__(
        self,
        waiter: Waiter,
        deadline: float,
        finish: Callable[[bool], Reply],
        limits: WaitLimits,
    ) -> None:
        self.waiter = waiter
        #: ``time.monotonic()`` when the wait runs out.
        self.deadline = deadline
        self._finish = finish
        self._limits = limits

    def result(self) -> Reply:
        """Block this thread until the answer is known; return it."""
        try:
            woken = self.waiter.woken
            if not woken and self._limits.take(blocking=True):
                try:
                    woken = self.waiter.wait(self.deadline - time.monotonic())
                finally:
                    self._limits.give(blocking=True)
            return self._finish(woken)
        finally:
            self.waiter.close()

    async def result_async(self, disconnected: Awaitable[Any] | None = None) -> Reply | None:
        """Await the answer holding no thread; None when ``disconnected`` completes first
        (the client left: there is nobody to answer)."""
        handed_over = False
        try:
            woken: bool | None = self.waiter.woken
            if not woken and self._limits.take(blocking=False):
                try:
                    handed_over = True
                    woken = await self.waiter.wait_async(
                        self.deadline - time.monotonic(), disconnected
                    )
                finally:
                    self._limits.give(blocking=False)
                if woken is None:
                    return None
            return self._finish(bool(woken))
        finally:
            self.waiter.close()
            close = getattr(disconnected, "close", None)
            if not handed_over and close is not None:
                close()  # a coroutine that was never awaited: closed without a warning

    def cancel(self) -> None:
        """Give up the wait (nobody will ask for the answer)."""
        self.waiter.close()

    def observed(self, observe: Callable[[Reply], None]) -> Pending:
        """This answer, calling ``observe(reply)`` once its reply is built (not when the
        client left first: nobody was answered)."""
        finish = self._finish

        def observed_finish(woken: bool) -> Reply:
            reply = finish(woken)
            observe(reply)
            return reply

        self._finish = observed_finish
        return self
