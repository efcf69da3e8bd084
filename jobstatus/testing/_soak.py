"""The soak: a steady load on one store for a long time, and what the servers did with it.

:func:`run_soak` serves a store with ``jobstatus serve`` (gunicorn, 4 workers) and the
FastAPI router on one uvicorn worker, runs the writer (:mod:`._soak_roles`) and the polling
clients (:mod:`._soak_traffic`) against them, purges finished jobs every ``purge_every``
seconds, and restarts the store's server (a :class:`Restartable`) half-way through. Every
``sample_every`` seconds it samples each server process's RSS and open file descriptors (from
``/proc``) and the store's connections by client name. At the end it reads every job back
through gunicorn and compares it with the writer's last write.

The result is a JSON-ready dict; :mod:`._soak_checks` judges it (``benchmarks/soak.py`` runs
it for 30 minutes a store, ``tests/test_soak.py`` for one minute).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from jobstatus.testing._private_servers import free_port
from jobstatus.testing._server import Gunicorn, serve_command
from jobstatus.testing._soak_roles import API_KEY
from jobstatus.testing._soak_traffic import STATUS_PATH, Answer, Jobs, clients_for, request

__all__ = ["WORKERS", "Plan", "Restartable", "run_soak"]

WORKERS = 4  # gunicorn's
ROLES = "jobstatus.testing._soak_roles"


class Restartable(Protocol):
    """A store's server the soak stops and starts again, and asks for its connections."""

    def stop(self) -> None: ...
    def start(self) -> object: ...
    def connections(self) -> dict[str, int] | None: ...


@dataclass
class Plan:
    """How long and how hard; every duration in seconds."""

    seconds: float
    warmup: float
    window: float  # the windows compared for growth: just after the warm-up, and the last
    sample_every: float = 2.0
    latency_window: float = 30.0  # latency percentiles are taken per window of this length
    purge_every: float = 60.0
    purge_age: float = 60.0  # finished jobs last written longer ago than this are purged
    write_rate: float = 40.0  # writer's writes per second
    restart_pause: float = 5.0  # how long the store's server stays down


def _proc(pid: int) -> tuple[float, int] | None:
    """(RSS in MiB, open file descriptors) of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024, fds
    return None


@contextlib.contextmanager
def _uvicorn(store_url: str, log_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with open(log_dir / "uvicorn.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", ROLES, "uvicorn", store_url, str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # imports take long on a busy machine
        while True:
            try:
                request(port, "GET", "/v1/toolkit/jobs?limit=1")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = (log_dir / "uvicorn.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"uvicorn did not start:\n{text}") from None
                time.sleep(0.1)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


@contextlib.contextmanager
def _writer(store_url: str, work_dir: Path, token: str, rate: float, jobs: Jobs) -> Iterator[Path]:
    """The writer for the ``with`` block; yields the file its last writes will be in."""
    out, stop_file = work_dir / f"writes-{token}.json", work_dir / f"stop-{token}"
    process = subprocess.Popen(
        [sys.executable, "-m", ROLES, "writer", store_url, str(out), str(stop_file), token,
         str(rate)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def follow() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            jobs.created(int(line.split()[1]))

    reader = threading.Thread(target=follow, daemon=True)
    try:
        assert process.stdout is not None
        if not process.stdout.readline().startswith("job "):  # it runs: the clock may start
            raise RuntimeError("the writer stopped before its first job")
        reader.start()
        yield out
    finally:
        stop_file.touch()
        process.wait(300)  # a store failure is retried until it passes: no shorter bound
        if reader.is_alive():
            reader.join(30)
        assert process.stdout is not None
        process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"the writer failed with exit code {process.returncode}")


class _Soak:
    """The threads of one run and what they gather."""

    def __init__(
        self, plan: Plan, restartable: Restartable | None, purge_url: str, progress: bool
    ) -> None:
        self.plan = plan
        self.progress = progress
        self.restartable = restartable
        self.purge_url = purge_url
        self.stop = threading.Event()
        self.answers: list[Answer] = []
        self.samples: list[dict[str, Any]] = []
        self.purges: list[dict[str, Any]] = []
        self.restarts: list[dict[str, float]] = []
        self.started = time.time()

    def sample(self, processes: Callable[[], dict[str, int]]) -> None:
        while True:
            rss: dict[str, float] = {}
            fds: dict[str, int] = {}
            for name, pid in processes().items():
                figures = _proc(pid)
                if figures is not None:
                    rss[name], fds[name] = round(figures[0], 2), figures[1]
            connections = self.restartable.connections() if self.restartable else None
            self.samples.append({
                "t": round(time.time() - self.started, 2), "rss_mib": rss, "fds": fds,
                "connections": connections, "load": os.getloadavg()[0],
            })  # fmt: skip
            if self.progress and len(self.samples) % int(60 / self.plan.sample_every) == 1:
                print(json.dumps(self.samples[-1]), file=sys.stderr, flush=True)
            if self.stop.wait(self.plan.sample_every):
                return

    def purge(self) -> None:
        """Every ``purge_every`` seconds, and once more as the run ends."""
        from jobstatus import open_store

        with open_store(self.purge_url) as store:
            while True:
                ending = self.stop.wait(self.plan.purge_every)
                cutoff = time.time() - self.plan.purge_age
                entry: dict[str, Any] = {"t": round(time.time() - self.started, 2),
                                         "cutoff": cutoff}  # fmt: skip
                try:
                    entry["deleted"] = store.purge(older_than=cutoff, status="done")
                except Exception as exc:
                    entry["error"] = str(exc)[:200]
                self.purges.append(entry)
                if ending:
                    return

    def restart(self, at: float) -> None:
        if self.restartable is None or self.stop.wait(max(0.0, at)):
            return
        begin = time.time()
        self.restartable.stop()
        stopped = time.time()
        time.sleep(self.plan.restart_pause)
        self.restartable.start()
        end = time.time()
        self.restarts.append({"begin": begin - self.started, "stopped": stopped - self.started,
                              "end": end - self.started})  # fmt: skip

    def windows(self) -> list[dict[str, Any]]:
        """Per latency window: answers and p50/p99 per operation and server, statuses."""
        grouped: dict[int, dict[str, list[Answer]]] = defaultdict(lambda: defaultdict(list))
        for answer in self.answers:
            index = int((answer.asked_at - self.started) // self.plan.latency_window)
            grouped[index][f"{answer.op} {answer.server}"].append(answer)
        windows = []
        for index in sorted(grouped):
            if index * self.plan.latency_window >= self.plan.seconds:
                continue  # asked as the clients stopped
            ops = {}
            for name, answers in sorted(grouped[index].items()):
                times = sorted(a.seconds * 1000 for a in answers if a.status)
                ops[name] = {
                    "count": len(answers),
                    "p50_ms": _rank(times, 0.50),
                    "p99_ms": _rank(times, 0.99),
                    "statuses": dict(Counter(str(a.status) for a in answers)),
                }
            windows.append({"t": (index + 1) * self.plan.latency_window, "ops": ops})
        return windows


def _rank(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values`` (None for none)."""
    if not values:
        return None
    return round(values[max(0, math.ceil(fraction * len(values)) - 1)], 2)


def _read_back(port: int, written: dict[str, Any], purges: list[dict[str, Any]]) -> dict[str, Any]:
    """Every job the writer wrote, asked through ``port``: equal to the last write, or gone
    only if a purge could have deleted it (finished, last written before a purge's cutoff)."""
    latest_cutoff = max((p["cutoff"] for p in purges), default=0.0)
    equal = purged = 0
    mismatches = []
    for key, last in written["last"].items():
        status, _, body = request(port, "POST", STATUS_PATH, json.dumps({"job_id": key}).encode())
        document = last["document"]
        if status == 200 and json.loads(body)["response"] == document:
            equal += 1
        elif (status == 404 and document["job_status"] == "done"
              and last["written_at"] < latest_cutoff):  # fmt: skip
            purged += 1
        else:
            mismatches.append({"job_id": key, "status": status, "last_write": document})
    return {"jobs": len(written["last"]), "equal": equal, "purged": purged,
            "mismatches": mismatches[:20], "mismatch_count": len(mismatches)}  # fmt: skip


def run_soak(
    backend: str,
    store_url: Callable[[str], str],
    plan: Plan,
    *,
    work_dir: Path,
    restartable: Restartable | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """One backend's soak; ``store_url(name)`` is the store's URL for clients named ``name``
    (``server``, ``writer``, ``purger``: the connections are counted by name). With
    ``progress``, a sample a minute is printed on stderr."""
    token = uuid.uuid4().hex[:8]
    jobs = Jobs(token)
    soak = _Soak(plan, restartable, store_url("purger"), progress)
    env = {"JOBSTATUS_API_KEYS": API_KEY}
    server_url = store_url("server")
    gunicorn = Gunicorn(serve_command(server_url, WORKERS), workers=WORKERS, log_dir=work_dir,
                        env=env)  # fmt: skip
    with gunicorn, _uvicorn(server_url, work_dir) as (uvicorn, uvicorn_port):
        assert gunicorn.process is not None
        master = gunicorn.process.pid

        def processes() -> dict[str, int]:
            named = {"gunicorn master": master, "uvicorn": uvicorn.pid}
            for number, pid in enumerate(sorted(gunicorn.worker_pids())[:WORKERS], 1):
                named[f"gunicorn worker {number}"] = pid
            return named

        with _writer(store_url("writer"), work_dir, token, plan.write_rate, jobs) as written:
            soak.started = time.time()
            threads = [
                threading.Thread(target=soak.sample, args=(processes,)),
                threading.Thread(target=soak.purge),
                threading.Thread(target=soak.restart, args=(plan.seconds / 2,)),
            ]
            for client in clients_for(gunicorn.port, uvicorn_port):
                threads.append(threading.Thread(
                    target=client.run, args=(jobs, soak.stop, soak.answers.append)))  # fmt: skip
            for thread in threads:
                thread.start()
            try:
                soak.stop.wait(plan.seconds)
            finally:
                soak.stop.set()
                for thread in threads:
                    thread.join()
        outcome = json.loads(written.read_text())
        final = _read_back(gunicorn.port, outcome, soak.purges)
        problems = gunicorn.problems()
        names = processes()
        booted = len(gunicorn.worker_pids())
    failures = [at - soak.started for at, _ in outcome["failures"]]
    return {
        "backend": backend,
        "plan": asdict(plan),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soak.started)),
        "processes": names,
        "workers_booted": booted,
        "samples": soak.samples,
        "windows": soak.windows(),
        "answers_by_second": _per_second(soak.answers, soak.started),
        "restarts": soak.restarts,
        "purges": soak.purges,
        "writer": {"writes": outcome["writes"], "jobs": len(outcome["last"]),
                   "failures": len(failures),
                   "failure_times": [round(t, 2) for t in failures]},
        "final": final,
        "error_log_problems": problems[:20],
    }  # fmt: skip


def _per_second(answers: list[Answer], started: float) -> dict[str, dict[str, int]]:
    """Statuses by second of the run (relative to its start), to place every unexpected one."""
    seconds: dict[str, Counter[str]] = defaultdict(Counter)
    for answer in answers:
        second = str(int(answer.asked_at - started))
        seconds[second][f"{answer.op} {answer.status}"] += 1
    return {second: dict(counts) for second, counts in seconds.items()}
