"""The load scenario: ``jobstatus serve`` (gunicorn) on loopback, loaded by a load generator,
while a writer process updates :data:`JOBS` jobs in a loop.

:func:`run_load` serves a store, loads it, then reads every job back and compares it with the
writer's last write. The load generator is wrk when it is installed, else a Python one
(threads, one connection per request); :class:`Load` names which one ran.
``tests/test_load.py`` asserts on the outcome; ``benchmarks/bench_load.py`` reports it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobstatus.testing._server import Gunicorn, serve_command

__all__ = ["JOBS", "KEY", "Load", "LoadResult", "job_ids", "run_load", "writing"]

JOBS = 100
UNKNOWN = 10  # ids never written: the 404s of the mix
KEY = "load-test-key"
STATUS = "/v1/toolkit/job/status"

# -- the writer -----------------------------------------------------------------------------------

# Writes the jobs in turn until the stop file appears: prints "round" once it has written each
# job once, and at the end what it wrote last.
_WRITER = """
import json, os, sys
from jobstatus import JobRecord, open_store
store_url, stop_file, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
last, writes = {}, 0
with open_store(store_url) as store:
    while not writes or not os.path.exists(stop_file):
        for job_id in ids:
            writes += 1
            record = JobRecord(job_id=job_id, job_status="running",
                               response={"write": writes, "progress": writes % 100})
            store.put(record)
            last[job_id] = record.to_dict()
        if writes == len(ids):
            print("round", flush=True)
print(json.dumps({"writes": writes, "last": last}))
"""


def job_ids(token: str, count: int = JOBS, kind: str = "job") -> list[str]:
    """UUIDs, as the endpoint expects by default, the same for the same token."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{token}/{kind}/{i}")) for i in range(count)]


@contextlib.contextmanager
def writing(store_url: str, token: str, work_dir: Path) -> Iterator[dict[str, Any]]:
    """Run the writer for the ``with`` block, which starts once every job has been written
    once; the yielded dict gets ``writes`` and ``last`` (job id → the document written last)
    once the block ends."""
    stop_file = work_dir / f"stop-{token}"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url, str(stop_file), ",".join(job_ids(token))],
        stdout=subprocess.PIPE,
        text=True,
    )
    outcome: dict[str, Any] = {}
    try:
        assert writer.stdout is not None
        if writer.stdout.readline().strip() != "round":
            raise RuntimeError("the writer stopped before it had written every job once")
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


_WRK_SCRIPT = """
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


def _wrk_figure(out: str, name: str) -> str:
    found = re.search(rf"^{name} ([\d.]+)$", out, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no {name} line:\n{out[-2000:]}")
    return found.group(1)


def run_wrk(port: int, ids: list[str], seconds: float, connections: int, work_dir: Path) -> Load:
    """wrk (2 threads, ``connections`` connections) for ``seconds``, POSTing the ids in turn."""
    script = work_dir / "load.lua"
    quoted = ", ".join(f'"{i}"' for i in ids)
    script.write_text(_WRK_SCRIPT % {"ids": quoted, "key": KEY, "path": STATUS})
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    load = Load("wrk", seconds)
    for status, count in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M):
        load.statuses[status] = int(count)
    load.requests = int(_wrk_figure(out, "REQUESTS"))
    load.errors = int(_wrk_figure(out, "ERRORS"))
    load.p50_ms = float(_wrk_figure(out, "P50"))
    load.p99_ms = float(_wrk_figure(out, "P99"))
    return load


def run_python(port: int, ids: list[str], seconds: float, connections: int) -> Load:
    """Threads, each sending requests one after another, a new connection each (gunicorn's
    sync workers close it after every answer anyway); every 200 must be the job asked for."""
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
                status, body = _post(port, job_id, timeout=10)
            except OSError:
                errors += 1
                continue
            mine.append(time.perf_counter() - started)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            try:
                answer = json.loads(body)
                if status == 200 and answer["response"]["job_id"] != job_id:
                    bad += 1
            except (ValueError, KeyError, TypeError):
                bad += 1
        with lock:
            latencies.extend(mine)
            for status_line, count in statuses.items():
                load.statuses[status_line] = load.statuses.get(status_line, 0) + count
            load.errors += errors
            load.bad_bodies += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.requests = len(latencies) + load.errors
    if len(latencies) > 1:
        cuts = statistics.quantiles(latencies, n=100)
        load.p50_ms, load.p99_ms = cuts[49] * 1000, cuts[98] * 1000
    return load


def _post(port: int, job_id: str, timeout: float) -> tuple[int, bytes]:
    """POST ``{"job_id": ...}`` to the status route on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", STATUS, json.dumps({"job_id": job_id}),
                     {"x-api-key": KEY, "Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- one run --------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    store: str
    load: Load
    writes: int
    final_state_mismatches: list[str]  # jobs whose served record is not the writer's last write
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


def run_load(
    store_name: str,
    store_url: str,
    *,
    work_dir: Path,
    seconds: float = 30.0,
    workers: int = 4,
    connections: int = 16,
    generator: str = "auto",
    server: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    check_final_state: bool = True,
) -> LoadResult:
    """Serve ``store_url`` with ``jobstatus serve`` (or the gunicorn command line ``server``,
    with ``env`` added to its environment), load it while the writer writes, then read every
    job back and compare it with the writer's last write (unless ``check_final_state`` is
    false: a server that answers otherwise than ``jobstatus serve``). The jobs written are
    deleted afterwards, so a shared database is left as it was found."""
    from jobstatus import open_store

    token = uuid.uuid4().hex[:8]
    ids = job_ids(token)
    asked = ids + job_ids(token, UNKNOWN, "missing")
    use_wrk = generator == "wrk" or (generator == "auto" and shutil.which("wrk") is not None)
    command = list(server) if server is not None else serve_command(store_url, workers)
    server_env = {"JOBSTATUS_API_KEYS": KEY, **(env or {})}
    with Gunicorn(command, workers=workers, log_dir=work_dir, env=server_env) as gunicorn:
        with writing(store_url, token, work_dir) as written:
            if use_wrk:
                load = run_wrk(gunicorn.port, asked, seconds, connections, work_dir)
            else:
                load = run_python(gunicorn.port, asked, seconds, connections)
        mismatches = []
        for job_id, document in written["last"].items() if check_final_state else ():
            status, body = _post(gunicorn.port, job_id, timeout=30)
            if status != 200 or json.loads(body)["response"] != document:
                mismatches.append(job_id)
        if len(written["last"]) != JOBS:
            mismatches.append(f"the writer wrote {len(written['last'])} jobs, not {JOBS}")
        problems = gunicorn.problems()
    with open_store(store_url) as store:
        for job_id in ids:
            store.delete(job_id)
    return LoadResult(store_name, load, written["writes"], mismatches, problems)
