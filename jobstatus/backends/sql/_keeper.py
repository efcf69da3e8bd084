"""The pool connections the store keeps checked out between calls."""

from __future__ import annotations

import math
import os
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, QueuePool

from jobstatus.backends.sql._engine import idle_limit
from jobstatus.backends.sql._watchdog import NoAnswer

__all__ = ["KEEP_FOR", "Keeper", "Kept"]

#: Seconds a connection stays kept out of the pool, at most, before it goes back there (and
#: meets the pool's pre-ping and recycle rules again).
KEEP_FOR = 30.0

# Kept connections a forked child inherited: never used, never closed (closing, or a rollback
# as the pool gives one back, would speak on the parent's socket), so never garbage-collected.
_INHERITED: list[Any] = []


class Kept:
    """A pool connection the store keeps checked out, and when."""

    __slots__ = ("connection", "pool", "since", "used")

    def __init__(self, connection: Any, pool: Pool, now: float) -> None:
        self.connection = connection  # SQLAlchemy's PoolProxiedConnection
        self.pool = pool  # the engine's pool it came from
        self.since = now  # time.monotonic() when it left the pool
        self.used = now  # time.monotonic() when its last call began


class Keeper:
    """The pool connections ``get``, ``put`` and ``restore`` keep checked out between calls.

    A call takes a kept connection without passing through the pool (no checkout events, no
    reset on return); connections of a ``QueuePool`` only, at most one fewer than its size,
    so that the host app and the store's other calls always find one in the pool. A kept
    connection goes back to the pool once it sat idle the engine's ``ping_after_idle``
    seconds (see :func:`create_sql_engine`) or was kept :data:`KEEP_FOR` seconds,
    so the pool's checkout rules (the idle ping, pre-ping, recycle, the host's events) see
    every connection at least that often.

    Kept connections are closed when the engine is disposed of and given back when the store
    is closed or garbage-collected; a forked child never touches its parent's.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        pool = engine.pool
        # StaticPool has one connection, and NullPool users asked for none to be kept.
        self.size = pool.size() - 1 if type(pool) is QueuePool else 0
        self.idle_limit = idle_limit(engine)
        self.idle: deque[Kept] = deque()
        self.pid = os.getpid()  # the process the kept connections belong to

    def take(self, deadline: float = math.inf) -> Kept:
        """A kept connection, or one fresh from the pool.

        Giving a connection back to the pool may wait for the server (the pool rolls it back,
        on MySQL); once that took until ``deadline`` (``time.monotonic()``), the server is
        not answering: :class:`~._watchdog.NoAnswer` rather than a connect that would wait
        as long again.
        """
        now = time.monotonic()
        while True:
            try:
                kept = self.idle.pop()
            except IndexError:
                pool = self.engine.pool
                return Kept(self.engine.raw_connection(), pool, now)
            if now - kept.used < self.idle_limit and now - kept.since < KEEP_FOR:
                kept.used = now
                return kept
            kept.connection.close()  # back to the pool, whose checkout rules apply to it
            now = time.monotonic()
            if now >= deadline:
                raise NoAnswer("no answer in time to the reset of an idle connection")

    def give(self, kept: Kept) -> None:
        """Keep a connection after a call that went well (its transaction is over)."""
        if kept.pool is not self.engine.pool:  # disposed of during the call: close it
            kept.connection.invalidate()
            kept.connection.close()
        elif len(self.idle) < self.size:
            self.idle.append(kept)
        else:
            kept.connection.close()

    def release(self, *, invalidate: bool = False) -> None:
        """Give every kept connection back to the pool, or close it for good (``invalidate``:
        the server dropped one, or the engine was disposed of)."""
        if os.getpid() != self.pid:
            self.abandon()
            return
        while self.idle:
            try:
                connection = self.idle.pop().connection
            except IndexError:  # another thread took the last one
                return
            if invalidate:
                connection.invalidate()
            connection.close()

    def abandon(self) -> None:
        """After a fork: forget the parent's connections without a word on their sockets."""
        _INHERITED.extend(self.idle)
        self.idle = deque()
        self.pid = os.getpid()


def on_dispose(keeper: Keeper) -> Callable[[Engine], None]:
    """A listener for ``Engine.dispose()``: the pool is gone, so the kept connections go too.
    It holds ``keeper`` weakly, so that a host's engine does not keep a dropped store alive."""
    ref = weakref.ref(keeper)

    def on_dispose(engine: Engine) -> None:
        keeper = ref()
        if keeper is not None:
            keeper.release(invalidate=True)

    return on_dispose
