"""Conformance tests of the optional change-notification capability (``subscribe``).

A backend that offers ``subscribe`` (see "Change notification" in :mod:`jobstatus.store`)
subclasses :class:`ChangeNotificationTests` beside :class:`~jobstatus.testing.StoreTests`, with
a ``store`` fixture that yields an empty store and, when other processes' or other store
objects' writes are reported too, an ``other_writer`` fixture that yields a second store on the
same storage::

    class TestMyStoreChanges(ChangeNotificationTests):
        @pytest.fixture
        def store(self):
            with MyStore(...) as store:
                yield store

The tests wait for a callback up to :attr:`ChangeNotificationTests.timeout` seconds (a bound,
not a speed check); a subscription that can ``flush()`` is flushed first, and must then have
reported the change already.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobstatus.record import JobRecord
from jobstatus.store import Store, Subscription, subscribe

__all__ = ["ChangeNotificationTests"]


class _Seen:
    """The job ids a subscription reported, and a way to wait for one."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self._changed = threading.Condition()

    def __call__(self, job_id: str | None) -> None:
        with self._changed:
            self.ids.append(job_id)
            self._changed.notify_all()

    def wait_for(self, job_id: str, timeout: float, subscription: Subscription) -> bool:
        flush: Callable[[], None] | None = getattr(subscription, "flush", None)
        if flush is not None:
            flush()
            return job_id in self.ids or None in self.ids
        deadline = time.monotonic() + timeout
        with self._changed:
            while job_id not in self.ids and None not in self.ids:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


class ChangeNotificationTests:
    """The contract of ``subscribe``: writes, restores and deletes are reported, once live and
    until closed, by any store object on the same storage."""

    #: Seconds a test waits for a callback that cannot be flushed.
    timeout = 10.0

    @pytest.fixture
    def other_writer(self, store: Store) -> Store:
        """A second store object on the same storage; the same store by default."""
        return store

    @pytest.fixture
    def seen(self, store: Store) -> Iterator[tuple[_Seen, Subscription]]:
        seen = _Seen()
        subscription = subscribe(store, seen)
        assert subscription is not None, "the store offers no subscribe()"
        yield seen, subscription
        subscription.close()

    def test_a_put_is_reported(self, other_writer: Store, seen: Any) -> None:
        ids, subscription = seen
        other_writer.put(JobRecord(job_id="job-put", job_status="queued"))
        assert ids.wait_for("job-put", self.timeout, subscription)

    def test_a_restore_and_a_delete_are_reported(self, other_writer: Store, seen: Any) -> None:
        ids, subscription = seen
        other_writer.restore([JobRecord(job_id="job-restored", job_status="done")])
        assert ids.wait_for("job-restored", self.timeout, subscription)
        ids.ids.clear()
        assert other_writer.delete("job-restored")
        assert ids.wait_for("job-restored", self.timeout, subscription)

    def test_nothing_is_reported_once_closed(self, store: Store, other_writer: Store) -> None:
        ids = _Seen()
        subscription = subscribe(store, ids)
        assert subscription is not None
        subscription.close()
        subscription.close()  # idempotent
        other_writer.put(JobRecord(job_id="job-after", job_status="queued"))
        canary = _Seen()  # a second subscription, to know when the write was delivered
        live = subscribe(store, canary)
        assert live is not None
        other_writer.put(JobRecord(job_id="job-canary", job_status="queued"))
        assert canary.wait_for("job-canary", self.timeout, live)
        live.close()
        assert "job-after" not in ids.ids
