"""The ``jobstatus`` command: serve the endpoints and read or write records from a shell.

Exit codes: 0 success, 1 a job or a store not found, or a failed check, 2 a usage error.
Errors are one line on stderr, never a traceback, never a credential.

One module per command (``records``: get, put, cancel; ``listing``: list; ``purge``; ``reap``;
``deliver``; ``migrate``; ``check``; ``serve``), each adding its options to the parser
(``parser``); ``options``, ``output`` and ``common`` are what they share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from jobstatus.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, one_line
from jobstatus.cli.options import parse_duration
from jobstatus.cli.parser import build_parser
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, JobStatusError

__all__ = ["build_parser", "entry_point", "main", "parse_duration"]


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    run: Callable[..., int] = args.run
    try:
        return run(args, out or sys.stdout)
    except CommandError as exc:
        return _fail(exc.code, one_line(exc))
    except JobNotFound as exc:
        return _fail(EXIT_FAILED, str(exc))
    except (ConfigurationError, InvalidRequest) as exc:
        return _fail(EXIT_USAGE, one_line(exc))
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except BrokenPipeError:
        return EXIT_OK
    except (JobStatusError, Exception) as exc:  # a store's failure, or a driver's error
        return _fail(EXIT_FAILED, one_line(exc))  # no backend translated: still one line


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"jobstatus: {message}\n")
    return code


def entry_point() -> NoReturn:
    """The console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
