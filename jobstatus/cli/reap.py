"""``reap``: fail the ``running`` jobs whose worker died (no heartbeat for a while), with
:meth:`JobTracker.reap <jobstatus.JobTracker.reap>`."""

from __future__ import annotations

import argparse
from typing import IO, Any

from jobstatus.cli.common import EXIT_OK, open_existing, store_url
from jobstatus.cli.options import add_json_option, add_store_option, parse_duration
from jobstatus.cli.output import count, write_json
from jobstatus.tracker import JobTracker

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``reap`` to the subcommands."""
    reap = commands.add_parser(
        "reap",
        help="fail running jobs whose worker stopped writing",
        description="Mark `failed` every running job whose last write (its heartbeat: runs "
        "write at least every 30 s) is older than DURATION, with the message 'worker lost: "
        "no heartbeat since …'. A worker that writes first wins. Run it from cron, a Celery "
        "beat entry or a systemd timer, with DURATION well above the heartbeat interval.",
    )
    add_store_option(reap)
    reap.add_argument(
        "--stale-after",
        type=parse_duration,
        metavar="DURATION",
        required=True,
        help="how long without a write makes a running job lost (e.g. 5m)",
    )
    reap.add_argument("--dry-run", action="store_true", help="count the lost jobs; change nothing")
    add_json_option(reap, "the outcome")
    reap.set_defaults(run=_reap)


def _reap(args: argparse.Namespace, out: IO[str]) -> int:
    with open_existing(store_url(args)) as store:
        reaped = JobTracker(store).reap(stale_after=args.stale_after, dry_run=args.dry_run)
    if args.json:
        write_json({"reaped": reaped, "dry_run": args.dry_run}, out)
    elif args.dry_run:
        out.write(f"would fail {count(reaped, 'lost job')}\n")
    else:
        out.write(f"failed {count(reaped, 'lost job')}\n")
    return EXIT_OK
