"""The storage protocol: the core's only view of where records live.

Every backend implements :class:`Store`; most subclass :class:`BaseStore` for the context
manager and the shared checks. ``jobstatus.testing`` proves an implementation conforms.

Crash leftovers (an optional capability)
----------------------------------------

A store whose interrupted writes can leave something behind that readers never see (a temp
file, an incomplete upload) offers ``repair(*, dry_run, grace)``
(:class:`~jobstatus.repair.Repairable`, called by ``jobstatus check --deep`` through
:func:`~jobstatus.repair.repair`); :class:`BaseStore` has one that finds nothing.

Change notification (an optional capability)
--------------------------------------------

A backend that learns about changes by itself (a kernel file watch, ``LISTEN/NOTIFY``, pub/sub)
offers it with one more method, :meth:`ChangeNotifier.subscribe`; :func:`subscribe` calls it
when it is there. The watcher (:mod:`jobstatus.watch`, one per store and process) subscribes
once and fans each change out to every request waiting on the job, so waiting costs no query
per client. A store without the method is polled instead: one ``list(since=…)`` per interval
for all waiting requests together.

The contract, which a backend's docs and tests must meet:

- ``subscribe(callback)`` returns a :class:`Subscription` once it is live: every change that
  completes after ``subscribe`` returned is reported. It raises
  :class:`~jobstatus.StorageError` when notification cannot be set up (the watcher then polls,
  and tries again later).
- ``callback(job_id)`` is called at least once after each change of that job's stored record
  -- a write by :meth:`~Store.put` or :meth:`~Store.restore`, a delete, a purge -- made
  through any store object on the same storage, in any process the backend can see (its docs
  say which), and only once the change is visible to :meth:`~Store.get`. Calls may be
  spurious (nothing changed) and several changes may share one call: the subscriber re-reads.
  Expiry needs no call (a reader sees an expired record as absent by itself).
- ``callback(None)`` says that changes may have been missed (a reconnect, an overflowing
  queue): the subscriber re-reads everything it cares about. A subscription recovers from a
  broken connection by itself and calls ``callback(None)`` once it is live again.
- Callbacks run on any thread (a writer's, the backend's own), possibly on several at once;
  they must return quickly, must not call the store, and their exceptions are logged and
  otherwise ignored. :class:`Subscribers` does this bookkeeping for a backend.
- :meth:`Subscription.close` is idempotent; once it returned no more callbacks start.
- Optionally, a subscription's ``flush()`` returns only once every change completed before the
  call was reported (the memory store calls back synchronously; the filesystem store reads
  the kernel's queue). A watcher whose subscription can flush answers a conditional request
  from what it was told, without a query; one that cannot always asks the store.

Listing by owner (an optional capability)
-----------------------------------------

A key bound to an owner lists that owner's records only. A store that can read them through an
index offers :meth:`OwnerLister.list_owned`, with the contract of :meth:`Store.list` restricted
to the records whose ``owner`` is the one given; :func:`list_owned` calls it when it is there,
and otherwise filters ``list`` as it yields (O(records listed)).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from jobstatus.errors import Conflict
from jobstatus.record import FINAL_STATES, JobRecord
from jobstatus.repair import DEFAULT_GRACE, RepairReport

__all__ = [
    "ABSENT",
    "BaseStore",
    "ChangeCallback",
    "ChangeNotifier",
    "ExpectedVersion",
    "OwnerLister",
    "Store",
    "Subscribers",
    "Subscription",
    "check_expected",
    "check_limit",
    "check_purge",
    "expiry_of",
    "keeps_stored",
    "list_owned",
    "normalize_status",
    "purges",
    "subscribe",
    "version_of",
]


class _Absent(enum.Enum):
    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "jobstatus.ABSENT"


#: ``put(record, expect_version=ABSENT)`` writes only if the job has no (unexpired) record.
ABSENT = _Absent.ABSENT

#: The values ``put``'s ``expect_version`` takes -- None (no check), :data:`ABSENT`, or a
#: version.
ExpectedVersion = str | None | Literal[_Absent.ABSENT]


@runtime_checkable
class Store(Protocol):
    """Where job records live. Every method is safe to call from several threads."""

    def get(self, job_id: str) -> JobRecord:
        """The record of ``job_id``; raises :class:`~jobstatus.JobNotFound`."""
        ...

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        """Insert or replace a record atomically and return what is stored now, its
        ``updated_at`` and ``version`` set.

        A reader sees the old or the new document, never a torn one. Checked atomically inside
        the store, in this order:

        1. ``expect_version``: None writes whatever is stored; :data:`ABSENT` writes only if
           the job has no record; a version writes only if the stored record still has it.
           Otherwise :class:`~jobstatus.Conflict` is raised and nothing is written.
        2. Final is final: a stored ``done``, ``failed`` or ``cancelled`` record is returned
           unchanged (nothing is written) unless ``force`` is true.

        An expired record counts as no record for both. ``updated_at`` is stamped with the
        current time; the version changes whenever the stored document changes.
        """
        ...

    def restore(self, records: Iterable[JobRecord]) -> int:
        """Write records exactly as given, ``updated_at`` included (now, where it is None),
        replacing what is stored whatever its state. For migration and backups; batched where
        the backend can. Returns the number of records written."""
        ...

    def delete(self, job_id: str) -> bool:
        """Remove a record; False if there was none."""
        ...

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Records with ``updated_at >= since`` and a status among ``status``, newest first,
        at most ``limit`` (a negative limit is a :class:`ValueError`); expired ones skipped."""
        ...

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        """Delete, in one pass, the records with a status among ``status`` (any, when None)
        that were last written before ``older_than`` or, with ``expired``, whose
        ``expires_at`` has passed; return how many were deleted. At least one of
        ``older_than`` and ``expired`` is required (:class:`ValueError`)."""
        ...

    def close(self) -> None:
        """Release connections and files. The store is not used after this."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


#: What a subscription calls -- a job id that changed, or None when changes may have been missed.
ChangeCallback = Callable[[str | None], None]


class Subscription(Protocol):
    """A live change subscription (see "Change notification" above). It may also have a
    ``flush()`` method: it returns once every change completed before the call was reported."""

    def close(self) -> None:
        """Stop the callbacks; idempotent. Once it returned, no callback starts."""
        ...


@runtime_checkable
class ChangeNotifier(Protocol):
    """The optional capability of a store that reports changes by itself."""

    def subscribe(self, callback: ChangeCallback) -> Subscription:
        """Call ``callback`` after every change, as "Change notification" above says."""
        ...


def subscribe(store: object, callback: ChangeCallback) -> Subscription | None:
    """``store.subscribe(callback)`` when the store offers change notification, else None.

    Raises what ``subscribe`` raises (:class:`~jobstatus.StorageError` when notification
    cannot be set up now)."""
    method: Any = getattr(store, "subscribe", None)
    if method is None:
        return None
    subscription: Subscription = method(callback)
    return subscription


@runtime_checkable
class OwnerLister(Protocol):
    """The optional capability of a store that lists one owner's records through an index."""

    def list_owned(
        self,
        owner: str,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """:meth:`Store.list`, restricted to the records whose ``owner`` is ``owner``."""
        ...


def list_owned(
    store: Store,
    owner: str,
    *,
    since: float | None = None,
    status: str | Collection[str] | None = None,
    limit: int | None = None,
) -> Iterator[JobRecord]:
    """The records of ``owner``, as :meth:`Store.list` orders and bounds them: through
    ``store.list_owned`` when the store offers it, else ``store.list`` filtered."""
    method: Any = getattr(store, "list_owned", None)
    if method is not None:
        owned_records: Iterator[JobRecord] = method(owner, since=since, status=status, limit=limit)
        return owned_records
    check_limit(limit)
    records = store.list(since=since, status=status)
    owned = (record for record in records if record.owner == owner)
    return owned if limit is None else itertools.islice(owned, limit)


class Subscribers:
    """The subscriptions of a store that reports changes itself, as "Change notification"
    above specifies: :meth:`subscribe` gives a subscription whose ``flush`` returns at once
    (each change was reported when :meth:`notify` returned), :meth:`notify` calls every
    callback, logging and swallowing their exceptions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[int, ChangeCallback] = {}
        self._keys = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def subscribe(self, callback: ChangeCallback) -> Subscription:
        key = next(self._keys)
        with self._lock:
            self._callbacks[key] = callback
        return _Unsubscribe(self, key)

    def notify(self, job_id: str | None) -> None:
        """Tell every subscriber that ``job_id`` changed (None: anything may have)."""
        for callback in list(self._callbacks.values()):
            try:
                callback(job_id)
            except Exception:
                logging.getLogger(__name__).exception("a change callback failed")

    def _remove(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)


class _Unsubscribe:
    def __init__(self, subscribers: Subscribers, key: int) -> None:
        self._subscribers = subscribers
        self._key = key

    def flush(self) -> None:
        """Nothing to wait for: callbacks run before the writer's call returns."""

    def close(self) -> None:
        self._subscribers._remove(self._key)


_Self = TypeVar("_Self", bound="BaseStore")


class BaseStore:
    """Context-manager support, :meth:`exists`, a :meth:`repair` that finds nothing and a
    no-op :meth:`close` for backends."""

    def exists(self) -> bool:
        """True when the store's container (folder, table, bucket) is there. Reads never
        create it; the first write does. A store without a container always exists."""
        return True

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Find and clear what interrupted writes left (:mod:`jobstatus.repair`); a store
        whose writes leave nothing behind keeps this default, which finds nothing."""
        return RepairReport(dry_run=dry_run)

    def close(self) -> None:
        """Release resources; nothing to release by default."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def normalize_status(status: str | Collection[str] | None) -> frozenset[str] | None:
    """``"done"`` and ``["done", "failed"]`` alike become a set; None stays None."""
    if status is None:
        return None
    if isinstance(status, str):
        return frozenset({status})
    return frozenset(status)


def keeps_stored(stored_status: str | None, *, force: bool) -> bool:
    """True when a put must leave the stored record alone: it is final and the put not forced."""
    return not force and stored_status in FINAL_STATES


def check_expected(job_id: str, stored_version: str | None, expected: ExpectedVersion) -> None:
    """Raise :class:`~jobstatus.Conflict` unless the stored version (None: no record) is the
    one ``put``'s ``expect_version`` asks for."""
    if expected is None:
        return
    if expected is ABSENT:
        if stored_version is not None:
            raise Conflict(job_id, "the job already has a record")
    elif stored_version != expected:
        raise Conflict(job_id, "the job was changed by another writer")


def check_limit(limit: int | None) -> None:
    """Raise :class:`ValueError` for a negative ``limit`` of ``list``."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")


def check_purge(older_than: float | None, expired: bool) -> None:
    """Raise :class:`ValueError` unless ``purge`` was told what to delete."""
    if older_than is None and not expired:
        raise ValueError("purge needs older_than, expired=True, or both")


def purges(
    updated_at: float,
    expires_at: float | None,
    status: str,
    *,
    older_than: float | None,
    statuses: frozenset[str] | None,
    expired_before: float | None,
) -> bool:
    """The purge rule for one record: a status among ``statuses`` and either written before
    ``older_than`` or expired by ``expired_before`` (``now`` when purging expired records)."""
    if statuses is not None and status not in statuses:
        return False
    if older_than is not None and updated_at < older_than:
        return True
    return expired_before is not None and expires_at is not None and expires_at <= expired_before


def version_of(data: bytes) -> str:
    """The version of a stored document: a hash of its bytes (20 hex digits), so a file that
    another writer rewrote in place has a new version too, and equal bytes share one."""
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def expiry_of(record: JobRecord) -> float | None:
    """``expires_at`` as seconds since the epoch, for stores that index it."""
    return None if record.expires_at is None else record.expires_at.timestamp()


def now() -> float:
    """The current time as stores stamp it: seconds since the epoch."""
    return time.time()
