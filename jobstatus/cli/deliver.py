"""``deliver``: send the pending webhook deliveries of a store's jobs, as a service or once,
with :class:`jobstatus.webhooks.Deliverer`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from contextlib import suppress
from typing import IO, Any

from jobstatus import config
from jobstatus.cli.common import EXIT_OK, open_existing, store_url
from jobstatus.cli.options import add_json_option, add_store_option, int_at_least, parse_duration
from jobstatus.cli.output import count, write_json
from jobstatus.errors import ConfigurationError
from jobstatus.webhooks import Deliverer, Webhooks
from jobstatus.webhooks.config import DEFAULT_RETRY_SCHEDULE

# Internal to the command line: no public names (the command line is the interface).
__all__: list[str] = []


def register(commands: Any) -> None:
    """Add ``deliver`` to the subcommands."""
    deliver = commands.add_parser(
        "deliver",
        help="send the webhooks of ended jobs (signed, retried)",
        description="Send the pending webhook deliveries of the store's jobs: each ended "
        "job's final envelope, POSTed to its webhook_url and signed as Standard Webhooks say "
        f"with the secrets of ${config.WEBHOOK_SECRETS_VARIABLE} (comma-separated); retried "
        "on the schedule; non-public addresses refused unless listed in "
        f"${config.WEBHOOK_ALLOW_VARIABLE}. Runs until SIGTERM or Ctrl-C (or, with --once, "
        "makes the attempts due now and exits). Several may run on one store: each attempt "
        "is claimed by one.",
    )
    add_store_option(deliver)
    deliver.add_argument("--once", action="store_true", help="make the attempts due now, then exit")
    deliver.add_argument(
        "--interval",
        type=parse_duration,
        metavar="DURATION",
        default=2.0,
        help="how often to look at the store for deliveries (default: 2s)",
    )
    deliver.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        default=None,
        help="how far back the first look reaches (default: the retry schedule's longest "
        "step and a margin; e.g. 7d after deliverers were down for days)",
    )
    deliver.add_argument(
        "--timeout",
        type=parse_duration,
        metavar="DURATION",
        default=10.0,
        help="the most one attempt may take, connect included (default: 10s)",
    )
    deliver.add_argument(
        "--retry-schedule",
        type=_schedule,
        metavar="D[,D…]",
        default=DEFAULT_RETRY_SCHEDULE,
        help="the waits before each retry (default: 5s,30s,2m,10m,1h); 'none': no retry",
    )
    deliver.add_argument(
        "--concurrency",
        type=int_at_least(1, 256),
        default=4,
        metavar="N",
        help="attempts sent at once (default: 4)",
    )
    deliver.add_argument(
        "--verbose", action="store_true", help="log every attempt's outcome on stderr"
    )
    add_json_option(deliver, "what was done")
    deliver.set_defaults(run=_deliver)


def _schedule(text: str) -> tuple[float, ...]:
    if text.strip().lower() == "none":
        return ()
    return tuple(parse_duration(step) for step in text.split(","))


def _deliver(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        webhooks = Webhooks(
            config.webhook_secrets_from_env(),
            allow=config.webhook_allow_from_env(),
            timeout=args.timeout,
            retry_schedule=args.retry_schedule,
            concurrency=args.concurrency,
            sweep_interval=args.interval,
            look_back=args.since,
        )
    except ValueError as exc:
        raise ConfigurationError(f"webhooks: {exc}") from exc
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("jobstatus deliver: %(message)s"))
        logger = logging.getLogger("jobstatus.webhooks")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    with open_existing(store_url(args)) as store:
        deliverer = Deliverer(store, webhooks)
        if args.once:
            deliverer.deliver_due()
        else:
            _serve(deliverer)
    counts = deliverer.counts
    summary = {
        key: counts.get(key, 0)
        for key in ("attempts", "delivered", "failed", "retrying", "lost_claims")
    }
    if args.json:
        write_json(summary, out)
    else:
        out.write(
            f"made {count(summary['attempts'], 'attempt')}: {summary['delivered']} delivered, "
            f"{summary['failed']} failed, {summary['retrying']} to retry\n"
        )
    return EXIT_OK


def _serve(deliverer: Deliverer) -> None:
    """Run the deliverer's threads until SIGTERM or SIGINT."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    for signum in (int(signal.SIGTERM), int(signal.SIGINT)):
        with suppress(ValueError):  # not the main thread: only the caller can stop us
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    deliverer.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        deliverer.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
