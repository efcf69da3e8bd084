"""``.. job-state-diagram::``: the job states and their transitions, drawn at build time.

The boxes are the members of :class:`jobstatus.JobState`, and a box is drawn final (double
border, bold name) exactly when its state is in
:data:`jobstatus.record.FINAL_STATES`, so the picture follows the code. The arrows are the moves
:class:`jobstatus.JobTracker` writes, and a requeue. A state missing from the layout, a layout
entry that is no state, or an arrow out of a final state fails the build: a new state cannot be
left out, and the picture cannot contradict "final is final".

matplotlib draws the picture into ``docs/_build/generated/`` (git-ignored, next to the build
output) as SVG, for HTML, and PNG, for builders without SVG; the directive inserts a figure
whose image is ``job-states.*``, so each builder takes the format it supports. A file is only
rewritten when its bytes change, and the SVG is reproducible (fixed ids, no date).

Usage::

    .. job-state-diagram::

       The caption (optional), as ordinary reStructuredText.

Draw it by hand with ``python docs/_ext/state_diagram.py OUT.png`` (or ``OUT.svg``).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

#: Where the pictures go, relative to the docs' source folder (``_build`` is git-ignored and
#: excluded from the sources).
OUTPUT_DIR = Path("_build") / "generated"
NAME = "job-states"

# -- what is drawn ---------------------------------------------------------------------------

#: Where each state's box sits (centre, in box-widths ≈ 1.6 units): waiting states on the
#: left, running in the middle, final states in a column on the right.
LAYOUT: dict[str, tuple[float, float]] = {
    "queued": (0.0, 2.3),
    "submitted": (0.0, 0.0),
    "running": (4.2, 2.3),
    "done": (8.6, 3.45),
    "failed": (8.6, 2.3),
    "cancelled": (8.6, 0.0),
}

#: The states a waiting job is in; ``cancel()`` ends them at once (one arrow from their group).
WAITING = ("queued", "submitted")


@dataclass(frozen=True)
class Move:
    """One arrow: from a state (or the waiting group) to a state, with what writes it."""

    source: str
    target: str
    label: str
    rad: float = 0.0  # curvature, as matplotlib's arc3 connection style takes it
    label_at: float = 0.5  # where along the arrow the label sits (0: source, 1: target)
    nudge: tuple[float, float] = (0.0, 0.0)  # the label's offset from the arrow
    shift: float = 0.0  # move a straight vertical arrow sideways, off the boxes' middle


MOVES: tuple[Move, ...] = (
    Move("queued", "running", "run()", nudge=(0.0, -0.2)),
    Move("running", "queued", "requeue", rad=0.3, nudge=(0.0, 0.0)),
    Move("queued", "submitted", "hand_off()", shift=-0.3, nudge=(0.62, 0.0)),
    Move("submitted", "running", "run() by the runner", label_at=0.55, nudge=(0.62, -0.3)),
    Move("running", "done", "2xx code", label_at=0.55, nudge=(-0.1, 0.24)),
    Move(
        "running",
        "failed",
        "exception, non-2xx,\nreap(): worker lost",
        label_at=0.5,
        nudge=(0.0, -0.34),
    ),
    Move(
        "running",
        "cancelled",
        "cancel() asks it\nto stop: cancelled\nwhen the run ends",
        label_at=0.5,
        nudge=(1.45, 0.15),
    ),
    Move("waiting", "cancelled", "cancel(): cancelled at once", label_at=0.5, nudge=(0.0, 0.2)),
)

FINAL_NOTE = "final: a put leaves them\nas they are, unless force=True"
CUSTOM_NOTE = (
    "Any other non-empty string is a custom state: not final, it moves like the states on "
    "the left.\nAny state that is not final may be written over any other; expired records "
    "read as absent."
)

# -- looks -----------------------------------------------------------------------------------

BOX_W, BOX_H = 1.6, 0.62
COLOURS = {
    "box": ("#e8f0fb", "#2f5d95"),  # fill, edge: states a job moves on from
    "final": ("#eef6ea", "#2e6b30"),  # fill, edge: final states
    "arrow": "#33373d",
    "label": "#1d1f22",
    "group": "#7a8594",
}
FONT_FAMILY, FONT_SIZE = "DejaVu Sans", 10.5


def states_and_finals() -> tuple[list[str], frozenset[str]]:
    """The states to draw, in :class:`~jobstatus.JobState` order, and the final ones; the
    build fails when the layout and the code disagree."""
    from jobstatus.record import FINAL_STATES, JobState

    states = [state.value for state in JobState]
    missing = [state for state in states if state not in LAYOUT]
    unknown = [state for state in LAYOUT if state not in states]
    if missing or unknown:
        raise ExtensionError(
            f"the state diagram's LAYOUT does not match jobstatus.JobState: missing {missing}, "
            f"not states {unknown} (docs/_ext/state_diagram.py)"
        )
    for move in MOVES:
        if move.source in FINAL_STATES:
            raise ExtensionError(f"the state diagram draws a move out of final {move.source!r}")
        for end in (move.source, move.target):
            if end != "waiting" and end not in states:
                raise ExtensionError(f"the state diagram draws a move of unknown state {end!r}")
    return states, frozenset(FINAL_STATES)


def alt_text() -> str:
    """The picture in words, for readers who cannot see it."""
    states, finals = states_and_finals()
    moves = "; ".join(
        f"{' or '.join(WAITING) if m.source == 'waiting' else m.source} to {m.target} "
        f"({' '.join(m.label.split())})"
        for m in MOVES
    )
    return (
        f"Job states. Not final: {', '.join(s for s in states if s not in finals)}. "
        f"Final: {', '.join(s for s in states if s in finals)}. Moves: {moves}."
    )


def render(fmt: str) -> bytes:
    """The diagram as ``svg`` or ``png`` bytes."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    states, finals = states_and_finals()
    xs = [x for x, _ in LAYOUT.values()]
    ys = [y for _, y in LAYOUT.values()]
    left, right = min(xs) - BOX_W / 2 - 0.35, max(xs) + BOX_W / 2 + 0.35
    bottom, top = min(ys) - BOX_H / 2 - 1.05, max(ys) + BOX_H / 2 + 0.8
    scale = 0.82  # inches per unit
    rc: Any = {
        "svg.hashsalt": "jobstatus-states",  # reproducible ids
        "font.family": FONT_FAMILY,
        "font.size": FONT_SIZE,
    }
    with matplotlib.rc_context(rc):
        figure = Figure(figsize=((right - left) * scale, (top - bottom) * scale))
        figure.patch.set_facecolor("white")  # readable on a dark page too
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(left, right)
        axes.set_ylim(bottom, top)
        axes.set_aspect("equal")
        axes.axis("off")

        boxes: dict[str, Any] = {}
        for state in states:
            x, y = LAYOUT[state]
            final = state in finals
            fill, edge = COLOURS["final" if final else "box"]
            box = FancyBboxPatch(
                (x - BOX_W / 2, y - BOX_H / 2),
                BOX_W,
                BOX_H,
                boxstyle="round,pad=0,rounding_size=0.12",
                facecolor=fill,
                edgecolor=edge,
                linewidth=1.4,
                zorder=2,
            )
            axes.add_patch(box)
            if final:  # the double border marks a final state
                inset = 0.07
                axes.add_patch(
                    FancyBboxPatch(
                        (x - BOX_W / 2 + inset, y - BOX_H / 2 + inset),
                        BOX_W - 2 * inset,
                        BOX_H - 2 * inset,
                        boxstyle="round,pad=0,rounding_size=0.08",
                        facecolor="none",
                        edgecolor=edge,
                        linewidth=1.0,
                        zorder=3,
                    )
                )
            axes.text(
                x,
                y,
                state,
                ha="center",
                va="center",
                fontsize=FONT_SIZE + 1.5,
                fontweight="bold" if final else "normal",
                fontfamily="DejaVu Sans Mono",
                color=edge,
                zorder=4,
            )
            boxes[state] = box

        # The waiting group: cancel() ends any of its states at once.
        group_x = [LAYOUT[s][0] for s in WAITING]
        group_y = [LAYOUT[s][1] for s in WAITING]
        pad = 0.2
        group = FancyBboxPatch(
            (min(group_x) - BOX_W / 2 - pad, min(group_y) - BOX_H / 2 - pad),
            max(group_x) - min(group_x) + BOX_W + 2 * pad,
            max(group_y) - min(group_y) + BOX_H + 2 * pad,
            boxstyle="round,pad=0,rounding_size=0.18",
            facecolor="none",
            edgecolor=COLOURS["group"],
            linestyle=(0, (4, 3)),
            linewidth=1.0,
            zorder=1,
        )
        axes.add_patch(group)
        boxes["waiting"] = group
        centres = dict(LAYOUT)
        centres["waiting"] = (LAYOUT[WAITING[-1]][0], LAYOUT[WAITING[-1]][1])

        for move in MOVES:
            start, end = centres[move.source], centres[move.target]
            if move.source == "waiting":  # leave the group's edge level with the target
                start = (start[0], end[1])
            start, end = (start[0] + move.shift, start[1]), (end[0] + move.shift, end[1])
            arrow = FancyArrowPatch(
                start,
                end,
                patchA=boxes[move.source],
                patchB=boxes[move.target],
                connectionstyle=f"arc3,rad={move.rad}",
                arrowstyle="-|>",
                mutation_scale=15,
                shrinkA=3,
                shrinkB=3,
                linewidth=1.3,
                color=COLOURS["arrow"],
                zorder=1.5,
            )
            axes.add_patch(arrow)
            lx, ly = _on_arc(start, end, move.rad, move.label_at)
            axes.text(
                lx + move.nudge[0],
                ly + move.nudge[1],
                move.label,
                ha="center",
                va="center",
                fontsize=FONT_SIZE,
                color=COLOURS["label"],
                zorder=5,
                linespacing=1.15,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
            )

        # The final column's bracket and note.
        final_ys = [LAYOUT[s][1] for s in states if s in finals]
        final_x = max(LAYOUT[s][0] for s in states if s in finals)
        note_y = max(final_ys) + BOX_H / 2 + 0.12
        axes.text(
            final_x + BOX_W / 2,
            note_y,
            FINAL_NOTE,
            ha="right",
            va="bottom",
            fontsize=FONT_SIZE - 0.5,
            color=COLOURS["final"][1],
            linespacing=1.15,
        )
        axes.text(
            (left + right) / 2,
            bottom + 0.12,
            CUSTOM_NOTE,
            ha="center",
            va="bottom",
            fontsize=FONT_SIZE - 1,
            color=COLOURS["group"],
            linespacing=1.3,
        )

        out = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else {}
        figure.savefig(out, format=fmt, dpi=160, metadata=metadata, facecolor="white")
    return out.getvalue()


def _on_arc(
    start: tuple[float, float], end: tuple[float, float], rad: float, t: float
) -> tuple[float, float]:
    """The point at ``t`` along matplotlib's arc3 curve from ``start`` to ``end`` (a quadratic
    Bézier whose control point is ``rad`` times the chord off its middle)."""
    (x1, y1), (x2, y2) = start, end
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    u = 1 - t
    return u * u * x1 + 2 * u * t * cx + t * t * x2, u * u * y1 + 2 * u * t * cy + t * t * y2


def write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` unless ``path`` already holds exactly it (keeps mtimes, and rebuilds,
    quiet)."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def generate(srcdir: Path, formats: Iterable[str] = ("svg", "png")) -> Path:
    """Draw the diagram into ``srcdir/_build/generated/`` in every format; return the folder."""
    folder = srcdir / OUTPUT_DIR
    for fmt in formats:
        write_if_changed(folder / f"{NAME}.{fmt}", render(fmt))
    return folder


class JobStateDiagram(SphinxDirective):
    """A figure of the job states, drawn from the code; its content is the caption."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        from jobstatus import record

        # Re-read the page when the states change.
        self.env.note_dependency(os.path.abspath(record.__file__))
        self.env.note_dependency(os.path.abspath(__file__))
        generate(Path(self.env.srcdir))
        image = nodes.image(uri=f"/{OUTPUT_DIR.as_posix()}/{NAME}.*", alt=alt_text())
        figure = nodes.figure("", image)
        figure["align"] = "center"
        figure["classes"].append("job-state-diagram")
        if self.content:
            caption_parent = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, caption_parent)
            first, *rest = caption_parent.children or [None]
            if not isinstance(first, nodes.paragraph):
                raise self.error("the diagram's content must start with its caption, a paragraph")
            figure += nodes.caption(first.rawsource, "", *first.children)
            if rest:
                figure += nodes.legend("", *rest)
        self.set_source_info(figure)
        return [figure]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("job-state-diagram", JobStateDiagram)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # python docs/_ext/state_diagram.py OUT.png
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "job-states.png")
    target.write_bytes(render(target.suffix.lstrip(".") or "png"))
    print(target)
