"""The ``jobstatus`` command: serve the endpoints and read or write records from a shell.

Exit codes: 0 success, 1 a job not found or a failed check, 2 a usage error. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import IO, Any, NoReturn

from jobstatus import config
from jobstatus.backends import open_store
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, JobStatusError
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

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
    serve.add_argument("--workers", type=int, default=2,
                       help="gunicorn worker processes (default: %(default)s)")
    serve.add_argument("--upstream-wire", action="store_true",
                       help="answer 404 and 500 as the running upstream service does")
    serve.set_defaults(run=_serve)

    get = commands.add_parser("get", help="print one job's document",
                              description="Print the document of JOB_ID as JSON.")
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
    put.add_argument("--force", action="store_true",
                     help="overwrite even a done or failed job with a non-final state")
    put.set_defaults(run=_put)

    list_ = commands.add_parser("list", help="list recently updated jobs, newest first",
                                description="List jobs, newest first.")
    _add_store_option(list_)
    list_.add_argument("--since", type=parse_duration, metavar="DURATION",
                       help="only jobs updated within this long (e.g. 600, 15m, 7d)")
    list_.add_argument("--status", metavar="S[,S…]",
                       help="only jobs in these states (comma-separated)")
    list_.add_argument("--limit", type=int, metavar="N", help="at most N jobs")
    list_.add_argument("--json", action="store_true",
                       help="one JSON document per line instead of a table")
    list_.set_defaults(run=_list)
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
    rows = [(r.job_id, r.job_status, _format_time(r.updated_at)) for r in records]
    header = ("JOB_ID", "STATUS", "UPDATED (UTC)")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    return EXIT_OK


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


def _message(exc: Exception) -> str:
    body: Any = exc.body() if isinstance(exc, JobStatusError) else None
    if isinstance(exc, InvalidRequest):
        return str(exc)
    if body and "error" in body:
        return str(body["error"])
    return str(exc)


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"jobstatus: {message}\n")
    return code


def entry_point() -> NoReturn:
    """The console script."""
    sys.exit(main())
