"""The writes a crash trial's writer makes, and the model of what each leaves stored.

A trial works on a few jobs (:data:`JOBS`). Every record a writer writes is fully determined by
its job id, a sequence number and a status (:func:`record_of`), so a record read back either
is exactly one the writer wrote, or it is torn. :func:`plan` draws a sequence of operations
that are valid for the modelled state -- the writes the tracker and the command line make --
and :func:`after` says what each leaves stored, by the store protocol's rules.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from jobstatus.record import FINAL_STATES, JobRecord
from jobstatus.store import ABSENT, Store

__all__ = ["JOBS", "OPERATIONS", "Op", "State", "after", "perform", "plan", "record_of"]

#: The jobs every trial writes.
JOBS = tuple(f"crash-job-{n}" for n in range(6))
#: Every operation a writer makes, as the results count them.
OPERATIONS = ("create", "progress", "finish", "cancel", "reopen", "delete", "purge", "restore")
_PAD = "0123456789abcdef" * 64  # about 1 KB: a write of a few file-system blocks

#: job id -> (sequence number, status) of its stored record; None when it has none.
State = dict[str, tuple[int, str] | None]


def record_of(job_id: str, seq: int, status: str) -> JobRecord:
    """The one record a writer writes for ``job_id`` at ``seq`` with ``status``."""
    return JobRecord(
        job_id=job_id, job_status=status, response={"seq": seq, "job": job_id, "pad": _PAD}
    )


@dataclass(frozen=True)
class Op:
    """One operation: its kind, the jobs it writes, the sequence number their records carry,
    and for ``restore`` the status of each."""

    kind: str
    jobs: tuple[str, ...]
    seq: int
    statuses: tuple[str, ...] = ()


def _running(state: State) -> list[str]:
    return [j for j in JOBS if (s := state[j]) is not None and s[1] == "running"]


def _final(state: State) -> list[str]:
    return [j for j in JOBS if (s := state[j]) is not None and s[1] in FINAL_STATES]


def plan(rng: random.Random, state: State, count: int, first_seq: int) -> list[Op]:
    """``count`` operations valid one after the other from ``state``."""
    ops: list[Op] = []
    seq = first_seq
    for _ in range(count):
        absent = [j for j in JOBS if state[j] is None]
        present = [j for j in JOBS if state[j] is not None]
        running, final = _running(state), _final(state)
        purgeable = [j for j in final if (s := state[j]) is not None and s[1] != "failed"]
        choices: list[tuple[str, list[str]]] = [
            ("create", absent),
            ("progress", running),
            ("progress", running),
            ("finish", running),
            ("cancel", running),
            ("reopen", final),
            ("delete", present),
            ("restore", list(JOBS)),
            ("purge", purgeable),
        ]
        kind, candidates = rng.choice([c for c in choices if c[1]])
        if kind == "purge":
            op = Op(kind, (), seq)
        elif kind == "restore":
            jobs = tuple(sorted(rng.sample(JOBS, rng.randint(2, 3))))
            op = Op(kind, jobs, seq, tuple(rng.choice(("running", "done", "failed")) for _ in jobs))
        else:
            op = Op(kind, (rng.choice(candidates),), seq)
        ops.append(op)
        state = after(state, op)
        seq += 1
    return ops


def after(state: State, op: Op) -> State:
    """What ``op`` leaves stored, from ``state``."""
    new = dict(state)
    if op.kind == "purge":
        for job_id, stored in state.items():
            if stored is not None and stored[1] in ("done", "cancelled"):
                new[job_id] = None
        return new
    if op.kind == "restore":
        for job_id, status in zip(op.jobs, op.statuses, strict=True):
            new[job_id] = (op.seq, status)
        return new
    (job_id,) = op.jobs
    new[job_id] = None if op.kind == "delete" else (op.seq, _STATUS[op.kind])
    return new


_STATUS = {
    "create": "running",
    "progress": "running",
    "finish": "done",
    "cancel": "cancelled",
    "reopen": "running",
}


def perform(store: Store, op: Op, writing: Any) -> None:
    """Make ``op`` against ``store``; ``writing(True)`` just before the call that changes the
    store and ``writing(False)`` once it returned (reads before it are not part of a write)."""
    if op.kind == "purge":
        writing(True)
        store.purge(older_than=time.time() + 3600, status=("done", "cancelled"))
    elif op.kind == "restore":
        records = [record_of(j, op.seq, s) for j, s in zip(op.jobs, op.statuses, strict=True)]
        writing(True)
        store.restore(records)
    elif op.kind == "delete":
        writing(True)
        store.delete(op.jobs[0])
    else:
        job_id = op.jobs[0]
        record = record_of(job_id, op.seq, _STATUS[op.kind])
        if op.kind == "create":
            writing(True)
            store.put(record, expect_version=ABSENT)
        elif op.kind in ("progress", "finish"):  # as the tracker does: on the version it read
            version = store.get(job_id).version
            writing(True)
            store.put(record, expect_version=version)
        else:  # cancel: a plain put; reopen: put --force, as the command line does
            writing(True)
            store.put(record, force=op.kind == "reopen")
    writing(False)
