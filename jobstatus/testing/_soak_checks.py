"""What a soak must show, computed from :func:`~jobstatus.testing._soak.run_soak`'s result.

:func:`judge` returns the figures and the list of checks that failed (empty: the soak
passed); ``benchmarks/soak.py`` reports both, ``tests/test_soak.py`` asserts the list empty.

- **Memory and descriptors flat**: for every server process, the median RSS (and open file
  descriptors) over the last ``window`` seconds minus the median over the ``window`` seconds
  right after the warm-up is at most :data:`RSS_GROWTH_MIB` (:data:`FD_GROWTH`). Medians of
  equal windows, not peaks: a garbage-collection cycle or a burst of answers allocates memory
  that is freed again and moves a peak, not a median, while a leak moves both.
- **Store connections flat**: the servers' connections never exceed
  :data:`CONNECTIONS_PER_PROCESS` per server process (SQLAlchemy's default pool, 5 + 10
  overflow), and their median over the last window is at most :data:`CONNECTION_GROWTH` above
  the one after the warm-up.
- **No unexpected answer**: POST 200 or 404 (a job never written, or purged); GET 200, 304
  or 404; long-poll the same; list 200. A 500 only while the store's server restarts (asked
  from :data:`IN_FLIGHT` seconds before the stop until :data:`RESTART_GRACE` seconds after
  the server is back); never no answer at all.
- **Nothing lost**: every job read back equals the writer's last write, or is gone because
  it was finished and last written before a purge's cutoff.
- **Restarts survived**: the writer's and the purger's failures too fall in a restart's
  window, and every gunicorn worker lives to the end (no worker booted twice).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from jobstatus.testing._soak import WORKERS

__all__ = ["EXPECTED", "judge"]

RSS_GROWTH_MIB = 5.0
FD_GROWTH = 5
CONNECTION_GROWTH = 5
CONNECTIONS_PER_PROCESS = 15
RESTART_GRACE = 10.0
#: A request asked this long before the store's server stops may still be waiting for it
#: then, on a busy machine.
IN_FLIGHT = 1.0
#: The statuses each kind of request may get at any time.
EXPECTED = {
    "post": {"200", "404"},
    "get": {"200", "304", "404"},
    "longpoll": {"200", "304", "404"},
    "list": {"200"},
}
SERVER_CLIENTS = "server"  # the client name of the servers' store connections


def _growth(samples: list[dict[str, Any]], key: str, first: tuple[float, float],
            last: tuple[float, float]) -> dict[str, float]:  # fmt: skip
    """Per name under ``key``: median over the ``last`` window minus the ``first``'s."""

    def values(window: tuple[float, float], name: str) -> list[float]:
        return [s[key][name] for s in samples
                if window[0] <= s["t"] < window[1] and name in (s[key] or {})]  # fmt: skip

    names = sorted({name for s in samples for name in (s[key] or {})})
    growth = {}
    for name in names:
        before, after = values(first, name), values(last, name)
        if before and after:
            growth[name] = round(statistics.median(after) - statistics.median(before), 2)
    return growth


def _in_restart(start: float, stop: float, restarts: list[dict[str, float]]) -> bool:
    """Whether the moments from ``start`` to ``stop`` meet a restart's window: from
    :data:`IN_FLIGHT` seconds before the stop to :data:`RESTART_GRACE` after the start."""
    return any(
        start <= r["end"] + RESTART_GRACE and stop >= r["begin"] - IN_FLIGHT for r in restarts
    )


def judge(result: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(figures, failed checks) of one backend's soak."""
    plan, samples, restarts = result["plan"], result["samples"], result["restarts"]
    first = (plan["warmup"], plan["warmup"] + plan["window"])
    last = (plan["seconds"] - plan["window"], plan["seconds"] + plan["sample_every"])
    failures: list[str] = []
    rss = _growth(samples, "rss_mib", first, last)
    fds = _growth(samples, "fds", first, last)
    servers = len(result["processes"]) - 1  # the gunicorn master opens no store connection
    for name, growth in rss.items():
        if growth > RSS_GROWTH_MIB:
            failures.append(f"{name}: RSS grew {growth} MiB after the warm-up")
    for name, growth in fds.items():
        if growth > FD_GROWTH:
            failures.append(f"{name}: {growth} more open file descriptors after the warm-up")
    if len(rss) != len(result["processes"]):
        failures.append(f"RSS measured for {sorted(rss)} only, not all of {result['processes']}")
    figures: dict[str, Any] = {"rss_growth_mib": rss, "fd_growth": fds}
    counted = [s for s in samples if s["connections"] is not None and s["t"] >= plan["warmup"]]
    if counted:
        held = [s["connections"].get(SERVER_CLIENTS, 0) for s in counted]
        growth = _growth(counted, "connections", first, last).get(SERVER_CLIENTS, 0.0)
        figures["connections"] = {"min": min(held), "max": max(held), "growth": growth,
                                  "limit": CONNECTIONS_PER_PROCESS * servers}  # fmt: skip
        if max(held) > CONNECTIONS_PER_PROCESS * servers:
            failures.append(f"the servers held {max(held)} store connections")
        if growth > CONNECTION_GROWTH:
            failures.append(f"the servers' store connections grew by {growth}")
    requests: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    unexpected: list[str] = []
    in_restart: Counter[str] = Counter()
    for second, counts in result["answers_by_second"].items():
        for key, count in counts.items():
            op, status = key.split()
            requests[op] += count
            statuses[status] += count
            if status in EXPECTED[op]:
                continue
            # Answers are counted by the second they were asked in: [second, second + 1).
            if status == "500" and _in_restart(int(second), int(second) + 1, restarts):
                in_restart[second] += count
            else:
                unexpected.append(f"{count} x {op} {status} at {second} s")
    figures.update(requests=dict(requests), statuses=dict(statuses),
                   unexpected=len(unexpected))  # fmt: skip
    failures += [f"unexpected answers: {u}" for u in unexpected[:10]]
    final = result["final"]
    figures["final"] = {k: final[k] for k in ("jobs", "equal", "purged", "mismatch_count")}
    if final["mismatch_count"]:
        failures.append(f"{final['mismatch_count']} jobs differ from the last write, e.g. "
                        f"{final['mismatches'][:2]}")  # fmt: skip
    if final["jobs"] == 0 or final["equal"] == 0:
        failures.append("nothing was written, or nothing read back")
    writer = result["writer"]
    stray = list(writer["failure_times"])
    stray += [p["t"] for p in result["purges"] if "error" in p]
    stray = [t for t in stray if not _in_restart(t, t, restarts)]
    if stray:
        failures.append(f"writer or purger failures outside a restart, at {stray} s")
    if result["workers_booted"] != WORKERS:
        failures.append(f"{result['workers_booted']} gunicorn workers booted, not {WORKERS}")
    figures["restarts"] = [_restart_figures(r, result["answers_by_second"]) for r in restarts]
    figures["writer"] = writer
    figures["purges"] = {"runs": len(result["purges"]),
                         "deleted": sum(p.get("deleted", 0) for p in result["purges"]),
                         "failed": sum("error" in p for p in result["purges"])}  # fmt: skip
    loads = [s["load"] for s in samples]
    figures["load_average"] = {"min": min(loads), "median": statistics.median(loads),
                               "max": max(loads)} if loads else {}  # fmt: skip
    return figures, failures


def _restart_figures(restart: dict[str, float], by_second: dict[str, Any]) -> dict[str, Any]:
    """How long the server was down, and the seconds in which requests failed."""
    failing = sorted(
        int(second) for second, counts in by_second.items()
        if any(key.endswith(" 500") for key in counts)
        and _in_restart(int(second), int(second) + 1, [restart])
    )  # fmt: skip
    failed = sum(
        count for second in failing for key, count in by_second[str(second)].items()
        if key.endswith(" 500")
    )  # fmt: skip
    down = round(restart["end"] - restart["stopped"], 2)
    figures: dict[str, Any] = {"at": round(restart["begin"], 1), "server_down_s": down,
                               "failed_requests": failed}  # fmt: skip
    if failing:
        figures["failures_s"] = [round(max(0.0, failing[0] - restart["begin"]), 1),
                                 round(failing[-1] + 1 - restart["begin"], 1)]  # fmt: skip
    return figures
