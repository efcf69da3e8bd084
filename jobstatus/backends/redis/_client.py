"""redis-py clients for a store: built from a URL, one pool per process, no call that hangs.

- Every connect and every answer waits at most ``socket_connect_timeout`` / ``socket_timeout``
  seconds (both ``timeout``, 5 by default).
- A command that meets a dropped connection (Redis restarted, a proxy cut it) is sent once more
  on a fresh one; a timeout is never retried, so a hung server costs one timeout, not several.
- Each thread keeps one pooled connection between calls (at most half the pool's
  ``max_connections`` are kept); it goes back to the pool when the thread ends or the store
  closes.
- After ``fork()`` (gunicorn ``--preload``) the child builds its own client and pool on first
  use; the parent's sockets are never written to by the child.
- A client the host passes in is used as it is (its own timeouts and retries): redis-py's pool
  already opens fresh connections in a forked child.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis
from redis import sentinel as _sentinel_module
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobstatus.backends.redis._url import RedisTarget
from jobstatus.errors import ConfigurationError, StorageError, redact

#: What a call to Redis may raise: redis-py's errors, and socket errors it let through.
ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
# redis-py leaves these untyped.
Sentinel: Any = _sentinel_module.Sentinel


def _retry_once() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


class _Process:
    """The clients of a store in one process: a shared client, and per thread a client that
    keeps one connection of the pool (a checkout and a checkin per call cost locks and a
    ``poll`` of the socket: more than the store's own work on a lookup)."""

    def __init__(self, shared: redis.Redis) -> None:
        self.pid = os.getpid()
        self.shared = shared
        self.local = threading.local()
        # Kept clients, to give their connections back on close; a thread's goes back to the
        # pool by itself when the thread ends (the client is garbage then).
        self.kept: weakref.WeakSet[redis.Redis] = weakref.WeakSet()
        # At most half the pool is kept, so the host's and the store's other calls find one.
        self.keep_at_most = shared.connection_pool.max_connections // 2


class Connector:
    """The clients of a store in the current process."""

    def __init__(self, *, target: RedisTarget | None = None, client: Any = None) -> None:
        if (target is None) == (client is None):
            raise TypeError("give a target or a client")
        if client is not None and not isinstance(client, redis.Redis):
            kind = type(client).__name__
            raise ConfigurationError(
                f"the Redis store needs a redis.Redis client, not {kind}"
                + (": Redis Cluster is not supported" if "Cluster" in kind else "")
            )
        self.target = target
        self._lock = threading.Lock()
        self._sentinel: Any = None
        self._process = _Process(client if client is not None else self._build())
        self.where = target.where if target is not None else _describe_client(self._process.shared)

    def _current(self) -> _Process:
        process = self._process
        if process.pid != os.getpid():
            with self._lock:
                process = self._process
                if process.pid != os.getpid():
                    # After fork(): a client of this process. The parent's is dropped, not
                    # closed: closing would only close the child's copies of its sockets.
                    shared = self._build() if self.target is not None else process.shared
                    process = self._process = _Process(shared)
        return process

    def shared(self) -> redis.Redis:
        """The client of this process whose calls check a connection out of the pool."""
        return self._current().shared

    def client(self) -> redis.Redis:
        """The client of this process and thread, which keeps its connection between calls."""
        process = self._current()
        kept: redis.Redis | None = getattr(process.local, "client", None)
        if kept is not None:
            return kept
        if len(process.kept) >= process.keep_at_most:
            return process.shared
        # Made outside the lock: it connects, which may wait for the timeout, and no other
        # thread's call may wait behind it.
        kept = redis.Redis(
            connection_pool=process.shared.connection_pool, single_connection_client=True
        )
        with self._lock:
            process.kept.add(kept)
        process.local.client = kept
        return kept

    def _build(self) -> redis.Redis:
        target = self.target
        assert target is not None
        options = {"retry": _retry_once(), **target.connection}
        if target.kind != "sentinel":
            return redis.Redis(**options)
        # The sentinels get the timeouts (see _url) and one retry too: a dead sentinel is
        # skipped, not waited on.
        self._sentinel = Sentinel(
            list(target.sentinels),
            sentinel_kwargs={"retry": _retry_once(), **target.sentinel_kwargs},
        )
        client: redis.Redis = self._sentinel.master_for(target.service_name, **options)
        return client

    def close(self) -> None:
        """Give the kept connections back to the pool; close the connections of a client this
        store built (a host's client stays open)."""
        process = self._process
        if process.pid != os.getpid():
            return
        for kept in list(process.kept):
            kept.close()
        if self.target is None:
            return
        process.shared.close()
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:
                sentinel.close()


def _describe_client(client: redis.Redis) -> str:
    """``redis://host:port/db`` (or ``unix://path``) of a host's client, without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{db}"


def describe(exc: BaseException) -> str:
    """One line naming a failure: its type and message, credentials hidden."""
    text = " ".join(str(exc).split())
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def failure(what: str, where: str, exc: BaseException) -> StorageError:
    """The :class:`~jobstatus.StorageError` for a failed call: what failed, where, and why."""
    return StorageError(f"{what}: {describe(exc)} (Redis at {where})")
