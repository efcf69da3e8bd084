"""``jobstatus migrate`` of 100,000 records, next to the raw driver in the same run.

The source is a filesystem store in the upstream layout (``jobs/<job_id>.json``, ``indent=2``,
the files an upstream deployment leaves behind), 100,000 records of about 700 bytes with
random UUID4 ids (SQLite inserts sorted keys several times faster than random ones, so ids that
sort like their stamps would flatter whoever inserts in that order). For each
destination (SQLite, PostgreSQL):

- **migrate**: ``jobstatus.migrate.migrate(src, dst)`` with its defaults, as ``jobstatus migrate
  SRC DST`` runs it when stdout is not a terminal, into a fresh table;
- **migrate, counted first**: the same with ``count_first=True``, as on a terminal (the source
  is read twice, so that the bar has a total and an ETA);
- **floor: driver inserts**: the raw driver (``sqlite3`` / ``psycopg``) inserting the same
  documents, already in memory and in the order migrate reads them (newest first), in batches
  of the same size, one transaction a batch, into a table of the same shape and indexes
  (SQLite: WAL and ``synchronous=NORMAL``, as the SQL store sets them) -- the issue's floor;
- **write side alone**: ``store.restore`` of the same records, read beforehand, in batches of
  the same size: what batching the writes achieves, without the cost of reading the source;
- **floor: hand-written copy**: a script that reads the same files (``os.scandir``, read,
  ``json.loads`` for the status, ``st_mtime``) and inserts them with the raw driver in batches --
  what a user would write instead of ``jobstatus migrate``.

Contenders alternate in rounds (medians reported). Target: migrate >= 0.5x the driver floor.

    python benchmarks/bench_migrate.py [--records 100000] [--rounds 3]
        [--databases sqlite,postgresql] [--postgres-url URL]

Writes benchmarks/results/migrate.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import upstream_document

from jobstatus import open_store
from jobstatus.migrate import DEFAULT_BATCH_SIZE, migrate

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).resolve().parent
BASE = 1_650_000_000
Row = tuple[str, str, str, float]  # job_id, job_status, document, updated_at

_TABLE_SQL = """CREATE TABLE {table} (
    job_id VARCHAR(255) PRIMARY KEY, job_status VARCHAR(255) NOT NULL,
    document TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, version INTEGER NOT NULL)"""
_INDEX_SQL = [
    "CREATE INDEX {table}_updated ON {table} (updated_at)",
    "CREATE INDEX {table}_status ON {table} (job_status, updated_at, job_id)",
]


def write_source(root: Path, count: int) -> None:
    """The upstream layout: one ``indent=2`` file per job, stamped ``BASE + n`` (+ a fraction)."""
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    ids = random.Random(6)  # random UUID4s, as real job ids are: no order to exploit
    for n in range(count):
        job_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
        status = ("queued", "running", "done", "failed")[n % 4]
        doc = upstream_document(
            job_id, status, id=f"req-{n}", response=f"Transcription {n} completed successfully."
        )
        if status not in ("done", "failed"):
            doc["response"] = None  # no envelope until the job ends
        path = jobs / f"{job_id}.json"
        path.write_text(json.dumps(doc, indent=2))
        stamp = (BASE + n) * 10**9 + 250_000_000
        os.utime(path, ns=(stamp, stamp))


def read_rows(root: Path) -> Iterator[Row]:
    """The hand-written reader: the files as they are, their status and mtime."""
    with os.scandir(root / "jobs") as entries:
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            with open(entry.path, "rb") as file:
                text = file.read().decode()
                mtime = os.fstat(file.fileno()).st_mtime_ns / 1e9
            yield entry.name[:-5], json.loads(text)["job_status"], text, mtime


def batched(rows: Iterator[Row] | list[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- destinations ----------------------------------------------------------------------------


class SQLite:
    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fresh(self, label: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        path = self.folder / f"{label}-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", {}, lambda: path.unlink(missing_ok=True)

    def insert(self, rows: Iterator[Row] | list[Row], batch_size: int) -> int:
        url, _, cleanup = self.fresh("floor")
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.execute("PRAGMA journal_mode=WAL")  # the SQL store's settings: the same durability
        db.execute("PRAGMA synchronous=NORMAL")
        for statement in [_TABLE_SQL, *_INDEX_SQL]:
            db.execute(statement.format(table="floor"))
        count = 0
        for batch in batched(rows, batch_size):
            with db:
                db.executemany("INSERT INTO floor VALUES (?, ?, ?, ?, 1)", batch)
            count += len(batch)
        db.close()
        cleanup()
        return count


class PostgreSQL:
    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.dsn = url.replace("postgresql+psycopg://", "postgresql://")

    def _drop(self, table: str) -> Callable[[], None]:
        def drop() -> None:
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")

        return drop

    def fresh(self, label: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
        table = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        return self.url, {"table_name": table}, self._drop(table)

    def insert(self, rows: Iterator[Row] | list[Row], batch_size: int) -> int:
        import psycopg

        table = f"bench_floor_{uuid.uuid4().hex[:8]}"
        count = 0
        with psycopg.connect(self.dsn) as conn:
            for statement in [_TABLE_SQL, *_INDEX_SQL]:
                conn.execute(statement.format(table=table))
            conn.commit()
            with conn.cursor() as cursor:
                for batch in batched(rows, batch_size):
                    cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, 1)", batch)
                    conn.commit()
                    count += len(batch)
        self._drop(table)()
        return count


# -- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    batch = DEFAULT_BATCH_SIZE

    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        print(f"writing {args.records:,} upstream job files ...", file=sys.stderr)
        write_source(work / "src", args.records)
        # In the order migrate reads them (newest first): SQLite's insert speed depends on it.
        documents = sorted(read_rows(work / "src"), key=lambda row: row[3], reverse=True)
        assert len(documents) == args.records
        with open_store(str(work / "src")) as source:
            records = list(source.list())  # for the write side alone
        gc.collect()
        gc.freeze()  # the inputs held for the floors are not the contenders' garbage to scan
        destinations: list[Any] = []
        for name in args.databases.split(","):
            if name == "sqlite":
                destinations.append(SQLite(work))
            elif name == "postgresql":
                destinations.append(PostgreSQL(args.postgres_url))
            else:
                parser.error(f"unknown database {name!r}")

        results: dict[str, Any] = {
            "records": args.records,
            "rounds": args.rounds,
            "batch_size": batch,
            "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
            "destinations": {},
        }
        for destination in destinations:
            timings: dict[str, list[float]] = {
                "floor_insert": [],
                "floor_copy": [],
                "migrate": [],
                "migrate_counted": [],
                "restore": [],
            }

            def run_migrate(count_first: bool, dest: Any = destination) -> None:
                url, options, cleanup = dest.fresh("migrate")
                try:
                    with open_store(str(work / "src")) as src, open_store(url, **options) as dst:
                        result = migrate(src, dst, batch_size=batch, count_first=count_first)
                    assert result.copied == args.records, result
                finally:
                    cleanup()

            def run_restore(dest: Any = destination) -> None:
                url, options, cleanup = dest.fresh("restore")
                try:
                    with open_store(url, **options) as dst:
                        for start in range(0, len(records), batch):
                            dst.restore(records[start : start + batch])
                finally:
                    cleanup()

            contenders: dict[str, Callable[[], None]] = {
                "floor_insert": lambda d=destination: _check(d.insert(documents, batch)),
                "floor_copy": lambda d=destination: _check(
                    d.insert(read_rows(work / "src"), batch)
                ),
                "migrate": lambda: run_migrate(False),
                "migrate_counted": lambda: run_migrate(True),
                "restore": run_restore,
            }
            for round_ in range(args.rounds):
                for name, contender in contenders.items():
                    started = time.perf_counter()
                    contender()
                    timings[name].append(time.perf_counter() - started)
                    print(
                        f"{destination.name} round {round_ + 1}: {name} "
                        f"{args.records / timings[name][-1]:,.0f} records/s",
                        file=sys.stderr,
                    )
            rates = {
                name: args.records / statistics.median(times) for name, times in timings.items()
            }
            results["destinations"][destination.name] = {
                "records_per_second": rates,
                "seconds": timings,
                "ratio_to_floor_insert": {n: r / rates["floor_insert"] for n, r in rates.items()},
                "ratio_to_floor_copy": {n: r / rates["floor_copy"] for n, r in rates.items()},
            }
        _print(results)
        out = HERE / "results" / "migrate.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {out.relative_to(HERE.parent)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(count: int) -> None:
    assert count > 0


def _print(results: dict[str, Any]) -> None:
    labels = {
        "floor_insert": "floor: driver inserts (documents in memory)",
        "floor_copy": "floor: hand-written copy (read files + driver inserts)",
        "migrate": "jobstatus migrate",
        "migrate_counted": "jobstatus migrate, counted first (terminal)",
        "restore": "write side alone: store.restore of the records, read beforehand",
    }
    for name, figures in results["destinations"].items():
        print(
            f"\nfilesystem -> {name}, {results['records']:,} records, "
            f"median of {results['rounds']} rounds"
        )
        print("| contender | records/s | vs driver inserts | vs hand-written copy |")
        print("|---|---:|---:|---:|")
        for key, label in labels.items():
            print(
                f"| {label} | {figures['records_per_second'][key]:,.0f} | "
                f"{figures['ratio_to_floor_insert'][key]:.2f} | "
                f"{figures['ratio_to_floor_copy'][key]:.2f} |"
            )


if __name__ == "__main__":
    main()
