"""``check``: can this store be reached, read and written from here? Each step is named, so
a refused connection, a refused read and a refused write read differently."""

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
    CommandError,
    one_line,
    open_url,
    store_url,
)
from jobstatus.cli.options import add_json_option, add_store_option
from jobstatus.cli.output import write_json
from jobstatus.errors import JobNotFound, redact
from jobstatus.migrate import store_exists
from jobstatus.record import JobRecord
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
        "--create is given; then the probe's write creates it.",
    )
    add_store_option(check)
    check.add_argument(
        "--create",
        action="store_true",
        help="create the store if it does not exist yet (by writing the probe)",
    )
    add_json_option(check, "the outcome (ok, store, step, error, created, elapsed_ms)")
    check.set_defaults(run=_check)


def _check(args: argparse.Namespace, out: IO[str]) -> int:
    url = store_url(args)
    shown = redact(url)
    started = time.monotonic()
    steps = ["open"]  # steps[-1] is the step under way
    created = False
    try:
        with open_url(url) as store:
            steps.append("connect")
            if not _connect(store):
                if not args.create:
                    message = f"check failed: store does not exist: {shown} (--create creates it)"
                    return _report(args, out, shown, message, step="exists", created=False)
                created = True
            _probe_round_trip(store, steps)
    except Exception as exc:
        step = steps[-1]
        message = f"check failed: cannot {STEPS[step]} {shown}: {one_line(exc)}"
        return _report(args, out, shown, message, step=step, created=created)
    elapsed = round((time.monotonic() - started) * 1000)
    what = f"{shown} was created; it" if created else shown
    message = f"ok: {what} can be reached, read and written ({elapsed} ms)"
    return _report(args, out, shown, message, ok=True, created=created, elapsed_ms=elapsed)


def _connect(store: Store) -> bool:
    """The first request: whether the store exists. A store that does not implement
    ``exists`` itself (a third-party one, or one keeping the protocol's default) is asked for
    the first entry of its listing instead, so that reaching it is still its own step."""
    implementation = getattr(type(store), "exists", None)
    if implementation is None or implementation is getattr(BaseStore, "exists", None):
        next(iter(store.list(limit=1)), None)
        return True
    return store_exists(store)


def _probe_round_trip(store: Store, steps: list[str]) -> None:
    """Read a missing id, write, read back, delete, read again; ``steps[-1]`` is the step
    under way when something fails."""
    probe = JobRecord(
        job_id=f"jobstatus-check-{uuid.uuid4().hex}",
        job_status="check",
        response={"written_by": "jobstatus check"},
    )
    steps.append("read")
    with suppress(JobNotFound):
        store.get(probe.job_id)
        raise _failed("a job with the probe's unique id is already there")
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
