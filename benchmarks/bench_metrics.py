"""What metrics cost a status lookup: ``make_app`` with metrics off, against the same service
recording with hooks that do nothing (the cost of timing every answer and store call) and
with Prometheus metrics, in one run.

Each contender answers ``POST /v1/toolkit/job/status`` for a 1 KB record in-process (as
bench_status.py does), contenders taking turns. The figures that count are the ratios to
metrics off (targets: at least 0.95 for the hooks, 0.85 for Prometheus). Multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, as ``jobstatus serve --metrics`` runs) is measured in a
process of its own: the variable must be set before prometheus_client is imported.

    python benchmarks/bench_metrics.py [--rounds 10] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import KEY, WSGIApp, alternate, call, one_kb_record

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


def measure(rounds: int, seconds: float, names: list[str]) -> dict[str, list[float]]:
    """Rounds of every contender named, in this process."""
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
        return alternate(
            {name: (lambda n, app=one: call(app)) for name, one in apps.items()}, rounds, seconds
        )


def paired_ratio(rounds: dict[str, list[float]], name: str) -> float:
    """The median over rounds of ``name``'s rate over metrics off's in the same round."""
    return statistics.median(
        ours / off for ours, off in zip(rounds[name], rounds[OFF], strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5, help="per round and contender")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "metrics.json"))
    parser.add_argument("--multiprocess", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.multiprocess:  # the child: metrics off against multiprocess mode, rounds as JSON
        print(json.dumps(measure(args.rounds, args.seconds, [OFF, MULTIPROCESS])))
        return
    rounds = measure(args.rounds, args.seconds, [OFF, HOOKS, PROMETHEUS])
    with tempfile.TemporaryDirectory() as values:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--multiprocess",
                "--rounds",
                str(args.rounds),
                "--seconds",
                str(args.seconds),
            ],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": values},
            capture_output=True,
            text=True,
            check=True,
        )
    multiprocess = json.loads(child.stdout)

    medians = {name: statistics.median(values) for name, values in rounds.items()}
    # per round, the ratio to the round's own "off": the figure least moved by the load
    ratios = {name: paired_ratio(rounds, name) for name in (HOOKS, PROMETHEUS)}
    ratios[MULTIPROCESS] = paired_ratio(multiprocess, MULTIPROCESS)
    result = {
        "benchmark": "status lookups through make_app on a filesystem store, 1 KB record, "
        "with and without metrics",
        "ratio_to_metrics_off": ratios,
        "target_ratio": {HOOKS: 0.95, PROMETHEUS: 0.85},
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "requests_per_second": medians,
        "all_rounds": rounds,
        "multiprocess_rounds": multiprocess,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, [*medians, MULTIPROCESS]))
    for name, value in medians.items():
        print(f"{name:<{width}}  {value:>10,.0f} req/s")
    for name, ratio in ratios.items():
        print(f"{'ratio ' + name + ' / off':<{width + 10}}  {ratio:>6.3f}")


if __name__ == "__main__":
    main()
