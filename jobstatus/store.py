"""The storage protocol: the core's only view of where records live.

Every backend implements :class:`Store`; most subclass :class:`BaseStore` for the context
manager and the shared checks. ``jobstatus.testing`` proves an implementation conforms.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

from jobstatus.record import FINAL_STATES, JobRecord

__all__ = ["BaseStore", "Store", "keeps_stored", "matches_status", "normalize_status"]


@runtime_checkable
class Store(Protocol):
    """Where job records live. Every method is safe to call from several threads."""

    def get(self, job_id: str) -> JobRecord:
        """The record of ``job_id``; raises :class:`~jobstatus.JobNotFound`."""
        ...

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        """Insert or replace a record atomically and return what is stored now.

        A reader sees the old or the new document, never a torn one. ``updated_at`` is stamped
        with the current time. A job that is ``done`` or ``failed`` stays as it is when the new
        record is not final (a late retry, a duplicate message), checked atomically inside the
        store, unless ``force`` is true; the stored record is then returned unchanged.
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
        """Records with ``updated_at >= since`` and a status among ``status``, newest first."""
        ...

    def purge(self, *, older_than: float, status: str | Collection[str] | None = None) -> int:
        """Delete records with ``updated_at < older_than`` (and a status among ``status``);
        return how many were deleted."""
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


_Self = TypeVar("_Self", bound="BaseStore")


class BaseStore:
    """Context-manager support and a no-op :meth:`close` for backends to build on."""

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


def matches_status(record: JobRecord, statuses: frozenset[str] | None) -> bool:
    return statuses is None or record.job_status in statuses


def keeps_stored(stored_status: str | None, new_status: str, *, force: bool) -> bool:
    """True when a put must leave the stored record alone: it is final and the new one is not."""
    return not force and stored_status in FINAL_STATES and new_status not in FINAL_STATES


def now() -> float:
    """The current time as stores stamp it: seconds since the epoch."""
    return time.time()
