"""The watcher: one per store and process, it wakes the requests that wait on a job.

A request that long-polls (``?wait=`` with ``If-None-Match``, or ``"wait"`` in a POST) gets a
:class:`Waiter` from :func:`watcher_for` ``(store).watch(job_id)``; the watcher tells every
waiter of a job when the job's record changes, so a thousand waiting clients cost the store
one read per change, not one per client:

- **Notified**: when the store offers change notification (``subscribe``, see
  :mod:`jobstatus.store`), the watcher subscribes once. Each change is read once, on the
  watcher's thread, and handed to the job's waiters; a "changes may have been missed" call
  re-reads every waited job once.
- **Polled**: otherwise the watcher's thread asks the store once per ``poll_interval`` for the
  records written since its last poll (``list(since=…)``), one query for all waiters
  together. A deleted job is then noticed when the wait ends, not before.

A waiter's deadline is its own: it gets its answer when its wait runs out, however the store
fares. A store call that fails is logged and retried with a growing pause (up to 5 s); a
subscription that cannot be set up is tried again every 30 s, polling meanwhile. The thread
starts with the first waiter and ends after 10 s without any.

With a subscription that can ``flush``, the watcher also remembers the versions it has read
(:meth:`Watcher.known`): a conditional request whose version is still current is answered
from memory, without a store read, and never from a version a change has superseded.

Waiting holds a thread only where the caller blocks (:meth:`Waiter.wait`, for WSGI);
:meth:`Waiter.wait_async` holds none (an asyncio future, resolved thread-safely), and returns
early when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from jobstatus.errors import JobNotFound
from jobstatus.metrics import ServiceMetrics
from jobstatus.record import JobRecord
from jobstatus.store import Store, Subscription, subscribe

__all__ = ["DEFAULT_POLL_INTERVAL", "GONE", "Gone", "State", "Waiter", "Watcher", "watcher_for"]

log = logging.getLogger(__name__)

#: Seconds between two polls of a store without change notification.
DEFAULT_POLL_INTERVAL = 1.0
# A poll asks for records written since the previous poll began, minus this many seconds:
# writers' clocks and stores' whole-second stamps may lag.
_POLL_SLACK = 2.0
_RESUBSCRIBE_SECONDS = 30.0
_LINGER_SECONDS = 10.0
_MAX_BACKOFF = 5.0
# How many current versions the watcher remembers, and how many invalidations it tracks
# before it forgets them all (then no answer from memory until re-read).
_KNOWN_MAX = 4096
_INVALIDATIONS_MAX = 16384


class Gone(enum.Enum):
    """The one value :data:`GONE`."""

    GONE = "GONE"


#: What a waiter learns when its job has no record any more.
GONE = Gone.GONE
#: What the watcher hands a waiter -- the job's current record, or :data:`GONE`.
State = JobRecord | Literal[Gone.GONE]


class Waiter:
    """One waiting request: woken once its job's version stops matching, or the job is gone.

    Register it (:meth:`Watcher.watch`) *before* reading the record the request compares with,
    then :meth:`expect` that record: no change can fall between the read and the wait.
    :meth:`close` it when done (the request answered, the client left).
    """

    __slots__ = (
        "__weakref__",
        "_early",
        "_event",
        "_future",
        "_loop",
        "_matches",
        "_watcher",
        "current",
        "job_id",
        "woken",
    )

    def __init__(self, watcher: Watcher, job_id: str) -> None:
        self.job_id = job_id
        self._watcher = watcher
        self._matches: Callable[[str | None], bool] | None = None
        self._early = False
        #: The job's newest state the waiter knows of.
        self.current: State | None = None
        #: True once the job changed (or went away) since :meth:`expect`.
        self.woken = False
        self._event: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def expect(self, record: JobRecord, matches: Callable[[str | None], bool]) -> None:
        """Wait from ``record`` on, while ``matches(version)`` holds for the job's version."""
        watcher = self._watcher
        with watcher._lock:
            self.current, self._matches = record, matches
            if self._early:  # a change was reported before the read: which is newer? re-read
                watcher._pending.add(self.job_id)
                watcher._wake.notify()

    def _offer(self, state: State) -> None:
        """The job's state as the watcher just read it; the watcher's lock is held."""
        matches = self._matches
        if matches is None:
            self._early = True
            return
        if self.woken:
            return
        self.current = state
        if state is GONE or not matches(state.version):
            self.woken = True
            if self._event is not None:
                self._event.set()
            if self._future is not None and self._loop is not None:
                # RuntimeError: the loop is closed, nobody awaits the future any more
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(_resolve, self._future)

    def wait(self, timeout: float) -> bool:
        """Block this thread until woken or ``timeout`` seconds passed; True when woken."""
        with self._watcher._lock:
            if self.woken:
                return True
            event = self._event = threading.Event()
        event.wait(max(timeout, 0.0))
        return self._was_woken()

    async def wait_async(
        self, timeout: float, disconnected: Awaitable[Any] | None = None
    ) -> bool | None:
        """Await, holding no thread, until woken (True), ``timeout`` passed (False) or
        ``disconnected`` completed (None: the client left)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._watcher._lock:
            if self.woken:
                return True
            self._loop, self._future = loop, future
        waits: set[asyncio.Future[Any]] = {future}
        gone = None if disconnected is None else asyncio.ensure_future(disconnected)
        if gone is not None:
            waits.add(gone)
        try:
            done, _ = await asyncio.wait(
                waits, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if gone is not None:
                gone.cancel()
            future.cancel()
        if self._was_woken():  # perhaps just now, with the answer still on its way
            return True
        return None if gone is not None and gone in done else False

    def _was_woken(self) -> bool:
        return self.woken

    def close(self) -> None:
        """Stop waiting; idempotent."""
        self._watcher._drop(self)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Watcher:
    """The watcher of one store in this process; get it with :func:`watcher_for`."""

    def __init__(self, store: Store, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.pid = os.getpid()
        #: Store calls the watcher made (reads after changes, polls), for tests and benchmarks.
        self.queries = 0
        #: Told when the watcher loses its source
        #: (:meth:`~jobstatus.metrics.ServiceMetrics.watcher_reconnected`), or None.
        self.metrics: ServiceMetrics | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiters: dict[str, list[Waiter]] = {}
        self._count = 0
        self._pending: set[str] = set()
        self._resync = False
        self._thread: threading.Thread | None = None
        self._subscribe_lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._flush: Callable[[], None] | None = None
        self._subscribe_at = 0.0
        self._known: dict[str, JobRecord] = {}
        self._seq = 0
        self._floor = 0
        self._invalidated: dict[str, int] = {}

    def __repr__(self) -> str:
        mode = "notified" if self._subscription is not None else "polling"
        return f"Watcher({self.store!r}, {mode}, waiting={self._count})"

    @property
    def waiting(self) -> int:
        """How many waiters are registered now."""
        return self._count

    @property
    def notified(self) -> bool:
        """True while the store's change notification feeds the watcher."""
        return self._subscription is not None

    # -- waiters ---------------------------------------------------------------------------

    def watch(self, job_id: str) -> Waiter:
        """A registered waiter for ``job_id``; :meth:`Waiter.expect` it once the record is read."""
        self._subscribe()
        waiter = Waiter(self, job_id)
        with self._lock:
            self._waiters.setdefault(job_id, []).append(waiter)
            self._count += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="jobstatus-watcher", daemon=True
                )
                self._thread.start()
        return waiter

    def _drop(self, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(waiter.job_id)
            if waiters is None or waiter not in waiters:
                return
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[waiter.job_id]
            self._count -= 1
            if not self._count:
                self._wake.notify()  # the thread may linger, then end

    # -- what the watcher knows ------------------------------------------------------------

    def token(self) -> int | None:
        """Take before reading a record that :meth:`remember` will get; None when the watcher
        cannot vouch for versions (no subscription that can flush)."""
        if self._subscribe() is None:
            return None
        return self._seq

    def known(self, job_id: str) -> JobRecord | None:
        """The job's current record as last read, when the watcher can vouch that no change
        finished since (its subscription flushed first); else None."""
        flush = self._subscribe()
        if flush is None:
            return None
        try:
            flush()
        except Exception as exc:
            log.warning("cannot flush %r's change feed (%s); reading the store", self.store, exc)
            self._reconnected("error")
            return None
        return self._known.get(job_id)

    def remember(self, record: JobRecord, token: int | None) -> None:
        """Remember ``record`` as current, unless a change was reported since ``token``."""
        if token is None or record.version is None:
            return
        with self._lock:
            if token < self._floor or self._invalidated.get(record.job_id, -1) > token:
                return
            known = self._known
            if len(known) >= _KNOWN_MAX and record.job_id not in known:
                del known[next(iter(known))]
            known[record.job_id] = record

    def _changed(self, job_id: str | None) -> None:
        """The subscription's callback."""
        with self._lock:
            self._seq += 1
            if job_id is None:
                self._reconnected("missed")
                self._known.clear()
                self._invalidated.clear()
                self._floor = self._seq
                self._resync = True
            else:
                self._known.pop(job_id, None)
                if len(self._invalidated) >= _INVALIDATIONS_MAX:
                    self._invalidated.clear()
                    self._floor = self._seq
                self._invalidated[job_id] = self._seq
                if job_id in self._waiters:
                    self._pending.add(job_id)
            if self._pending or self._resync:
                self._wake.notify()

    def _subscribe(self) -> Callable[[], None] | None:
        """Subscribe unless subscribed or recently refused; the subscription's flush, if any."""
        if self._subscription is not None or time.monotonic() < self._subscribe_at:
            return self._flush
        with self._subscribe_lock:
            if self._subscription is None and time.monotonic() >= self._subscribe_at:
                try:
                    subscription = subscribe(self.store, self._changed)
                except Exception as exc:
                    log.info("no change notification from %r (%s): polling", self.store, exc)
                    subscription = None
                if subscription is None:
                    self._subscribe_at = time.monotonic() + _RESUBSCRIBE_SECONDS
                else:
                    self._flush = getattr(subscription, "flush", None)
                    self._subscription = subscription
                    with self._lock:
                        self._resync = bool(self._waiters)  # they polled until now
        return self._flush

    def close(self) -> None:
        """Close the subscription; waiters still get their answers at their deadlines."""
        with self._subscribe_lock:
            subscription, self._subscription, self._flush = self._subscription, None, None
            self._subscribe_at = float("inf")
        if subscription is not None:
            subscription.close()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        idle_since = time.monotonic()
        last_poll = time.time()
        while True:
            with self._lock:
                if backoff:
                    self._wake.wait(backoff)  # a pause after a failed store call
                while True:
                    now = time.monotonic()
                    if self._count:
                        idle_since = now
                    elif now - idle_since >= _LINGER_SECONDS:
                        self._thread = None
                        return
                    polling = self._subscription is None and self._count > 0
                    since_poll = time.time() - last_poll
                    due = polling and since_poll >= self.poll_interval
                    if self._pending or self._resync or due:
                        break
                    self._wake.wait(self.poll_interval - since_poll if polling else _LINGER_SECONDS)
                if self._resync:
                    self._pending.update(self._waiters)
                    self._resync = False
                job_ids = [job_id for job_id in self._pending if job_id in self._waiters]
                self._pending.clear()
            try:
                if job_ids:
                    self._read(job_ids)
                if due:
                    started = time.time()
                    self._poll(since=last_poll - _POLL_SLACK)
                    last_poll = started
                    self._subscribe()
                backoff = 0.0
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.1), _MAX_BACKOFF)
                log.warning("watching %r failed (%s); again in %.1f s", self.store, exc, backoff)
                self._reconnected("error")

    def _reconnected(self, reason: str) -> None:
        metrics = self.metrics
        if metrics is not None:
            metrics.watcher_reconnected(reason)

    def _read(self, job_ids: list[str]) -> None:
        for index, job_id in enumerate(job_ids):
            token = self._seq
            self.queries += 1
            try:
                state: State = self.store.get(job_id)
            except JobNotFound:
                state = GONE
            except Exception:
                with self._lock:
                    self._pending.update(job_ids[index:])
                raise
            if state is not GONE:
                self.remember(state, token)
            self._hand_out(job_id, state)

    def _poll(self, since: float) -> None:
        self.queries += 1
        with self._lock:
            waited = set(self._waiters)
        if not waited:
            return
        for record in self.store.list(since=since):
            if record.job_id in waited:
                self._hand_out(record.job_id, record)

    def _hand_out(self, job_id: str, state: State) -> None:
        with self._lock:
            for waiter in self._waiters.get(job_id, ()):
                waiter._offer(state)


_registry: weakref.WeakKeyDictionary[Any, Watcher] = weakref.WeakKeyDictionary()
_unweakable: dict[int, tuple[Any, Watcher]] = {}
_registry_lock = threading.Lock()


def watcher_for(store: Store) -> Watcher:
    """The watcher of ``store`` in this process (made on first use; a forked child makes its
    own). Every service on one store shares it."""
    with _registry_lock:
        try:
            watcher = _registry.get(store)
        except TypeError:  # a store that cannot be weakly referenced or hashed
            kept = _unweakable.get(id(store))
            watcher = kept[1] if kept is not None and kept[0] is store else None
        if watcher is None or watcher.pid != os.getpid():
            watcher = Watcher(store)
            try:
                _registry[store] = watcher
            except TypeError:
                _unweakable[id(store)] = (store, watcher)
        return watcher
