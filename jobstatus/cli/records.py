"""``get``, ``put`` and ``cancel``: one job's record, read, written or cancelled from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from jobstatus.cli.common import EXIT_OK, open_existing, open_url, store_url
from jobstatus.cli.options import (
    add_id_options,
    add_json_option,
    add_store_option,
    id_rule,
)
from jobstatus.cli.output import progress_text, record_json, rfc3339, write_json
from jobstatus.errors import InvalidRequest
from jobstatus.lifecycle import format_timestamp
from jobstatus.record import JobRecord, JobState
from jobstatus.tracker import JobTracker

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``get``, ``put`` and ``cancel`` to the subcommands."""
    get = commands.add_parser(
        "get",
        help="print one job's record",
        description="Print JOB_ID's state, the time it was last written (UTC) and its "
        "document. With --json, one JSON object: job_id, job_status, updated_at and document.",
    )
    add_store_option(get)
    add_id_options(get)
    add_json_option(get, "the record")
    get.add_argument("job_id", metavar="JOB_ID")
    get.set_defaults(run=_get)

    put = commands.add_parser(
        "put",
        help="store a job document",
        description="Store a job document (a JSON object with string job_id and job_status) "
        "read from FILE, or from stdin when FILE is - or absent. A job id the status endpoint "
        "would not serve (not a UUID, unless --job-id-pattern or --any-id say otherwise) is "
        "refused.",
    )
    add_store_option(put)
    add_id_options(put)
    put.add_argument("file", metavar="FILE", nargs="?", default="-")
    put.add_argument(
        "--force",
        action="store_true",
        help="overwrite even a job that is already final (done, failed, cancelled)",
    )
    put.set_defaults(run=_put)

    cancel = commands.add_parser(
        "cancel",
        help="ask a job to stop",
        description="Ask JOB_ID to stop, as the cancel route does: a queued or submitted job "
        "becomes cancelled at once; a running job is marked (cancel_requested_at) and its run "
        "records cancelled when it stops; a final job is left as it is. Prints what happened; "
        "with --json, the record as stored after the call.",
    )
    add_store_option(cancel)
    add_id_options(cancel)
    add_json_option(cancel, "the record after the call")
    cancel.add_argument("job_id", metavar="JOB_ID")
    cancel.set_defaults(run=_cancel)


def _get(args: argparse.Namespace, out: IO[str]) -> int:
    job_id = id_rule(args).check(args.job_id)
    with open_existing(store_url(args)) as store:
        record = store.get(job_id)
    if args.json:
        write_json(record_json(record), out)
        return EXIT_OK
    lines = _summary(record)
    width = max(len("document"), *(len(name) for name, _ in lines)) + 2
    for name, value in lines:
        out.write(f"{name + ':':<{width}}{value}\n")
    out.write("document:\n")
    out.write(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _summary(record: JobRecord) -> list[tuple[str, str]]:
    """The lines above the document: what a person looks for first; a time or the progress
    only where the record has it."""
    lines = [
        ("job_id", record.job_id),
        ("status", record.job_status),
        ("updated", rfc3339(record.updated_at) or "-"),
    ]
    for name, moment in (
        ("created", record.created_at),
        ("started", record.started_at),
        ("ended", record.ended_at),
        ("expires", record.expires_at),
        ("cancel requested", record.cancel_requested_at),
    ):
        if moment is not None:
            lines.append((name, format_timestamp(moment)))
    if record.progress is not None:
        lines.append(("progress", progress_text(record.progress)))
    if record.owner is not None:
        lines.append(("owner", record.owner))
    return lines


def _put(args: argparse.Namespace, out: IO[str]) -> int:
    rule = id_rule(args)
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read {args.file}: {exc}") from exc
    record = JobRecord.from_json(text)
    rule.check(record.job_id)
    with open_url(store_url(args)) as store:
        stored = store.put(record, force=args.force)
    kept = stored.to_dict() != record.to_dict()
    note = " (kept: the job was already final)" if kept else ""
    out.write(f"stored {stored.job_id}: {stored.job_status}{note}\n")
    return EXIT_OK


def _cancel(args: argparse.Namespace, out: IO[str]) -> int:
    job_id = id_rule(args).check(args.job_id)
    with open_existing(store_url(args)) as store:
        before = store.get(job_id)
        after = JobTracker(store).cancel(job_id)
    if args.json:
        write_json(record_json(after), out)
    elif before.is_final:
        out.write(f"{job_id} was already {before.job_status}: left as it is\n")
    elif after.job_status == JobState.CANCELLED:
        out.write(f"cancelled {job_id}\n")
    elif after.cancel_requested_at is not None:
        out.write(
            f"cancel requested for {job_id}: it is {after.job_status}, and its run records "
            "cancelled when it stops\n"
        )
    else:  # another writer ended it meanwhile
        out.write(f"{job_id} is {after.job_status}: left as it is\n")
    return EXIT_OK
