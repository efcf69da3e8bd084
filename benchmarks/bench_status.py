"""Status lookups per second through ``make_app``, next to a floor, in one run.

The floor is a bare WSGI function that reads the record file's bytes and returns them: one
file read, no checks. Both are called in-process the same way (build the environ, call the app,
consume the body), alternating in rounds so that both see the same machine. The figure that
counts is the ratio ours / floor (target: at least 0.6).

    python benchmarks/bench_status.py [--rounds 10] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _common import JOB_ID, KEY, WSGIApp, call, one_kb_record, rate

from jobstatus import StatusService
from jobstatus.adapters.wsgi import make_app
from jobstatus.backends.filesystem import FileSystemStore


def floor_app(path: str) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        with open(path, "rb") as file:
            data = file.read()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5, help="per round and contender")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "status.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        store = FileSystemStore(root)
        store.put(one_kb_record())
        path = os.path.join(root, "jobs", f"{JOB_ID}.json")
        ours = make_app(StatusService(store, api_keys=[KEY], build_number="1.0.0"))

        def ours_cold(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            store._recent.clear()  # as if the record had changed since the last poll
            return ours(environ, start_response)

        contenders = {
            "floor: bare WSGI file read": floor_app(path),
            "jobstatus make_app": ours,
            "jobstatus make_app, record parsed every time": ours_cold,
        }
        for app in contenders.values():  # warm up
            rate(lambda n, app=app: call(app), 0.2, batch=200)
        rounds: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, app in contenders.items():
                rounds[name].append(rate(lambda n, app=app: call(app), args.seconds, batch=200))

    medians = {name: statistics.median(values) for name, values in rounds.items()}
    floor, ours = medians["floor: bare WSGI file read"], medians["jobstatus make_app"]
    cold = medians["jobstatus make_app, record parsed every time"]
    result = {
        "benchmark": "status lookups through make_app on a filesystem store, 1 KB record",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "requests_per_second": medians,
        "all_rounds": rounds,
        "ratio_to_floor": ours / floor,
        "ratio_to_floor_parsed_every_time": cold / floor,
        "target_ratio": 0.6,
        "record_bytes": os.path.getsize(path) if os.path.exists(path) else 1024,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, medians))
    for name, value in medians.items():
        print(f"{name:<{width}}  {value:>10,.0f} req/s")
    print(f"{'ratio (ours / floor)':<{width}}  {ours / floor:>10.2f}   (target >= 0.6)")
    print(f"{'ratio (parsed every time / floor)':<{width}}  {cold / floor:>10.2f}")


if __name__ == "__main__":
    main()
