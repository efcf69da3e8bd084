"""The ``jobstatus`` command: serve the endpoints and read or write records from a shell.

Exit codes: 0 success, 1 a job not found or a failed check, 2 a usage error. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timezone
from typing import IO, NoReturn

from jobstatus import config
from jobstatus.backends import open_store
from jobstatus.errors import (
    ConfigurationError,
    InvalidRequest,
    JobNotFound,
    JobStatusError,
    redact,
)
from jobstatus.migrate import DEFAULT_BATCH_SIZE, MigrationProgress, migrate
from jobstatus.record import JobRecord
from jobstatus.store import Store

__all__ = ["build_parser", "main", "parse_duration"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``90`` or ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` → seconds."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number of seconds or e.g. 90s, 15m, 2h, 7d"
        )
    return float(match[1]) * _UNITS[(match[2] or "s").lower()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="store URL (default: $JOBSTATUS_STORE, else $LOCAL_STORAGE_PATH, "
        f"else {config.DEFAULT_STORE})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the docs are generated from it."""
    parser = _Parser(
        prog="jobstatus",
        description="Store the status of background jobs and serve it over HTTP.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    serve = commands.add_parser(
        "serve",
        help="serve the status endpoints under gunicorn",
        description="Serve POST /v1/toolkit/job/status and /v1/toolkit/jobs/status under "
        "gunicorn. Keys come from $JOBSTATUS_API_KEYS or $API_KEY; with neither, a key is "
        "generated, printed once, and required.",
    )
    _add_store_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default: %(default)s)")
    serve.add_argument(
        "--workers", type=int, default=2, help="gunicorn worker processes (default: %(default)s)"
    )
    serve.add_argument(
        "--upstream-wire",
        action="store_true",
        help="answer 404 and 500 as the running upstream service does",
    )
    serve.set_defaults(run=_serve)

    get = commands.add_parser(
        "get", help="print one job's document", description="Print the document of JOB_ID as JSON."
    )
    _add_store_option(get)
    get.add_argument("job_id", metavar="JOB_ID")
    get.set_defaults(run=_get)

    put = commands.add_parser(
        "put",
        help="store a job document",
        description="Store a job document (a JSON object with string job_id and job_status) "
        "read from FILE, or from stdin when FILE is - or absent.",
    )
    _add_store_option(put)
    put.add_argument("file", metavar="FILE", nargs="?", default="-")
    put.add_argument(
        "--force",
        action="store_true",
        help="overwrite even a done or failed job with a non-final state",
    )
    put.set_defaults(run=_put)

    list_ = commands.add_parser(
        "list",
        help="list recently updated jobs, newest first",
        description="List jobs, newest first.",
    )
    _add_store_option(list_)
    list_.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        help="only jobs updated within this long (e.g. 600, 15m, 7d)",
    )
    list_.add_argument(
        "--status", metavar="S[,S…]", help="only jobs in these states (comma-separated)"
    )
    list_.add_argument("--limit", type=int, metavar="N", help="at most N jobs")
    list_.add_argument(
        "--json", action="store_true", help="one JSON document per line instead of a table"
    )
    list_.set_defaults(run=_list)

    purge = commands.add_parser(
        "purge",
        help="delete jobs not updated for a while",
        description="Delete the jobs last updated more than DURATION ago, optionally only those "
        "in some states, in batches of at most --batch-size jobs, and print what was removed. "
        "With --dry-run, list the jobs that would go and delete nothing.",
    )
    _add_store_option(purge)
    purge.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        metavar="DURATION",
        help="remove jobs last updated longer ago than this (e.g. 12h, 7d)",
    )
    purge.add_argument(
        "--status",
        metavar="S[,S…]",
        help="only jobs in these states (comma-separated), e.g. done,failed",
    )
    purge.add_argument(
        "--batch-size",
        type=_positive_int,
        default=PURGE_BATCH_SIZE,
        metavar="N",
        help="delete at most about N jobs at a time (default: %(default)s)",
    )
    purge.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    purge.set_defaults(run=_purge)

    migrate_ = commands.add_parser(
        "migrate",
        help="copy every job from one store to another",
        description="Copy every job from SRC_URL to DST_URL, keeping each job's updated_at. "
        "Safe to run again, after an interruption too: a job the destination already has "
        "with the same document and updated_at is not copied again, and one that is newer "
        "in the destination is kept. On a terminal, counts the source first and shows a "
        "progress bar with records/s and an ETA; otherwise prints a plain progress line every "
        "few seconds.",
    )
    migrate_.add_argument("src", metavar="SRC_URL", help="the store to copy from")
    migrate_.add_argument("dst", metavar="DST_URL", help="the store to copy into")
    migrate_.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="write N jobs at a time (default: %(default)s)",
    )
    migrate_.add_argument(
        "--dry-run", action="store_true", help="count what would be copied; write nothing"
    )
    migrate_.set_defaults(run=_migrate)

    check = commands.add_parser(
        "check",
        help="check that a store can be reached, read and written",
        description="Write a probe job with a unique id, read it back and delete it. Exit 0 "
        "when all of that works, 1 with the reason when something does not.",
    )
    _add_store_option(check)
    check.set_defaults(run=_check)
    return parser


def _open(args: argparse.Namespace) -> Store:
    return open_store(args.store or config.store_url_from_env())


def _split(values: str | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]


def _get(args: argparse.Namespace, out: IO[str]) -> int:
    with _open(args) as store:
        record = store.get(args.job_id)
    out.write(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _put(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read {args.file}: {exc}") from exc
    record = JobRecord.from_json(text)
    with _open(args) as store:
        stored = store.put(record, force=args.force)
    kept = " (kept: the job was already final)" if stored.job_status != record.job_status else ""
    out.write(f"stored {stored.job_id}: {stored.job_status}{kept}\n")
    return EXIT_OK


def _format_time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _list(args: argparse.Namespace, out: IO[str]) -> int:
    import time

    since = None if args.since is None else time.time() - args.since
    with _open(args) as store:
        records = list(store.list(since=since, status=_split(args.status), limit=args.limit))
    if args.json:
        for record in records:
            out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        return EXIT_OK
    _table([(r.job_id, r.job_status, r.updated_at) for r in records], out)
    return EXIT_OK


def _table(jobs: Sequence[tuple[str, str, float | None]], out: IO[str]) -> None:
    """JOB_ID, STATUS and UPDATED (UTC) columns, one job a line."""
    rows = [(job_id, status, _format_time(stamp)) for job_id, status, stamp in jobs]
    header = ("JOB_ID", "STATUS", "UPDATED (UTC)")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


# -- purge -----------------------------------------------------------------------------------

PURGE_BATCH_SIZE = 1000


def _purge(args: argparse.Namespace, out: IO[str]) -> int:
    """List the candidates, then delete them with ``store.purge`` oldest first, one bounded
    batch at a time: each batch's bound is the stamp of the first job of the next batch."""
    cutoff = time.time() - args.older_than
    statuses = _split(args.status)
    which = f"updated before {_format_time(cutoff)}"
    if statuses is not None:
        which += f" with status {', '.join(statuses)}"
    with _open(args) as store:
        doomed = sorted(  # (updated_at, job_id, job_status), oldest first; no documents
            (record.updated_at, record.job_id, record.job_status)
            for record in store.list(status=statuses)
            if record.updated_at is not None and record.updated_at < cutoff
        )
        if args.dry_run:
            if doomed:
                _table([(job_id, status, stamp) for stamp, job_id, status in doomed], out)
            out.write(f"would remove {len(doomed)} jobs {which} (dry run: nothing removed)\n")
            return EXIT_OK
        removed = 0
        for start in range(0, len(doomed), args.batch_size):
            following = start + args.batch_size
            bound = cutoff
            if following < len(doomed):
                bound = min(cutoff, doomed[following][0])
            count = store.purge(older_than=bound, status=statuses)
            removed += count
            if count:
                out.write(f"removed {count} jobs updated before {_format_time(bound)}\n")
                out.flush()
    out.write(f"removed {removed} jobs in all: every job {which}\n")
    return EXIT_OK


# -- migrate ---------------------------------------------------------------------------------


class _ProgressPrinter:
    """Renders :class:`~jobstatus.migrate.MigrationProgress`: a bar redrawn in place on a
    terminal (every ``interval`` seconds, 0.1 by default), else a plain line every ``interval``
    seconds (5 by default), so a short migration prints its summary alone."""

    def __init__(self, out: IO[str], *, terminal: bool, interval: float | None = None) -> None:
        self.out = out
        self.terminal = terminal
        self.interval = (0.1 if terminal else 5.0) if interval is None else interval
        self._last = float("-inf") if terminal else time.monotonic()
        self._drawn = False

    def __call__(self, state: MigrationProgress) -> None:
        if state.phase == "done":
            self.close()
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        if self.terminal:
            self._draw(self._bar(state))
        else:
            self.out.write(f"migrate: {self._line(state)}\n")
            self.out.flush()

    def close(self) -> None:
        """End the bar's line, so what follows starts on a line of its own."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False

    def _draw(self, text: str) -> None:
        width = shutil.get_terminal_size().columns
        self.out.write("\r" + text[: width - 1].ljust(width - 1))
        self.out.flush()
        self._drawn = True

    @staticmethod
    def _line(state: MigrationProgress) -> str:
        if state.phase == "count":
            return f"counting the source: {state.counted:,} records"
        if state.phase == "index":
            return f"reading the destination: {state.indexed:,} records"
        verb = "to copy" if state.dry_run else "copied"
        if state.total is None:
            return (
                f"{state.seen:,} records, {state.copied:,} {verb}, {state.unchanged:,} "
                f"unchanged, {state.rate:,.0f} records/s"
            )
        percent = f" ({state.seen / state.total:.0%})" if state.total else ""
        return (
            f"{state.seen:,}/{state.total:,} records{percent}, {state.copied:,} {verb}, "
            f"{state.unchanged:,} unchanged, {state.rate:,.0f} records/s, "
            f"ETA {_format_eta(state.eta)}"
        )

    def _bar(self, state: MigrationProgress) -> str:
        if state.phase != "copy" or not state.total:
            return self._line(state)
        done = min(1.0, state.seen / state.total)
        cells = 30
        filled = round(done * cells)
        return (
            f"[{'#' * filled}{'.' * (cells - filled)}] {done:4.0%}  "
            f"{state.seen:,}/{state.total:,}  {state.rate:,.0f} records/s  "
            f"ETA {_format_eta(state.eta)}"
        )


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _migrate(args: argparse.Namespace, out: IO[str]) -> int:
    printer = _ProgressPrinter(out, terminal=_is_terminal(out))
    try:
        with open_store(args.src) as src, open_store(args.dst) as dst:
            result = migrate(
                src,
                dst,
                batch_size=args.batch_size,
                dry_run=args.dry_run,
                progress=printer,
                count_first=printer.terminal,  # the bar shows a total and an ETA
            )
    finally:
        printer.close()
    verb = "would copy" if args.dry_run else "copied"
    out.write(
        f"{verb} {result.copied} of {result.seen} records ({result.unchanged} unchanged, "
        f"{result.kept_newer} kept as newer in the destination) in {result.elapsed:.1f} s"
        f"{' (dry run: nothing written)' if args.dry_run else ''}\n"
    )
    return EXIT_OK


def _is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


# -- check -----------------------------------------------------------------------------------


class _CheckError(Exception):
    pass


def _check(args: argparse.Namespace, out: IO[str]) -> int:
    """Write, read back and delete a probe record; any failure is exit 1 with its reason."""
    url = args.store or config.store_url_from_env()
    probe = JobRecord(
        job_id=f"jobstatus-check-{uuid.uuid4().hex}",
        job_status="check",
        response={"written_by": "jobstatus check"},
    )
    step = "open"
    started = time.monotonic()
    try:
        with open_store(url) as store:
            try:
                step = "write to"
                store.put(probe)
                step = "read from"
                if store.get(probe.job_id).to_dict() != probe.to_dict():
                    raise _CheckError("the probe record read back differs from what was written")
                step = "delete from"
                if not store.delete(probe.job_id):
                    raise _CheckError("the probe record was gone before it was deleted")
                try:
                    store.get(probe.job_id)
                except JobNotFound:
                    pass
                else:
                    raise _CheckError("the probe record can still be read after its delete")
            finally:
                if step != "delete from":  # best effort: leave no probe behind; the first
                    with suppress(Exception):  # failure is the one to report
                        store.delete(probe.job_id)
    except Exception as exc:
        return _fail(EXIT_FAILED, f"check failed: cannot {step} {redact(url)}: {_one_line(exc)}")
    elapsed = (time.monotonic() - started) * 1000
    out.write(f"ok: {redact(url)} can be reached, read and written ({elapsed:.0f} ms)\n")
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    ours = (JobStatusError, ConfigurationError, _CheckError)
    text = str(exc) if isinstance(exc, ours) else f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))


def _serve(args: argparse.Namespace, out: IO[str]) -> int:
    from jobstatus.serve import serve

    keys = config.api_keys_from_env()
    if keys is None:
        keys = [secrets.token_urlsafe(32)]
        out.write(
            "jobstatus: no API key configured; generated one for this run (set API_KEY or "
            f"JOBSTATUS_API_KEYS to choose your own):\n  x-api-key: {keys[0]}\n"
        )
        out.flush()
    serve(
        store_url=args.store or config.store_url_from_env(),
        api_keys=keys,
        host=args.host,
        port=args.port,
        workers=args.workers,
        build_number=config.build_number_from_env(),
        upstream_wire=args.upstream_wire,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace, IO[str]], int] = args.run
    try:
        return run(args, out or sys.stdout)
    except JobNotFound as exc:
        return _fail(EXIT_FAILED, str(exc))
    except (ConfigurationError, InvalidRequest) as exc:
        return _fail(EXIT_USAGE, _message(exc))
    except JobStatusError as exc:
        return _fail(EXIT_FAILED, _message(exc))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a driver error no backend translated: still one line
        return _fail(EXIT_FAILED, _one_line(exc))


def _message(exc: Exception) -> str:
    """One line: what went wrong, with any credential hidden."""
    return redact(" ".join(str(exc).split()))


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"jobstatus: {message}\n")
    return code


def entry_point() -> NoReturn:
    """The console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
