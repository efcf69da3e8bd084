"""Crash consistency: SIGKILL a writer at random points of its writes, then check every store.

For each backend, ``--trials`` trials of ``jobstatus.testing._crash`` (its docstring says what
one trial does and checks): a writer process forked from this one, killed by a real SIGKILL
inside a store call (timed from this process, or just before a ``sys.audit`` event drawn at
random), then the store read and checked (no torn record, each job at its old or its new
state, ``list`` agreeing with ``get``, a new writer not blocked), then ``jobstatus check
--deep`` run twice (the first must leave the store clean, the second find nothing).

    python benchmarks/crash_trials.py --trials 1000 \\
        --backends filesystem,sqlite,postgresql,mariadb,s3,redis [--seed 0]

PostgreSQL and MariaDB get a database of their own for the run (``jobstatus_crash``, dropped
at the end: ``check --deep`` opens the store by its URL, which names the default table); S3 is
moto's server in a subprocess; Redis a key prefix of its own on 127.0.0.1:6379. Writes
``benchmarks/results/crash_trials.json`` (the results of backends run before, by other
commands, stay in it, each with its command); exits 1 when a trial found a violation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jobstatus import open_store  # noqa: E402
from jobstatus.testing._crash import CrashTrials, Summary  # noqa: E402
from jobstatus.testing._crash_stores import own_database  # noqa: E402
from jobstatus.testing._server import MOTO_SERVER  # noqa: E402

BACKENDS = ("filesystem", "sqlite", "postgresql", "mariadb", "s3", "redis")
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/mysql"
DATABASE = "jobstatus_crash"
AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "crash-key",
    "AWS_SECRET_ACCESS_KEY": "crash-secret",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a subprocess, with a bucket; an ``s3://`` store URL on it."""
    os.environ.update(AWS)
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER], text=True, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise SystemExit("moto's S3 server did not start (pip install 'moto[server]')")
        endpoint = f"http://127.0.0.1:{port}"
        import botocore.session

        client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="crash")
        client.close()
        yield f"s3://crash/trials?endpoint_url={endpoint}"
    finally:
        process.terminate()
        process.wait()


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    """The URL of a fresh store of ``backend`` for the run, removed afterwards."""
    with ExitStack() as stack:
        if backend == "filesystem":
            yield stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-"))
        elif backend == "sqlite":
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-"))
            yield f"sqlite:///{folder}/crash.db"
        elif backend == "postgresql":
            yield stack.enter_context(own_database(POSTGRES, DATABASE))
        elif backend == "mariadb":
            yield stack.enter_context(own_database(MARIADB, DATABASE))
        elif backend == "s3":
            yield stack.enter_context(moto_server())
        elif backend == "redis":
            prefix = f"jobstatus-crash-{os.getpid()}"
            yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379)
            for key in client.scan_iter(match=f"{prefix}:*"):
                client.delete(key)
            client.close()
        else:
            raise SystemExit(f"unknown backend {backend!r}: choose among {', '.join(BACKENDS)}")


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with store_url(backend) as url, open_store(url) as store:
        trials = CrashTrials(
            store, url, seed=args.seed, audit_share=args.audit_share, cli_every=args.cli_every
        )
        trials.calibrate()
        summary = Summary()
        started = time.monotonic()
        for n in range(1, args.trials + 1):
            summary.add(trials.trial())
            if n % 100 == 0 or n == args.trials:
                print(
                    f"  {backend}: {n} trials, {summary.mid_write} killed mid-write, "
                    f"{len(summary.violations)} violations, repairs {dict(summary.repaired)}",
                    flush=True,
                )
        summary.add(trials.finish())
        summary.seconds = time.monotonic() - started
    result = summary.to_dict()
    result["store_call_seconds_calibrated"] = round(trials.span, 6)
    result["audited_events_per_run_calibrated"] = trials.events
    result["deep_checks"] = trials.deep_checks
    result["deep_checks_through_the_command_line"] = trials.deep_checks // args.cli_every
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--audit-share", type=float, default=0.5, help="share of trials killed at an audit event"
    )
    parser.add_argument(
        "--cli-every",
        type=int,
        default=10,
        help="run check --deep through the command line every N trials (else Store.repair)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "crash_trials.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    command = "python benchmarks/crash_trials.py " + " ".join(sys.argv[1:])
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        print(f"{backend}: {args.trials} trials", flush=True)
        results[backend] = {"command": command, **run_backend(backend, args)}
    # Backends run separately (in parallel, say) add up in one file: each keeps its command.
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    output = {
        "benchmark": "crash consistency: a writer SIGKILLed inside its store calls, then the "
        "store checked and repaired by jobstatus check --deep",
        "seed": args.seed,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "backends": {**earlier.get("backends", {}), **results},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2) + "\n")
    print(json.dumps({b: r["violations"] for b, r in results.items()}))
    if any(r["violations"] for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
