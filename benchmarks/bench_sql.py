"""The SQL store's speed on SQLite and PostgreSQL, each figure next to a baseline of the same run.

1. Writes/s: ``store.put`` (a ``running`` update, the guarded upsert) against Celery's
   ``DatabaseBackend.store_result`` on the same database, and against the raw driver running
   the same upsert statement on one connection, one transaction per write.
   Targets: at least 10x Celery, at least 0.5x the raw driver.
2. Status lookups/s through ``make_app`` against a floor: a bare WSGI function that reads the
   body, parses it and runs the same primary-key SELECT with the raw driver. Target: 0.6x.
   Two more contenders bound what a store can do: ``make_app`` over a store that hands back one
   parsed record (no I/O at all), and over the least a SQL store can be (the floor's SELECT on
   one raw connection, no pool, no retry, each text parsed once).
3. ``list(since=now - 600)`` on a table of 1,000,000 rows of which 1,000 are in the window:
   the median time, next to the raw driver running the same query. Target: under 20 ms on
   PostgreSQL.

Contenders alternate in rounds, so that each sees the same machine; figures are medians.

    python benchmarks/bench_sql.py [--rounds 5] [--seconds 1] [--rows 1000000]
        [--databases sqlite,postgresql] [--postgres-url URL]

Tables get a per-run name and are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from _common import FixedStore, alternate, call, one_kb_record

from jobstatus import JobNotFound, JobRecord, StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.memory import MemoryStore
from jobstatus.backends.sql import SQLStore, create_sql_engine, open_sql_store
from jobstatus.record import check_job_id

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RUN = uuid.uuid4().hex[:8]
KEY = "benchmark-key"
JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
IDS = [str(uuid.UUID(int=n)) for n in range(100)]  # writes cycle over 100 jobs

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- the databases -------------------------------------------------------------------------------


class Database:
    """One database under test: its SQLAlchemy URL and a raw DB-API connection to it."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self.tables: list[str] = []

    def table(self, purpose: str) -> str:
        name = f"bench_{RUN}_{purpose}"
        self.tables.append(name)
        return name

    def raw(self) -> Any:
        if self.name == "sqlite":
            conn = sqlite3.connect(sa.make_url(self.url).database or "")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # as the store sets it
            return conn
        return psycopg.connect(
            sa.make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        )

    def param(self) -> str:
        return "?" if self.name == "sqlite" else "%s"

    def drop_tables(self) -> None:
        engine = create_sql_engine(self.url)
        with engine.begin() as conn:
            for name in self.tables:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        engine.dispose()


def upsert_sql(table: str, p: str) -> str:
    """The store's guarded upsert (final is final, an expired row counts as none), written out
    for the raw driver; parameters: job_id, job_status, document, updated_at, now."""
    return (
        f"INSERT INTO {table} (job_id, job_status, document, updated_at, version, expires_at, "
        f"owner) VALUES ({p}, {p}, {p}, {p}, 1, NULL, NULL) ON CONFLICT (job_id) DO UPDATE SET "
        "job_status = excluded.job_status, document = excluded.document, "
        f"updated_at = excluded.updated_at, version = {table}.version + 1, "
        "expires_at = excluded.expires_at, owner = excluded.owner "
        f"WHERE {table}.job_status NOT IN ('cancelled', 'done', 'failed') "
        f"OR {table}.expires_at IS NOT NULL AND {table}.expires_at <= {p} "
        "RETURNING updated_at, version"
    )


# -- 1. writes -----------------------------------------------------------------------------------


def bench_writes(db: Database, rounds: int, seconds: float) -> dict[str, Any]:
    records = [one_kb_record(job_id, "running") for job_id in IDS]
    store = open_sql_store(db.url, table_name=db.table("put"))
    raw_table = db.table("raw")
    twin = open_sql_store(db.url, table_name=raw_table)  # the same table as the store's
    twin.table.create(twin.engine)
    twin.close()
    raw = db.raw()
    statement = upsert_sql(raw_table, db.param())

    def raw_put(n: int) -> None:
        record = records[n % len(records)]
        doc = json.dumps(record.to_dict(), ensure_ascii=False)
        now = time.time()
        cursor = raw.execute(statement, (record.job_id, record.job_status, doc, now, now))
        cursor.fetchone()
        raw.commit()

    celery_backend, drop_celery = celery_backend_on(db)
    result = records[0].to_dict()

    def celery_put(n: int) -> None:
        celery_backend.store_result(IDS[n % len(IDS)], result, "SUCCESS")

    try:
        runs = alternate(
            {
                "jobstatus store.put": lambda n: store.put(records[n % len(records)]),
                "raw driver, same upsert": raw_put,
                "Celery DatabaseBackend.store_result": celery_put,
            },
            rounds,
            seconds,
        )
    finally:
        raw.close()
        store.close()
        drop_celery()
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ours = medians["jobstatus store.put"]
    return {
        "writes_per_second": medians,
        "all_rounds": runs,
        "ratio_to_celery": ours / medians["Celery DatabaseBackend.store_result"],
        "ratio_to_raw_driver": ours / medians["raw driver, same upsert"],
        "targets": {"ratio_to_celery": 10.0, "ratio_to_raw_driver": 0.5},
    }


def celery_backend_on(db: Database) -> tuple[Any, Callable[[], None]]:
    from celery import Celery

    tables = {"task": db.table("celery_task"), "group": db.table("celery_group")}
    app = Celery("bench", backend=f"db+{db.url}", broker="memory://")
    app.conf.database_table_names = tables
    backend = app.backend

    def dispose() -> None:
        backend.ResultSession().close()

    return backend, dispose


# -- 2. lookups through make_app -----------------------------------------------------------------


def floor_app(raw: Any, table: str, p: str) -> WSGIApp:
    query = f"SELECT document FROM {table} WHERE job_id = {p}"

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        row = raw.execute(query, (body["job_id"],)).fetchone()
        data = row[0].encode("utf-8")
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


class RawDriverStore(MemoryStore):
    """The least a SQL store can be under ``make_app``: the floor's SELECT on one raw
    connection (no pool, no retry, no error translation), each document text parsed once."""

    def __init__(self, raw: Any, table: str, p: str) -> None:
        super().__init__()
        self.raw = raw
        self.query = f"SELECT document, updated_at FROM {table} WHERE job_id = {p}"
        self.parsed: dict[str, JobRecord] = {}

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        row = self.raw.execute(self.query, (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        record = self.parsed.get(row[0])
        if record is None:
            record = self.parsed[row[0]] = JobRecord.from_json(row[0], updated_at=row[1])
        return record


def bench_lookups(db: Database, rounds: int, seconds: float) -> dict[str, Any]:
    store = open_sql_store(db.url, table_name=db.table("get"))
    store.put(one_kb_record())
    raw = db.raw()
    if db.name == "postgresql":
        raw.autocommit = True  # a bare SELECT, no transaction around it
    body = json.dumps({"job_id": JOB_ID}).encode()
    ours = make_app(StatusService(store, api_keys=[KEY], build_number="1.0.0"))
    floor = floor_app(raw, store.table.name, db.param())
    ceiling = make_app(StatusService(FixedStore(), api_keys=[KEY], build_number="1.0.0"))
    least = make_app(
        StatusService(
            RawDriverStore(raw, store.table.name, db.param()), api_keys=[KEY], build_number="1.0.0"
        )
    )
    try:
        runs = alternate(
            {
                "floor: bare WSGI + raw driver SELECT": lambda n: call(floor, body),
                "jobstatus make_app": lambda n: call(ours, body),
                "make_app, a store with no I/O": lambda n: call(ceiling, body),
                "make_app, the least SQL store": lambda n: call(least, body),
            },
            rounds,
            seconds,
        )
    finally:
        raw.close()
        store.close()
    medians = {name: statistics.median(values) for name, values in runs.items()}
    floor_rate = medians["floor: bare WSGI + raw driver SELECT"]
    least_rate = medians["make_app, the least SQL store"]
    return {
        "requests_per_second": medians,
        "all_rounds": runs,
        "ratio_to_floor": medians["jobstatus make_app"] / floor_rate,
        "target_ratio": 0.6,
        "no_io_store_ratio_to_floor": medians["make_app, a store with no I/O"] / floor_rate,
        "least_sql_store_ratio_to_floor": least_rate / floor_rate,
        "ratio_to_least_sql_store": medians["jobstatus make_app"] / least_rate,
    }


# -- 3. list(since=600) on a million rows ----------------------------------------------------------


def fill(db: Database, store: SQLStore, rows: int, recent: int, now: float) -> float:
    """``rows - recent`` rows from 30 days ago down, ``recent`` in the last 500 s; seconds."""
    store.table.create(store.engine)
    table = store.table.name
    doc = (
        '\'{"job_status": "done", "job_id": "job-\' || g || \'", "queue_id": 1, '
        '"process_id": 2, "response": {"result": 42}}\''
    )
    stamp = f"CASE WHEN g <= {recent} THEN {now} - g * 0.5 ELSE {now} - 2592000 - g END"
    if db.name == "postgresql":
        source = f"generate_series(1, {rows}) AS g"
        select = f"SELECT 'job-' || g, 'done', {doc}, {stamp}, 1 FROM {source}"
    else:
        select = (
            f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
            f"WHERE g < {rows}) SELECT 'job-' || g, 'done', {doc}, {stamp}, 1 FROM s"
        )
    started = time.perf_counter()
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO {table} (job_id, job_status, document, updated_at, version) {select}"
        )
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {table}")
    return time.perf_counter() - started


def bench_list(db: Database, rows: int, recent: int, repeats: int) -> dict[str, Any]:
    store = open_sql_store(db.url, table_name=db.table("list"))
    now = time.time()
    setup = fill(db, store, rows, recent, now)
    raw = db.raw()
    if db.name == "postgresql":
        raw.autocommit = True
    query = (
        f"SELECT job_id, document, updated_at FROM {store.table.name} "
        f"WHERE updated_at >= {db.param()} ORDER BY updated_at DESC, job_id DESC"
    )

    def ours() -> int:
        return len(list(store.list(since=time.time() - 600)))

    def baseline() -> int:
        found = raw.execute(query, (time.time() - 600,)).fetchall()
        return len([json.loads(document) for _, document, _ in found])

    timings: dict[str, list[float]] = {"jobstatus store.list": [], "raw driver, same query": []}
    try:
        started = time.perf_counter()
        ours()  # the first call parses every record; later ones find them in the parse cache
        first_ms = (time.perf_counter() - started) * 1000
        baseline()
        plan = explain(db, store, now - 600)
        for _ in range(repeats):
            for name, work in (
                ("jobstatus store.list", ours),
                ("raw driver, same query", baseline),
            ):
                started = time.perf_counter()
                count = work()
                timings[name].append((time.perf_counter() - started) * 1000)
                if count != recent:
                    raise RuntimeError(f"{name} found {count} records, not {recent}")
    finally:
        raw.close()
        store.close()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "rows": rows,
        "in_window": recent,
        "setup_seconds": setup,
        "first_call_ms": first_ms,
        "median_ms": medians,
        "p90_ms": {name: statistics.quantiles(v, n=10)[-1] for name, v in timings.items()},
        "ratio_to_raw_driver": medians["raw driver, same query"] / medians["jobstatus store.list"],
        "target_ms": 20.0,
        "query_plan": plan,
    }


def explain(db: Database, store: SQLStore, since: float) -> list[str]:
    """The plan of the first page query ``list(since=since)`` runs, as the database prints it
    (the statement is taken as SQLAlchemy sends it to the driver)."""
    sent: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        next(store.list(since=since), None)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)
    statement, parameters = sent[-1]
    prefix = "EXPLAIN QUERY PLAN " if db.name == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF) "
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    return [str(row[-1]) for row in rows]


# -- the run ---------------------------------------------------------------------------------------


@contextmanager
def databases(names: list[str], postgres_url: str) -> Iterator[list[Database]]:
    with tempfile.TemporaryDirectory() as folder:
        found = []
        for name in names:
            if name == "sqlite":
                found.append(Database("sqlite", f"sqlite:///{folder}/bench.db"))
            elif name == "postgresql":
                found.append(Database("postgresql", postgres_url))
            else:
                raise SystemExit(f"unknown database {name!r}")
        try:
            yield found
        finally:
            for db in found:
                db.drop_tables()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and contender")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--in-window", type=int, default=1000)
    parser.add_argument("--list-repeats", type=int, default=30)
    parser.add_argument("--skip-list", action="store_true", help="no 1M-row table (quick runs)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "sql.json"))
    args = parser.parse_args()

    result: dict[str, Any] = {
        "benchmark": "the SQL store: writes, lookups through make_app, list on 1M rows",
        "python": sys.version.split()[0],
        "sqlalchemy": sa.__version__,
        "sqlite": sqlite3.sqlite_version,
        "psycopg": psycopg.__version__,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "record_bytes": len(one_kb_record().to_json()),
        "databases": {},
    }
    with databases(args.databases.split(","), args.postgres_url) as found:
        for db in found:
            print(f"== {db.name}", flush=True)
            figures = {
                "writes": bench_writes(db, args.rounds, args.seconds),
                "lookups": bench_lookups(db, args.rounds, args.seconds),
            }
            if not args.skip_list:
                figures["list"] = bench_list(db, args.rows, args.in_window, args.list_repeats)
            result["databases"][db.name] = figures
            report(figures)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


def report(figures: dict[str, Any]) -> None:
    writes, lookups, listing = figures["writes"], figures["lookups"], figures.get("list")
    for name, value in writes["writes_per_second"].items():
        print(f"  {name:<42} {value:>10,.0f} writes/s")
    print(f"  {'ratio to Celery':<42} {writes['ratio_to_celery']:>10.1f}x  (target >= 10)")
    print(
        f"  {'ratio to the raw driver':<42} {writes['ratio_to_raw_driver']:>10.2f}x  "
        "(target >= 0.5)"
    )
    for name, value in lookups["requests_per_second"].items():
        print(f"  {name:<42} {value:>10,.0f} req/s")
    print(f"  {'ratio to the floor':<42} {lookups['ratio_to_floor']:>10.2f}x  (target >= 0.6)")
    print(
        f"  {'no-I/O store ratio to the floor':<42} "
        f"{lookups['no_io_store_ratio_to_floor']:>10.2f}x  (the service's own ceiling)"
    )
    print(
        f"  {'least SQL store ratio to the floor':<42} "
        f"{lookups['least_sql_store_ratio_to_floor']:>10.2f}x  (any SQL store's ceiling)"
    )
    print(
        f"  {'ratio to the least SQL store':<42} "
        f"{lookups['ratio_to_least_sql_store']:>10.2f}x  (what the store's own code costs)"
    )
    if listing is None:
        return
    print(
        f"  list(since=600): {listing['rows']:,} rows, {listing['in_window']:,} in the window "
        f"(filled in {listing['setup_seconds']:.1f} s)"
    )
    print(f"  {'jobstatus store.list, first call':<42} {listing['first_call_ms']:>10.2f} ms")
    for name, value in listing["median_ms"].items():
        print(f"  {name:<42} {value:>10.2f} ms median  (p90 {listing['p90_ms'][name]:.2f})")
    print("  plan: " + "\n        ".join(listing["query_plan"]))


if __name__ == "__main__":
    main()
