"""Turn the benchmarks' JSON into the plots and tables of the docs' Benchmarks page.

    python benchmarks/plot.py

Reads every ``benchmarks/results/*.json`` there is (a missing or unreadable file is skipped
with a note), writes one SVG bar chart per figure into ``docs/_static/benchmarks/`` and
``docs/_static/benchmarks/figures.inc``, the reST that ``docs/benchmarks.rst`` includes: per
results file, its charts, the numbers behind them and the command that reproduces them. The
output is committed, so building the docs never runs a benchmark.

No plotting library: the charts are plain SVG written here. The figures are found by shape,
so a new benchmark needs no change here:

- a dict of at least two numbers whose key says it is a rate (``requests_per_second``) becomes
  a chart of those numbers;
- a list of row dicts (``rows``) becomes a chart of each row's ratio (``ratio``, ``*_ratio``),
  with the ``target_ratio`` beside the list drawn as a line, and a chart of its rates
  (``*_per_s``, ``*_per_second``), side by side per row.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE.parent / "docs" / "_static" / "benchmarks"
INCLUDE_NAME = "figures.inc"

#: Keys holding per-round samples or other detail that is not a figure of its own.
SKIPPED_KEYS = frozenset({"rounds", "all_rounds", "samples", "raw", "latencies"})
#: Keys of a results file shown as its measuring conditions, when present.
CONDITION_KEYS = {
    "python": "Python {}",
    "cpus": "{} CPUs",
    "cores": "{} cores",
    "rounds": "{} rounds",
    "seconds_per_round": "{} s per round",
    "duration": "{} s per run",
    "record_bytes": "a {}-byte record",
}
TIMES, DASH = "\u00d7", "\u2013"  # x as in "0.67 times", and the dash of an empty cell
COLOURS = ("#3b6ea8", "#e0883a", "#5a9e5a", "#b0504f", "#7d5ba6", "#8c8c8c")
RATE = re.compile(r"(_per_s|_per_second|per_second|_rps|requests_per_s)$")
#: A dict of latencies in milliseconds (``median_ms``, ``p90_ms``): lower is better.
LATENCY = re.compile(r"(^|_)ms$")
#: Keys that only group figures (``databases`` → ``sqlite`` → ...): left out of titles.
CONTAINER_KEYS = frozenset({"databases", "destinations", "results", "figures"})
RATIO = re.compile(r"(^|_)ratio($|_)")
#: A category whose name says the others are measured against it.
BASELINE = re.compile(r"^(floor|baseline|upstream)(\b|_)", re.IGNORECASE)


@dataclass
class Chart:
    """A horizontal bar chart: categories, each with one bar per series."""

    name: str
    title: str
    unit: str
    categories: list[str]
    series: list[str]
    values: list[list[float | None]]  # values[category][series]
    marker: float | None = None
    marker_label: str = ""
    #: A category that is the baseline of the others: their ratio to it is shown too.
    baseline: int | None = None

    def ratio(self, category: int, series: int = 0) -> float | None:
        """The value's ratio to the baseline category's, if there is one."""
        if self.baseline is None or category == self.baseline:
            return None
        base, value = self.values[self.baseline][series], self.values[category][series]
        return None if not base or value is None else value / base

    def fmt(self, value: float) -> str:
        if self.unit == "ratio":
            return f"{value:.2f}{TIMES}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"


@dataclass
class ResultsFile:
    path: Path
    data: dict[str, Any]
    charts: list[Chart] = field(default_factory=list)


# -- finding the figures ---------------------------------------------------------------------


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _humanize(key: str) -> str:
    text = re.sub(r"_per_s$", " per second", key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _title(path: list[str], what: str) -> str:
    """``["databases", "sqlite", "writes"]`` and "writes per second" → "sqlite · writes: …"."""
    context = " · ".join(p.replace("_", " ") for p in path if p not in CONTAINER_KEYS)
    return f"{context}: {what}" if context else what[:1].upper() + what[1:]


def _unit(key: str) -> str:
    """``writes_per_second`` → "writes/s"; ``median_ms`` → "ms"."""
    if LATENCY.search(key):
        return "ms (lower is better)"
    word = RATE.sub("", key).rstrip("_").rsplit("_", 1)[-1]
    return f"{word or 'requests'}/s"


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _row_label(row: dict[str, Any]) -> str:
    labels = [str(v) for k, v in row.items() if isinstance(v, str) and k not in SKIPPED_KEYS]
    return " · ".join(labels) or "?"


def _rows_charts(
    stem: str, path: list[str], rows: list[Any], parent: dict[str, Any]
) -> list[Chart]:
    rows = [row for row in rows if isinstance(row, dict)]
    if not rows:
        return []
    labels = [_row_label(row) for row in rows]
    numeric = [k for k in rows[0] if all(_is_number(row.get(k)) for row in rows if k in row)]
    charts = []
    ratio_keys = [k for k in numeric if RATIO.search(k) and not k.startswith("target")]
    if ratio_keys:
        target = parent.get("target_ratio")
        charts.append(
            Chart(
                name=_slug(stem, *path, "ratio"),
                title=_title(path, "ratio to the baseline"),
                unit="ratio",
                categories=labels,
                series=[_humanize(k) for k in ratio_keys],
                values=[[row.get(k) for k in ratio_keys] for row in rows],
                marker=target if _is_number(target) else 1.0,
                marker_label=f"target {target}" if _is_number(target) else "baseline",
            )
        )
    rate_keys = [k for k in numeric if RATE.search(k)]
    if rate_keys:
        charts.append(
            Chart(
                name=_slug(stem, *path, "rate"),
                title=_title(path, "requests per second"),
                unit="requests/s",
                categories=labels,
                series=[_humanize(RATE.sub("", k)) or k for k in rate_keys],
                values=[[row.get(k) for k in rate_keys] for row in rows],
            )
        )
    return charts


def _rates_chart(
    stem: str, path: list[str], numbers: dict[str, float], parent: dict[str, Any]
) -> Chart:
    """A chart of named rates or latencies; when the first names a baseline, the others'
    ratios to it are shown, and ``target_ratio`` is drawn against it."""
    categories = list(numbers)
    baseline = 0 if BASELINE.match(categories[0]) else None
    chart = Chart(
        name=_slug(stem, *path),
        title=_title(path[:-1], _humanize(path[-1]).lower()),
        unit=_unit(path[-1]),
        categories=categories,
        series=[""],
        values=[[v] for v in numbers.values()],
        baseline=baseline,
    )
    target = parent.get("target_ratio")
    if baseline is not None and _is_number(target):
        chart.marker = target * numbers[categories[0]]
        chart.marker_label = f"target: {target}{TIMES} {categories[0].split(':')[0]}"
    return chart


def find_charts(stem: str, data: Any, path: list[str] | None = None) -> Iterator[Chart]:
    """Every figure of one results file, in the file's order."""
    path = path or []
    if isinstance(data, list):
        if data and all(isinstance(row, dict) for row in data):
            yield from _rows_charts(stem, path, data, {})
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, dict):
            numbers = {k: v for k, v in value.items() if _is_number(v)}
            rates = RATE.search(key) or LATENCY.search(key)
            if len(numbers) >= 2 and len(numbers) == len(value) and rates:
                yield _rates_chart(stem, [*path, key], numbers, data)
            else:
                yield from find_charts(stem, value, [*path, key])
        elif isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            yield from _rows_charts(stem, [*path] if key == "rows" else [*path, key], value, data)


def load_results(results: Path) -> list[ResultsFile]:
    found = []
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"plot: skipping {path.name}: {exc}", file=sys.stderr)
            continue
        if not isinstance(data, dict):
            print(f"plot: skipping {path.name}: not a JSON object", file=sys.stderr)
            continue
        found.append(ResultsFile(path, data, list(find_charts(path.stem, data))))
    return found


# -- drawing ---------------------------------------------------------------------------------

WIDTH = 760
BAR = 18
GAP = 12
CHAR = 7.0  # average width of a 12px sans-serif character


def render_svg(chart: Chart) -> str:
    """The chart as a standalone SVG document."""
    label_width = min(340, max(CHAR * len(c) for c in chart.categories) + 16)
    value_width = 130
    plot_left, plot_right = label_width, WIDTH - value_width
    multi = len(chart.series) > 1
    top = 44 + (20 if multi else 0)
    group = BAR * len(chart.series)
    height = top + len(chart.categories) * (group + GAP) + 24
    numbers = [v for row in chart.values for v in row if v is not None]
    scale_max = max([*numbers, chart.marker or 0.0, 1e-9]) * 1.08

    def x(value: float) -> float:
        return plot_left + (plot_right - plot_left) * max(value, 0.0) / scale_max

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="22" font-size="15" font-weight="bold">{escape(chart.title)}</text>',
    ]
    if multi:
        legend_x = 8.0
        for index, name in enumerate(chart.series):
            colour = COLOURS[index % len(COLOURS)]
            out.append(f'<rect x="{legend_x:.1f}" y="34" width="12" height="12" fill="{colour}"/>')
            out.append(f'<text x="{legend_x + 16:.1f}" y="44">{escape(name)}</text>')
            legend_x += 16 + CHAR * len(name) + 20
    y = float(top)
    for category, row in zip(chart.categories, chart.values, strict=True):
        out.append(
            f'<text x="{plot_left - 8:.1f}" y="{y + group / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(category)}</text>'
        )
        for index, value in enumerate(row):
            if value is None:
                continue
            colour = COLOURS[index % len(COLOURS)]
            bar_y = y + index * BAR
            out.append(
                f'<rect x="{plot_left:.1f}" y="{bar_y + 1:.1f}" width="{x(value) - plot_left:.1f}" '
                f'height="{BAR - 2}" fill="{colour}"/>'
            )
            ratio = chart.ratio(chart.categories.index(category), index)
            text = chart.fmt(value) + ("" if ratio is None else f" ({ratio:.2f}{TIMES})")
            out.append(
                f'<text x="{x(value) + 4:.1f}" y="{bar_y + BAR / 2 + 4:.1f}">{escape(text)}</text>'
            )
        y += group + GAP
    axis_bottom = y - GAP + 4
    out.append(
        f'<line x1="{plot_left:.1f}" y1="{top - 4}" x2="{plot_left:.1f}" y2="{axis_bottom:.1f}" '
        'stroke="#333333"/>'
    )
    if chart.marker is not None:
        mx = x(chart.marker)
        out.append(
            f'<line x1="{mx:.1f}" y1="{top - 4}" x2="{mx:.1f}" y2="{axis_bottom:.1f}" '
            'stroke="#b0504f" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{mx:.1f}" y="{axis_bottom + 14:.1f}" text-anchor="middle" '
            f'fill="#b0504f">{escape(chart.marker_label)}</text>'
        )
    out.append(
        f'<text x="{plot_right:.1f}" y="{height - 6}" text-anchor="end" fill="#666666">'
        f"{escape(chart.unit)}</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- the reST the docs include ---------------------------------------------------------------


def _conditions(data: dict[str, Any]) -> str:
    found = []
    for key, template in CONDITION_KEYS.items():
        value = data.get(key)
        if value is None:
            for section in data.values():
                if isinstance(section, dict) and section.get(key) is not None:
                    value = section[key]
                    break
        if value is not None:
            text = template.format(value)
            found.append(text[:-1] if value == 1 and text.endswith("s") else text)
    return ", ".join(found)


def _table(chart: Chart) -> list[str]:
    header = ["", *chart.series] if len(chart.series) > 1 else ["", chart.unit]
    if chart.baseline is not None:
        header.append(f"ratio to {chart.categories[chart.baseline].split(':')[0]}")
    rows = [header]
    for index, (category, row) in enumerate(zip(chart.categories, chart.values, strict=True)):
        cells = [category, *(DASH if v is None else chart.fmt(v) for v in row)]
        if chart.baseline is not None:
            ratio = chart.ratio(index)
            cells.append(DASH if ratio is None else f"{ratio:.2f}{TIMES}")
            if index == chart.baseline:
                cells[-1] = f"1.00{TIMES}"
        rows.append(cells)
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for table_row in rows:
        lines.append(f"   * - {table_row[0]}".rstrip())
        lines.extend(f"     - {cell}".rstrip() for cell in table_row[1:])
    return [*lines, ""]


def render_include(files: list[ResultsFile]) -> str:
    lines = [
        ".. This file is written by benchmarks/plot.py from benchmarks/results/*.json;",
        "   do not edit it by hand.",
        "",
    ]
    if not any(f.charts for f in files):
        lines += ["No benchmark results yet: run ``nox -s benchmarks``, then", ""]
        lines += ["``python benchmarks/plot.py``.", ""]
    for results in files:
        if not results.charts:
            continue
        title = f"``{results.path.name}``"
        lines += [title, "~" * len(title), ""]
        description = results.data.get("benchmark")
        if isinstance(description, str):
            lines += [description[:1].upper() + description[1:] + ".", ""]
        conditions = _conditions(results.data)
        if conditions:
            lines += [f"Measured with {conditions}.", ""]
        script = HERE / f"bench_{results.path.stem}.py"
        if script.exists():
            lines += ["Reproduce:", "", ".. code-block:: sh", ""]
            lines += [f"   python benchmarks/{script.name}", "   python benchmarks/plot.py", ""]
        for chart in results.charts:
            lines += [
                f".. figure:: /_static/benchmarks/{chart.name}.svg",
                f"   :alt: {chart.title}",
                "   :width: 100%",
                "",
                f"   {chart.title}" + (f" (dashed: {chart.marker_label})" if chart.marker else ""),
                "",
            ]
            lines += _table(chart)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of *.json")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="folder for the SVGs")
    args = parser.parse_args(argv)
    files = load_results(args.results)
    args.output.mkdir(parents=True, exist_ok=True)
    written = set()
    for results in files:
        for chart in results.charts:
            (args.output / f"{chart.name}.svg").write_text(render_svg(chart), encoding="utf-8")
            written.add(f"{chart.name}.svg")
    for stale in args.output.glob("*.svg"):  # a benchmark that no longer writes this figure
        if stale.name not in written:
            stale.unlink()
    (args.output / INCLUDE_NAME).write_text(render_include(files), encoding="utf-8")
    print(f"plot: {len(written)} charts from {len(files)} results files into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
