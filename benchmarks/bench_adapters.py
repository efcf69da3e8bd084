"""The adapters' speed: in-process against hand-written routes, and end to end under real servers.

1. In-process, per framework (plain WSGI, Flask, FastAPI): status lookups per second through the
   adapter next to a hand-written route in the same framework that does the same work (checks
   the key, parses the body, reads the same record from the same store, returns the same
   envelope), alternating in rounds. Target: adapter / hand-written >= 0.9.
2. End to end over loopback HTTP, 2 workers each: gunicorn for WSGI and Flask, uvicorn for
   FastAPI, and a reimplementation of the upstream service's Flask route (which writes a
   "running" and a "done" job file per status request) under the same gunicorn settings.
   ``wrk`` drives the load (``apt-get install wrk``); without it, a Python load generator does.
   Target: at least 5x the upstream route's requests/s, at a p99 no higher than its p50.

    python benchmarks/bench_adapters.py [--rounds 7] [--seconds 0.4] [--duration 15]
                                        [--skip-http] [--skip-inprocess]

Both parts use a filesystem store holding a 1 KB record (the upstream layout); part 1 also runs
on the memory store, where the adapter's own cost is least hidden. The table is printed and the
figures are written to benchmarks/results/adapters.json.

The servers import this file: ``bench_adapters:wsgi_app()`` and friends, configured through
the BENCH_* environment variables that part 2 sets.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any

from _common import one_kb_record
from pydantic import BaseModel

from jobstatus import JobRecord, StatusService, Store, build_envelope, open_store

JOB_ID = "e6d7f3c0-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
KEY = "benchmark-key"
STATUS = "/v1/toolkit/job/status"
BODY = json.dumps({"job_id": JOB_ID}).encode()
HERE = Path(__file__).resolve().parent

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StatusRequest(BaseModel):
    """The body of the hand-written FastAPI route."""

    job_id: str
    id: Any = None


def make_service(store: Store) -> StatusService:
    return StatusService(store, api_keys=[KEY], build_number="1.0.0", queue_id=140368864456064)


def envelope_by_hand(record: JobRecord, started: float) -> bytes:
    """What a hand-written route returns: the same envelope, compact JSON."""
    envelope = build_envelope(
        endpoint=STATUS,
        job_id=record.job_id,
        response=record.to_dict(),
        pid=os.getpid(),
        queue_id=140368864456064,
        run_time=time.perf_counter() - started,
        build_number="1.0.0",
    )
    return json.dumps(envelope, separators=(",", ":")).encode() + b"\n"


def key_ok(given: str | None) -> bool:
    return hmac.compare_digest((given or "").encode(), KEY.encode())


# -- the contenders ---------------------------------------------------------------------------


def wsgi_adapter(store: Store) -> WSGIApp:
    from jobstatus.adapters.wsgi import make_app

    return make_app(make_service(store))


def wsgi_by_hand(store: Store) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        if not key_ok(environ.get("HTTP_X_API_KEY")):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"message":"Unauthorized"}\n']
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(min(length, 65537)))
        body = envelope_by_hand(store.get(payload["job_id"]), started)
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def flask_adapter(store: Store) -> Any:
    from flask import Flask

    from jobstatus.adapters.flask import make_blueprint

    app = Flask("bench_adapters")
    app.register_blueprint(make_blueprint(make_service(store)))
    return app


def flask_by_hand(store: Store) -> Any:
    from flask import Flask, Response, jsonify, request

    app = Flask("bench_adapters")

    @app.post(STATUS)
    def status() -> Any:
        started = time.perf_counter()
        if not key_ok(request.headers.get("x-api-key")):
            return jsonify(message="Unauthorized"), 401
        payload = request.get_json(force=True)
        body = envelope_by_hand(store.get(payload["job_id"]), started)
        return Response(body, mimetype="application/json")

    return app


def fastapi_adapter(store: Store) -> Any:
    from fastapi import FastAPI

    from jobstatus.adapters.fastapi import make_router

    app = FastAPI()
    app.include_router(make_router(make_service(store)))
    return app


def fastapi_by_hand(store: Store) -> Any:
    from fastapi import FastAPI, Header, Response
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post(STATUS)
    def status(payload: StatusRequest, x_api_key: str | None = Header(None)) -> Response:
        started = time.perf_counter()
        if not key_ok(x_api_key):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        body = envelope_by_hand(store.get(payload.job_id), started)
        return Response(body, media_type="application/json")

    return app


def upstream_app(root: str) -> Any:
    """The upstream service's status route, reimplemented: authenticate, validate_payload and
    queue_task_wrapper(bypass_queue=True), which logs a "running" and a "done" job file (under
    a fresh job id) around every status request, as the upstream app does."""
    import jsonschema
    from flask import Flask, jsonify, request

    app = Flask("upstream")
    jobs_dir = os.path.join(root, "jobs")
    queue_id = id(app)

    def log_job_status(job_id: str, data: dict[str, Any]) -> None:
        os.makedirs(jobs_dir, exist_ok=True)
        with open(os.path.join(jobs_dir, f"{job_id}.json"), "w") as file:
            json.dump(data, file, indent=2)

    def authenticate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.headers.get("X-API-Key") != KEY:
                return jsonify({"message": "Unauthorized"}), 401
            return view(*args, **kwargs)

        return wrapper

    def validate_payload(schema: dict[str, Any]) -> Callable[..., Any]:
        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if not request.json:
                    return jsonify({"message": "Missing JSON in request"}), 400
                try:
                    jsonschema.validate(instance=request.json, schema=schema)
                except jsonschema.exceptions.ValidationError as error:
                    return jsonify({"message": f"Invalid payload: {error.message}"}), 400
                return view(*args, **kwargs)

            return wrapper

        return decorator

    def queue_task_wrapper(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper() -> Any:
            job_id, data, pid = str(uuid.uuid4()), request.json or {}, os.getpid()
            started = time.time()
            log_job_status(
                job_id,
                {
                    "job_status": "running",
                    "job_id": job_id,
                    "queue_id": queue_id,
                    "process_id": pid,
                    "response": None,
                },
            )
            response, endpoint, code = view(job_id=job_id, data=data)
            run_time = round(time.time() - started, 3)
            envelope = {
                "endpoint": endpoint,
                "code": code,
                "id": data.get("id"),
                "job_id": job_id,
                "response": response if code == 200 else None,
                "message": "success" if code == 200 else response,
                "pid": pid,
                "queue_id": queue_id,
                "run_time": run_time,
                "queue_time": 0,
                "total_time": run_time,
                "queue_length": 0,
                "build_number": "1.0.0",
            }
            log_job_status(
                job_id,
                {
                    "job_status": "done",
                    "job_id": job_id,
                    "queue_id": queue_id,
                    "process_id": pid,
                    "response": envelope,
                },
            )
            return envelope, code

        return wrapper

    @app.route(STATUS, methods=["POST"])
    @authenticate
    @validate_payload(
        {"type": "object", "properties": {"job_id": {"type": "string"}}, "required": ["job_id"]}
    )
    @queue_task_wrapper
    def get_job_status(job_id: str, data: dict[str, Any]) -> tuple[Any, str, int]:
        wanted = data.get("job_id")
        try:
            path = os.path.join(jobs_dir, f"{wanted}.json")
            if not os.path.exists(path):
                return {"error": "Job not found", "job_id": wanted}, STATUS, 404
            with open(path) as file:
                return json.load(file), STATUS, 200
        except Exception as exc:
            return {"error": f"Failed to retrieve job status: {exc}"}, STATUS, 500

    return app


# -- entry points for the servers of part 2 (configured by BENCH_* variables) ----------------


def _server_store() -> Store:
    return open_store(os.environ["BENCH_STORE"])


def wsgi_app() -> WSGIApp:
    return wsgi_adapter(_server_store())


def flask_app() -> Any:
    return flask_adapter(_server_store())


def fastapi_app() -> Any:
    return fastapi_adapter(_server_store())


def flask_by_hand_app() -> Any:
    return flask_by_hand(_server_store())


def fastapi_by_hand_app() -> Any:
    return fastapi_by_hand(_server_store())


def upstream_flask_app() -> Any:
    return upstream_app(os.environ["BENCH_UPSTREAM_ROOT"])


def serve_uvicorn_with_nodelay(factory: str, port: int, workers: int) -> None:
    """``uvicorn --workers N`` plus the fix of uvicorn issue #3149: with several workers uvicorn
    binds the listening socket itself with ``proto=0``, so asyncio never turns Nagle off on the
    accepted connections and each keep-alive answer waits ~40 ms for a delayed ACK. Saying the
    socket is TCP is enough for asyncio to set TCP_NODELAY."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        f"bench_adapters:{factory}",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )
    bound = config.bind_socket()
    tcp = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    Multiprocess(config, sockets=[tcp]).run()


# -- part 1: in-process ----------------------------------------------------------------------


def wsgi_caller(app: WSGIApp) -> Callable[[int], None]:
    def run(count: int) -> None:
        for _ in range(count):
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": STATUS,
                "SERVER_NAME": "bench",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http",
                "CONTENT_LENGTH": str(len(BODY)),
                "CONTENT_TYPE": "application/json",
                "wsgi.input": io.BytesIO(BODY),
                "wsgi.errors": sys.stderr,
                "HTTP_X_API_KEY": KEY,
            }
            status: list[str] = []
            body = b"".join(app(environ, lambda s, h, *_, seen=status: seen.append(s)))
            if not status[0].startswith("200") or not body:
                raise RuntimeError(f"unexpected answer {status} {body[:200]!r}")

    return run


def asgi_caller(app: Any) -> Callable[[int], None]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": STATUS,
        "raw_path": STATUS.encode(),
        "root_path": "",
        "query_string": b"",
        "server": ("bench", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"x-api-key", KEY.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }

    async def once() -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"unexpected answer {sent}")

    async def many(count: int) -> None:
        for _ in range(count):
            await once()

    def run(count: int) -> None:
        asyncio.run(many(count))

    return run


def rate(run: Callable[[int], None], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while True:
        run(100)
        count += 100
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return count / elapsed


def in_process(rounds: int, seconds: float) -> list[dict[str, Any]]:
    frameworks: dict[str, tuple[Callable[[Store], Any], Callable[[Store], Any], Any]] = {
        "wsgi": (wsgi_adapter, wsgi_by_hand, wsgi_caller),
        "flask": (flask_adapter, flask_by_hand, wsgi_caller),
        "fastapi": (fastapi_adapter, fastapi_by_hand, asgi_caller),
    }
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for store_name, store in (("file", open_store(root)), ("memory", open_store("memory://"))):
            store.put(one_kb_record())
            for framework, (adapter, by_hand, caller) in frameworks.items():
                runs = {"adapter": caller(adapter(store)), "by hand": caller(by_hand(store))}
                for run in runs.values():
                    rate(run, 0.2)  # warm up
                figures: dict[str, list[float]] = {name: [] for name in runs}
                for _ in range(rounds):
                    for name, run in runs.items():
                        figures[name].append(rate(run, seconds))
                ours, theirs = (statistics.median(figures[n]) for n in ("adapter", "by hand"))
                rows.append(
                    {
                        "framework": framework,
                        "store": store_name,
                        "adapter_per_s": ours,
                        "by_hand_per_s": theirs,
                        "ratio": ours / theirs,
                        "rounds": figures,
                    }
                )
                print(
                    f"  {framework:<8} {store_name:<7} adapter {ours:>8,.0f}/s   "
                    f"by hand {theirs:>8,.0f}/s   ratio {ours / theirs:.2f}",
                    flush=True,
                )
            store.close()
    return rows


# -- part 2: end to end over HTTP ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.communicate()[1].decode()[-2000:]}")
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{STATUS}",
                data=BODY,
                headers={"x-api-key": KEY, "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=2) as answer:
                reply = json.loads(answer.read())
            if reply["response"]["job_id"] != JOB_ID:
                raise RuntimeError(f"unexpected answer {reply}")
            return
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"unexpected answer {error.code}: {error.read()[:300]!r}") from error
        except OSError:  # not listening yet
            time.sleep(0.1)
    raise RuntimeError("the server never answered")


WRK_SCRIPT = f"""wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "{KEY}"
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def load_with_wrk(port: int, duration: float, connections: int, threads: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{STATUS}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        "load_generator": f"wrk -t{threads} -c{connections}",
    }


def load_with_python(port: int, duration: float, connections: int, threads: int) -> dict[str, Any]:
    """A fallback load generator: one thread per connection (``threads`` is wrk's option, unused
    here), a new connection per request."""
    import http.client

    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0]
    deadline = time.perf_counter() + duration

    def worker(mine: list[float]) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(
                "POST", STATUS, BODY, {"x-api-key": KEY, "Content-Type": "application/json"}
            )
            answer = conn.getresponse()
            answer.read()
            conn.close()
            if answer.status != 200:
                failures[0] += 1
            mine.append((time.perf_counter() - started) * 1000)

    pool = [threading.Thread(target=worker, args=(mine,)) for mine in latencies]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for mine in latencies for x in mine)
    return {
        "requests_per_s": len(every) / elapsed,
        "p50_ms": every[len(every) // 2],
        "p99_ms": every[int(len(every) * 0.99)],
        "non_2xx": failures[0],
        "socket_errors": "",
        "load_generator": f"python threads x{connections}",
    }


#: name → (label, server, factory in this module). "uvicorn" is the stock ``uvicorn --workers``;
#: "uvicorn-nodelay" the same with TCP_NODELAY (see serve_uvicorn_with_nodelay).
SERVERS = {
    "upstream": ("upstream route (Flask)", "gunicorn", "upstream_flask_app"),
    "wsgi": ("jobstatus WSGI", "gunicorn", "wsgi_app"),
    "flask": ("jobstatus Flask", "gunicorn", "flask_app"),
    "flask-by-hand": ("hand-written Flask route", "gunicorn", "flask_by_hand_app"),
    "fastapi-stock": ("jobstatus FastAPI", "uvicorn", "fastapi_app"),
    "fastapi": ("jobstatus FastAPI", "uvicorn-nodelay", "fastapi_app"),
    "fastapi-by-hand": ("hand-written FastAPI route", "uvicorn-nodelay", "fastapi_by_hand_app"),
}


def server_command(server: str, factory: str, port: int, workers: int) -> list[str]:
    if server == "gunicorn":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(HERE),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            f"bench_adapters:{factory}()",
        ]
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench_adapters:{factory}",
            "--factory",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return [
        sys.executable,
        str(HERE / "bench_adapters.py"),
        "--serve-uvicorn",
        factory,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def end_to_end(
    duration: float, connections: int, threads: int, workers: int
) -> list[dict[str, Any]]:
    load = load_with_wrk if shutil.which("wrk") else load_with_python
    rows = []
    for kind, (name, server, factory) in SERVERS.items():
        label = f"{name} ({server})"
        with tempfile.TemporaryDirectory() as root:
            store = open_store(root)
            store.put(one_kb_record())
            store.close()
            port = free_port()
            env = {
                **os.environ,
                "BENCH_STORE": root,
                "BENCH_UPSTREAM_ROOT": root,
                "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)]),
            }
            process = subprocess.Popen(
                server_command(server, factory, port, workers),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                wait_until_serving(port, process)
                figures = load(port, duration, connections, threads)
            finally:
                process.terminate()
                process.communicate(timeout=30)
            job_files = len(os.listdir(os.path.join(root, "jobs")))
        rows.append(
            {
                "server": kind,
                "label": label,
                "workers": workers,
                "job_files_after": job_files,
                **figures,
            }
        )
        print(
            f"  {label:<42} {figures['requests_per_s']:>8,.0f} req/s   "
            f"p50 {figures['p50_ms']:6.2f} ms   p99 {figures['p99_ms']:6.2f} ms   "
            f"non-2xx {figures['non_2xx']}   job files after: {job_files}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.4, help="per round and contender")
    parser.add_argument("--duration", type=float, default=15, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="of wrk")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--output", default=str(HERE / "results" / "adapters.json"))
    parser.add_argument("--serve-uvicorn", metavar="FACTORY", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8080, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_uvicorn:
        serve_uvicorn_with_nodelay(args.serve_uvicorn, args.port, args.workers)
        return

    result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    if not args.skip_inprocess:
        print("in-process status lookups, adapter vs hand-written route (target ratio >= 0.9)")
        result["in_process"] = {
            "rounds": args.rounds,
            "seconds_per_round": args.seconds,
            "target_ratio": 0.9,
            "rows": in_process(args.rounds, args.seconds),
        }
    if not args.skip_http:
        print(f"end to end over loopback HTTP, {args.workers} workers, {args.duration:.0f} s each")
        rows = end_to_end(args.duration, args.connections, args.threads, args.workers)
        upstream = rows[0]
        for row in rows:
            row["x_upstream_rps"] = row["requests_per_s"] / upstream["requests_per_s"]
            row["p99_within_upstream_p50"] = row["p99_ms"] <= upstream["p50_ms"]
        result["end_to_end"] = {
            "duration_s": args.duration,
            "connections": args.connections,
            "target": ">= 5x upstream req/s, p99 <= upstream p50",
            "rows": rows,
        }
        print(
            f"\n  {'server (2 workers)':<42} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'x upstream':>10}  p99 <= upstream p50"
        )
        for row in rows:
            print(
                f"  {row['label']:<42} {row['requests_per_s']:>8,.0f} {row['p50_ms']:>7.2f} "
                f"{row['p99_ms']:>7.2f} {row['x_upstream_rps']:>9.1f}x  "
                f"{row['p99_within_upstream_p50']}"
            )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(Path(args.output).read_text()) if Path(args.output).exists() else {}
    Path(args.output).write_text(json.dumps({**existing, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
