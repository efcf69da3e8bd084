"""What every command shares: exit codes, one-line failures, and opening a store."""

from __future__ import annotations

import argparse

from jobstatus import config
from jobstatus.backends import open_store
from jobstatus.errors import ConfigurationError, JobStatusError, redact
from jobstatus.migrate import store_exists
from jobstatus.store import Store

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """Ends a command with ``code`` and ``message`` printed as one line on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def one_line(exc: BaseException) -> str:
    """The error as one line with any credential hidden; a foreign exception is named."""
    ours = (JobStatusError, ConfigurationError, CommandError)
    text = str(exc) if isinstance(exc, ours) else f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else the store the environment names."""
    url: str | None = args.store
    return url or config.store_url_from_env()


def missing_store(url: str) -> CommandError:
    return CommandError(EXIT_FAILED, f"store does not exist: {redact(url)}")


def open_url(url: str) -> Store:
    """The store ``url`` names (:func:`jobstatus.open_store`): every command opens its stores
    here."""
    return open_store(url)


def open_existing(url: str) -> Store:
    """Open the store at ``url`` for a command that only reads or removes records: a store
    whose container (folder, table, bucket) is not there is a :class:`CommandError` (exit 1),
    and nothing is created."""
    store = open_store(url)
    try:
        if not store_exists(store):
            raise missing_store(url)
    except BaseException:
        store.close()
        raise
    return store
