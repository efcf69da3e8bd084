"""Webhook deliveries: throughput, store writes per attempt, and what they cost the workers.

- **Deliveries per second** to a local receiver (``http.server``, HTTP/1.1 keep-alive, on
  127.0.0.1), by one :class:`~jobstatus.webhooks.Deliverer` (4 sending threads, connections
  reused per host) on a memory and on a filesystem store, against a ceiling measured in the
  same run: bare ``http.client`` POSTs on kept-alive connections from as many threads, with no
  store, no signing, no claim (target: at least 200 deliveries/s).
- **Store writes per attempt**, counted by a store wrapper while every other delivery fails
  once and is retried (target: at most 2 -- claim and outcome); and the job's own writes with
  a webhook (3, as without one).
- **The workers' final write** while 1,000 jobs end at once (8 worker threads) and the
  receiver takes 1 s per request: the time from the end of each ``with tracker.run(...)``
  block to its exit (the final write, and the hand-over to the deliverer), against the same
  jobs on a tracker without webhooks, contenders taking turns (target ratio about 1).

    python benchmarks/bench_webhooks.py [--jobs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_lifecycle import CountingStore

from jobstatus import JobRecord, JobTracker, Webhooks
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.backends.memory import MemoryStore
from jobstatus.store import Store
from jobstatus.webhooks import Deliverer, generate_secret
from jobstatus.webhooks.state import job_ended, new_webhook

ENDPOINT = "/v1/media/transcribe"
SECRET = generate_secret()
THREADS = 4


class Receiver:
    """Answers every POST with 200 after ``delay`` seconds, keeping connections alive."""

    def __init__(self, delay: float = 0.0, fail_first: bool = False) -> None:
        self.count = 0
        self.seen: set[str] = set()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, as real servers do

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message = self.headers.get("webhook-id") or ""
                with lock:
                    receiver.count += 1
                    first = message not in receiver.seen
                    receiver.seen.add(message)
                if delay:
                    time.sleep(delay)
                status = 503 if fail_first and first and hash(message) % 2 else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhooks(**options: Any) -> Webhooks:
    options.setdefault("retry_schedule", (0.01, 0.01))
    return Webhooks(
        SECRET, allow=["127.0.0.1"], concurrency=THREADS, sweep_interval=None, **options
    )


def pending(store: Store, url: str, count: int, prefix: str) -> list[JobRecord]:
    """``count`` ended jobs with a due delivery and a 1 KB envelope."""
    now = datetime.now(timezone.utc)
    records = []
    for n in range(count):
        job_id = f"{prefix}-{n}"
        envelope = {"code": 200, "job_id": job_id, "response": "x" * 900, "message": "success"}
        record = JobRecord(
            job_id=job_id,
            job_status="done",
            response=envelope,
            extra={"webhook": new_webhook(url)},
        )
        records.append(store.put(job_ended(record, now)))
    return records


def deliveries_per_second(store: Store, receiver: Receiver, count: int, prefix: str) -> float:
    records = pending(store, receiver.url, count, prefix)
    deliverer = Deliverer(store, webhooks())
    started = time.perf_counter()
    for record in records:
        deliverer.notify(record)
    while deliverer.counts.get("delivered", 0) < count:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    deliverer.close()
    return count / elapsed


def ceiling_per_second(receiver: Receiver, count: int) -> float:
    """Bare http.client POSTs of the same body from THREADS kept-alive connections."""
    body = json.dumps({"code": 200, "response": "x" * 900}).encode()
    port = int(receiver.url.split(":")[2].split("/")[0])

    def post(share: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(share):
            conn.request("POST", "/hook", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(post, [count // THREADS] * THREADS))
    return (count // THREADS * THREADS) / (time.perf_counter() - started)


def writes_per_attempt(count: int) -> dict[str, float]:
    receiver = Receiver(fail_first=True)
    store = CountingStore()
    try:
        tracker = JobTracker(store, webhooks=webhooks(deliver_in_process=False))
        for _ in range(count):
            with tracker.run(tracker.submit(endpoint=ENDPOINT, webhook_url=receiver.url)):
                pass
        job_writes = store.writes / count
        store.writes = 0
        with Deliverer(store, webhooks()) as deliverer:
            while deliverer.counts.get("delivered", 0) < count:
                deliverer.deliver_due()
            attempts = deliverer.counts["attempts"]
    finally:
        receiver.close()
    return {
        "jobs": count,
        "attempts": attempts,
        "store_writes_per_attempt": store.writes / attempts,
        "target_store_writes_per_attempt": 2,
        "job_writes_with_a_webhook": job_writes,
    }


def final_write_seconds(tracker: JobTracker, url: str | None, jobs: int) -> list[float]:
    """Per job: from the end of its ``with`` block to the block's exit (the final write)."""

    def job(n: int) -> float:
        with tracker.run(endpoint=ENDPOINT, webhook_url=url) as run:
            run.result = n
            ending = time.perf_counter()
        return time.perf_counter() - ending

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(job, range(jobs)))


def final_write_rows(root: str, jobs: int, rounds: int) -> list[dict[str, Any]]:
    """Per store: the final write without webhooks, with webhooks to a fast receiver, and
    with webhooks to a receiver taking 1 s per request, contenders taking turns."""
    slow, fast = Receiver(delay=1.0), Receiver()
    rows = []
    try:
        for kind, make in (
            ("memory", lambda name: MemoryStore()),
            ("filesystem", lambda name: FileSystemStore(f"{root}/final-{name}")),
        ):
            samples: dict[str, list[float]] = {"none": [], "recorded": [], "fast": [], "slow": []}
            for n in range(rounds):
                samples["none"] += final_write_seconds(JobTracker(make(f"p{n}")), None, jobs)
                recorder = JobTracker(
                    make(f"r{n}"), webhooks=Webhooks(None, deliver_in_process=False)
                )
                samples["recorded"] += final_write_seconds(recorder, fast.url, jobs)
                for which, receiver in (("fast", fast), ("slow", slow)):
                    hooked = JobTracker(make(f"{which}{n}"), webhooks=webhooks(timeout=30.0))
                    samples[which] += final_write_seconds(hooked, receiver.url, jobs)
                    assert hooked.deliverer is not None
                    hooked.deliverer.close()
            rows.append(_row(kind, samples))
    finally:
        slow.close()
        fast.close()
    return rows


def _row(kind: str, samples: dict[str, list[float]]) -> dict[str, Any]:
    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1]

    median = {which: statistics.median(values) for which, values in samples.items()}
    tail = {which: p90(values) for which, values in samples.items()}
    return {
        "store": kind,
        "final_write_median_us_without_webhooks": median["none"] * 1e6,
        "final_write_median_us_recorded_only": median["recorded"] * 1e6,
        "final_write_median_us_fast_receiver": median["fast"] * 1e6,
        "final_write_median_us_receiver_taking_1s": median["slow"] * 1e6,
        "final_write_p90_us_without_webhooks": tail["none"] * 1e6,
        "final_write_p90_us_recorded_only": tail["recorded"] * 1e6,
        "final_write_p90_us_fast_receiver": tail["fast"] * 1e6,
        "final_write_p90_us_receiver_taking_1s": tail["slow"] * 1e6,
        # the claim: a slow receiver does not slow the workers
        "slow_to_fast_receiver_median_ratio": median["slow"] / median["fast"],
        "slow_to_fast_receiver_p90_ratio": tail["slow"] / tail["fast"],
        # what carrying a webhook costs the final write at all (a larger document, a hand-over)
        "slow_receiver_to_no_webhooks_median_ratio": median["slow"] / median["none"],
        "recorded_only_to_no_webhooks_median_ratio": median["recorded"] / median["none"],
    }


def alternate(*contenders: Callable[[int], float], rounds: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in contenders]
    for n in range(rounds):
        for i, contender in enumerate(contenders):
            samples[i].append(contender(n))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="deliveries per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "webhooks.json")
    )
    args = parser.parse_args()

    receiver = Receiver()
    with tempfile.TemporaryDirectory() as root:
        try:
            ceiling, memory, filesystem = alternate(
                lambda n: ceiling_per_second(receiver, args.jobs),
                lambda n: deliveries_per_second(MemoryStore(), receiver, args.jobs, f"m{n}"),
                lambda n: deliveries_per_second(
                    FileSystemStore(f"{root}/rate-{n}"), receiver, args.jobs, f"f{n}"
                ),
                rounds=args.rounds,
            )
        finally:
            receiver.close()
        writes = writes_per_attempt(500)
        rows = final_write_rows(root, 1000, args.rounds)
    rates = {
        "ceiling_bare_http_client_keep_alive": statistics.median(ceiling),
        "deliverer_memory_store": statistics.median(memory),
        "deliverer_filesystem_store": statistics.median(filesystem),
    }
    result = {
        "benchmark": "webhook deliveries",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "deliveries_per_round": args.jobs,
        "sending_threads": THREADS,
        "deliveries_per_second": rates,
        "target_deliveries_per_second": 200,
        "writes": writes,
        "final_write_while_1000_jobs_end_and_the_receiver_takes_1s": {
            "rows": rows,
            "target_ratio": 1.0,
        },
        "all_rounds": {"ceiling": ceiling, "memory": memory, "filesystem": filesystem},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    for name, value in rates.items():
        print(f"{name:40s} {value:8.0f} /s")
    print(
        f"store writes per attempt {writes['store_writes_per_attempt']:.2f} "
        f"(job's own: {writes['job_writes_with_a_webhook']:.0f})"
    )
    for row in rows:
        print(
            f"final write, {row['store']}: median "
            f"{row['final_write_median_us_without_webhooks']:.0f} µs without webhooks, "
            f"{row['final_write_median_us_recorded_only']:.0f} µs recorded only, "
            f"{row['final_write_median_us_fast_receiver']:.0f} µs fast receiver, "
            f"{row['final_write_median_us_receiver_taking_1s']:.0f} µs 1-s receiver; "
            f"slow/fast {row['slow_to_fast_receiver_median_ratio']:.2f}; p90 "
            f"{row['final_write_p90_us_without_webhooks']:.0f} / "
            f"{row['final_write_p90_us_recorded_only']:.0f} / "
            f"{row['final_write_p90_us_fast_receiver']:.0f} / "
            f"{row['final_write_p90_us_receiver_taking_1s']:.0f} µs"
        )


if __name__ == "__main__":
    main()
