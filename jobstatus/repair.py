"""Crash leftovers: what a store's ``repair`` finds and does (``jobstatus check --deep``).

A writer killed in the middle of a write never leaves a torn record, nor an index that ``get``
and ``list`` would disagree about: each backend's write is atomic where readers look (a rename,
a transaction, a Lua script, a single PUT). What a kill *can* leave is out of readers' sight --
a temp file that was never renamed, a multipart upload that was never completed, a table whose
indexes were never made -- and it costs space, or speed, until something clears it.

Repair is an optional capability of a store (:class:`Repairable`); :func:`repair` calls it
where it is there and finds nothing elsewhere (a store that keeps nothing of a write in
progress, like the memory store). The contract a backend's ``repair`` meets:

- It never changes a record that ``get`` or ``list`` can see, and never removes anything a
  live writer may still be using: each backend says how it tells (a lock every writer holds,
  or an age of at least ``grace`` seconds where it cannot tell).
- With ``dry_run`` it changes nothing and reports what it would do.
- Every leftover it finds is in the report, repaired or not, with what was done or why not.
- A second ``repair`` right after one that repaired everything finds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_GRACE",
    "Leftover",
    "RepairReport",
    "Repairable",
    "repair",
]

#: Seconds a leftover must be old before ``repair`` removes it where the backend cannot tell
#: whether the writer that made it is still at work (an S3 multipart upload, the temp file of
#: a generic fsspec filesystem): no write of a job record runs for an hour.
DEFAULT_GRACE = 3600.0


@dataclass(frozen=True)
class Leftover:
    """One thing a crash (or an interrupted write) left in a store.

    ``kind`` names what it is (``temp_file``, ``incomplete_upload``, ``index_entry``,
    ``unindexed_record``, ``schema``, ``unreadable_record``, ``lock_held``: each backend's
    docs list its own), ``target`` where it is (a path, a key, an index name), ``repaired``
    whether it was cleared, and ``note`` what was done, or why it was left alone.
    """

    kind: str
    target: str
    repaired: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        """The leftover as ``check --deep --json`` prints it."""
        return {
            "kind": self.kind,
            "target": self.target,
            "repaired": self.repaired,
            "note": self.note,
        }


@dataclass
class RepairReport:
    """What a :meth:`Repairable.repair` found and did; empty for a clean store."""

    leftovers: list[Leftover] = field(default_factory=list)
    dry_run: bool = False

    def add(self, kind: str, target: str, *, repaired: bool, note: str) -> None:
        """Record one leftover."""
        self.leftovers.append(Leftover(kind, target, repaired, note))

    @property
    def clean(self) -> bool:
        """Whether nothing is left (nothing was found, or everything found was repaired)."""
        return all(leftover.repaired for leftover in self.leftovers)

    def found(self) -> dict[str, int]:
        """How many leftovers of each kind were found."""
        return dict(Counter(leftover.kind for leftover in self.leftovers))

    def repaired(self) -> dict[str, int]:
        """How many leftovers of each kind were repaired."""
        return dict(Counter(left.kind for left in self.leftovers if left.repaired))


@runtime_checkable
class Repairable(Protocol):
    """The optional capability of a store that can find and clear crash leftovers."""

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Find what interrupted writes left in the store and clear it, as the module says:
        nothing a reader sees changes, nothing a live writer may use is touched (``grace``:
        the age in seconds below which a leftover whose writer may be alive is kept)."""
        ...


def repair(store: object, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
    """``store.repair(...)`` where the store offers it; an empty report where it does not
    (a store that keeps nothing of an interrupted write). ``grace`` must not be negative."""
    if grace < 0:
        raise ValueError(f"grace must not be negative, got {grace}")
    method: Any = getattr(store, "repair", None)
    if method is None:
        return RepairReport(dry_run=dry_run)
    report: RepairReport = method(dry_run=dry_run, grace=grace)
    return report
