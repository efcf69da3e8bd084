"""The whole ``jobstatus`` command line, assembled from each command's module."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from jobstatus.cli import check, deliver, listing, migrate, purge, reap, records, serve
from jobstatus.cli.common import EXIT_USAGE

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line on stderr and exit code 2."""

    #: name → the parser of that command, in order (the top-level parser only).
    commands: dict[str, argparse.ArgumentParser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = {}

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return version("jobstatus")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the docs are generated from it."""
    parser = _Parser(
        prog="jobstatus",
        description="Store the status of background jobs and serve it over HTTP.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for module in (serve, records, listing, purge, reap, deliver, migrate, check):
        module.register(commands)
    parser.commands.update(commands.choices)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of ``parser`` (from :func:`build_parser`), in order."""
    return dict(parser.commands) if isinstance(parser, _Parser) else {}
