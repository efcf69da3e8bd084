"""``.. jobstatus-cli::``: the command line reference, rendered from the real parser.

The text is what ``jobstatus --help`` and ``jobstatus COMMAND --help`` print, taken from
:func:`jobstatus.cli.build_parser` at build time (each command's parser from
``jobstatus.cli.parser.subcommands``), so the docs cannot drift from the CLI.

Usage::

    .. jobstatus-cli::

       (no argument: ``jobstatus --help``, then every command under a rubric of its own)

    .. jobstatus-cli:: serve

       (one command's ``--help`` only)

    .. jobstatus-cli::
       :main-only:

       (``jobstatus --help`` only)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: Help is wrapped at this width, whatever the terminal of the machine building the docs.
HELP_WIDTH = 88


@contextmanager
def _columns(width: int) -> Iterator[None]:
    """argparse wraps help at $COLUMNS; pin it while rendering."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _literal(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = "text"
    return block


class JobstatusCli(SphinxDirective):
    """Render ``jobstatus --help`` and each command's ``--help`` in literal blocks."""

    optional_arguments = 1
    has_content = False
    option_spec = {"main-only": directives.flag}  # noqa: RUF012 (docutils API)

    def run(self) -> list[nodes.Node]:
        from jobstatus import cli
        from jobstatus.cli.parser import subcommands

        # Rebuild the pages that use the directive when any module of the CLI changes.
        package = os.path.dirname(os.path.abspath(cli.__file__))
        for name in sorted(os.listdir(package)):
            if name.endswith(".py"):
                self.env.note_dependency(os.path.join(package, name))
        with _columns(HELP_WIDTH):
            parser = cli.build_parser()
            commands = subcommands(parser)
            if self.arguments:
                name = self.arguments[0]
                if name not in commands:
                    raise self.error(
                        f"jobstatus has no command {name!r}; it has: {', '.join(commands)}"
                    )
                return [_literal(commands[name].format_help())]
            result: list[nodes.Node] = [_literal(parser.format_help())]
            if "main-only" in self.options:
                return result
            for name, sub in commands.items():
                title = f"jobstatus {name}"
                rubric = nodes.rubric(title, title)
                rubric["ids"].append(f"cli-{name}")
                result += [rubric, _literal(sub.format_help())]
            return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("jobstatus-cli", JobstatusCli)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
