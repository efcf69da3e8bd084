"""The storage protocol: the core's only view of where records live.

Every backend implements :class:`Store`; most subclass :class:`BaseStore` for the context
manager and the shared checks. ``jobstatus.testing`` proves an implementation conforms.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Collection, Iterable, Iterator
from types import TracebackType
from typing import Literal, Protocol, TypeVar, runtime_checkable

from jobstatus.errors import Conflict
from jobstatus.record import FINAL_STATES, JobRecord

__all__ = [
    "ABSENT",
    "BaseStore",
    "ExpectedVersion",
    "Store",
    "check_expected",
    "check_limit",
    "check_purge",
    "expiry_of",
    "keeps_stored",
    "normalize_status",
    "purges",
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


_Self = TypeVar("_Self", bound="BaseStore")


class BaseStore:
    """Context-manager support, :meth:`exists` and a no-op :meth:`close` for backends."""

    def exists(self) -> bool:
        """True when the store's container (folder, table, bucket) is there. Reads never
        create it; the first write does. A store without a container always exists."""
        return True

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
