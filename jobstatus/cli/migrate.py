"""``migrate``: copy every job from one store to another, with progress and a summary."""

from __future__ import annotations

import argparse
from typing import IO, Any

from jobstatus.cli.common import EXIT_OK, open_existing, open_url
from jobstatus.cli.options import add_json_option, int_at_least
from jobstatus.cli.output import count, write_json
from jobstatus.cli.progress import ProgressPrinter
from jobstatus.migrate import DEFAULT_BATCH_SIZE, MigrationProgress, migrate

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``migrate`` to the subcommands."""
    migrate_ = commands.add_parser(
        "migrate",
        help="copy every job from one store to another",
        description="Copy every job from SRC_URL to DST_URL, keeping each job's updated_at. "
        "Safe to run again, after an interruption too: a job the destination already has "
        "with the same document and updated_at is not copied again, and one that is newer "
        "in the destination is kept. On a terminal, counts the source first and shows a "
        "progress bar with records/s and an ETA; otherwise prints a plain progress line every "
        "few seconds. The source must exist; the destination is created by the first write. "
        "With --dry-run nothing is written or created in either store.",
    )
    migrate_.add_argument("src", metavar="SRC_URL", help="the store to copy from")
    migrate_.add_argument("dst", metavar="DST_URL", help="the store to copy into")
    migrate_.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="write N jobs at a time (default: %(default)s)",
    )
    migrate_.add_argument(
        "--dry-run", action="store_true", help="count what would be copied; write nothing"
    )
    add_json_option(migrate_, "the counts (and no progress)")
    migrate_.set_defaults(run=_migrate)


def _migrate(args: argparse.Namespace, out: IO[str]) -> int:
    terminal = not args.json and _is_terminal(out)
    printer = ProgressPrinter(out, terminal=terminal)
    try:
        with open_existing(args.src) as src, open_url(args.dst) as dst:
            result = migrate(
                src,
                dst,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
                progress=None if args.json else printer,
                count_first=terminal,  # the bar shows a total and an ETA
            )
    finally:
        printer.close()
    if args.json:
        write_json(
            {
                "dry_run": args.dry_run,
                "seen": result.seen,
                "copied": result.copied,
                "unchanged": result.unchanged,
                "kept_newer": result.kept_newer,
                "elapsed_s": round(result.elapsed, 3),
            },
            out,
        )
        return EXIT_OK
    out.write(summary(result, dry_run=args.dry_run) + "\n")
    return EXIT_OK


def summary(result: MigrationProgress, *, dry_run: bool) -> str:
    """``copied 20,000 of 20,000 records (0 unchanged, 0 kept as newer in the destination)
    in 2.1 s``."""
    verb = "would copy" if dry_run else "copied"
    return (
        f"{verb} {result.copied:,} of {count(result.seen, 'record')} ({result.unchanged:,} "
        f"unchanged, {result.kept_newer:,} kept as newer in the destination) in "
        f"{result.elapsed:.1f} s{' (dry run: nothing written)' if dry_run else ''}"
    )


def _is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
