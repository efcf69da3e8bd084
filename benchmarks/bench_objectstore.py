"""The S3 store: status lookups per second next to a bare s3fs floor, and requests per call.

Against moto's S3 server on 127.0.0.1, run in a subprocess with a request counter in front of
it (the counts are the server's, not the client's):

1. Status lookups/s through ``make_app(StatusService(ObjectStore))`` for a 1 KB record, next to
   a floor: a bare WSGI function returning ``fs.cat_file(path, max_concurrency=1)`` of the same
   object with s3fs (one GET, no checks). Both called in-process the same way, back to back in
   each round, in alternating order. Target: ours / floor >= 0.8 (the median of the rounds'
   ratios). The client's CPU time per lookup is shown too: it moves less with the load.
2. HTTP requests reaching S3 per call: a status lookup (target: one GET), a put of a new job
   with ``expect_version=ABSENT`` and a forced put (target: one PUT each), any other put
   (target: one GET and one conditional PUT), a restore, a listing, purges.

    python benchmarks/bench_objectstore.py [--rounds 15] [--seconds 0.5] [--count 100]

``--serve`` runs the counting moto server itself (the benchmark starts it that way).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _common import call, one_kb_record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
KEY = "benchmark-key"
BODY = json.dumps({"job_id": JOB_ID}).encode()
BUCKET = "jobstatus-bench"
COUNTS = "/__requests"
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench-key",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_EC2_METADATA_DISABLED": "true",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- the counting S3 server (runs in the subprocess) ------------------------------------------


def serve() -> None:
    """moto's S3 app behind a request log; ``GET /__requests`` returns it and clears it."""
    import threading

    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    moto_app = DomainDispatcherApplication(create_backend_app)
    log: list[tuple[str, str]] = []
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == COUNTS:
            with lock:
                body = json.dumps(log).encode()
                log.clear()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        query = environ.get("QUERY_STRING")
        with lock:
            log.append((environ["REQUEST_METHOD"], path + (f"?{query}" if query else "")))
        result: Iterable[bytes] = moto_app(environ, start_response)
        return result

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()


def start_server() -> tuple[str, subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        text=True,
        stdout=subprocess.PIPE,
        env={**os.environ, **ENVIRONMENT},
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        raise SystemExit("moto's S3 server did not start (pip install 'moto[server]')")
    return f"http://127.0.0.1:{port}", process


def server_requests(endpoint: str) -> list[tuple[str, str]]:
    """The requests the server got since the last call."""
    with urllib.request.urlopen(endpoint + COUNTS) as answer:
        return [tuple(pair) for pair in json.load(answer)]


# -- the measured side -------------------------------------------------------------------------


def floor_app(fs: Any, path: str) -> WSGIApp:
    """The least a status lookup on S3 can do: one GET of the object, returned as it is."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        data = fs.cat_file(path, max_concurrency=1)  # without it, s3fs sends a HEAD first
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def rate(app: WSGIApp, seconds: float) -> tuple[float, float]:
    """Lookups per second, and the client process's CPU microseconds per lookup (the event
    loop thread of s3fs included; the server runs in another process)."""
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    while True:
        for _ in range(10):
            call(app)
        count += 10
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started), (time.process_time() - cpu) / count * 1e6


def request_name(method: str, path: str) -> str:
    """The S3 operation a request is: GET, PUT, HEAD, DELETE, LIST, DeleteObjects..."""
    _, _, query = path.partition("?")
    if "list-type=" in query:
        return "LIST"
    if method == "POST" and query.startswith("delete"):
        return "DeleteObjects"
    if method == "POST" and query.startswith("uploads"):
        return "CreateMultipartUpload"
    if "uploadId=" in query:
        return "UploadPart" if method == "PUT" else "CompleteMultipartUpload"
    return method


def per_call(endpoint: str, count: int, action: Callable[[int], Any]) -> dict[str, float]:
    """Requests the server got per call of ``action``, by operation, over ``count`` calls."""
    server_requests(endpoint)  # clear
    for n in range(count):
        action(n)
    names = Counter(request_name(method, path) for method, path in server_requests(endpoint))
    return {name: names[name] / count for name in sorted(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5, help="per round and contender")
    parser.add_argument("--count", type=int, default=100, help="calls per request count")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(HERE / "results" / "objectstore.json"))
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    os.environ.update(ENVIRONMENT)

    from jobstatus import ABSENT, JobRecord, StatusService
    from jobstatus.adapters.wsgi import make_app
    from jobstatus.backends.objectstore import ObjectStore, open_object_store

    endpoint, server = start_server()
    try:
        store = open_object_store(f"s3://{BUCKET}/bench?endpoint_url={endpoint}")
        store.fs.call_s3("create_bucket", Bucket=BUCKET)
        record = one_kb_record()
        store.put(record)
        path = f"{BUCKET}/bench/jobs/{JOB_ID}.json"
        floor_fs = open_object_store(f"s3://{BUCKET}/floor?endpoint_url={endpoint}").fs
        ours = make_app(StatusService(store, api_keys=[KEY], build_number="1.0.0"))
        contenders = {
            "floor: bare WSGI s3fs cat_file": floor_app(floor_fs, path),
            "jobstatus make_app": ours,
        }
        assert (
            json.loads(
                b"".join(
                    ours(
                        {
                            "REQUEST_METHOD": "POST",
                            "PATH_INFO": "/v1/toolkit/job/status",
                            "CONTENT_LENGTH": str(len(BODY)),
                            "wsgi.input": io.BytesIO(BODY),
                            "HTTP_X_API_KEY": KEY,
                        },
                        lambda s, h: None,
                    )
                )
            )["response"]
            == record.to_dict()
        )

        for app in contenders.values():  # warm up
            rate(app, 0.3)
        rounds: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for n in range(args.rounds):
            order = list(contenders.items())
            for name, app in order if n % 2 == 0 else reversed(order):
                per_second, cpu_us = rate(app, args.seconds)
                rounds[name].append(per_second)
                cpu[name].append(cpu_us)

        count = args.count
        requests = {
            "status lookup through make_app": per_call(endpoint, count, lambda n: call(ours)),
            "floor: s3fs cat_file(max_concurrency=1)": per_call(
                endpoint, count, lambda n: floor_fs.cat_file(path, max_concurrency=1)
            ),
            "s3fs cat_file, default options": per_call(
                endpoint, count, lambda n: floor_fs.cat_file(path)
            ),
            "store.get": per_call(endpoint, count, lambda n: store.get(JOB_ID)),
            "store.put(expect_version=ABSENT), new job": per_call(
                endpoint,
                count,
                lambda n: store.put(JobRecord(f"absent-{n}", "queued"), expect_version=ABSENT),
            ),
            "store.put(force=True)": per_call(
                endpoint,
                count,
                lambda n: store.put(JobRecord(f"absent-{n}", "running"), force=True),
            ),
            "store.put, final state (done), new job": per_call(
                endpoint, count, lambda n: store.put(JobRecord(f"final-{n}", "done"))
            ),
            "store.put, non-final (running), new job": per_call(
                endpoint, count, lambda n: store.put(JobRecord(f"new-{n}", "running"))
            ),
            "store.put, non-final over non-final": per_call(
                endpoint, count, lambda n: store.put(JobRecord(f"new-{n}", "running"))
            ),
            "store.put, late running over done (kept)": per_call(
                endpoint, count, lambda n: store.put(JobRecord(f"final-{n}", "running"))
            ),
            "store.restore, one record": per_call(
                endpoint,
                count,
                lambda n: store.restore(
                    [JobRecord(f"old-{n}", "done", updated_at=1_600_000_000 + n)]
                ),
            ),
        }
        listing = ObjectStore(store.fs, f"{BUCKET}/listing")
        listing.restore(
            [JobRecord(f"old-{n}", "done", updated_at=1_600_000_000) for n in range(count)]
        )
        for n in range(count):
            listing.put(JobRecord(f"recent-{n}", "running"))
        requests[f"store.list(since=now-600): {count} recent, {count} old restored just now"] = (
            per_call(endpoint, 1, lambda n: list(listing.list(since=time.time() - 600)))
        )
        requests[f"store.purge of the {count} old records"] = per_call(
            endpoint, 1, lambda n: listing.purge(older_than=1_600_000_001)
        )
        requests[f"store.purge(expired=True) of {count} records, none expired"] = per_call(
            endpoint, 1, lambda n: listing.purge(expired=True)
        )
        store.close()
    finally:
        server.terminate()
        server.communicate()

    medians = {name: statistics.median(values) for name, values in rounds.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    floor_name, ours_name = "floor: bare WSGI s3fs cat_file", "jobstatus make_app"
    floor = medians[floor_name]
    # each round measures both contenders back to back: the median of the rounds' ratios is
    # the figure least moved by the machine's load changing between rounds
    ratio = statistics.median(
        ours / base for ours, base in zip(rounds[ours_name], rounds[floor_name], strict=True)
    )
    result = {
        "benchmark": "status lookups through make_app on an S3 store (moto over loopback), "
        "1 KB record; S3 requests per call counted by the server",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "requests_per_second": medians,
        "client_cpu_microseconds_per_lookup": cpu_medians,
        "all_rounds": rounds,
        "all_rounds_cpu": cpu,
        "ratio_to_floor": ratio,
        "ratio_of_medians": medians[ours_name] / floor,
        "target_ratio": 0.8,
        "s3_requests_per_call": requests,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")

    width = max(map(len, medians))
    print(f"{'contender':<{width}}  {'lookups/s':>10}  {'ratio':>6}  {'client CPU/lookup':>17}")
    for name, value in medians.items():
        print(
            f"{name:<{width}}  {value:>10,.0f}  {value / floor:>6.2f}  "
            f"{cpu_medians[name]:>14,.0f} µs"
        )
    print(f"\nratio to floor (median of the rounds' ratios): {ratio:.2f} (target >= 0.8)\n")
    width = max(map(len, requests))
    print(f"{'S3 requests per call (counted by the server)':<{width}}  requests")
    for name, methods in requests.items():
        shown = ", ".join(f"{value:g} {method}" for method, value in methods.items())
        print(f"{name:<{width}}  {shown}")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
