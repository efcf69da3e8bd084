"""``purge``: delete old or expired jobs with one :meth:`Store.purge <jobstatus.Store.purge>`
call, or with ``--dry-run`` list them and delete nothing."""

from __future__ import annotations

import argparse
import time
from typing import IO, Any

from jobstatus.cli.common import EXIT_OK, EXIT_USAGE, CommandError, open_existing, store_url
from jobstatus.cli.listing import jobs_table
from jobstatus.cli.options import add_json_option, add_store_option, parse_duration, split_states
from jobstatus.cli.output import count, rfc3339, short_time, write_json
from jobstatus.record import JobRecord

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``purge`` to the subcommands."""
    purge = commands.add_parser(
        "purge",
        help="delete jobs not updated for a while, or expired",
        description="Delete the jobs last updated more than DURATION ago (--older-than), the "
        "expired ones (--expired), or either (both options), optionally only those in some "
        "states, and print how many were removed. The store deletes them in one pass. With "
        "--dry-run, list the jobs that would go and delete nothing (expired jobs are hidden "
        "from every read, listings included, so a dry run does not show them).",
    )
    add_store_option(purge)
    purge.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="DURATION",
        help="remove jobs last updated longer ago than this (e.g. 12h, 7d)",
    )
    purge.add_argument(
        "--expired",
        action="store_true",
        help="remove jobs whose expires_at has passed (alone, or as well as --older-than)",
    )
    purge.add_argument(
        "--status",
        metavar="S[,S…]",
        help="only jobs in these states (comma-separated), e.g. done,failed",
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    add_json_option(purge, "the outcome (and with --dry-run the jobs)")
    purge.set_defaults(run=_purge)


def _purge(args: argparse.Namespace, out: IO[str]) -> int:
    if args.older_than is None and not args.expired:
        raise CommandError(EXIT_USAGE, "purge needs --older-than DURATION, --expired, or both")
    now = time.time()
    cutoff = None if args.older_than is None else now - args.older_than
    statuses = split_states(args.status)
    which = _which(cutoff, args.expired, statuses)
    outcome: dict[str, Any] = {
        "dry_run": args.dry_run,
        "older_than": rfc3339(cutoff),
        "expired": args.expired,
        "status": statuses,
    }
    with open_existing(store_url(args)) as store:
        if args.dry_run:
            # Read-only: a listing, filtered here; nothing is deleted.
            doomed = sorted(
                (r for r in store.list(status=statuses) if _doomed(r, cutoff, args.expired, now)),
                key=lambda r: (r.updated_at or 0.0, r.job_id),
            )
        else:
            options: dict[str, Any] = {"status": statuses}
            if cutoff is not None:
                options["older_than"] = cutoff
            if args.expired:
                options["expired"] = True
            removed = store.purge(**options)
    if not args.dry_run:
        if args.json:
            write_json({**outcome, "count": removed}, out)
        else:
            out.write(f"removed {count(removed, 'job')} {which}\n")
        return EXIT_OK
    if args.json:
        jobs = [
            {"job_id": r.job_id, "job_status": r.job_status, "updated_at": rfc3339(r.updated_at)}
            for r in doomed
        ]
        write_json({**outcome, "count": len(doomed), "jobs": jobs}, out)
        return EXIT_OK
    if doomed:
        jobs_table(doomed, out)
    # Stores hide expired records from every read, listings included: a dry run cannot see them.
    unseen = "; expired jobs are hidden from listings and not counted" if args.expired else ""
    out.write(
        f"would remove {count(len(doomed), 'job')} {which} (dry run: nothing removed{unseen})\n"
    )
    return EXIT_OK


def _doomed(record: JobRecord, cutoff: float | None, expired: bool, now: float) -> bool:
    """What ``store.purge`` deletes, status aside: older than the cutoff, or expired (a
    listing skips expired records; one that expires while listed counts)."""
    if cutoff is not None and record.updated_at is not None and record.updated_at < cutoff:
        return True
    return expired and record.is_expired(now)


def _which(cutoff: float | None, expired: bool, statuses: list[str] | None) -> str:
    """``updated before 2026-11-30T03:06:31Z with status done, failed``, and the like."""
    parts = []
    if expired:
        parts.append("expired")
    if cutoff is not None:
        parts.append(f"updated before {short_time(cutoff)}")
    which = " or ".join(parts)
    if statuses is not None:
        which += f" with status {', '.join(statuses)}"
    return which
