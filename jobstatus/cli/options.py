"""Option types and the options several commands share: the store, ``--json``, the id rule.

Every type here raises :class:`argparse.ArgumentTypeError`, so a bad value is a one-line usage
error (exit 2) naming the option.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass

from jobstatus import config
from jobstatus._schema import UUID_PATTERN
from jobstatus.cli.common import EXIT_USAGE, CommandError
from jobstatus.errors import redact
from jobstatus.record import check_job_id

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []

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


def int_at_least(lowest: int, highest: int | None = None) -> Callable[[str], int]:
    """An option type: a whole number in ``[lowest, highest]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lowest or (highest is not None and value > highest):
            bounds = (
                f"from {lowest} to {highest}" if highest is not None else f"of at least {lowest}"
            )
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {text!r}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


port_number = int_at_least(0, 65535)  # 0: any free port, as for gunicorn


def split_states(values: str | None) -> list[str] | None:
    """``"done, failed"`` → ``["done", "failed"]``; None stays None."""
    return None if values is None else [v.strip() for v in values.split(",") if v.strip()]


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="store URL (default: $JOBSTATUS_STORE, else $LOCAL_STORAGE_PATH, "
        f"else {config.DEFAULT_STORE})",
    )


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


# -- the job id rule ------------------------------------------------------------------------


@dataclass(frozen=True)
class IdRule:
    """The job ids a command accepts: those matching ``pattern`` whole (None: any id a store
    can keep), so that the CLI stores and reads only what the status endpoint serves."""

    pattern: str | None

    def check(self, job_id: str) -> str:
        """``job_id``, or a usage :class:`CommandError` saying why the endpoint would refuse
        it; an id no store can keep is an :class:`~jobstatus.InvalidRequest`."""
        check_job_id(job_id)
        if self.pattern is None or re.fullmatch(self.pattern, job_id):
            return job_id
        shown = redact(job_id)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        rule = (
            "is not a UUID"
            if self.pattern == UUID_PATTERN
            else f"does not match the job id pattern {self.pattern!r}"
        )
        raise CommandError(
            EXIT_USAGE,
            f"job_id {shown!r} {rule}: the status endpoint would not serve it "
            "(--any-id or --job-id-pattern allow other ids)",
        )

    @property
    def service_pattern(self) -> str:
        """The pattern to hand :class:`~jobstatus.StatusService`: ``.+`` for any id."""
        return ".+" if self.pattern is None else self.pattern


def add_id_options(parser: argparse.ArgumentParser) -> None:
    """``--job-id-pattern REGEX`` and ``--any-id``, one or the other."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--job-id-pattern",
        metavar="REGEX",
        type=_pattern,
        default=None,
        help="job ids must match this regular expression whole, as the status endpoint "
        f"requires (default: ${config.JOB_ID_PATTERN_VARIABLE}, else a UUID)",
    )
    group.add_argument(
        "--any-id",
        action="store_true",
        help="accept any job id a store can keep (the same as --job-id-pattern '.+')",
    )


def id_rule(args: argparse.Namespace) -> IdRule:
    """The rule the options (else the environment) give."""
    if args.any_id:
        return IdRule(None)
    pattern: str = args.job_id_pattern or config.job_id_pattern_from_env()
    return IdRule(None if pattern in (".+", ".*") else pattern)


def _pattern(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"invalid regular expression {text!r}: {exc}") from exc
    return text
