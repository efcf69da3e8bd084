"""``list``: the jobs of a store, newest first, as a table or as JSON lines."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from jobstatus.cli.common import EXIT_OK, open_existing, store_url
from jobstatus.cli.options import (
    add_store_option,
    int_at_least,
    parse_duration,
    split_states,
)
from jobstatus.cli.output import progress_text, record_json, short_time, table, write_json
from jobstatus.record import JobRecord

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``list`` to the subcommands."""
    list_ = commands.add_parser(
        "list",
        help="list recently updated jobs, newest first",
        description="List jobs, newest first: a table, or with --json one JSON object a line "
        "(job_id, job_status, updated_at and document).",
    )
    add_store_option(list_)
    list_.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        help="only jobs updated within this long (e.g. 600, 15m, 7d)",
    )
    list_.add_argument(
        "--status", metavar="S[,S…]", help="only jobs in these states (comma-separated)"
    )
    list_.add_argument("--limit", type=int_at_least(1), metavar="N", help="at most N jobs")
    list_.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of a table"
    )
    list_.set_defaults(run=_list)


def _list(args: argparse.Namespace, out: IO[str]) -> int:
    since = None if args.since is None else time.time() - args.since
    with open_existing(store_url(args)) as store:
        records = store.list(since=since, status=split_states(args.status), limit=args.limit)
        if args.json:
            for record in records:
                write_json(record_json(record), out)
            return EXIT_OK
        jobs_table(list(records), out)
    return EXIT_OK


#: The columns shown only when some job has a value for them: heading, cell.
_OPTIONAL_COLUMNS: tuple[tuple[str, Callable[[JobRecord], str | None]], ...] = (
    ("STARTED", lambda r: None if r.started_at is None else short_time(r.started_at)),
    ("ENDED", lambda r: None if r.ended_at is None else short_time(r.ended_at)),
    ("PROGRESS", lambda r: None if r.progress is None else progress_text(r.progress, width=40)),
)


def jobs_table(records: Sequence[JobRecord], out: IO[str]) -> None:
    """JOB_ID, STATUS and UPDATED (UTC) columns, one job a line; STARTED, ENDED and PROGRESS
    too where some job has them."""
    header = ["JOB_ID", "STATUS", "UPDATED (UTC)"]
    rows = [[r.job_id, r.job_status, short_time(r.updated_at)] for r in records]
    for heading, cell in _OPTIONAL_COLUMNS:
        cells = [cell(record) for record in records]
        if any(value is not None for value in cells):
            header.append(heading)
            for row, value in zip(rows, cells, strict=True):
                row.append("-" if value is None else value)
    table(header, rows, out)
