"""``serve``: the status endpoints under gunicorn, with the job id rule the CLI writes by."""

from __future__ import annotations

import argparse
import secrets
from typing import IO, Any

from jobstatus import config
from jobstatus.cli.common import EXIT_OK, store_url
from jobstatus.cli.options import (
    add_id_options,
    add_store_option,
    id_rule,
    int_at_least,
    port_number,
)

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``serve`` to the subcommands."""
    serve = commands.add_parser(
        "serve",
        help="serve the status endpoints under gunicorn",
        description="Serve POST /v1/toolkit/job/status and /v1/toolkit/jobs/status under "
        "gunicorn. Keys come from $JOBSTATUS_API_KEYS or $API_KEY; with neither, a key is "
        "generated, printed once, and required. Job ids must match the same pattern as "
        "put, get and cancel take (a UUID unless told otherwise).",
    )
    add_store_option(serve)
    add_id_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=port_number, default=8080, help="port to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int_at_least(1),
        default=2,
        help="gunicorn worker processes (default: %(default)s)",
    )
    serve.add_argument(
        "--dashboard",
        action="store_true",
        help="also serve the job dashboard at /v1/toolkit/dashboard/",
    )
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="also serve Prometheus metrics at /metrics, summed over the workers, to any key "
        "bound to no owner (needs jobstatus[metrics])",
    )
    serve.add_argument(
        "--upstream-wire",
        action="store_true",
        help="answer 404 and 500 as the running upstream service does",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace, out: IO[str]) -> int:
    from jobstatus._serve import serve

    rule = id_rule(args)
    keys = config.api_keys_from_env()
    if keys is None:
        keys = [secrets.token_urlsafe(32)]
        out.write(
            "jobstatus: no API key configured; generated one for this run (set API_KEY or "
            f"JOBSTATUS_API_KEYS to choose your own):\n  x-api-key: {keys[0]}\n"
        )
        out.flush()
    serve(
        store_url=store_url(args),
        api_keys=keys,
        host=args.host,
        port=args.port,
        workers=args.workers,
        build_number=config.build_number_from_env(),
        upstream_wire=args.upstream_wire,
        job_id_pattern=rule.service_pattern,
        dashboard=args.dashboard,
        metrics=args.metrics,
    )
    return EXIT_OK
