"""The progress of ``migrate``: a bar redrawn in place on a terminal, plain lines in a log.

Every line fits :data:`LINE_WIDTH` columns (fewer on a narrower terminal), whatever the counts
and the rate: the least useful parts are left out first, then the bar shrinks or goes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from typing import IO

from jobstatus.cli.output import count
from jobstatus.migrate import MigrationProgress

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []

#: The widest a progress line ever is.
LINE_WIDTH = 80
_BAR_CELLS = 30
_FEWEST_CELLS = 10
# ETAs beyond this many seconds (at a rate near zero, say) say nothing useful.
_LONGEST_ETA = 100 * 3600


def format_eta(seconds: float | None) -> str:
    """``0:42``, ``1:02:03``; ``?`` when unknown or further off than 100 hours."""
    if seconds is None or seconds >= _LONGEST_ETA:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _fit(parts: Sequence[tuple[int, str]], width: int, *, sep: str, prefix: str = "") -> str:
    """``prefix`` and the parts joined by ``sep`` in their order, leaving out the parts of the
    highest rank (the last of them first) until the line fits ``width``; cut if it never
    does."""
    kept = list(parts)
    while True:
        line = prefix + sep.join(text for _, text in kept)
        droppable = [i for i, (rank, _) in enumerate(kept) if rank > 0]
        if len(line) <= width or not droppable:
            break
        worst = max(droppable, key=lambda i: (kept[i][0], i))
        del kept[worst]
    if len(line) <= width:
        return line
    return line[: width - 3] + "..." if width > 3 else line[: max(0, width)]


def plain_line(state: MigrationProgress, width: int = LINE_WIDTH) -> str:
    """``migrate: 2,000/10,000 (20%), 2,000 copied, 0 unchanged, 1,000 records/s, ETA 0:08``
    within ``width``."""
    if state.phase == "count":
        return _fit([(0, f"counting the source: {count(state.counted, 'record')}")], width, sep="")
    if state.phase == "index":
        return _fit(
            [(0, f"reading the destination: {count(state.indexed, 'record')}")], width, sep=""
        )
    verb = "to copy" if state.dry_run else "copied"
    if state.total is None:
        position = f"{state.seen:,} read"
    else:
        percent = f" ({min(1.0, state.seen / state.total):.0%})" if state.total else ""
        position = f"{state.seen:,}/{state.total:,}{percent}"
    parts = [
        (0, position),
        (2 if state.copied else 4, f"{state.copied:,} {verb}"),  # a zero says least
        (3 if state.unchanged else 4, f"{state.unchanged:,} unchanged"),
        (1, f"{state.rate:,.0f} records/s"),
    ]
    if state.total is not None:
        parts.append((1, f"ETA {format_eta(state.eta)}"))
    return _fit(parts, width, sep=", ", prefix="migrate: ")


def bar_line(state: MigrationProgress, width: int = LINE_WIDTH) -> str:
    """``[#####.....]  50%  5,000/10,000  2,500 records/s  ETA 0:02`` within ``width``; the
    plain line while there is no total to draw a bar against."""
    if state.phase != "copy" or not state.total:
        return plain_line(state, width)
    done = min(1.0, state.seen / state.total)
    parts = [
        (0, f"{done:4.0%}"),
        (0, f"{state.seen:,}/{state.total:,}"),
        (2, f"{state.rate:,.0f} records/s"),
        (1, f"ETA {format_eta(state.eta)}"),
    ]
    room = width - len("[] ") - _FEWEST_CELLS
    if len("  ".join(text for rank, text in parts if rank == 0)) > room:
        return _fit(parts, width, sep="  ")  # too narrow for a bar worth the name
    rest = _fit(parts, room, sep="  ")
    cells = min(_BAR_CELLS, width - len("[] ") - len(rest))
    filled = round(done * cells)
    return f"[{'#' * filled}{'.' * (cells - filled)}] {rest}"


class ProgressPrinter:
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
            # One column spare: a line that fills the terminal would wrap on some.
            width = min(LINE_WIDTH, shutil.get_terminal_size().columns - 1)
            self.out.write("\r" + bar_line(state, width).ljust(width))
            self._drawn = True
        else:
            self.out.write(plain_line(state) + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the bar's line, so what follows starts on a line of its own."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = False
