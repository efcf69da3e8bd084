"""Soak: hours, not seconds. Each store served for a long time under a steady load, its
database server restarted half-way: memory, file descriptors and connections must stay flat.

For each backend: ``jobstatus serve`` (gunicorn, 4 workers) and the FastAPI router on
one uvicorn worker over the same store; a writer process creating, progressing and finishing
jobs (40 writes/s); clients POSTing, GETting with ``If-None-Match``, long-polling (uvicorn)
and walking list pages, about 100 requests/s; finished jobs purged every minute. PostgreSQL
and Redis are private servers started here (not the shared ones on 5432/6379), stopped for
5 s and started again half-way through. Every 2 s the RSS and open descriptors of each server
process and the store's connections are sampled; latency percentiles are taken per 30 s.

    python benchmarks/soak.py [--minutes 30] [--warmup-minutes 5]
                              [--backends filesystem,sqlite,postgresql,redis]

Writes ``benchmarks/results/soak.json`` (every sample, the figures and the failed checks, per
backend) and prints a table; ``python benchmarks/plot.py`` draws
``docs/_static/benchmarks/soak.png`` from it. Not part of CI's test run: ``tests/test_soak.py``
runs the same scenario and checks for about a minute per restarted store. The exit status is
1 when a check failed. The checks are :mod:`jobstatus.testing._soak_checks`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jobstatus.testing._private_servers import PrivatePostgres, PrivateRedis
from jobstatus.testing._soak import Plan, Restartable, run_soak
from jobstatus.testing._soak_checks import judge

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
BACKENDS = ("filesystem", "sqlite", "postgresql", "redis")


@contextlib.contextmanager
def store(
    backend: str, work_dir: Path
) -> Iterator[tuple[Callable[[str], str], Restartable | None]]:
    """The store's URL by client name, and the server to restart (None: nothing to restart)."""
    if backend == "filesystem":
        yield (lambda name: f"file://{work_dir / 'data'}"), None
    elif backend == "sqlite":
        yield (lambda name: f"sqlite:///{work_dir / 'jobs.db'}"), None
    elif backend == "postgresql":
        with PrivatePostgres() as postgres:
            yield postgres.url, postgres
    elif backend == "redis":
        with PrivateRedis(work_dir / "redis") as redis:
            yield redis.url, redis
    else:
        raise SystemExit(f"unknown backend {backend!r}; choose among {', '.join(BACKENDS)}")


def row(backend: str, figures: dict[str, Any], failures: list[str], minutes: float) -> str:
    rss = figures["rss_growth_mib"]
    connections = figures.get("connections")
    held = f"{connections['min']}-{connections['max']}" if connections else "—"
    restarts = "; ".join(
        f"down {r['server_down_s']} s, {r['failed_requests']} x 500"
        + (f" from +{r['failures_s'][0]} to +{r['failures_s'][1]} s" if "failures_s" in r else "")
        for r in figures["restarts"]
    )
    final = figures["final"]
    return (
        f"| {backend} | {minutes:g} | {min(rss.values()):+.1f} … {max(rss.values()):+.1f} | "
        f"{min(figures['fd_growth'].values()):+g} … {max(figures['fd_growth'].values()):+g} | "
        f"{held} | {sum(figures['requests'].values()):,} | {figures['unexpected']} | "
        f"{final['mismatch_count']} of {final['jobs']:,} | {restarts or '—'} | "
        f"{'pass' if not failures else 'FAIL'} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="per backend")
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # SIGTERM ends the run as Ctrl-C does: the servers it started are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    seconds = args.minutes * 60
    plan = Plan(seconds=seconds, warmup=args.warmup_minutes * 60,
                window=min(60.0, (seconds - args.warmup_minutes * 60) / 4))  # fmt: skip
    runs = []
    failed = False
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp, store(backend, Path(tmp)) as (url, server):
            result = run_soak(backend, url, plan, work_dir=Path(tmp), restartable=server,
                              progress=True)  # fmt: skip
        figures, failures = judge(result)
        failed = failed or bool(failures)
        runs.append({**result, "figures": figures, "failures": failures})
        print(json.dumps({"backend": backend, **figures, "failures": failures}), flush=True)
        # Written after each backend: a long run stopped early keeps what it measured.
        args.output.parent.mkdir(parents=True, exist_ok=True)
        document = {"benchmark": "soak", "python": platform.python_version(),
                    "cpus": os.cpu_count(), "runs": runs}  # fmt: skip
        # Compact: every sample of every run is kept (hours of them).
        args.output.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print("| backend | minutes | RSS growth MiB | fd growth | store connections | requests | "
          "unexpected | mismatches | restart | checks |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for run in runs:
        print(row(run["backend"], run["figures"], run["failures"], args.minutes))
    for run in runs:
        for failure in run["failures"]:
            print(f"{run['backend']}: {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
