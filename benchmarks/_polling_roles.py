"""The processes of ``bench_polling.py``'s long-poll run, each started as
``python benchmarks/_polling_roles.py ROLE ...``:

- ``serve ROOT PORT``: one uvicorn worker (FastAPI adapter) over a filesystem store whose reads
  are counted, at most 4 threads for store calls; ``GET /bench/stats`` tells the waiters and
  the store calls so far.
- ``write ROOT IDS RATE OUT``: finishes the jobs listed in IDS (one per line) at RATE per
  second through its own store (another process: the server learns of each write from the
  kernel), and writes ``[[job_id, started, ended], ...]`` (``time.monotonic()``, shared by every
  process of the machine) to OUT.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from jobstatus import JobRecord, StatusService
from jobstatus.backends.filesystem import FileSystemStore

KEY = "bench-key"
STORE_THREADS = 4


class CountingStore(FileSystemStore):
    """A filesystem store that counts the queries it answers."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.gets = 0
        self.lists = 0

    def get(self, job_id: str) -> JobRecord:
        self.gets += 1
        return super().get(job_id)

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        self.lists += 1
        return super().list(**filters)


def serve(root: str, port: int) -> None:
    import anyio.to_thread
    import uvicorn
    from fastapi import FastAPI

    from jobstatus.adapters.fastapi import make_router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # anyio's documented knob: the thread pool that runs store calls (40 by default)
        anyio.to_thread.current_default_thread_limiter().total_tokens = STORE_THREADS
        yield

    store = CountingStore(root)
    service = StatusService(store, api_keys=[KEY], max_async_waiters=20_000)
    app = FastAPI(lifespan=lifespan)
    app.include_router(make_router(service))

    @app.get("/bench/stats")
    async def stats() -> dict[str, Any]:
        watcher = service.watcher
        return {
            "waiting": watcher.waiting,
            "notified": watcher.notified,
            "store_gets": store.gets,
            "store_lists": store.lists,
            "watcher_queries": watcher.queries,
            "python_threads": threading.active_count(),
        }

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def write(root: str, ids_file: str, rate: float, out: str) -> None:
    store = FileSystemStore(root)
    ids = Path(ids_file).read_text().split()
    times: list[tuple[str, float, float]] = []
    start = time.monotonic() + 0.2
    for index, job_id in enumerate(ids):
        slot = start + index / rate
        pause = slot - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        began = time.monotonic()
        store.put(JobRecord(job_id=job_id, job_status="done", response={"n": index}))
        times.append((job_id, began, time.monotonic()))
    Path(out).write_text(json.dumps(times))


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "serve":
        serve(args[0], int(args[1]))
    elif role == "write":
        write(args[0], args[1], float(args[2]), args[3])
    else:
        raise SystemExit(f"unknown role {role!r}")
