"""The soak's figure and table, for the docs' Reliability page (``benchmarks/plot.py`` calls
them when ``benchmarks/results/soak.json`` is there).

:func:`draw_soak` draws, per backend, each server process's RSS over time and the latency of
the polls; :func:`soak_table` is the reST table of the figures that ``soak.py``'s checks
computed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

DASH = "\u2013"
Cell = Callable[[dict[str, Any], dict[str, Any]], str]

#: Series of the soak's latency panels: an operation on a server, as the results name it.
SOAK_LATENCIES = ("post gunicorn", "get gunicorn", "list gunicorn", "post uvicorn")


def draw_soak(data: dict[str, Any], target: Path) -> None:
    """``soak.json`` as one row per backend: each server process's RSS relative to its median
    just after the warm-up (the soak's check, its limit dashed), and the p50/p99 latency of
    the polls with the machine's load average; the warm-up shaded, each restart a red dashed
    line."""
    runs = data["runs"]
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3 * len(runs)), squeeze=False)
    for (rss_ax, latency_ax), run in zip(axes, runs, strict=True):
        plan, samples = run["plan"], run["samples"]
        names = sorted({name for s in samples for name in s["rss_mib"]})
        for name in names:
            points = [(s["t"], s["rss_mib"][name]) for s in samples if name in s["rss_mib"]]
            after = [v for t, v in points if plan["warmup"] <= t < plan["warmup"] + plan["window"]]
            base = sorted(after)[len(after) // 2] if after else points[0][1]
            rss_ax.plot([t / 60 for t, _ in points], [v - base for _, v in points],
                        label=f"{name} ({base:.0f} MiB)", linewidth=1)  # fmt: skip
        rss_ax.axhline(5, color="0.4", linestyle="--", linewidth=0.8, label="limit: +5 MiB")
        rss_ax.set_ylabel("RSS change, MiB")
        half = plan["latency_window"] / 2
        for index, op in enumerate(SOAK_LATENCIES):
            for key, style in (("p50_ms", "-"), ("p99_ms", ":")):
                points = [((w["t"] - half) / 60, w["ops"][op][key]) for w in run["windows"]
                          if w["ops"].get(op, {}).get(key) is not None]  # fmt: skip
                if points:
                    latency_ax.plot(*zip(*points, strict=True), style, color=f"C{index}",
                                    linewidth=1, label=op if key == "p50_ms" else None)  # fmt: skip
        latency_ax.set_yscale("log")
        low, high = latency_ax.get_ylim()
        latency_ax.set_ylim(low, high * 8)  # room for the legend
        latency_ax.set_ylabel("latency, ms")
        load_ax = latency_ax.twinx()  # the machine is shared: its load explains the latency
        load_ax.plot([s["t"] / 60 for s in samples], [s["load"] for s in samples],
                     color="0.6", linewidth=0.8)  # fmt: skip
        load_ax.set_ylabel("load average (grey), 2 cores", color="0.45")
        load_ax.set_ylim(bottom=0)
        load_ax.spines[["top"]].set_visible(False)
        titles = ((rss_ax, "RSS since the warm-up"),
                  (latency_ax, "latency per 30 s, p50 solid, p99 dotted"))  # fmt: skip
        for ax, what in titles:
            ax.axvspan(0, plan["warmup"] / 60, color="0.92", label="warm-up")
            for restart in run["restarts"]:
                ax.axvline(restart["begin"] / 60, color="#b0504f", linestyle="--",
                           label=f"{run['backend']} restarted")  # fmt: skip
            ax.set_title(f"{run['backend']}: {what}", loc="left", fontweight="bold")
            ax.set_xlabel("minutes")
            ax.spines[["top", "right"]].set_visible(False)
            where = "lower right" if ax is rss_ax else "upper left"
            ax.legend(fontsize=6, frameon=False, ncol=2 if ax is rss_ax else 3, loc=where)
    fig.tight_layout()
    fig.savefig(target, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)


def _spread(values: list[float], unit: str = "", digits: int = 1) -> str:
    """``+0.4 MiB`` for one value, ``+0.2 to +0.6 MiB`` for several."""
    low, high = (f"{v:+.{digits}f}" for v in (min(values), max(values)))
    return (low if low == high else f"{low} to {high}") + unit


def soak_table(data: dict[str, Any]) -> str:
    """The reST table of ``soak.json``'s figures, one column per backend."""
    rows: list[list[str]] = [["", *(run["backend"] for run in data["runs"])]]

    def add(label: str, cell: Cell) -> None:
        rows.append([label, *(cell(run, run["figures"]) for run in data["runs"])])

    def rss(prefix: str) -> Cell:
        return lambda run, f: _spread(
            [v for k, v in f["rss_growth_mib"].items() if k.startswith(prefix)], " MiB"
        )

    def connections(run: dict[str, Any], f: dict[str, Any]) -> str:
        held = f.get("connections")
        return (
            DASH if held is None else f"{held['min']} {DASH} {held['max']} (limit {held['limit']})"
        )

    def restart(run: dict[str, Any], f: dict[str, Any]) -> str:
        texts = []
        for r in f["restarts"]:
            text = f"down {r['server_down_s']:.1f} s; {r['failed_requests']:,} answers 500"
            if "failures_s" in r:
                text += f" from {r['failures_s'][0]:+g} to {r['failures_s'][1]:+g} s"
            texts.append(text)
        return "; ".join(texts) or DASH

    add("minutes (warm-up)", lambda run, f: f"{run['plan']['seconds'] / 60:g} "
        f"({run['plan']['warmup'] / 60:g})")  # fmt: skip
    add("RSS growth, gunicorn master", rss("gunicorn master"))
    add("RSS growth, 4 gunicorn workers", rss("gunicorn worker"))
    add("RSS growth, uvicorn", rss("uvicorn"))
    add("open descriptors, growth", lambda run, f: _spread(list(f["fd_growth"].values()), digits=0))
    add(f"servers' store connections, min {DASH} max", connections)
    for op in ("post", "get", "longpoll", "list"):
        add(f"requests: {op}", lambda run, f, op=op: f"{f['requests'].get(op, 0):,}")

    def latency(op: str) -> Cell:
        def cell(run: dict[str, Any], f: dict[str, Any]) -> str:
            windows = [w["ops"][op] for w in run["windows"] if op in w["ops"]]
            p50, p99 = (statistics.median(w[k] for w in windows if w[k] is not None)
                        for k in ("p50_ms", "p99_ms"))  # fmt: skip
            return f"{p50:.0f} / {p99:.0f} ms"

        return cell

    add("POST on gunicorn: p50 / p99 (median of the 30 s windows)", latency("post gunicorn"))
    add("POST on uvicorn: p50 / p99", latency("post uvicorn"))
    add("unexpected answers", lambda run, f: f"**{f['unexpected']}**")
    add("jobs read back: equal to the last write / purged / **differing**", lambda run, f: (
        f"{f['final']['equal']:,} / {f['final']['purged']:,} / **{f['final']['mismatch_count']}**"
    ))  # fmt: skip
    add("restart of the store's server", restart)
    add("load average: median (max), 2 cores", lambda run, f: (
        f"{f['load_average']['median']:.1f} ({f['load_average']['max']:.1f})"))  # fmt: skip
    add("checks", lambda run, f: "pass" if not run["failures"] else "**failed**: "
        + "; ".join(run["failures"]))  # fmt: skip
    lines = [".. This file is written by benchmarks/plot.py from benchmarks/results/soak.json;",
             "   do not edit it by hand.", "", ".. list-table::", "   :header-rows: 1",
             "   :stub-columns: 1", ""]  # fmt: skip
    for row in rows:
        lines += [f"   * - {row[0]}".rstrip(), *(f"     - {cell}".rstrip() for cell in row[1:])]
    return "\n".join(lines) + "\n"
