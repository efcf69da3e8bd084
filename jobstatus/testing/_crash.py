"""Crash trials: SIGKILL a writer process in the middle of its writes, then check the store.

Shared by ``tests/test_crash.py`` and ``benchmarks/crash_trials.py``; private (no public
names). One trial:

1. The parent, which has the store open, forks a writer: a real process that makes a few
   operations drawn by :func:`~jobstatus.testing._crash_ops.plan` (create, progress and finish
   on the version read, cancel, reopen with force, delete, purge, restore) and marks in shared
   memory which operation it is in and whether its store call is under way.
2. The parent SIGKILLs it: once the store call of an operation drawn from the seeded
   generator is under way, after a delay drawn from it up to the time a store call takes
   (*timed*), or the writer kills itself just before the k-th audited
   event (``sys.audit``: an ``open``, ``flock``, ``utime``, ``rename``…) inside its store calls,
   k drawn the same way (*audit*), which hits every step of a write deterministically.
3. Once the writer is reaped and its last request done with (:class:`InFlight`), the parent
   checks the store: every record ``get`` returns is exactly one the writer wrote (never
   torn), and for each job either the state before the interrupted operation or the state
   after it; ``list`` (and ``list(status=…)``) shows exactly the records ``get`` shows.
4. The next writer -- a new process, the writer of the following trial -- first writes every
   job again, within ``lock_timeout`` seconds; then ``jobstatus check --deep`` (in this
   process) must leave the store clean and a second one find nothing, and the records must
   read as before it. Only then does that writer start its own operations.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jobstatus.cli import main as cli_main
from jobstatus.errors import JobNotFound, StorageError
from jobstatus.repair import repair
from jobstatus.store import Store
from jobstatus.testing._crash_ops import JOBS, Op, State, after, plan, record_of
from jobstatus.testing._crash_stores import InFlight
from jobstatus.testing._crash_writer import (
    ALL_DONE,
    ELAPSED,
    EVENTS,
    FINISHED,
    GO,
    READY,
    REWRITTEN,
    STARTED,
    WRITING,
    Observed,
    Shared,
    fork,
    kill,
    pause,
    wait,
    writer,
)

__all__: list[str] = []

_STATUSES = ("running", "done", "failed", "cancelled")
_NEVER = 1 << 62  # an audited event the writer never reaches: it counts them, nothing more


@dataclass
class Trial:
    """What one trial did and found."""

    mode: str
    op: str | None  # the operation under way when the writer died, if any
    mid_write: bool  # it died inside a store call that changes the store
    violations: list[str]
    found: dict[str, int]
    repaired: dict[str, int]


@dataclass
class Summary:
    """Every trial of one store, added up."""

    trials: int = 0
    mid_write: int = 0
    mid_write_by_op: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    found: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, trial: Trial) -> None:
        """Count a trial (or what :meth:`CrashTrials.finish` found, as no trial)."""
        if trial.mode != "finish":
            self.trials += 1
            self.modes[trial.mode] += 1
        if trial.mid_write and trial.op is not None:
            self.mid_write += 1
            self.mid_write_by_op[trial.op] += 1
        self.violations += trial.violations
        self.found.update(trial.found)
        self.repaired.update(trial.repaired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "kills_mid_write": self.mid_write,
            "kills_mid_write_by_operation": dict(sorted(self.mid_write_by_op.items())),
            "trials_by_mode": dict(sorted(self.modes.items())),
            "violations": len(self.violations),
            "violation_examples": self.violations[:10],
            "leftovers_found_by_kind": dict(sorted(self.found.items())),
            "repairs_by_kind": dict(sorted(self.repaired.items())),
            "seconds": round(self.seconds, 1),
        }


class CrashTrials:
    """Trials against the store at ``url`` (which must name it whole: ``check --deep`` opens
    it), through ``store``, the same store opened in this process. Deterministic for a seed,
    but for where exactly a timed kill lands.

    The next writer of a trial is the writer process of the following trial, which writes
    every job before it starts its own operations; ``check --deep`` runs once it has (through
    the command line every ``cli_every`` trials, else through ``Store.repair``, which is what
    the command calls). :meth:`finish` does both for the last trial.
    """

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        seed: int,
        ops_per_trial: int = 6,
        audit_share: float = 0.0,
        lock_timeout: float = 30.0,
        cli_every: int = 1,
    ) -> None:
        self.store = store
        self.url = url
        self.rng = random.Random(seed)
        self.ops_per_trial = ops_per_trial
        self.audit_share = audit_share
        self.lock_timeout = lock_timeout
        self.cli_every = cli_every
        self.shared = Shared()
        self.seq = 1
        self.state: State = dict.fromkeys(JOBS)
        self.pending: Observed | None = None  # what the last trial left, not yet rewritten
        self.span = 0.0  # seconds a store call of the writer takes, on average
        self.events = 0  # audited events inside its store calls
        self.deep_checks = 0
        self.in_flight = InFlight(store)
        self.settle_rounds = 0  # reads repeated because the store changed after the kill
        for job_id in JOBS:  # a clean start
            self.store.delete(job_id)

    def calibrate(self, runs: int = 3) -> None:
        """Time whole runs of operations, without a kill mid-way, to spread the kills over."""
        for _ in range(runs):
            self._run("calibration", kill_at_event=_NEVER)
        self.span = max(self.span, 1e-5)

    def trial(self) -> Trial:
        """One trial, as the module says."""
        if self.rng.random() < self.audit_share:
            return self._run("audit", kill_at_event=self.rng.randint(1, max(self.events, 1)))
        target = self.rng.randint(1, self.ops_per_trial)
        delay = self.rng.uniform(0, self.span)
        return self._run("timed", kill_at_event=0, target=target, delay=delay)

    def finish(self) -> Trial:
        """The next writer and ``check --deep`` of the last trial (not a trial itself)."""
        return self._run("finish", kill_at_event=0, ops=[])

    def _run(
        self,
        mode: str,
        *,
        kill_at_event: int,
        target: int = 0,
        delay: float | None = None,
        ops: list[Op] | None = None,
    ) -> Trial:
        if ops is None:
            ops = plan(self.rng, self.state, self.ops_per_trial, self.seq)
        self.seq += len(ops)
        shared, numbers = self.shared, self.shared.numbers
        shared.reset()
        violations: list[str] = []
        pid = fork()
        if pid == 0:
            writer(self.store, self.pending, ops, shared, kill_at_event)
        status = wait(pid, lambda: numbers[REWRITTEN] != 0, cap=self.lock_timeout)
        if status is None and not numbers[REWRITTEN]:
            violations.append(f"blocked: the next writer did not finish in {self.lock_timeout} s")
            status = kill(pid)
        found: dict[str, int] = {}
        repaired: dict[str, int] = {}
        if self.pending is not None:
            found, repaired = self._deep_check(violations)
            if self._check([self.pending], []) != self.pending:
                violations.append("check --deep changed what get or list show")
        numbers[GO] = 1
        if status is None and delay is not None:  # once the target store call is under way
            status = wait(
                pid,
                lambda: (
                    (numbers[STARTED] >= target and numbers[WRITING] != 0)
                    or numbers[READY] == ALL_DONE
                ),
            )
            pause(delay)
        elif status is None:  # it kills itself at an audited event, or runs to the end
            status = wait(pid, lambda: numbers[READY] == ALL_DONE)
        if status is None:
            status = kill(pid)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            violations.append(f"the writer failed: {shared.message() or status}")
        started, finished = numbers[STARTED], numbers[FINISHED]
        if mode == "calibration":  # the longest a store call of the run took on average
            self.span = max(self.span, numbers[ELAPSED] / 1e9 / max(len(ops) - 1, 1))
            self.events = max(self.events, numbers[EVENTS])
        self._settle()
        confirmed = self.state
        for op in ops[:finished]:
            confirmed = after(confirmed, op)
        in_flight = ops[started - 1] if started > finished else None
        possible = [confirmed] if in_flight is None else [confirmed, after(confirmed, in_flight)]
        observed = self._check(possible, violations)
        self.pending = None if mode == "finish" else observed
        self.state = {j: s if isinstance(s, tuple) else None for j, s in observed.items()}
        return Trial(
            mode,
            None if in_flight is None else in_flight.kind,
            bool(numbers[WRITING]) and in_flight is not None,
            violations,
            found,
            repaired,
        )

    # -- the checks --------------------------------------------------------------------------

    def _settle(self) -> None:
        """Wait until the dead writer's last request is done with (:class:`InFlight`)."""
        self.in_flight.sessions()
        if not self.in_flight.pause:
            return
        last = self._snapshot()
        for _ in range(100):
            pause(self.in_flight.pause)
            now = self._snapshot()
            if now == last:
                return
            self.settle_rounds += 1
            last = now

    def _snapshot(self) -> tuple[Any, ...]:
        """What ``get`` and ``list`` show now, versions included."""
        found: list[Any] = []
        for job_id in JOBS:
            try:
                found.append(self.store.get(job_id).version)
            except (JobNotFound, StorageError) as exc:
                found.append(type(exc).__name__)
        listed = sorted((r.job_id, r.version) for r in self.store.list())
        return (*found, *listed)

    def _check(self, possible: list[State], violations: list[str]) -> Observed:
        """Read every job; note each record that is torn or neither of ``possible``, and any
        disagreement between ``get`` and ``list``. Returns what ``get`` shows."""
        observed: Observed = {}
        for job_id in JOBS:
            try:
                record = self.store.get(job_id)
            except JobNotFound:
                observed[job_id] = None
            except StorageError as exc:
                observed[job_id] = "unreadable"
                violations.append(f"torn: get({job_id!r}) fails: {exc}")
                continue
            else:
                seq = record.response.get("seq") if isinstance(record.response, dict) else None
                whole = record_of(job_id, seq, record.job_status).to_dict() if seq else None
                if record.to_dict() != whole:
                    violations.append(f"torn: {job_id} reads {record.to_dict()!r:.200}")
                observed[job_id] = (seq, record.job_status)
            allowed = {str(state[job_id]) for state in possible}
            if str(observed[job_id]) not in allowed:
                violations.append(
                    f"not atomic: {job_id} is {observed[job_id]}, expected one of {allowed}"
                )
        gettable = {j: s for j, s in observed.items() if isinstance(s, tuple)}
        listed = _listed(self.store.list())
        if listed != gettable:
            violations.append(f"index: list shows {listed}, get shows {gettable}")
        for status in _STATUSES:
            by_status = set(_listed(self.store.list(status=status)))
            expected = {j for j, s in gettable.items() if s[1] == status}
            if by_status != expected:
                violations.append(f"index: list({status}) shows {by_status}, get {expected}")
        return observed

    def _deep_check(self, violations: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """``check --deep`` twice: the first must leave the store clean, the second find
        nothing. Returns the leftovers the first found and repaired, by kind."""
        self.deep_checks += 1
        if self.deep_checks % self.cli_every == 0:
            code, outcome = deep_check(self.url)
            report = outcome.get("repair", {})
            if code != 0:
                violations.append(f"check --deep failed: {outcome.get('error', outcome)}")
            again_code, again = deep_check(self.url)
            left = again.get("repair", {}).get("leftovers")
            if again_code != 0 or left:
                violations.append(f"a second check --deep found {left or again}")
            return report.get("found", {}), report.get("repaired", {})
        first = repair(self.store, grace=0)
        if not first.clean:
            violations.append(f"repair left {first.leftovers}")
        second = repair(self.store, grace=0)
        if second.leftovers:
            violations.append(f"a second repair found {second.leftovers}")
        return first.found(), first.repaired()


def deep_check(url: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """``jobstatus check --deep --json --grace 0 --store URL`` in this process: the writer
    is dead, so nothing it left is "still in use". Returns the exit code and the outcome."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli_main(["check", "--deep", "--json", "--grace", "0", *extra, "--store", url], out)
    try:
        outcome: dict[str, Any] = json.loads(out.getvalue())
    except ValueError:
        outcome = {"error": err.getvalue().strip()}
    return code, outcome


def _listed(records: Iterable[Any]) -> dict[str, tuple[int, str]]:
    return {r.job_id: (r.response.get("seq"), r.job_status) for r in records}
