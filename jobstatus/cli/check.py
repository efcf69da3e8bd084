"""``check``: can this store be reached, read and written from here? Each step is named, so
a refused connection, a refused read and a refused write read differently.

``check --deep`` also looks for what killed writers left (:mod:`jobstatus.repair`) and clears
it: one line per leftover, what was done or why not; ``--dry-run`` clears nothing and writes
no probe. Exit 0 when the store is clean afterwards (nothing found, or all of it repaired), 1
when a step failed or a leftover is still there (kept, or a dry run).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from contextlib import suppress
from typing import IO, Any

from jobstatus.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    one_line,
    open_url,
    store_url,
)
from jobstatus.cli.options import add_json_option, add_store_option, parse_duration
from jobstatus.cli.output import count, write_json
from jobstatus.errors import JobNotFound, redact
from jobstatus.migrate import store_exists
from jobstatus.record import JobRecord
from jobstatus.repair import DEFAULT_GRACE, RepairReport, repair
from jobstatus.store import BaseStore, Store

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []

#: Each step, as the JSON outcome names it, and as a failure says it: "cannot <phrase> <url>".
STEPS = {
    "open": "open",
    "connect": "connect to",
    "read": "read from",
    "write": "write to",
    "read back": "read back from",
    "delete": "delete from",
    "repair": "look for crash leftovers in",
}


def register(commands: Any) -> None:
    """Add ``check`` to the subcommands."""
    check = commands.add_parser(
        "check",
        help="check that a store can be reached, read and written",
        description="Connect to the store, read a job id that does not exist, write a probe "
        "job with a unique id, read it back and delete it. Exit 0 when all of that works, 1 "
        "naming the step that failed (connect, read, write, read back, delete) and why. A "
        "store that does not exist yet (a folder, a table, a bucket) fails the check unless "
        "--create is given; then the probe's write creates it. --deep then looks for what "
        "killed writers left (temp files, incomplete uploads, index drift, an unfinished "
        "table) and clears it, one line per leftover; exit 0 when the store is clean "
        "afterwards, 1 when something is still there.",
    )
    add_store_option(check)
    check.add_argument(
        "--create",
        action="store_true",
        help="create the store if it does not exist yet (by writing the probe)",
    )
    check.add_argument(
        "--deep",
        action="store_true",
        help="also find and clear crash leftovers (temp files, incomplete uploads, index "
        "drift, an unfinished table)",
    )
    check.add_argument(
        "--dry-run",
        action="store_true",
        help="with --deep: report the leftovers, clear nothing and write no probe",
    )
    check.add_argument(
        "--grace",
        metavar="DURATION",
        type=parse_duration,
        default=DEFAULT_GRACE,
        help="with --deep: keep leftovers younger than this where the store cannot tell "
        "whether their writer is still at work (S3 uploads, fsspec temp files; default 1h)",
    )
    add_json_option(
        check, "the outcome (ok, store, step, error, created, elapsed_ms; repair with --deep)"
    )
    check.set_defaults(run=_check)


def _check(args: argparse.Namespace, out: IO[str]) -> int:
    url = store_url(args)
    shown = redact(url)
    started = time.monotonic()
    steps = ["open"]  # steps[-1] is the step under way
    created = False
    if args.dry_run and not args.deep:
        raise CommandError(EXIT_USAGE, "--dry-run goes with --deep")
    report: RepairReport | None = None
    try:
        with open_url(url) as store:
            steps.append("connect")
            if not _connect(store):
                if not args.create:
                    message = f"check failed: store does not exist: {shown} (--create creates it)"
                    return _report(args, out, shown, message, step="exists", created=False)
                created = True
            if args.deep:  # before the probe, whose write would complete an unfinished table
                steps.append("repair")
                report = RepairReport(dry_run=args.dry_run)
                if not created:  # a store that is not there holds no leftovers
                    report = repair(store, dry_run=args.dry_run, grace=args.grace)
            _probe_round_trip(store, steps, write=not args.dry_run)
    except Exception as exc:
        step = steps[-1]
        message = f"check failed: cannot {STEPS[step]} {shown}: {one_line(exc)}"
        return _report(args, out, shown, message, step=step, created=created)
    elapsed = round((time.monotonic() - started) * 1000)
    what = f"{shown} was created; it" if created else shown
    done = "reached and read" if args.dry_run else "reached, read and written"
    message = f"ok: {what} can be {done} ({elapsed} ms)"
    if report is None:
        return _report(args, out, shown, message, ok=True, created=created, elapsed_ms=elapsed)
    if not args.json:
        out.write(message + "\n")
        for leftover in report.leftovers:
            state = "repaired" if leftover.repaired else "found"
            out.write(f"{state} {leftover.kind} {leftover.target}: {leftover.note}\n")
    summary = _summary(report)
    fields: dict[str, Any] = {"created": created, "elapsed_ms": elapsed}
    fields["repair"] = {
        "dry_run": report.dry_run,
        "clean": report.clean,
        "found": report.found(),
        "repaired": report.repaired(),
        "leftovers": [leftover.to_dict() for leftover in report.leftovers],
    }
    if report.clean:
        return _report(args, out, shown, summary, ok=True, **fields)
    return _report(args, out, shown, f"check failed: {shown}: {summary}", **fields)


def _summary(report: RepairReport) -> str:
    """``deep check: 3 leftovers found, 3 repaired (temp_file 3)``."""
    if not report.leftovers:
        return "deep check: no crash leftovers found"
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(report.found().items()))
    repaired = sum(report.repaired().values())
    what = "to repair (dry run)" if report.dry_run else f"{repaired:,} repaired"
    return f"deep check: {count(len(report.leftovers), 'leftover')} found, {what} ({kinds})"


def _connect(store: Store) -> bool:
    """The first request: whether the store exists. A store that does not implement
    ``exists`` itself (a third-party one, or one keeping the protocol's default) is asked for
    the first entry of its listing instead, so that reaching it is still its own step."""
    implementation = getattr(type(store), "exists", None)
    if implementation is None or implementation is getattr(BaseStore, "exists", None):
        next(iter(store.list(limit=1)), None)
        return True
    return store_exists(store)


def _probe_round_trip(store: Store, steps: list[str], *, write: bool = True) -> None:
    """Read a missing id, write, read back, delete, read again (without ``write``: only
    read); ``steps[-1]`` is the step under way when something fails."""
    probe = JobRecord(
        job_id=f"jobstatus-check-{uuid.uuid4().hex}",
        job_status="check",
        response={"written_by": "jobstatus check"},
    )
    steps.append("read")
    with suppress(JobNotFound):
        store.get(probe.job_id)
        raise _failed("a job with the probe's unique id is already there")
    if not write:
        return
    steps.append("write")
    try:
        store.put(probe)
        steps.append("read back")
        if store.get(probe.job_id).to_dict() != probe.to_dict():
            raise _failed("the probe record read back differs from what was written")
        steps.append("delete")
        if not store.delete(probe.job_id):
            raise _failed("the probe record was gone before it was deleted")
        with suppress(JobNotFound):
            store.get(probe.job_id)
            raise _failed("the probe record can still be read after its delete")
    finally:
        if steps[-1] != "delete":  # best effort: leave no probe behind; the first
            with suppress(Exception):  # failure is the one to report
                store.delete(probe.job_id)


def _failed(reason: str) -> CommandError:
    return CommandError(EXIT_FAILED, reason)


def _report(
    args: argparse.Namespace,
    out: IO[str],
    shown: str,
    message: str,
    *,
    ok: bool = False,
    **fields: Any,
) -> int:
    """The outcome: its line (on stdout when ok, else on stderr), or with ``--json`` one object
    on stdout (and a failure's line on stderr as well)."""
    if args.json:
        outcome: dict[str, Any] = {"ok": ok, "store": shown, **fields}
        if not ok:
            outcome["error"] = message.removeprefix("check failed: ")
        write_json(outcome, out)
    elif ok:
        out.write(message + "\n")
    if not ok:
        sys.stderr.write(f"jobstatus: {message}\n")
    return EXIT_OK if ok else EXIT_FAILED
