"""The change feed: every write to a Redis store publishes the job id on ``<prefix>:changes``.

A watcher (one per process, fanning changes out to long-polling requests) subscribes once::

    with store.changes() as feed:
        while True:
            job_id = feed.get(timeout=1.0)   # None when nothing changed within the timeout
            ...

Pub/sub delivers at most once: a message published while the subscriber was disconnected is
lost, so a watcher re-reads what it waits on after :meth:`ChangeFeed.get` raised. The feed
holds one connection of its own; it belongs to the process and thread that made it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import redis

from jobstatus.backends.redis._client import ERRORS, failure


class ChangeFeed:
    """Job ids as a store's writers change them, from Redis pub/sub."""

    def __init__(
        self, client: redis.Redis, channel: str, where: str, *, timeout: float = 5.0
    ) -> None:
        """Subscribe, and wait (up to ``timeout`` seconds) until Redis confirmed it: every
        write after the constructor returned is seen."""
        self.channel = channel
        self._where = where
        untyped: Any = client  # redis-py leaves pubsub() untyped
        self._pubsub: Any = untyped.pubsub()
        try:
            self._pubsub.subscribe(channel)
            deadline = time.monotonic() + timeout
            while True:
                message = self._pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message.get("type") == "subscribe":
                    break
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError("no confirmation of the subscription")
        except ERRORS as exc:
            self._pubsub.close()
            raise failure(f"cannot subscribe to {channel}", where, exc) from exc

    def get(self, timeout: float = 1.0) -> str | None:
        """The next changed job id, or None when none came within ``timeout`` seconds.
        Raises :class:`~jobstatus.StorageError` when the connection failed (re-read, then call
        again: the feed reconnects)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            except ERRORS as exc:
                raise failure(f"cannot read {self.channel}", self._where, exc) from exc
            if message is not None and message.get("type") == "message":
                data = message["data"]
                return data.decode("utf-8") if isinstance(data, bytes) else str(data)
            if time.monotonic() >= deadline:
                return None

    def __iter__(self) -> Iterator[str]:
        """Every changed job id, waiting as long as it takes."""
        while True:
            job_id = self.get(timeout=1.0)
            if job_id is not None:
                yield job_id

    def close(self) -> None:
        """Unsubscribe and close the feed's connection."""
        self._pubsub.close()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
