"""The files a piece of code opens, seen through an audit hook (``open()`` and ``os.open``
raise the ``open`` audit event), not inferred from timing or from its output."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_watchers = threading.local()  # .stack: the callbacks armed in this thread
_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not getattr(_watchers, "stack", None):
        return
    if isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        for on_open in _watchers.stack:
            on_open(path)


@contextlib.contextmanager
def watching_opens(on_open: Callable[[str], None] | None = None) -> Iterator[list[str]]:
    """Every path this thread opens during the block, in order; ``on_open(path)`` runs just
    before each of those opens takes place. Other threads are not watched.

    The audit hook is installed on first use and stays (Python cannot remove one); outside a
    watched block it costs an attribute lookup per audit event.
    """
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
    opened: list[str] = []

    def record(path: str) -> None:
        opened.append(path)
        if on_open is not None:
            on_open(path)

    stack = getattr(_watchers, "stack", None)
    if stack is None:
        stack = _watchers.stack = []
    stack.append(record)
    try:
        yield opened
    finally:
        stack.remove(record)
