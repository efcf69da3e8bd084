"""Load: ``jobstatus serve`` (gunicorn, 4 workers) on loopback, hammered by a load generator,
while a writer process updates 100 jobs in a loop -- on each store.

For each store: the answers by status (only 200 and 404 are correct), the latency p50/p99,
the requests and writes per second, and whether every record's final state equals the writer's
last write. The load generator is wrk when it is installed (``apt-get install -y wrk``), else a
Python one (threads, one connection per request); the figures name which one ran.

    python benchmarks/bench_load.py [--seconds 30] [--stores file,sqlite,postgresql,s3]

PostgreSQL is expected on 127.0.0.1:5432 (user postgres, database test); the S3 endpoint is
moto's server, started here. ``tests/test_load.py`` runs the same scenario and asserts on it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "load.json"

JOBS = 100
UNKNOWN = 10  # ids never written: the 404s of the mix
KEY = "load-test-key"
STATUS = "/v1/toolkit/job/status"

# -- gunicorn -------------------------------------------------------------------------------------


class Gunicorn:
    """A gunicorn server in a subprocess, on a free loopback port, its error log in a file.

    ``command`` is the argument list after the Python interpreter; ``--bind 127.0.0.1:0`` makes
    gunicorn pick the port, read back from its log.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        workers: int,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.workers = workers
        self.error_log = log_dir / f"gunicorn-{uuid.uuid4().hex[:8]}.log"
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Gunicorn:
        with open(self.error_log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                env=self.env,
                stdout=subprocess.DEVNULL,  # the access log
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            listening = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            if listening and text.count("Booting worker") >= self.workers:
                self.port = int(listening.group(1))
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def worker_pids(self) -> set[int]:
        return {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.log())}

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_command(store_url: str, workers: int) -> list[str]:
    """``jobstatus serve``, as a user runs it."""
    return ["-m", "jobstatus", "serve", "--store", store_url, "--port", "0",
            "--workers", str(workers)]  # fmt: skip


# -- the writer -----------------------------------------------------------------------------------

# Writes the jobs in turn until the stop file appears, then prints what it wrote last.
WRITER = """
import json, os, sys
from jobstatus import JobRecord, open_store
store_url, stop_file, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
last, writes = {}, 0
with open_store(store_url) as store:
    while not os.path.exists(stop_file):
        for job_id in ids:
            writes += 1
            record = JobRecord(job_id=job_id, job_status="running",
                               response={"write": writes, "progress": writes % 100})
            store.put(record)
            last[job_id] = record.to_dict()
print(json.dumps({"writes": writes, "last": last}))
"""


def job_ids(token: str, count: int = JOBS, kind: str = "job") -> list[str]:
    """UUIDs, as the endpoint expects by default, the same for the same token."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{token}/{kind}/{i}")) for i in range(count)]


@contextlib.contextmanager
def writing(store_url: str, token: str, work_dir: Path) -> Iterator[dict[str, Any]]:
    """Run the writer for the ``with`` block; the yielded dict gets ``writes`` and ``last``
    (job id → the document written last) once the block ends."""
    stop_file = work_dir / f"stop-{token}"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url, str(stop_file), ",".join(job_ids(token))],
        stdout=subprocess.PIPE,
        text=True,
    )
    outcome: dict[str, Any] = {}
    try:
        yield outcome
    finally:
        stop_file.touch()
        out, _ = writer.communicate(timeout=120)
    if writer.returncode != 0:
        raise RuntimeError(f"the writer failed with exit code {writer.returncode}")
    outcome.update(json.loads(out))


# -- the load generators --------------------------------------------------------------------------


@dataclass
class Load:
    generator: str
    seconds: float
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # connect/read/write errors and timeouts
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    bad_bodies: int = 0  # answers that are not JSON, or not the job asked for (Python only)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def unexpected(self) -> int:
        """Answers other than 200 and 404, and failed requests."""
        return self.errors + sum(n for s, n in self.statuses.items() if s not in ("200", "404"))


WRK_SCRIPT = """
local ids = {%(ids)s}
local n = 0
wrk.method = "POST"
wrk.headers["x-api-key"] = "%(key)s"
wrk.headers["Content-Type"] = "application/json"
statuses = {}
request = function()
  n = n + 1
  return wrk.format(nil, "%(path)s", nil, '{"job_id": "' .. ids[(n %% #ids) + 1] .. '"}')
end
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("STATUS %%d %%d\\n", status, count))
  end
  local e = summary.errors
  io.write(string.format("REQUESTS %%d\\nERRORS %%d\\n", summary.requests,
                         e.connect + e.read + e.write + e.timeout))
  io.write(string.format("P50 %%f\\nP99 %%f\\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
"""


def run_wrk(port: int, ids: list[str], seconds: float, connections: int, work_dir: Path) -> Load:
    script = work_dir / "load.lua"
    quoted = ", ".join(f'"{i}"' for i in ids)
    script.write_text(WRK_SCRIPT % {"ids": quoted, "key": KEY, "path": STATUS})
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    load = Load("wrk", seconds)
    for status, count in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M):
        load.statuses[status] = int(count)
    load.requests = int(re.search(r"^REQUESTS (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    load.errors = int(re.search(r"^ERRORS (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    load.p50_ms = float(re.search(r"^P50 ([\d.]+)$", out, re.M).group(1))  # type: ignore[union-attr]
    load.p99_ms = float(re.search(r"^P99 ([\d.]+)$", out, re.M).group(1))  # type: ignore[union-attr]
    return load


def run_python(port: int, ids: list[str], seconds: float, connections: int) -> Load:
    """Threads, each sending requests one after another, a new connection each (gunicorn's
    sync workers close it after every answer anyway)."""
    load = Load("python", seconds)
    lock = threading.Lock()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        n = offset
        mine: list[float] = []
        statuses: dict[str, int] = {}
        errors = bad = 0
        while time.monotonic() < deadline:
            job_id = ids[n % len(ids)]
            n += connections
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", STATUS, json.dumps({"job_id": job_id}),
                             {"x-api-key": KEY, "Content-Type": "application/json"})  # fmt: skip
                response = conn.getresponse()
                body = response.read()
                conn.close()
            except OSError:
                errors += 1
                continue
            mine.append(time.perf_counter() - started)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            try:
                answer = json.loads(body)
                if response.status == 200 and answer["response"]["job_id"] != job_id:
                    bad += 1
            except (ValueError, KeyError, TypeError):
                bad += 1
        with lock:
            latencies.extend(mine)
            for status, count in statuses.items():
                load.statuses[status] = load.statuses.get(status, 0) + count
            load.errors += errors
            load.bad_bodies += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.requests = len(latencies) + load.errors
    if latencies:
        cuts = statistics.quantiles(latencies, n=100)
        load.p50_ms, load.p99_ms = cuts[49] * 1000, cuts[98] * 1000
    return load


# The floor: a bare WSGI function that reads the job file and returns it, no checks at all.
FLOOR_APP = """
import json, os
JOBS = os.environ["FLOOR_JOBS_DIR"]

def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    try:
        with open(os.path.join(JOBS, json.loads(body)["job_id"] + ".json"), "rb") as file:
            data, status = file.read(), "200 OK"
    except FileNotFoundError:
        data, status = b'{"error": "Job not found"}', "404 Not Found"
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]
"""


# -- one run --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    store: str
    load: Load
    writes: int
    final_state_mismatches: list[str]
    error_log_problems: list[str]

    def figures(self) -> dict[str, Any]:
        load = self.load
        return {
            "store": self.store,
            "generator": load.generator,
            "seconds": load.seconds,
            "requests": load.requests,
            "requests_per_s": round(load.per_second),
            "statuses": dict(sorted(load.statuses.items())),
            "unexpected": load.unexpected,
            "bad_bodies": load.bad_bodies,
            "p50_ms": round(load.p50_ms, 2),
            "p99_ms": round(load.p99_ms, 2),
            "writes": self.writes,
            "writes_per_s": round(self.writes / load.seconds),
            "final_state_mismatches": len(self.final_state_mismatches),
        }


#: Lines of a gunicorn error log that mean a worker or a connection went wrong.
LOG_PROBLEMS = re.compile(
    r"Traceback|WORKER TIMEOUT|Worker .* was sent|SSL error|bad record mac|"
    r"commands out of sync|Exception in worker|\[ERROR\]",
    re.IGNORECASE,
)


def fetch(port: int, job_id: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", STATUS, json.dumps({"job_id": job_id}), {"x-api-key": KEY})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def run_load(
    store_name: str,
    store_url: str,
    *,
    seconds: float = 30.0,
    workers: int = 4,
    connections: int = 16,
    work_dir: Path,
    generator: str = "auto",
    floor: bool = False,
) -> LoadResult:
    """Serve ``store_url`` with ``jobstatus serve``, load it while the writer writes, then read
    every job back and compare it with the writer's last write. ``floor``: serve the file
    store's folder with :data:`FLOOR_APP` instead (no final-state check: it answers the bare
    file)."""
    token = uuid.uuid4().hex[:8]
    ids = job_ids(token)
    asked = ids + job_ids(token, UNKNOWN, "missing")
    use_wrk = generator == "wrk" or (generator == "auto" and shutil.which("wrk"))
    env = {"JOBSTATUS_API_KEYS": KEY}
    command = serve_command(store_url, workers)
    if floor:
        (work_dir / "floor_app.py").write_text(FLOOR_APP)
        env["FLOOR_JOBS_DIR"] = store_url.removeprefix("file://") + "/jobs"
        command = ["-m", "gunicorn", "--workers", str(workers), "--bind", "127.0.0.1:0",
                   "--pythonpath", str(work_dir), "floor_app:app"]  # fmt: skip
    with Gunicorn(command, workers=workers, log_dir=work_dir, env=env) as server:
        with writing(store_url, token, work_dir) as written:
            if use_wrk:
                load = run_wrk(server.port, asked, seconds, connections, work_dir)
            else:
                load = run_python(server.port, asked, seconds, connections)
        mismatches = []
        for job_id, document in written["last"].items():
            if floor:
                break
            status, answer = fetch(server.port, job_id)
            if status != 200 or answer["response"] != document:
                mismatches.append(job_id)
        if len(written["last"]) != JOBS:
            mismatches.append(f"the writer wrote {len(written['last'])} jobs, not {JOBS}")
        problems = [line for line in server.log().splitlines() if LOG_PROBLEMS.search(line)]
    from jobstatus import open_store

    with open_store(store_url) as store:  # leave a shared database as it was found
        for job_id in ids:
            store.delete(job_id)
    return LoadResult(store_name, load, written["writes"], mismatches, problems)


# -- the command ----------------------------------------------------------------------------------


@contextlib.contextmanager
def store_urls(names: list[str], work_dir: Path) -> Iterator[dict[str, str]]:
    """A fresh store URL per name; starts moto's S3 server for ``s3``."""
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for name in names:
            if name == "file":
                urls[name] = f"file://{work_dir / 'data'}"
            elif name == "sqlite":
                urls[name] = f"sqlite:///{work_dir / 'jobs.db'}"
            elif name == "postgresql":
                urls[name] = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            elif name == "mariadb":
                urls[name] = "mysql+pymysql://root@127.0.0.1:3306/test"
            elif name == "s3":
                urls[name] = stack.enter_context(moto_bucket())
            else:
                raise SystemExit(f"unknown store {name!r}")
        yield urls


@contextlib.contextmanager
def moto_bucket() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        import s3fs

        endpoint = f"http://{host}:{port}"
        s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("bench-load")
        yield f"s3://bench-load/run?endpoint_url={endpoint}"
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--stores", default="file,sqlite,postgresql,s3")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    names = args.stores.split(",")
    results = []
    runs = [(name, False) for name in names]
    if "file" in names:  # the floor next to the file store, in the same run
        runs.insert(names.index("file") + 1, ("file", True))
    with tempfile.TemporaryDirectory() as tmp, store_urls(names, Path(tmp)) as urls:
        for name, floor in runs:
            result = run_load(name, urls[name], seconds=args.seconds, work_dir=Path(tmp),
                              generator=args.generator, floor=floor)  # fmt: skip
            figures = result.figures()
            if floor:
                figures["store"] = "floor: bare WSGI file read"
            results.append({**figures, "error_log_problems": result.error_log_problems[:5]})
            print(json.dumps(figures))
    floor_rate = next((r["requests_per_s"] for r in results if r["store"].startswith("floor")), 0)
    for r in results:
        if r["store"] in ("file", "floor: bare WSGI file read") and floor_rate:
            r["ratio_to_floor"] = round(r["requests_per_s"] / floor_rate, 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cpus": os.cpu_count(), "runs": results}, indent=2) + "\n")
    print("| store | req/s | vs floor | 200 | 404 | other | p50 ms | p99 ms | writes/s | final |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        final = (
            "—"
            if r["store"].startswith("floor")
            else ("all equal" if not r["final_state_mismatches"] else "MISMATCH")
        )
        print(f"| {r['store']} | {r['requests_per_s']:,} | {r.get('ratio_to_floor', '')} | "
              f"{r['statuses'].get('200', 0):,} | {r['statuses'].get('404', 0):,} | "
              f"{r['unexpected']} | {r['p50_ms']} | {r['p99_ms']} | {r['writes_per_s']:,} | "
              f"{final} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
