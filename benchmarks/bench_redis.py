"""The Redis store's speed and size, each figure next to a baseline of the same run.

1. Writes/s: ``store.put`` (a ``running`` update: one Lua script) against the raw redis-py
   write of the layout (HSET + ZADD in one pipeline), against RQ's ``Job.save()`` of a job
   carrying the same document, and against the store's put done with WATCH/MULTI; then four
   threads writing one record, Lua against WATCH/MULTI. Target: at least 0.5x the raw write.
2. Status lookups/s through ``make_app`` against a floor: a bare WSGI function that reads the
   body, parses it and runs the same HGET with redis-py on one connection. Target: 0.6x.
3. ``list(since=now - 600)`` with 1,000 of 1,000,000 records in the window: the median time,
   next to redis-py doing the same by hand; status filters through the per-status sets against
   scanning the window. Target: under 20 ms.
4. Bytes per 1 KB record: INFO used_memory before and after 100,000 records, MEMORY USAGE of
   each key, and the record layouts the store did not pick.

    python benchmarks/bench_redis.py [--rounds 5] [--seconds 1] [--rows 1000000]
        [--url redis://127.0.0.1:6379] [--db 9]

Everything runs in database ``--db`` (empty at the start, emptied of the run's keys at the
end), under a per-run prefix.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _redis_variants as variants
import redis
import rq
from _common import FixedStore, alternate, call, one_kb_record
from rq.job import Job

from jobstatus import JobRecord, StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.redis import RedisStore

RUN = uuid.uuid4().hex[:8]
KEY = "benchmark-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
IDS = [str(uuid.UUID(int=n)) for n in range(100)]  # writes cycle over 100 jobs
PUT = "jobstatus store.put (Lua)"
RAW = "raw redis-py: HSET + ZADD, one pipeline"
FLOOR = "floor: bare WSGI + redis-py HGET"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def medians(runs: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in runs.items()}


# -- 1. writes -------------------------------------------------------------------------------------


def bench_writes(url: str, rounds: int, seconds: float) -> dict[str, Any]:
    records = [one_kb_record(job_id, "running") for job_id in IDS]
    client = redis.Redis.from_url(url)
    store = RedisStore.from_url(url, prefix=f"bench-{RUN}-put")
    raw = variants.raw_put(client, f"bench-{RUN}-raw")
    watched = variants.WatchPut(client, f"bench-{RUN}-watch")
    rq_jobs = [
        Job.create(
            "builtins.print", connection=client, id=f"bench-{RUN}-{job_id}", meta=r.to_dict()
        )
        for job_id, r in zip(IDS, records, strict=True)
    ]
    runs = alternate(
        {
            PUT: lambda n: store.put(records[n % 100]),
            RAW: lambda n: raw(records[n % 100]),
            "RQ Job.save()": lambda n: rq_jobs[n % 100].save(),
            "the same put with WATCH/MULTI": lambda n: watched(records[n % 100]),
        },
        rounds,
        seconds,
    )
    rq_bytes = client.memory_usage(rq_jobs[0].key)
    ours_bytes = client.memory_usage(f"{store.prefix}:job:{IDS[0]}")
    contended = {
        "Lua script": contention(lambda r: store.put(r), seconds * 2),
        "WATCH/MULTI": contention(watched, seconds * 2),
    }
    contended["WATCH/MULTI"]["restarts"] = watched.retries
    store.close()
    client.close()
    figures = medians(runs)
    ours = figures[PUT]
    return {
        "writes_per_second": figures,
        "all_rounds": runs,
        "ratio_to_raw": ours / figures[RAW],
        "ratio_to_rq": ours / figures["RQ Job.save()"],
        "ratio_to_watch_multi": ours / figures["the same put with WATCH/MULTI"],
        "target_ratio_to_raw": 0.5,
        "record_key_bytes": {"jobstatus": ours_bytes, "rq job": rq_bytes},
        "four_threads_one_record": contended,
    }


def contention(put: Callable[[JobRecord], object], seconds: float) -> dict[str, Any]:
    """Four threads putting one record for ``seconds``: writes per second in all."""
    record = one_kb_record("contended", "running")
    counts = [0] * 4
    deadline = time.perf_counter() + seconds

    def work(worker: int) -> None:
        while time.perf_counter() < deadline:
            put(record)
            counts[worker] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"writes_per_second": sum(counts) / (time.perf_counter() - started)}


# -- 2. lookups through make_app -------------------------------------------------------------------


def floor_app(client: redis.Redis, prefix: str) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        data = client.hget(f"{prefix}:job:{body['job_id']}", "doc")
        assert data is not None
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def bench_lookups(url: str, rounds: int, seconds: float) -> dict[str, Any]:
    store = RedisStore.from_url(url, prefix=f"bench-{RUN}-get")
    store.put(one_kb_record())
    one = redis.Redis.from_url(url, single_connection_client=True)
    ours = make_app(StatusService(store, api_keys=[KEY], build_number="1.0.0"))
    ceiling = make_app(StatusService(FixedStore(), api_keys=[KEY], build_number="1.0.0"))
    floor = floor_app(one, store.prefix)
    runs = alternate(
        {
            FLOOR: lambda n: call(floor),
            "jobstatus make_app": lambda n: call(ours),
            "make_app, a store with no I/O": lambda n: call(ceiling),
        },
        rounds,
        seconds,
    )
    one.close()
    store.close()
    figures = medians(runs)
    return {
        "requests_per_second": figures,
        "all_rounds": runs,
        "ratio_to_floor": figures["jobstatus make_app"] / figures[FLOOR],
        "target_ratio": 0.6,
        "no_io_store_ratio_to_floor": figures["make_app, a store with no I/O"] / figures[FLOOR],
    }


# -- 3. list(since=600) on a million records -------------------------------------------------------


def fill(store: RedisStore, rows: int, recent: int, now: float) -> float:
    """``rows - recent`` small ``done`` records from 30 days ago down, ``recent`` in the last
    500 s (``running`` and ``done`` in turn), written with ``restore``; seconds taken."""
    started = time.perf_counter()

    def records() -> Iterable[JobRecord]:
        for n in range(rows):
            if n < recent:
                yield JobRecord(job_id=f"job-{n}", job_status=("running", "done")[n % 2],
                                queue_id=1, process_id=2, response={"result": 42},
                                updated_at=now - 1 - n * 0.5)  # fmt: skip
            else:
                yield JobRecord(job_id=f"job-{n}", job_status="done", queue_id=1,
                                process_id=2, response={"result": 42},
                                updated_at=now - 2_592_000 - n)  # fmt: skip

    store.restore(records())
    return time.perf_counter() - started


def script_calls(client: redis.Redis, since: dict[str, float] | None = None) -> dict[str, float]:
    """Script calls Redis ran and the microseconds they kept it busy (INFO commandstats), since
    an earlier reading: how long one batch blocks the server's other clients."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    now = {"calls": float(stats["calls"]), "usec": float(stats["usec"])}
    if since is None:
        return now
    calls, usec = now["calls"] - since["calls"], now["usec"] - since["usec"]
    return {"calls": calls, "usec": usec, "usec_per_call": usec / calls if calls else 0.0}


def timed(work: Callable[[], int], expected: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        found = work()
        times.append((time.perf_counter() - started) * 1000)
        if found != expected:
            raise RuntimeError(f"found {found} records, not {expected}")
    return times


def bench_list(url: str, rows: int, recent: int, repeats: int) -> dict[str, Any]:
    store = RedisStore.from_url(url, prefix=f"bench-{RUN}-list")
    client = redis.Redis.from_url(url)
    now = time.time()
    calls = script_calls(client)
    setup = fill(store, rows, recent, now)
    busy = {"restore": script_calls(client, since=calls)}
    since = now - 600
    first_started = time.perf_counter()
    first = len(list(store.list(since=since)))
    first_ms = (time.perf_counter() - first_started) * 1000
    assert first == recent
    half = recent // 2
    timings = {
        "jobstatus store.list(since)": timed(
            lambda: len(list(store.list(since=since))), recent, repeats
        ),
        "redis-py by hand, same records": timed(
            lambda: variants.raw_list(client, store.prefix, since), recent, repeats
        ),
        "store.list(since, status='running'): per-status set": timed(
            lambda: len(list(store.list(since=since, status="running"))), half, repeats
        ),
        "the same by scanning the window": timed(
            lambda: sum(r.job_status == "running" for r in store.list(since=since)), half, repeats
        ),
        "store.list(status='running'), no window: per-status set": timed(
            lambda: len(list(store.list(status="running"))), half, repeats
        ),
    }  # fmt: skip
    calls = script_calls(client)
    len(list(store.list(since=since)))
    busy["list page"] = script_calls(client, since=calls)
    memory = client.info("memory")["used_memory"]
    calls = script_calls(client)
    started = time.perf_counter()
    purged = store.purge(older_than=now - 86_400)
    purge_seconds = time.perf_counter() - started
    busy["purge"] = script_calls(client, since=calls)
    client.close()
    store.close()
    figures = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "rows": rows,
        "in_window": recent,
        "setup_seconds": setup,
        "purge_older": {"records": purged, "seconds": purge_seconds},
        "script_calls": busy,
        "used_memory_bytes": memory,
        "first_call_ms": first_ms,
        "median_ms": figures,
        "p90_ms": {name: statistics.quantiles(v, n=10)[-1] for name, v in timings.items()},
        "target_ms": 20.0,
    }


# -- 4. memory per record ------------------------------------------------------------------------


def bench_memory(url: str, count: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    figures: dict[str, Any] = {}
    for label, expires in (("no expires_at", None), ("with expires_at", 86_400)):
        prefix = f"bench-{RUN}-mem-{len(figures)}"
        store = RedisStore.from_url(url, prefix=prefix)
        before = client.info("memory")["used_memory"]
        store.restore(sized_records(count, expires))
        after = client.info("memory")["used_memory"]
        keys = {
            "record hash (MEMORY USAGE)": client.memory_usage(f"{prefix}:job:{IDS[0]}-0"),
            f"{prefix}:updated per entry": client.memory_usage(f"{prefix}:updated", samples=0)
            / count,
            f"{prefix}:status:done per entry": client.memory_usage(
                f"{prefix}:status:done", samples=0
            )
            / count,
        }
        if expires:
            keys[f"{prefix}:expires per entry"] = (
                client.memory_usage(f"{prefix}:expires", samples=0) / count
            )
        figures[label] = {"used_memory_per_record": (after - before) / count, "keys": keys}
        store.close()
        delete_matching(client, f"{prefix}:*")
    figures["record_bytes"] = len(one_kb_record().to_json())
    figures["layouts_per_record_key"] = variants.layout_memory(
        client, f"bench-{RUN}-layout", one_kb_record(), count // 10
    )
    client.close()
    return figures


def sized_records(count: int, expires: int | None) -> Iterable[JobRecord]:
    """``count`` copies of the 1 KB record under ids of their own, expiring in ``expires`` s."""
    base = one_kb_record()
    until = None if expires is None else datetime.now(timezone.utc) + timedelta(seconds=expires)
    for n in range(count):
        yield dataclasses.replace(base, job_id=f"{IDS[0]}-{n}", expires_at=until)


def bench_layout_reads(url: str, rounds: int, seconds: float) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    runs = alternate(
        variants.layout_reads(client, f"bench-{RUN}-lr", one_kb_record()), rounds, seconds
    )
    client.close()
    return {"reads_per_second": medians(runs), "all_rounds": runs}


def delete_matching(client: redis.Redis, pattern: str) -> None:
    """Delete the keys that match a glob pattern."""
    batch = []
    for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


# -- the run ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and contender")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--in-window", type=int, default=1000)
    parser.add_argument("--list-repeats", type=int, default=30)
    parser.add_argument("--memory-records", type=int, default=100_000)
    parser.add_argument("--skip-list", action="store_true", help="no 1M records (quick runs)")
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--db", type=int, default=9, help="a database the run may fill")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "redis.json"))
    args = parser.parse_args()

    url = f"{args.url.rstrip('/')}/{args.db}"
    client = redis.Redis.from_url(url)
    if client.dbsize():
        raise SystemExit(f"database {args.db} is not empty: pick an empty one with --db")
    info = client.info("server")
    result: dict[str, Any] = {
        "benchmark": "the Redis store: writes, lookups, list on 1M records, memory",
        "python": sys.version.split()[0],
        "redis_server": info["redis_version"],
        "redis_py": redis.__version__,
        "hiredis": redis.utils.HIREDIS_AVAILABLE,
        "rq": rq.__version__,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "record_bytes": len(one_kb_record().to_json()),
    }
    try:
        result["writes"] = bench_writes(url, args.rounds, args.seconds)
        result["lookups"] = bench_lookups(url, args.rounds, args.seconds)
        result["layout_reads"] = bench_layout_reads(url, args.rounds, args.seconds)
        result["memory"] = bench_memory(url, args.memory_records)
        if not args.skip_list:
            result["list"] = bench_list(url, args.rows, args.in_window, args.list_repeats)
    finally:
        delete_matching(client, f"bench-{RUN}-*")
        delete_matching(client, f"rq:job:bench-{RUN}-*")
        left = client.dbsize()
        client.close()
    report(result)
    print(f"keys left in database {args.db}: {left}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


def report(result: dict[str, Any]) -> None:
    writes, lookups = result["writes"], result["lookups"]
    for name, value in writes["writes_per_second"].items():
        print(f"  {name:<48} {value:>10,.0f} writes/s")
    print(f"  {'ratio to the raw write':<48} {writes['ratio_to_raw']:>10.2f}x  (target >= 0.5)")
    print(f"  {'ratio to RQ Job.save()':<48} {writes['ratio_to_rq']:>10.2f}x")
    print(f"  {'ratio to WATCH/MULTI':<48} {writes['ratio_to_watch_multi']:>10.2f}x")
    for name, value in writes["four_threads_one_record"].items():
        print(f"  4 threads, one record, {name:<24} {value}")
    for name, value in lookups["requests_per_second"].items():
        print(f"  {name:<48} {value:>10,.0f} req/s")
    print(f"  {'ratio to the floor':<48} {lookups['ratio_to_floor']:>10.2f}x  (target >= 0.6)")
    for name, value in result["layout_reads"]["reads_per_second"].items():
        print(f"  read: {name:<42} {value:>10,.0f} /s")
    memory = result["memory"]
    for label in ("no expires_at", "with expires_at"):
        print(f"  memory, {label}: {memory[label]['used_memory_per_record']:,.0f} B/record")
        for name, value in memory[label]["keys"].items():
            print(f"    {name:<60} {value:>8,.0f} B")
    for name, value in memory["layouts_per_record_key"].items():
        print(f"  layout: {name:<56} {value:>8,.0f} B")
    listing = result.get("list")
    if listing is None:
        return
    print(
        f"  list: {listing['rows']:,} records, {listing['in_window']:,} in the window "
        f"(filled in {listing['setup_seconds']:.1f} s); "
        f"first call {listing['first_call_ms']:.1f} ms"
    )
    for name, value in listing["median_ms"].items():
        print(f"  {name:<58} {value:>8.2f} ms median (p90 {listing['p90_ms'][name]:.2f})")
    purge = listing["purge_older"]
    print(f"  purge(older_than): {purge['records']:,} records in {purge['seconds']:.1f} s")
    for name, calls in listing["script_calls"].items():
        print(f"  one {name} script call keeps Redis busy {calls['usec_per_call']:,.0f} µs")


if __name__ == "__main__":
    main()
