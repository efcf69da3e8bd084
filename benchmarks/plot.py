"""Turn the benchmarks' JSON into the charts and tables of the docs' Benchmarks page.

    python benchmarks/plot.py

Reads every ``benchmarks/results/*.json`` (a file that does not parse is skipped with a note),
draws one SVG bar chart per figure with matplotlib into ``docs/_static/benchmarks/`` (except
``soak.json``: its time series become ``soak.png`` there, for the Reliability page), and writes
``figures.inc`` there: the reST ``docs/benchmarks.rst`` includes, with per results file its
charts, the numbers behind them and the command that reproduces them. The figures are found
by shape, so a new benchmark needs no change here:

- a dict of at least two numbers whose key names a rate (``requests_per_second``) or a latency
  (``median_ms``) is a chart of those numbers; when the first names a baseline (``floor: …``)
  the others' ratios to it are shown, and a ``target_ratio`` beside the dict is drawn against it;
- a list of row dicts is a chart of the rows' ratios (``ratio``, ``ratio_to_*``, with the
  ``target_ratio`` beside the list as a dashed line) and a chart of their rates (``*_per_s``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from _soak_plot import draw_soak, soak_table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE.parent / "docs" / "_static" / "benchmarks"
INCLUDE_NAME = "figures.inc"

#: Keys holding per-round samples or other detail that is not a figure of its own.
SKIPPED_KEYS = frozenset({"rounds", "all_rounds", "samples", "raw", "latencies"})
#: Keys that only group figures (``databases`` → ``sqlite`` → …): left out of titles.
CONTAINER_KEYS = frozenset({"databases", "destinations", "results", "figures"})
#: Keys of a results file (or of its first-level sections) that describe how it was measured.
CONDITIONS = {
    "python": "Python {}",
    "cpus": "{} CPUs",
    "cores": "{} cores",
    "rounds": "{} rounds",
    "seconds_per_round": "{} s per round",
    "record_bytes": "a {}-byte record",
}
RATE = re.compile(r"_?(per_s|per_second|rps)$")
LATENCY = re.compile(r"(^|_)ms$")
RATIO = re.compile(r"(^|_)ratio($|_)|^x_")  # x_upstream_rps: times the upstream's rate
BASELINE = re.compile(r"^(floor|baseline|upstream)\b", re.IGNORECASE)
TIMES, DASH = "\u00d7", "\u2013"

plt.rcParams.update({"svg.hashsalt": "jobstatus", "svg.fonttype": "none", "font.size": 9})


@dataclass
class Chart:
    """Horizontal bars: one group per category, one bar per series."""

    name: str
    title: str
    unit: str
    categories: list[str]
    series: list[str]
    values: list[list[float | None]]  # values[category][series]
    marker: float | None = None
    marker_label: str = ""
    baseline: int | None = None  # the category the others' ratios are taken against

    def ratio(self, category: int, series: int = 0) -> float | None:
        if self.baseline is None:
            return None
        base, value = self.values[self.baseline][series], self.values[category][series]
        return None if not base or value is None else value / base

    def fmt(self, value: float) -> str:
        if self.unit == "ratio":
            return f"{value:.2f}{TIMES}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _words(key: str) -> str:
    return RATE.sub(" per second", key).replace("_", " ").strip()


def _title(path: list[str], what: str) -> str:
    """``["databases", "sqlite", "writes"]``, "writes per second" → "sqlite · writes: …"."""
    context = " · ".join(p.replace("_", " ") for p in path if p not in CONTAINER_KEYS)
    return f"{context}: {what}" if context else what[:1].upper() + what[1:]


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _unit(key: str) -> str:
    """``writes_per_second`` → "writes/s"; ``median_ms`` → "ms (lower is better)"."""
    if LATENCY.search(key):
        return "ms (lower is better)"
    return f"{RATE.sub('', key).rsplit('_', 1)[-1] or 'requests'}/s"


def _rows_charts(
    stem: str, path: list[str], rows: list[dict[str, Any]], target: Any
) -> list[Chart]:
    # A row is named by its texts that tell it from the others (not those all rows share).
    texts = [k for k, v in rows[0].items() if isinstance(v, str)]
    naming = [k for k in texts if len({row.get(k) for row in rows}) > 1]
    labels = [" · ".join(str(row[k]) for k in naming if row.get(k)) for row in rows]
    numeric = [k for k in rows[0] if all(_is_number(row.get(k, 0)) for row in rows)]
    charts = []
    ratios = [k for k in numeric if RATIO.search(k) and not k.startswith("target")]
    rates = [k for k in numeric if RATE.search(k) and k not in ratios]
    for kind, keys in (("ratio", ratios), ("rate", rates)):
        if not keys:
            continue
        chart = Chart(
            name=_slug(stem, *path, kind),
            title=_title(
                path, "ratio to the baseline" if kind == "ratio" else "requests per second"
            ),
            unit="ratio" if kind == "ratio" else "requests/s",
            categories=labels,
            series=[RATE.sub("", k).replace("_", " ") for k in keys],
            values=[[row.get(k) for k in keys] for row in rows],
        )
        if kind == "ratio":
            chart.marker = target if _is_number(target) else 1.0
            chart.marker_label = f"target {target}" if _is_number(target) else "baseline"
        charts.append(chart)
    return charts


def _numbers_chart(stem: str, path: list[str], numbers: dict[str, float], target: Any) -> Chart:
    names = list(numbers)
    baseline = 0 if BASELINE.match(names[0]) else None
    chart = Chart(
        name=_slug(stem, *path),
        title=_title(path[:-1], _words(path[-1])),
        unit=_unit(path[-1]),
        categories=names,
        series=[""],
        values=[[v] for v in numbers.values()],
        baseline=baseline,
    )
    if baseline is not None and _is_number(target):
        chart.marker = target * numbers[names[0]]
        chart.marker_label = f"target: {target}{TIMES} {names[0].split(':')[0]}"
    return chart


def find_charts(stem: str, data: Any, path: list[str] | None = None) -> Iterator[Chart]:
    """Every figure of one results file, in the file's order."""
    path = path or []
    for key, value in data.items() if isinstance(data, dict) else ():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            where = path if key == "rows" else [*path, key]
            yield from _rows_charts(stem, where, value, data.get("target_ratio"))
        elif isinstance(value, dict):
            numbers = {k: v for k, v in value.items() if _is_number(v)}
            named = RATE.search(key) or LATENCY.search(key)
            if named and len(numbers) >= 2 and len(numbers) == len(value):
                yield _numbers_chart(stem, [*path, key], numbers, data.get("target_ratio"))
            else:
                yield from find_charts(stem, value, [*path, key])


def draw(chart: Chart, target: Path) -> None:
    """The chart as an SVG file; the same input gives the same bytes."""
    count, per = len(chart.categories), len(chart.series)
    height = 0.8 / per
    fig, ax = plt.subplots(figsize=(7.6, 0.9 + 0.28 * count * per + 0.12 * count))
    for s, series in enumerate(chart.series):
        rows = [i + (s - (per - 1) / 2) * height for i in range(count)]
        values = [row[s] for row in chart.values]
        bars = ax.barh(rows, [v or 0 for v in values], height * 0.9, label=series or None)
        labels = []
        for index, value in enumerate(values):
            ratio = chart.ratio(index, s) if index != chart.baseline else None
            text = "" if value is None else chart.fmt(value)
            labels.append(text + ("" if ratio is None else f" ({ratio:.2f}{TIMES})"))
        ax.bar_label(bars, labels, padding=3, fontsize=8)
    if chart.marker is not None:
        ax.axvline(chart.marker, color="#b0504f", linestyle="--", label=chart.marker_label)
    ax.set_yticks(range(count), chart.categories)
    ax.invert_yaxis()
    numbers = [v for row in chart.values for v in row if v is not None]
    ax.set_xlim(0, max([*numbers, chart.marker or 0, 1e-9]) * 1.3)
    ax.xaxis.set_major_formatter("{x:,g}")
    ax.set_xlabel(chart.unit)
    ax.set_title(chart.title, loc="left", fontweight="bold")
    ax.spines[["top", "right"]].set_visible(False)
    if per > 1 or chart.marker is not None:
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(target, format="svg", metadata={"Date": None})
    plt.close(fig)


def _conditions(data: dict[str, Any]) -> str:
    sections = [data, *(v for v in data.values() if isinstance(v, dict))]
    found = []
    for key, template in CONDITIONS.items():
        value = next((s[key] for s in sections if _is_number(s.get(key)) or
                      isinstance(s.get(key), str)), None)  # fmt: skip
        if value is not None:
            found.append(template.format(value))
    return ", ".join(found)


def _table(chart: Chart) -> list[str]:
    rows = [["", *chart.series] if len(chart.series) > 1 else ["", chart.unit]]
    if chart.baseline is not None:
        rows[0].append(f"ratio to {chart.categories[chart.baseline].split(':')[0]}")
    for index, (category, values) in enumerate(zip(chart.categories, chart.values, strict=True)):
        rows.append([category, *(DASH if v is None else chart.fmt(v) for v in values)])
        if chart.baseline is not None:
            ratio = chart.ratio(index)
            rows[-1].append(DASH if ratio is None else f"{ratio:.2f}{TIMES}")
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines += [f"   * - {row[0]}".rstrip(), *(f"     - {cell}".rstrip() for cell in row[1:])]
    return [*lines, ""]


def render_include(files: dict[str, tuple[dict[str, Any], list[Chart]]]) -> str:
    """The reST of the Results section: per results file its conditions, command and charts."""
    lines = [".. This file is written by benchmarks/plot.py from benchmarks/results/*.json;",
             "   do not edit it by hand.", ""]  # fmt: skip
    for name, (data, charts) in files.items():
        if not charts:
            continue
        title = f"``{name}.json``"
        lines += [title, "~" * len(title), ""]
        if isinstance(data.get("benchmark"), str):
            lines += [data["benchmark"][:1].upper() + data["benchmark"][1:] + ".", ""]
        if conditions := _conditions(data):
            lines += [f"Measured with {conditions}.", ""]
        if (HERE / f"bench_{name}.py").exists():
            lines += ["Reproduce:", "", ".. code-block:: sh", ""]
            lines += [f"   python benchmarks/bench_{name}.py", "   python benchmarks/plot.py", ""]
        for chart in charts:
            caption = chart.title + (f" (dashed: {chart.marker_label})" if chart.marker else "")
            lines += [
                f".. figure:: /_static/benchmarks/{chart.name}.svg",
                f"   :alt: {chart.title}",
            ]
            lines += ["   :width: 100%", "", f"   {caption}", ""]
            lines += _table(chart)
    if len(lines) == 3:
        lines += ["No benchmark results yet: run ``nox -s benchmarks``.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of *.json")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="folder for the charts")
    args = parser.parse_args(argv)
    files: dict[str, tuple[dict[str, Any], list[Chart]]] = {}
    for path in sorted(args.results.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"plot: skipping {path.name}: {exc}", file=sys.stderr)
            continue
        files[path.stem] = (data, list(find_charts(path.stem, data)))
    args.output.mkdir(parents=True, exist_ok=True)
    soak = files.pop("soak", None)  # a time series, drawn for the reliability page
    if soak is not None:
        draw_soak(soak[0], args.output / "soak.png")
        (args.output / "soak.inc").write_text(soak_table(soak[0]), encoding="utf-8")
    charts = [chart for _, found in files.values() for chart in found]
    for chart in charts:
        draw(chart, args.output / f"{chart.name}.svg")
    for stale in set(args.output.glob("*.svg")) - {args.output / f"{c.name}.svg" for c in charts}:
        stale.unlink()  # a figure no results file has any more
    (args.output / INCLUDE_NAME).write_text(render_include(files), encoding="utf-8")
    print(f"plot: {len(charts)} charts from {len(files)} results files into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
