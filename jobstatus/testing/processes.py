"""Cross-process checks any store can run: a writer process against a reader."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from typing import Any

from jobstatus.record import JobRecord

__all__ = ["TornReadReport", "rewrite_while_reading"]

_JOB_ID = "torn-read-probe"


def _document(n: int, size: int) -> JobRecord:
    """A record whose every byte depends on ``n``: a torn or mixed read cannot look whole."""
    unit = f"{n:08d}"
    return JobRecord(
        job_id=_JOB_ID, job_status="running", response={"n": n, "pad": unit * (size // len(unit))}
    )


def _is_whole(record: JobRecord, size: int) -> bool:
    response: Any = record.response
    return (
        isinstance(response, dict) and record.to_dict() == _document(response["n"], size).to_dict()
    )


def _rewrite(store_url: str, size: int, started: Any, stop: Any, options: dict[str, Any]) -> None:
    from jobstatus.backends import open_store

    with open_store(store_url, **options) as store:
        n = 0
        store.put(_document(n, size))
        started.set()
        while not stop.is_set():
            n += 1
            store.put(_document(n, size))


@dataclass(frozen=True)
class TornReadReport:
    reads: int
    failed: int  # an error, or a document that was not one the writer wrote whole
    versions_seen: int  # distinct versions read: proves the writer really was writing


def rewrite_while_reading(
    store_url: str,
    *,
    min_reads: int = 50,
    min_versions: int = 6,
    timeout: float = 120.0,
    size: int = 20_000,
    **options: Any,
) -> TornReadReport:
    """Rewrite one ``size``-byte record in a loop in another process while reading it here,
    until at least ``min_reads`` reads saw at least ``min_versions`` versions (the writer was
    rewriting all along) or ``timeout`` seconds passed; counts, not time, end a normal run."""
    from jobstatus.backends import open_store

    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    writer = context.Process(target=_rewrite, args=(store_url, size, started, stop, options))
    writer.start()
    reads = failed = 0
    versions: set[int] = set()
    try:
        if not started.wait(60):
            raise RuntimeError("the writer process did not start")
        with open_store(store_url, **options) as store:
            deadline = time.monotonic() + timeout
            while (reads < min_reads or len(versions) < min_versions) and (
                time.monotonic() < deadline
            ):
                reads += 1
                try:
                    record = store.get(_JOB_ID)
                except Exception:
                    failed += 1
                    continue
                if _is_whole(record, size):
                    versions.add(record.response["n"])
                else:
                    failed += 1
    finally:
        stop.set()
        writer.join(30)
        if writer.is_alive():
            writer.kill()
    if writer.exitcode != 0:
        raise RuntimeError(f"the writer process failed with exit code {writer.exitcode}")
    return TornReadReport(reads=reads, failed=failed, versions_seen=len(versions))
