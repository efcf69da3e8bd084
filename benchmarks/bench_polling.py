"""Polling done right, measured: long-polls under load, a 304 next to a 200, listing recent
jobs next to the upstream's scan, and the memory of a huge listing. Figures are ratios and
percentiles of one run; targets in brackets.

1. **Long-poll**: 1,000 concurrent clients on one uvicorn worker (FastAPI adapter, filesystem
   store), each long-polling its own job (``If-None-Match`` + ``?wait=30``), while another
   process finishes the jobs at 100 per second. Answer-after-change latency, p99 [≤ 100 ms],
   measured from the moment the writer *starts* its write; the server's threads [≤ 8] and RSS
   growth [≤ 50 MiB] sampled from ``/proc``; store queries per change [O(1): ~1].
2. **304 vs 200**: ``GET /v1/toolkit/jobs/{id}`` through ``make_app`` in-process, a matching
   ``If-None-Match`` against none; cost ratio [≤ 0.7], the cost being the process's CPU time
   per request (rounds alternate; other processes on a busy machine do not count).
3. **Listing**: ``store.list(since=now-600)`` on 100,000 files, 1,000 in the window, median ms
   after warm-up [< 20 ms], next to an emulation of the upstream's scan (``os.listdir``, a
   ``getmtime`` per file, ``json.load`` of those in the window), and through the POST route.
4. **Memory**: the POST list route answering 100,000 jobs in its window, streamed, in a fresh
   process: peak RSS over the idle service with its index built [≤ +20 MiB].

    python benchmarks/bench_polling.py [--clients 1000] [--rate 100] [--files 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import one_kb_record
from _polling_roles import KEY, STORE_THREADS

from jobstatus import JobRecord, StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore

HERE = Path(__file__).resolve().parent
ROLES = str(HERE / "_polling_roles.py")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}


# -- 1. long-polls ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> tuple[int, int]:
    """(threads, RSS in bytes) of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) * 1024


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on its own connection: status, lower-case headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body
    finally:
        writer.close()


def get(path: str, **headers: str) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"GET {path} HTTP/1.1\r\nhost: bench\r\nx-api-key: {KEY}\r\n{extra}\r\n".encode()


async def stats(port: int) -> dict[str, Any]:
    _, _, body = await http(port, get("/bench/stats"))
    result: dict[str, Any] = json.loads(body)
    return result


async def long_polls(
    port: int, pid: int, ids: list[str], root: str, rate_per_second: float, work: Path
) -> dict[str, Any]:
    answered: dict[str, tuple[float, int]] = {}
    peak = {"threads": 0, "rss": 0}
    sampling = True

    def sample() -> None:
        while sampling:
            threads, rss = proc_status(pid)
            peak["threads"], peak["rss"] = max(peak["threads"], threads), max(peak["rss"], rss)
            time.sleep(0.02)

    async def client(job_id: str, opened: asyncio.Semaphore) -> None:
        async with opened:
            status, headers, body = await http(port, get(f"/v1/toolkit/jobs/{job_id}"))
        if status != 200:
            raise RuntimeError(f"{status} {body!r}")
        status, _, _ = await http(
            port, get(f"/v1/toolkit/jobs/{job_id}?wait=30", **{"if-none-match": headers["etag"]})
        )
        answered[job_id] = (time.monotonic(), status)

    # Warm-up: one job asked plainly and conditionally (the watcher subscribes), then idle.
    _, headers, _ = await http(port, get(f"/v1/toolkit/jobs/{ids[0]}"))
    await http(port, get(f"/v1/toolkit/jobs/{ids[0]}", **{"if-none-match": headers["etag"]}))
    threads_idle, rss_idle = proc_status(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    opened = asyncio.Semaphore(100)
    clients = [asyncio.ensure_future(client(job_id, opened)) for job_id in ids]
    while (await stats(port))["waiting"] < len(ids):
        await asyncio.sleep(0.05)
    before = await stats(port)
    threads_waiting, rss_waiting = proc_status(pid)
    (work / "ids").write_text("\n".join(ids))
    writer = await asyncio.create_subprocess_exec(
        sys.executable, ROLES, "write", root, str(work / "ids"), str(rate_per_second),
        str(work / "writes.json"), env=ENV,
    )  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*clients), 120)
    await writer.wait()
    after = await stats(port)
    sampling = False
    sampler.join()
    writes = json.loads((work / "writes.json").read_text())
    latencies = sorted((answered[job_id][0] - began) * 1000 for job_id, began, _ in writes)
    put_ms = sorted((ended - began) * 1000 for _, began, ended in writes)
    changes = len(writes)
    queries = after["store_gets"] + after["store_lists"]
    queries -= before["store_gets"] + before["store_lists"]
    watcher_queries = after["watcher_queries"] - before["watcher_queries"]
    threads = {"idle": threads_idle, "waiting": threads_waiting, "peak": peak["threads"]}
    return {
        "clients": len(ids),
        "changes": changes,
        "rate_per_second": rate_per_second,
        "statuses": sorted({status for _, status in answered.values()}),
        "latency_ms": {
            "p50": statistics.median(latencies),
            "p99": latencies[int(0.99 * (len(latencies) - 1))],
            "max": latencies[-1],
        },
        "writer_put_ms": {"p50": statistics.median(put_ms), "p99": put_ms[int(0.99 * changes)]},
        "server_threads": threads,
        "server_rss_mib": {
            "idle": rss_idle / 2**20,
            "all_waiting": rss_waiting / 2**20,
            "peak": peak["rss"] / 2**20,
            "growth": (peak["rss"] - rss_idle) / 2**20,
        },
        "store_queries_per_change": queries / changes,
        "watcher_queries_per_change": watcher_queries / changes,
        "notified": after["notified"],
        "store_threads": STORE_THREADS,
    }  # fmt: skip


def run_long_polls(clients: int, rate_per_second: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(clients)]
        store = FileSystemStore(root)
        store.restore(JobRecord(job_id=job_id, job_status="running") for job_id in ids)
        port = free_port()
        server = subprocess.Popen([sys.executable, ROLES, "serve", root, str(port)], env=ENV)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.05)
            return asyncio.run(long_polls(port, server.pid, ids, root, rate_per_second, Path(root)))
        finally:
            server.terminate()
            server.wait(10)


# -- 2. a 304 next to a 200 ---------------------------------------------------------------------


def not_modified_cost(rounds: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        store = FileSystemStore(root)
        record = store.put(one_kb_record())
        app = make_app(StatusService(store, api_keys=[KEY], build_number="1.0.0"))
        path = f"/v1/toolkit/jobs/{record.job_id}"
        etag = f'"{record.version}"'

        def call(condition: str | None, expected: str) -> None:
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_X_API_KEY": KEY}
            if condition is not None:
                environ["HTTP_IF_NONE_MATCH"] = condition
            status: list[str] = []
            b"".join(app(environ, lambda s, h: status.append(s)))
            if not status[0].startswith(expected):
                raise RuntimeError(status)

        contenders = {"200": lambda: call(None, "200"), "304": lambda: call(etag, "304")}
        for work in contenders.values():
            cpu_cost(work, 0.2)
        costs: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, work in contenders.items():
                costs[name].append(cpu_cost(work, seconds))
    medians = {name: statistics.median(values) for name, values in costs.items()}
    return {
        "cpu_microseconds_per_request": medians,
        "cost_ratio_304_to_200": medians["304"] / medians["200"],
        "all_rounds": costs,
    }


def cpu_cost(work: Callable[[], object], seconds: float, batch: int = 200) -> float:
    """CPU microseconds per call of ``work`` over about ``seconds`` of CPU time: the process's
    own time, so that other processes on a busy machine do not count."""
    calls, started = 0, time.process_time()
    while True:
        for _ in range(batch):
            work()
        calls += batch
        spent = time.process_time() - started
        if spent >= seconds:
            return spent / calls * 1e6


# -- 3. listing recent jobs, and 4. the memory of a huge listing --------------------------------


def make_files(root: Path, files: int, recent: int) -> None:
    """``files`` upstream job files, ``recent`` of them written in the last minutes."""
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    now = time.time()
    for n in range(files):
        path = jobs / f"job-{n:06d}.json"
        status = "running" if n % 5 else "done"
        path.write_text(json.dumps({"job_status": status, "job_id": path.stem}, indent=2))
        stamp = now - (60 + n % 300) if n < recent else now - 86_400 - n
        os.utime(path, (stamp, stamp))


def upstream_scan(jobs: Path, since: float) -> dict[str, str]:
    """The upstream service's listing: every file's mtime, then each recent one read."""
    found = {}
    for name in os.listdir(jobs):
        path = os.path.join(jobs, name)
        if name.endswith(".json") and os.path.getmtime(path) >= since:
            with open(path) as file:
                document = json.load(file)
            found[document["job_id"]] = document["job_status"]
    return found


def listing(root: Path, rounds: int) -> dict[str, Any]:
    store = FileSystemStore(root)
    service = StatusService(store, api_keys=[KEY])
    body = b'{"since_seconds": 600}'

    def ours() -> int:
        return sum(1 for _ in store.list(since=time.time() - 600))

    def route() -> int:
        return len(service.handle("/v1/toolkit/jobs/status", body, KEY).parsed()["response"])

    def scan() -> int:
        return len(upstream_scan(root / "jobs", time.time() - 600))

    contenders = {
        "jobstatus store.list": ours,
        "jobstatus POST route": route,
        "upstream scan": scan,
    }
    started = time.perf_counter()
    counts = {name: work() for name, work in contenders.items()}  # warm-up; builds the index
    first = (time.perf_counter() - started) * 1000
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, work in contenders.items():
            began = time.perf_counter()
            work()
            times[name].append((time.perf_counter() - began) * 1000)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "files": sum(1 for _ in (root / "jobs").iterdir()),
        "in_window": counts,
        "median_ms": medians,
        "ratio_scan_to_ours": medians["upstream scan"] / medians["jobstatus store.list"],
        "warm_up_ms_all_three": first,
        "all_rounds_ms": times,
    }


MEMORY_PROBE = """
import gc, io, json, os, sys
from jobstatus import StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * PAGE
store = FileSystemStore(sys.argv[1])
app = make_app(StatusService(store, api_keys=["k"]))
def post(body):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/toolkit/jobs/status",
               "HTTP_X_API_KEY": "k", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body)}
    size = jobs = 0
    peak = rss()
    for chunk in app(environ, lambda s, h: None):  # as a server sends it: chunk by chunk
        size += len(chunk)
        jobs += chunk.count(b'"job-')
        peak = max(peak, rss())
    return size, jobs, peak
post(b'{"since_seconds": 0}')  # the idle service: its index built, nothing in the window
gc.collect()
idle = rss()
size, jobs, peak = post(b'{"since_seconds": 3600}')
print(json.dumps({"idle_mib": idle / 2**20, "peak_mib": peak / 2**20,
                  "growth_mib": (peak - idle) / 2**20, "answer_bytes": size, "jobs": jobs}))
"""


def huge_listing_memory(root: Path) -> dict[str, Any]:
    now = time.time()
    for path in (root / "jobs").iterdir():  # every job in the window now
        os.utime(path, (now, now))
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(root)],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(probe.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--recent", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--output", default=str(HERE / "results" / "polling.json"))
    args = parser.parse_args()

    result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    result["long_poll"] = run_long_polls(args.clients, args.rate)
    print(json.dumps(result["long_poll"], indent=1))
    result["not_modified"] = not_modified_cost(args.rounds, args.seconds)
    print("304/200 cost ratio:", round(result["not_modified"]["cost_ratio_304_to_200"], 3))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_files(root, args.files, args.recent)
        result["listing"] = listing(root, args.rounds)
        print(json.dumps(result["listing"]["median_ms"], indent=1))
        result["huge_listing_memory"] = huge_listing_memory(root)
        print(json.dumps(result["huge_listing_memory"], indent=1))
    result["targets"] = {
        "long_poll_p99_ms": 100,
        "server_threads": 8,
        "rss_growth_mib": 50,
        "store_queries_per_change": "O(1)",
        "cost_ratio_304_to_200": 0.7,
        "listing_median_ms": 20,
        "huge_listing_growth_mib": 20,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
