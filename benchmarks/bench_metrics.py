"""What metrics cost a status lookup: ``make_app`` with metrics off, against the same service
recording with hooks that do nothing (the cost of timing every answer and store call) and
with Prometheus metrics, in one run.

Each contender answers ``POST /v1/toolkit/job/status`` for a 1 KB record in-process (as
bench_status.py does), contenders taking turns; each round counts the CPU time of this
process per request. The figures that count are, round by round, metrics off's CPU time over
the contender's (targets: at least 0.9 for the hooks, 0.7 for Prometheus) and the
microseconds added. Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, as ``jobstatus serve
--metrics`` runs) is measured in a process of its own, against metrics off there: the
variable must be set before prometheus_client is imported.

    python benchmarks/bench_metrics.py [--rounds 25] [--calls 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import KEY, WSGIApp, call, one_kb_record

from jobstatus import StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.metrics import ServiceMetrics

OFF = "metrics off"
HOOKS = "hooks that do nothing"
PROMETHEUS = "Prometheus"
MULTIPROCESS = "Prometheus, multiprocess mode"


def app(root: str, metrics: object) -> WSGIApp:
    store = FileSystemStore(root)
    store.put(one_kb_record())
    return make_app(StatusService(store, api_keys=[KEY], metrics=metrics))  # type: ignore[arg-type]


def prometheus(registry_of_its_own: bool = True) -> object:
    from prometheus_client import CollectorRegistry

    from jobstatus.prometheus import PrometheusMetrics

    return PrometheusMetrics(CollectorRegistry() if registry_of_its_own else None)


def measure(rounds: int, calls: int, names: list[str]) -> dict[str, list[float]]:
    """CPU microseconds per request of every contender named, ``rounds`` times, contenders
    taking turns. CPU time of this process is what metrics add, and is the figure least moved
    by other processes sharing the machine."""
    with tempfile.TemporaryDirectory() as root:
        makers = {
            OFF: lambda: None,
            HOOKS: ServiceMetrics,
            PROMETHEUS: prometheus,
            MULTIPROCESS: lambda: prometheus(registry_of_its_own=False),
        }
        apps = {
            name: app(os.path.join(root, str(n)), makers[name]()) for n, name in enumerate(names)
        }
        for one in apps.values():  # warm up
            for _ in range(calls // 5):
                call(one)
        results: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, one in apps.items():
                started = time.process_time()
                for _ in range(calls):
                    call(one)
                results[name].append((time.process_time() - started) / calls * 1e6)
        return results


def paired(rounds: dict[str, list[float]], name: str) -> tuple[float, float]:
    """Over rounds, the medians of metrics off's CPU time over ``name``'s (a ratio of speeds,
    1.0 meaning no cost) and of the microseconds ``name`` adds, each round against its own."""
    pairs = list(zip(rounds[name], rounds[OFF], strict=True))
    return (
        statistics.median(off / ours for ours, off in pairs),
        statistics.median(ours - off for ours, off in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=5000, help="per round and contender")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "metrics.json"))
    parser.add_argument("--multiprocess", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.multiprocess:  # the child: metrics off against multiprocess mode, rounds as JSON
        print(json.dumps(measure(args.rounds, args.calls, [OFF, MULTIPROCESS])))
        return
    rounds = measure(args.rounds, args.calls, [OFF, HOOKS, PROMETHEUS])
    with tempfile.TemporaryDirectory() as values:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--multiprocess",
                *("--rounds", str(args.rounds), "--calls", str(args.calls)),
            ],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": values},
            capture_output=True,
            text=True,
            check=True,
        )
    multiprocess = json.loads(child.stdout)

    figures = {name: paired(rounds, name) for name in (HOOKS, PROMETHEUS)}
    figures[MULTIPROCESS] = paired(multiprocess, MULTIPROCESS)
    result = {
        "benchmark": "status lookups through make_app on a filesystem store, 1 KB record, "
        "with metrics against without: CPU time per request",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "target_ratio": 0.7,  # Prometheus in one process; the hooks alone: 0.9
        "rows": [
            {"recording": name, "ratio": ratio, "added_cpu_microseconds": added}
            for name, (ratio, added) in figures.items()
        ],
        "cpu_microseconds_per_request": {
            name: statistics.median(values) for name, values in rounds.items()
        },
        "all_rounds": rounds,
        "multiprocess_rounds": multiprocess,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{OFF:<30} {statistics.median(rounds[OFF]):>7.1f} us of CPU per request")
    for name, (ratio, added) in figures.items():
        print(f"{name:<30} {ratio:>7.3f} of the speed, +{added:.2f} us of CPU per request")


if __name__ == "__main__":
    main()
