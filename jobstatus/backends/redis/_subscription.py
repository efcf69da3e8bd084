"""Change notification for the Redis store: its change feed, read by a thread of its own.

:class:`FeedSubscription` meets the contract of ``subscribe`` in :mod:`jobstatus.store`:

- it returns once Redis confirmed the subscription, so every write that completes after it
  returned is reported (each write script publishes its job id after the write, inside the
  script: a reported change is visible to ``get``);
- writes by any process on the same Redis and prefix are reported;
- pub/sub loses what is published while the connection is down, so after a broken connection
  the thread subscribes again (waiting 0.1 s, doubling up to 5 s, between attempts) and, once
  live, calls ``callback(None)``: the subscriber re-reads;
- callbacks run on the feed's thread, one at a time; their exceptions are logged and ignored;
- once :meth:`FeedSubscription.close` returned, no callback starts.

It has no ``flush()``: a watcher on Redis asks the store before it answers a conditional
request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from jobstatus.backends.redis._changes import ChangeFeed
from jobstatus.errors import StorageError
from jobstatus.store import ChangeCallback

__all__ = ["FeedSubscription"]

log = logging.getLogger("jobstatus.backends.redis")

#: Seconds between checks of the closed flag while the feed is quiet.
_QUIET = 0.5
_FIRST_RETRY, _LAST_RETRY = 0.1, 5.0
#: How long ``subscribe`` waits for the first subscription (it has its own bound as well).
_START = 30.0


class FeedSubscription:
    """A live subscription to a Redis store's change feed; see the module for the contract."""

    def __init__(self, open_feed: Callable[[], ChangeFeed], callback: ChangeCallback) -> None:
        """Subscribe on a new thread and return once it is live; raise the
        :class:`~jobstatus.StorageError` of a first subscription that failed."""
        self._open_feed = open_feed
        self._callback = callback
        self._closed = threading.Event()
        self._calling = threading.RLock()  # held while a callback runs, and by close()
        self._started = threading.Event()
        self._failure: StorageError | None = None
        self._thread = threading.Thread(target=self._run, name="jobstatus-redis-feed", daemon=True)
        self._thread.start()
        if not self._started.wait(_START):
            self.close()
            raise StorageError("cannot subscribe to the change feed: no answer from Redis")
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Stop the callbacks, then wait (about half a second at most) until the feed's thread
        closed its connection; idempotent."""
        with self._calling:
            self._closed.set()
        if threading.current_thread() is not self._thread:  # not from inside a callback
            self._thread.join(_QUIET * 4)

    def _run(self) -> None:
        feed: ChangeFeed | None
        try:
            feed = self._open_feed()
        except StorageError as exc:
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        while feed is not None:
            try:
                job_id = feed.get(timeout=_QUIET)
            except Exception as exc:  # StorageError, or the client's own once its pool closed
                if self._closed.is_set():
                    feed.close()
                    return
                log.warning("change feed lost, subscribing again: %s", exc)
                feed.close()
                feed = self._reopen()
                if feed is not None:
                    self._call(None)  # what was published meanwhile is lost: re-read
                continue
            if self._closed.is_set():
                feed.close()
                return
            if job_id is not None:
                self._call(job_id)

    def _reopen(self) -> ChangeFeed | None:
        """A new feed, once Redis answers again; None once the subscription is closed."""
        pause = _FIRST_RETRY
        while not self._closed.wait(pause):
            try:
                return self._open_feed()
            except StorageError as exc:
                log.debug("change feed still down: %s", exc)
                pause = min(pause * 2, _LAST_RETRY)
        return None

    def _call(self, job_id: str | None) -> None:
        with self._calling:
            if self._closed.is_set():
                return
            try:
                self._callback(job_id)
            except Exception:
                log.exception("a change callback failed")
