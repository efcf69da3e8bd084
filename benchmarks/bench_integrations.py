"""What recording a task queue's jobs costs: Celery, RQ and Dramatiq, each with a real worker,
recorded by jobstatus on a store against the same worker without the integration.

    python benchmarks/bench_integrations.py [--tasks 500] [--rounds 3] [--stores file,sqlite]

Each run starts a worker (Celery's solo pool, RQ's forking worker, Dramatiq with one process and
one thread: one task at a time everywhere), warms it with one task, then sends ``--tasks``
tasks of 1 ms of work as fast as it can and waits for the last one (every task ends with a
Redis INCR the benchmark waits on, recorded or not). Then one task calls ``progress`` 10,000
times. Rounds alternate the contenders. Per queue and store:

- tasks/s with and without recording, end to end (the sends, with their ``queued`` writes, run
  beside the worker), the median of the rounds;
- store writes per task, counted in every process (publisher and worker) by a store wrapper
  that appends one byte per write to a file -- at most 3 are expected: queued, running, final
  -- and the conditional writes refused (a worker quicker than the publisher's ``queued``);
- the writes of the task calling ``progress`` 10,000 times (the default 1 s interval): at most
  20 are expected;
- the time recording adds per task, ``1/rate_with - 1/rate_without``, against the time the
  same recording takes on its own: the integration's ``QueueRecorder`` driven in-process for
  the same number of tasks on the same store, no queue at all.

Redis on 127.0.0.1:6379, database 8 (emptied at the end). The SQLite store takes part only if
it supports versioned writes (``put(..., expect_version=...)``); otherwise it is reported as
skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from integration_apps import Bench, build, store_for  # noqa: E402

from jobstatus import JobRecord, JobTracker, open_store  # noqa: E402
from jobstatus.integrations import QueueRecorder  # noqa: E402
from jobstatus.store import ABSENT  # noqa: E402

RESULTS = HERE / "results" / "integrations.json"
REDIS = "redis://127.0.0.1:6379/8"
KINDS = ("celery", "rq", "dramatiq")
DEADLINE = 300.0


def worker_argv(kind: str, name: str, recorded: bool) -> list[str]:
    if kind == "celery":
        return ["celery", "-A", "integration_apps", "worker", "-P", "solo", "-Q", name,
                "-n", f"{name}@bench", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "WARNING"]  # fmt: skip
    if kind == "rq":
        job_class = ["--job-class", "jobstatus.integrations.rq.RecordedJob"] if recorded else []
        return ["rq.cli", "worker", "--url", REDIS, "-c", "integration_apps", *job_class,
                "--logging_level", "WARNING", name]  # fmt: skip
    return ["dramatiq", "integration_apps", "--processes", "1", "--threads", "1"]


class Run:
    """One worker and its queue side, for one contender of one round."""

    def __init__(self, kind: str, store_url: str | None, folder: Path) -> None:
        self.kind, self.name = kind, f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        self.counts = folder / f"{self.name}.counts"
        self.counts.touch()
        self.redis = redis.Redis.from_url(REDIS)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "JOBSTATUS_BENCH_KIND": kind,
            "JOBSTATUS_BENCH_REDIS": REDIS,
            "JOBSTATUS_BENCH_QUEUE": self.name,
        }
        if store_url is not None:
            env.update(JOBSTATUS_BENCH_STORE=store_url, JOBSTATUS_BENCH_COUNTS=str(self.counts))
        self.log = (folder / f"{self.name}.log").open("wb")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", *worker_argv(kind, self.name, store_url is not None)],
            cwd=HERE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.store = None if store_url is None else open_store(store_url)
        self.bench: Bench = build(kind, REDIS, self.name, store_for(store_url, str(self.counts)))

    def done(self) -> int:
        return int(self.redis.get(f"{self.name}:done") or 0)

    def writes(self) -> tuple[int, int]:
        """Puts that wrote, and conditional puts refused with Conflict, so far. A put is
        counted before it writes: once a record can be read, its put is counted."""
        counted = self.counts.read_bytes()
        refused = counted.count(b"c")
        return counted.count(b"p") - refused, refused

    def wait_done(self, count: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.done() < count:
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} worker stalled at {self.done()}/{count}")
            time.sleep(0.002)

    def settled(self, job_id: str) -> None:
        """Wait for the job's final record: its last write comes after its INCR."""
        deadline = time.monotonic() + DEADLINE
        while self.store is not None and self.store.get(job_id).job_status != "done":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: job {job_id} never ended done")
            time.sleep(0.002)

    def measure(self, tasks: int) -> dict[str, float]:
        self.settled(self.bench.send_work(-1))  # the worker is up once it has run a task
        self.wait_done(1)
        writes_before = self.writes()
        started = time.perf_counter()
        for n in range(tasks):
            last = self.bench.send_work(n)
        sent = time.perf_counter()
        self.wait_done(1 + tasks)
        ended = time.perf_counter()
        self.settled(last)
        work = self.writes()
        self.settled(self.bench.send_chatty())
        self.wait_done(2 + tasks)
        return {
            "tasks_per_s": tasks / (ended - started),
            "sends_per_s": tasks / (sent - started),
            "writes_per_task": (work[0] - writes_before[0]) / tasks,
            "conflicts_per_task": (work[1] - writes_before[1]) / tasks,
            "progress_task_writes": self.writes()[0] - work[0],
        }

    def close(self) -> None:
        os.kill(self.worker.pid, signal.SIGTERM)
        try:
            self.worker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.bench.close()
        self.log.close()
        for key in self.redis.scan_iter(f"*{self.name}*"):
            self.redis.delete(key)
        self.redis.close()


def recording_alone(store_url: str, tasks: int) -> float:
    """Seconds per task that the integration's writes take with no queue: enqueued, started,
    succeeded, as a worker and its publisher call them, on a fresh store."""
    store = open_store(store_url)
    recorder = QueueRecorder(JobTracker(store))
    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    started = time.perf_counter()
    for job_id in ids:
        recorder.enqueued(job_id)
        recorder.started(job_id, endpoint="bench.work")
        recorder.succeeded(job_id, 0)
        recorder.release(job_id)
    elapsed = time.perf_counter() - started
    if store.get(ids[-1]).job_status != "done":
        raise RuntimeError("the recording did not end done")
    store.close()
    return elapsed / tasks


def versioned(store_url: str) -> bool:
    """True when the store takes ``put(..., expect_version=...)``."""
    store = open_store(store_url)
    try:
        store.put(JobRecord(job_id="probe", job_status="queued"), expect_version=ABSENT)
    except TypeError:
        return False
    finally:
        store.close()
    return True


def store_urls(names: list[str], folder: Path) -> dict[str, str]:
    urls = {"file": str(folder / "{run}-store"), "sqlite": f"sqlite:///{folder}/{{run}}.db"}
    return {name: urls[name] for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="file,sqlite")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    redis.Redis.from_url(REDIS).ping()
    folder = Path(tempfile.mkdtemp(prefix="bench-integrations-"))
    stores = store_urls(args.stores.split(","), folder)
    skipped = {}
    for name, url in list(stores.items()):
        if not versioned(url.format(run="probe")):
            skipped[name] = "its put() takes no expect_version on this checkout"
            del stores[name]
    results: dict[str, Any] = {
        "tasks": args.tasks,
        "rounds": args.rounds,
        "work_ms": 1,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "skipped_stores": skipped,
        "queues": {},
    }
    try:
        for kind in args.kinds.split(","):
            results["queues"][kind] = bench_queue(kind, stores, args.tasks, args.rounds, folder)
            print(json.dumps({kind: results["queues"][kind]["rows"]}, indent=1), flush=True)
    finally:
        redis.Redis.from_url(REDIS).flushdb()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


def bench_queue(
    kind: str, stores: dict[str, str], tasks: int, rounds: int, folder: Path
) -> dict[str, Any]:
    contenders: dict[str, str | None] = {"without jobstatus": None, **stores}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    alone: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, url in contenders.items():
            run = Run(kind, None if url is None else url.format(run=uuid.uuid4().hex), folder)
            try:
                samples[name].append(run.measure(tasks))
            finally:
                run.close()
            if url is not None:
                alone[name].append(recording_alone(url.format(run=uuid.uuid4().hex), tasks))

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    baseline = median("without jobstatus", "tasks_per_s")
    rows = [{"contender": "without jobstatus", "tasks_per_s": round(baseline, 1)}]
    for name in stores:
        rate = median(name, "tasks_per_s")
        added_ms = (1 / rate - 1 / baseline) * 1000
        alone_ms = statistics.median(alone[name]) * 1000
        rows.append(
            {
                "contender": f"recorded on {name}",
                "tasks_per_s": round(rate, 1),
                "rate_ratio": round(rate / baseline, 3),
                "writes_per_task": max(s["writes_per_task"] for s in samples[name]),
                "conflicts_per_task": max(s["conflicts_per_task"] for s in samples[name]),
                "progress_task_writes": max(s["progress_task_writes"] for s in samples[name]),
                "added_ms_per_task": round(added_ms, 3),
                "writes_alone_ms_per_task": round(alone_ms, 3),
                "added_to_alone_ratio": round(added_ms / alone_ms, 2),
                "sends_per_s": round(median(name, "sends_per_s"), 1),
            }
        )
    rows[0]["sends_per_s"] = round(median("without jobstatus", "sends_per_s"), 1)
    return {"rows": rows, "samples": samples}


if __name__ == "__main__":
    raise SystemExit(main())
