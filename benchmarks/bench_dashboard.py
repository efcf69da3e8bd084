"""The dashboard's cost: how fast a list of 100 jobs is painted, and what an open page costs
the server while nothing changes.

1. First paint: the page of a store holding 100 jobs (50 running) is loaded with the key
   already in the tab (sessionStorage), ``--loads`` times; the figure is the browser's own
   paint time of the list (Element Timing of the table's caption, whose text is set with the
   rows: navigation start → the list on screen). Target: under 300 ms.
2. Idle cost: 50 running jobs on screen, one tab, no job written; for each way the page can
   follow jobs (``?live=``), the requests per second the server answers and the CPU seconds
   its process spends per minute, over ``--seconds`` after a warm-up; then how long a job
   submitted at the end of the window takes to appear on the page (the probe's work: a way
   that starves the probe never shows new jobs). Target: at most 2 requests/s.

   - ``auto`` (the default): one list probe (``limit=1``) every 2 s, and a long-poll
     (``?wait=25`` with ``If-None-Match``) for at most 3 jobs on screen;
   - ``list``: the probe alone, every 1 s;
   - ``waits``: a long-poll per running job on screen (50), and the probe every 2 s.

The server runs in its own process (werkzeug's threaded server, or uvicorn for ``--adapter
fastapi``) so that its CPU time is its own; it counts the requests it answers. Headless
Chromium drives the page (``apt-get install chromium chromium-driver``).

    python benchmarks/bench_dashboard.py [--loads 15] [--seconds 45] [--adapter wsgi]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "benchmark-key"
COUNT_PATH = "/__requests"
ADD_PATH = "/__add"  # submits a job, answers its id
NEW_JOB_TIMEOUT = 60.0


# -- the server process ------------------------------------------------------------------------


def serve(adapter: str, jobs: int, running: int, port_file: str) -> None:
    """Serve the dashboard of a memory store of ``jobs`` jobs (``running`` of them running)
    on a free port, written to ``port_file``; ``GET /__requests`` answers how many requests
    were answered so far, ``GET /__add`` submits a job and answers its id."""
    import threading

    from jobstatus import JobTracker, StatusService, open_store

    store = open_store("memory://")
    tracker = JobTracker(store, progress_interval=0)
    ids = [tracker.submit(endpoint="/v1/media/transcribe") for _ in range(jobs)]
    runs = contextlib.ExitStack()  # open until the process ends: the jobs stay running
    for number, job_id in enumerate(ids[-running:] if running else []):
        run = runs.enter_context(tracker.run(job_id))
        run.progress(percent=number % 100, message=f"chunk {number}")
    service = StatusService(store, api_keys=[KEY])
    counted = [0]
    lock = threading.Lock()
    if adapter == "fastapi":
        import socket

        import uvicorn
        from fastapi import FastAPI

        from jobstatus.adapters.fastapi import make_router

        app = FastAPI()
        app.include_router(make_router(service, dashboard=True))

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] in (COUNT_PATH, ADD_PATH):
                body = (
                    str(counted[0])
                    if scope["path"] == COUNT_PATH
                    else tracker.submit(endpoint="/v1/media/transcribe")
                ).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            if scope["type"] == "http":
                with lock:
                    counted[0] += 1
            await app(scope, receive, send)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        Path(port_file).write_text(str(sock.getsockname()[1]))
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])
        return
    import logging

    from werkzeug.serving import make_server

    from jobstatus.adapters.wsgi import make_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    inner = make_app(service, dashboard=True)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == COUNT_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(counted[0]).encode()]
        if environ["PATH_INFO"] == ADD_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [tracker.submit(endpoint="/v1/media/transcribe").encode()]
        with lock:
            counted[0] += 1
        return inner(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    Path(port_file).write_text(str(server.server_port))
    server.serve_forever()


class Server:
    def __init__(self, adapter: str, jobs: int, running: int, work: Path) -> None:
        port_file = work / f"port-{adapter}-{jobs}-{running}"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", adapter, str(jobs), str(running), str(port_file)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(600):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def requests(self) -> int:
        with urllib.request.urlopen(self.url + COUNT_PATH) as answer:
            return int(answer.read())

    def add_job(self) -> str:
        with urllib.request.urlopen(self.url + ADD_PATH) as answer:
            return str(answer.read().decode())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# -- the measurements --------------------------------------------------------------------------


def open_page(driver: Any, url: str, rows: int) -> None:
    """Load the dashboard with the key in the tab and wait for ``rows`` rows."""
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(url)
    driver.execute_script(f"sessionStorage.setItem('jobstatus.dashboard.key', {json.dumps(KEY)})")
    driver.get(url)
    WebDriverWait(driver, 30, poll_frequency=0.02).until(
        lambda d: d.execute_script("return document.querySelectorAll('#rows tr').length") == rows
    )


# The paint time of the list, as the browser reports it (Element Timing).
_PAINTED = """
const done = arguments[0];
new PerformanceObserver((list) => {
  const entry = list.getEntries().find((e) => e.identifier === "jobstatus-list");
  if (entry) done(entry.renderTime);
}).observe({ type: "element", buffered: true });
"""


def first_paint(adapter: str, loads: int, work: Path) -> list[float]:
    from tests.browser import open_browser

    server = Server(adapter, 100, 50, work)
    page = server.url + "/v1/toolkit/dashboard/"
    times = []
    try:
        with open_browser() as driver:
            open_page(driver, page, 100)
            driver.set_script_timeout(30)
            for _ in range(loads):
                driver.refresh()
                times.append(float(driver.execute_async_script(_PAINTED)))
    finally:
        server.close()
    return times


def idle_cost(adapter: str, mode: str, seconds: float, work: Path) -> dict[str, float | None]:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.wait import WebDriverWait

    from tests.browser import open_browser

    server = Server(adapter, 50, 50, work)
    page = f"{server.url}/v1/toolkit/dashboard/?live={mode}"
    try:
        with open_browser() as driver:
            open_page(driver, page, 50)
            time.sleep(10)  # warm-up: every follower has its ETag and waits
            requests, cpu, started = server.requests(), server.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            asked = server.requests() - requests - 1  # (the count request itself)
            spent = server.cpu_seconds() - cpu
            job_id, added = server.add_job(), time.monotonic()
            try:
                WebDriverWait(driver, NEW_JOB_TIMEOUT, poll_frequency=0.05).until(
                    lambda d: d.execute_script(
                        "return [...document.querySelectorAll('#rows .job-id')]"
                        ".some((a) => a.textContent === arguments[0])",
                        job_id,
                    )
                )
                shown: float | None = time.monotonic() - added
            except TimeoutException:
                shown = None  # not within NEW_JOB_TIMEOUT
    finally:
        server.close()
    return {
        "requests_per_second": asked / elapsed,
        "cpu_seconds_per_minute": 60 * spent / elapsed,
        "new_job_shown_after_s": shown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--adapter", choices=["wsgi", "fastapi"], action="append")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "dashboard.json")
    )
    args = parser.parse_args()
    if args.serve:
        adapter, jobs, running, port_file = args.serve
        serve(adapter, int(jobs), int(running), port_file)
        return
    import tempfile

    results: dict[str, Any] = {"first_paint_ms": {}, "idle": {}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for adapter in args.adapter or ["wsgi", "fastapi"]:
            times = first_paint(adapter, args.loads, work)
            results["first_paint_ms"][adapter] = {
                "median": statistics.median(times),
                "max": max(times),
                "loads": len(times),
            }
            print(
                f"{adapter}: list of 100 painted at {statistics.median(times):.0f} ms "
                f"(median of {len(times)} loads, max {max(times):.0f} ms; target < 300 ms)"
            )
            for mode in ("auto", "list", "waits"):
                cost = idle_cost(adapter, mode, args.seconds, work)
                results["idle"][f"{adapter}/{mode}"] = cost
                print(
                    f"{adapter}, live={mode}: {cost['requests_per_second']:.2f} requests/s, "
                    f"{cost['cpu_seconds_per_minute']:.2f} CPU s/min, a new job shown "
                    + (
                        f"after {shown:.1f} s"
                        if (shown := cost["new_job_shown_after_s"]) is not None
                        else f"not within {NEW_JOB_TIMEOUT:g} s"
                    )
                    + " (50 running jobs, one tab)"
                )
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
