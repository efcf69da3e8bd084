"""Copy every record from one store to another, keeping each record's ``updated_at``.

:func:`migrate` is what ``jobstatus migrate SRC DST`` runs. It is idempotent and safe to run
again after an interruption: a record whose destination copy already has the same document and
``updated_at`` is not copied again, and a destination copy that is *newer* than the source's is
kept (the host may already write to the new store). Records are written with
:meth:`~jobstatus.Store.restore` in batches.

With ``dry_run`` nothing is written or created anywhere: the only calls are listings of the
source and of a destination that exists (one that does not is empty, and is not read).

Memory stays bounded by the destination's size, not the documents': the destination is first
indexed as ``job_id → (updated_at, fingerprint)``, about 150 bytes a record.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from jobstatus.errors import JobStatusError, StorageError
from jobstatus.record import JobRecord
from jobstatus.store import Store

__all__ = ["DEFAULT_BATCH_SIZE", "MigrationProgress", "migrate", "store_exists"]

DEFAULT_BATCH_SIZE = 500
# The count and index phases report every this many records.
_REPORT_EVERY = 2000

# Object stores keep whole seconds: a copy whose stamp is the source's, truncated or rounded
# to a whole second, is the same copy.
_WHOLE_SECOND_SLACK = 1.0


@dataclass
class MigrationProgress:
    """Where a migration stands; handed to the ``progress`` callback and returned at the end.

    ``phase`` is ``"count"`` (counting the source, with ``count_first`` only), ``"index"``
    (reading the destination), ``"copy"``, then ``"done"``.
    """

    phase: str = "count"
    #: Records in the source, once counted (without ``count_first``: None until the end).
    total: int | None = None
    #: Source records counted so far, in the ``"count"`` phase.
    counted: int = 0
    #: Source records looked at so far.
    seen: int = 0
    #: Records written to the destination (or that would be, with ``dry_run``).
    copied: int = 0
    #: Records whose destination copy was already the same.
    unchanged: int = 0
    #: Records whose destination copy is newer than the source's and was kept.
    kept_newer: int = 0
    #: Records in the destination before the copy started.
    indexed: int = 0
    dry_run: bool = False
    started: float = field(default_factory=time.monotonic)
    copy_started: float | None = None
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the migration started (until it finished, once it has)."""
        end = time.monotonic() if self.finished is None else self.finished
        return end - self.started

    @property
    def rate(self) -> float:
        """Source records looked at per second since the copy began."""
        if self.copy_started is None:
            return 0.0
        end = time.monotonic() if self.finished is None else self.finished
        return self.seen / (end - self.copy_started) if end > self.copy_started else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known and the copy has begun."""
        if self.total is None or self.phase != "copy" or not self.seen:
            return None
        return max(0, self.total - self.seen) / max(self.rate, 1e-9)


def store_exists(store: Store) -> bool:
    """``store.exists()``: whether the store's container (folder, table, bucket) is there.
    True for a store that does not say (the method is optional in the protocol)."""
    exists = getattr(store, "exists", None)
    return True if exists is None else bool(exists())


def migrate(
    src: Store,
    dst: Store,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    progress: Callable[[MigrationProgress], None] | None = None,
    count_first: bool = False,
) -> MigrationProgress:
    """Copy every record of ``src`` into ``dst`` and return the final counts.

    ``progress`` is called as the migration advances (after each batch, and once per phase).
    With ``count_first`` the source is read once more beforehand to count its records, so that
    progress can show a total and an ETA: cheap on a database, a second download of every
    record on an object store. With ``dry_run`` nothing is written; the counts say what would
    be. A destination that does not exist (:func:`store_exists`) is not read: it is empty.

    A failure of either store raises :class:`~jobstatus.StorageError` saying how far the copy
    got; every record written before it is complete, so running again finishes the job.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    state = MigrationProgress(dry_run=dry_run)
    report: Callable[[MigrationProgress], None] = progress or (lambda _state: None)
    try:
        if count_first:
            report(state)
            for _ in src.list():
                state.counted += 1
                if not state.counted % _REPORT_EVERY:
                    report(state)
            state.total = state.counted
        state.phase = "index"
        report(state)
        existing: dict[str, tuple[float | None, bytes]] = {}
        for record in dst.list() if store_exists(dst) else ():
            existing[record.job_id] = _signature(record)
            state.indexed += 1
            if not state.indexed % _REPORT_EVERY:
                report(state)
        state.phase = "copy"
        state.copy_started = time.monotonic()
        report(state)
        for batch in _batches(src.list(), batch_size):
            todo = [record for record in batch if _needs_copy(record, existing, state)]
            if todo and not dry_run:
                dst.restore(todo)
            state.seen += len(batch)
            state.copied += len(todo)
            report(state)
    except JobStatusError as exc:
        raise StorageError(
            f"{exc} (migrate stopped after copying {state.copied:,} "
            f"{'record' if state.copied == 1 else 'records'}; run it again to finish)"
        ) from exc
    state.total = state.seen
    state.phase = "done"
    state.finished = time.monotonic()
    report(state)
    return state


def _batches(records: Iterable[JobRecord], size: int) -> Iterator[list[JobRecord]]:
    batch: list[JobRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fingerprint(record: JobRecord) -> bytes:
    """The document's content, whatever its key order or the store's JSON formatting
    (ASCII JSON: any lone surrogate is escaped, not an encoding error)."""
    text = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("ascii"), digest_size=16).digest()


def _signature(record: JobRecord) -> tuple[float | None, bytes]:
    return record.updated_at, _fingerprint(record)


def _needs_copy(
    record: JobRecord,
    existing: dict[str, tuple[float | None, bytes]],
    state: MigrationProgress,
) -> bool:
    """False when the destination already has this record, or a newer one."""
    there = existing.get(record.job_id)
    if there is None:
        return True
    dst_stamp, dst_print = there
    src_stamp = record.updated_at
    if dst_stamp is not None and src_stamp is not None:
        if _same_stamp(dst_stamp, src_stamp):
            if dst_print == _fingerprint(record):
                state.unchanged += 1
                return False
        elif dst_stamp > src_stamp:
            state.kept_newer += 1
            return False
    return True


def _same_stamp(dst_stamp: float, src_stamp: float) -> bool:
    """Equal, or the whole second a store that keeps whole seconds made of it."""
    if dst_stamp == src_stamp:
        return True
    return float(dst_stamp).is_integer() and abs(dst_stamp - src_stamp) < _WHOLE_SECOND_SLACK
