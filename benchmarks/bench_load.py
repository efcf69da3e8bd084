"""Load: ``jobstatus serve`` (gunicorn, 4 workers) on loopback, hammered by a load generator,
while a writer process updates 100 jobs in a loop -- on each store.

For each store: the answers by status (only 200 and 404 are correct), the latency p50/p99,
the requests and writes per second, and whether every record's final state equals the writer's
last write. The load generator is wrk when it is installed (``apt-get install -y wrk``), else a
Python one (threads, one connection per request); the figures name which one ran.

    python benchmarks/bench_load.py [--seconds 30] [--stores file,sqlite,postgresql,s3]

PostgreSQL is expected on 127.0.0.1:5432 (user postgres, database test); the S3 endpoint is
moto's server, started here. The scenario is :mod:`jobstatus.testing._load`, which
``tests/test_load.py`` asserts on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jobstatus.testing._load import LoadResult, run_load

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "load.json"

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


def run_floor(store_url: str, seconds: float, work_dir: Path, generator: str) -> LoadResult:
    """The same load on :data:`FLOOR_APP` serving the file store's folder."""
    (work_dir / "floor_app.py").write_text(FLOOR_APP)
    server = ["-m", "gunicorn", "--workers", "4", "--bind", "127.0.0.1:0",
              "--pythonpath", str(work_dir), "floor_app:app"]  # fmt: skip
    return run_load(
        "floor: bare WSGI file read",
        store_url,
        seconds=seconds,
        work_dir=work_dir,
        generator=generator,
        server=server,
        env={"FLOOR_JOBS_DIR": store_url.removeprefix("file://") + "/jobs"},
        check_final_state=False,  # the floor answers the bare file, not the envelope
    )


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
            if floor:
                result = run_floor(urls[name], args.seconds, Path(tmp), args.generator)
            else:
                result = run_load(name, urls[name], seconds=args.seconds, work_dir=Path(tmp),
                                  generator=args.generator)  # fmt: skip
            figures = result.figures()
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
    raise SystemExit(main())
