"""The cost of recording a job's life, next to baselines measured in the same run.

- ``run.progress(...)`` in a tight loop, when the interval holds the write back: time per call
  (target: under 2 µs), next to an empty method call taking the same arguments.
- Writes per tracked job: a job reporting progress 10,000 times within one interval costs
  queued + running + one progress + final = 4 writes; without progress 3.
- A whole tracked job (submit, run, done) on a filesystem store, next to the three bare
  ``store.put`` calls it makes (ratio: the tracker's own cost beyond the store).

    python benchmarks/bench_lifecycle.py [--rounds 7] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import rate

from jobstatus import JobRecord, JobTracker
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import ExpectedVersion

ENDPOINT = "/v1/media/transcribe"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        self.writes += 1
        return super().put(record, force=force, expect_version=expect_version)


class _Empty:
    def progress(
        self, percent: Any = None, message: Any = None, current: Any = None, total: Any = None
    ) -> None:
        return None


def progress_rates(seconds: float) -> tuple[float, float]:
    """Calls per second of a held-back ``run.progress`` and of an empty method."""
    tracker = JobTracker(MemoryStore(), progress_interval=3600)
    empty = _Empty()
    with tracker.run(endpoint=ENDPOINT) as run:
        run.progress(percent=0)  # the one write; the rest are held back
        ours = rate(
            lambda n: run.progress(percent=50.0, message="frames", current=n, total=1 << 40),
            seconds,
            batch=1000,
        )
        base = rate(
            lambda n: empty.progress(percent=50.0, message="frames", current=n, total=1 << 40),
            seconds,
            batch=1000,
        )
    return ours, base


def writes_per_job(progress_calls: int) -> int:
    store = CountingStore()
    tracker = JobTracker(store, progress_interval=3600)
    with tracker.run(tracker.submit(endpoint=ENDPOINT)) as run:
        for n in range(progress_calls):
            run.progress(current=n + 1, total=progress_calls)
    return store.writes


def job_rates(root: str, seconds: float) -> tuple[float, float]:
    """Tracked jobs per second and, as the floor, the three bare puts such a job makes."""
    store = FileSystemStore(root)
    tracker = JobTracker(store)

    def tracked(n: int) -> None:
        with tracker.run(tracker.submit(endpoint=ENDPOINT)) as run:
            run.result = n

    def bare(n: int) -> None:
        job_id = f"bare-{n}"
        for status in ("queued", "running", "done"):
            store.put(JobRecord(job_id=job_id, job_status=status, response=n))

    return rate(tracked, seconds, batch=20), rate(bare, seconds, batch=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5, help="per round and contender")
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "lifecycle.json")
    )
    args = parser.parse_args()

    progress, empty, tracked, bare = [], [], [], []
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.rounds):
            ours, base = progress_rates(args.seconds)
            progress.append(ours)
            empty.append(base)
            jobs, puts = job_rates(root, args.seconds)
            tracked.append(jobs)
            bare.append(puts)
    progress_us = 1e6 / statistics.median(progress)
    empty_us = 1e6 / statistics.median(empty)
    result = {
        "benchmark": "the cost of recording a job's life",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "held_back_progress_call_us": progress_us,
        "empty_method_call_us": empty_us,
        "progress_call_ratio_to_empty_call": progress_us / empty_us,
        "target_progress_call_us": 2.0,
        "writes_per_job_without_progress": writes_per_job(0),
        "writes_per_job_with_10000_progress_calls": writes_per_job(10_000),
        "tracked_jobs_per_second_filesystem": statistics.median(tracked),
        "three_bare_puts_per_second_filesystem": statistics.median(bare),
        "tracked_job_ratio_to_bare_puts": statistics.median(tracked) / statistics.median(bare),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"held-back run.progress(...)  {progress_us:6.2f} µs/call  (target < 2 µs)")
    print(f"empty method, same arguments {empty_us:6.2f} µs/call")
    print(
        f"writes per job: {result['writes_per_job_without_progress']} without progress, "
        f"{result['writes_per_job_with_10000_progress_calls']} with 10,000 progress calls"
    )
    print(
        f"tracked job / its three bare puts (filesystem): "
        f"{result['tracked_job_ratio_to_bare_puts']:.2f}"
    )


if __name__ == "__main__":
    main()
