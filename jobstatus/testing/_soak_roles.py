"""The soak's processes other than gunicorn, each run as
``python -m jobstatus.testing._soak_roles ROLE ...``:

- ``uvicorn STORE_URL PORT``: the FastAPI router over the store on one uvicorn worker (the
  server that answers long-polls without holding a thread);
- ``writer STORE_URL OUT STOP_FILE TOKEN RATE``: a :class:`~jobstatus.JobTracker` that creates,
  progresses and finishes jobs at RATE writes per second until STOP_FILE appears, a store
  failure retried until the write goes through. It prints ``job N`` as it creates the Nth job
  (ids from :func:`job_id`), and writes to OUT what it wrote last for each job.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from jobstatus.errors import Conflict, StorageError
from jobstatus.record import JobRecord
from jobstatus.run import Run
from jobstatus.store import Store

__all__ = ["API_KEY", "PROGRESS_WRITES", "job_id"]

API_KEY = "soak-key"
#: Writes per job: queued, running, this many progress writes, done.
PROGRESS_WRITES = 5
IN_FLIGHT = 8  # jobs the writer keeps going at once


def job_id(token: str, number: int) -> str:
    """The id of the writer's job ``number`` in the run ``token`` (a UUID, as served)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"soak/{token}/{number}"))


class RecordingStore:
    """A store that remembers, per job, the last record it was asked to write and when.

    A write that failed with a :class:`~jobstatus.StorageError` may have landed, so it counts
    as written; one refused with :class:`~jobstatus.Conflict` did not, so the record before it
    counts again. The writer retries a failed step until it succeeds, so the last record
    remembered is the job's final state in the store.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.last: dict[str, tuple[float, JobRecord]] = {}

    def put(self, record: JobRecord, **options: Any) -> JobRecord:
        before = self.last.get(record.job_id)
        self.last[record.job_id] = (time.time(), record)
        try:
            return self._store.put(record, **options)
        except Conflict:
            if before is None:
                del self.last[record.job_id]
            else:
                self.last[record.job_id] = before
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class _Job:
    number: int
    id: str
    step: int = 0
    run: Run | None = None


def write(store_url: str, out: Path, stop_file: Path, token: str, rate: float) -> None:
    from jobstatus import JobTracker, open_store

    recording = RecordingStore(open_store(store_url))
    # Every progress call writes; no heartbeat writes behind the loop's back.
    tracker = JobTracker(cast(Store, recording), progress_interval=0, heartbeat_interval=86400)
    numbers = itertools.count()
    jobs: list[_Job] = []
    failures: list[tuple[float, str]] = []
    writes = 0
    slot = time.monotonic()

    def step(job: _Job) -> None:
        if job.step == 0:
            tracker.submit(endpoint="/v1/soak", id=job.number, job_id=job.id)
        elif job.step == 1:
            job.run = tracker.start(job.id, endpoint="/v1/soak", id=job.number)
        elif job.step <= 1 + PROGRESS_WRITES:
            assert job.run is not None
            job.run.progress(percent=100 * (job.step - 1) / (PROGRESS_WRITES + 1))
        else:
            assert job.run is not None
            job.run.result = {"number": job.number}
            tracker.finish(job.run)

    turn = 0
    while not stop_file.exists():
        while len(jobs) < IN_FLIGHT:
            number = next(numbers)
            jobs.append(_Job(number, job_id(token, number)))
            print(f"job {number}", flush=True)
        job = jobs[turn % len(jobs)]
        while True:  # the same step until it goes through
            try:
                step(job)
                break
            except StorageError as exc:
                failures.append((time.time(), str(exc)[:200]))
                time.sleep(0.2)
        writes += 1
        job.step += 1
        if job.step > 2 + PROGRESS_WRITES:
            jobs.remove(job)
        else:
            turn += 1
        slot = max(slot + 1 / rate, time.monotonic() - 1)  # no burst after a stall
        time.sleep(max(0.0, slot - time.monotonic()))
    last = {
        key: {"written_at": at, "document": record.to_dict()}
        for key, (at, record) in recording.last.items()
    }
    out.write_text(json.dumps({"writes": writes, "failures": failures, "last": last}))


def serve_uvicorn(store_url: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from jobstatus import StatusService, open_store
    from jobstatus.adapters.fastapi import make_router

    app = FastAPI()
    app.include_router(make_router(StatusService(open_store(store_url), api_keys=[API_KEY])))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "uvicorn":
        serve_uvicorn(args[0], int(args[1]))
    elif role == "writer":
        write(args[0], Path(args[1]), Path(args[2]), args[3], float(args[4]))
    else:
        raise SystemExit(f"unknown role {role!r}")
