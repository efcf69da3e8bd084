"""What access control costs per request, measured in one run against its own baselines.

- **Keys.** Status lookups per second through ``make_app`` (on a store that hands back one
  parsed record, so that only the service's own work is timed) with one API key, and with a
  mapping of 10,000 keys bound to owners; the figure is the ratio of their costs per request
  (target: 10,000 keys cost at most 1.1 times one key).
- **Tokens.** The per-request cost of a bearer token seen for the first time (a new token on
  every request, so the signature is checked every time) and of one seen before (a client
  polling with it), in microseconds beside the floor: one bare HMAC-SHA256 of the token's bytes
  and a constant-time comparison, what any signed token must cost at least (target: at most
  15 µs for the check itself).

    python benchmarks/bench_access.py [--rounds 10] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import BODY, JOB_ID, KEY, STATUS_PATH, FixedStore, WSGIApp, alternate, call, rate

from jobstatus import StatusService
from jobstatus.access import Access, KeyRing
from jobstatus.adapters.wsgi import make_app

KEYS = 10_000


def with_token(app: WSGIApp, token: str) -> None:
    """POST the status request with ``Authorization: Bearer <token>`` and no key."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": STATUS_PATH,
        "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, h: status.append(s)))
    if not status[0].startswith("200"):
        raise RuntimeError(f"unexpected answer {status} {answer[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.5, help="per round and contender")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "access.json"))
    args = parser.parse_args()

    store = FixedStore()
    one_key = make_app(StatusService(store, api_keys=[KEY]))
    keys = {f"key-{n:05d}-{'k' * 24}": Access(owner=f"user-{n}") for n in range(KEYS - 1)}
    keys[KEY] = Access(owner=None)  # the benchmark's record has no owner: an all-seeing key
    many_keys = make_app(StatusService(store, api_keys=keys))
    requests = alternate(
        {"one key": lambda n: call(one_key), f"{KEYS:,} keys": lambda n: call(many_keys)},
        args.rounds,
        args.seconds,
    )

    ring = KeyRing([KEY], token_secrets=["the secret that signs", "an older secret"])
    service = StatusService(store, api_keys=[KEY], token_secrets=["the secret that signs"])
    token_app = make_app(service)
    fresh, fresh_for_app = FreshTokens(ring.issue_token), FreshTokens(service.issue_token)
    seen = ring.issue_token(JOB_ID, ttl=3600)
    secret = hashlib.sha256(b"floor").digest()
    expected = hmac.new(secret, seen.encode(), hashlib.sha256).digest()

    def floor(n: int) -> None:
        digest = hmac.new(secret, seen.encode(), hashlib.sha256).digest()
        hmac.compare_digest(digest, expected)

    def first_seen(n: int) -> None:
        if ring.authorize(None, f"Bearer {fresh.next()}").job_id != JOB_ID:
            raise RuntimeError("the token did not verify")

    def seen_before(n: int) -> None:
        ring.authorize(None, f"Bearer {seen}")

    checks: dict[str, Callable[[int], object]] = {
        "floor: one HMAC-SHA256 + compare": floor,
        "token seen for the first time": first_seen,
        "token seen before": seen_before,
        "request with a new token (make_app)": lambda n: with_token(
            token_app, fresh_for_app.next()
        ),
        "request with a key (make_app)": lambda n: call(one_key),
    }
    tokens: dict[str, list[float]] = {name: [] for name in checks}
    for round_number in range(args.rounds + 1):  # the first round warms up
        fresh.refill(args.seconds)
        fresh_for_app.refill(args.seconds)
        for name, work in checks.items():
            calls_per_second = rate(work, args.seconds)
            if round_number:
                tokens[name].append(calls_per_second)

    request_rate = {name: statistics.median(values) for name, values in requests.items()}
    micros = {name: 1e6 / statistics.median(values) for name, values in tokens.items()}
    key_ratio = request_rate["one key"] / request_rate[f"{KEYS:,} keys"]
    result: dict[str, Any] = {
        "benchmark": "access control per request: keys through make_app, token checks",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "requests_per_second": request_rate,
        "cost_ratio_10000_keys_to_one": key_ratio,
        "target_cost_ratio": 1.1,
        "microseconds": micros,
        "target_token_check_us": 15.0,
        "token_characters": len(seen),
        "all_rounds": {"requests": requests, "tokens": tokens},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, [*request_rate, *micros]))
    for name, value in request_rate.items():
        print(f"{name:<{width}}  {value:>10,.0f} req/s")
    print(f"{'cost ratio (10,000 keys / one)':<{width}}  {key_ratio:>10.2f}   (target <= 1.1)")
    for name, value in micros.items():
        print(f"{name:<{width}}  {value:>10.1f} µs")


class FreshTokens:
    """Tokens for the benchmark's job, never the same twice, issued before a round so that
    issuing them is not timed with the calls that use them."""

    def __init__(self, issue: Callable[..., str]) -> None:
        self.issue = issue
        self.tokens: Iterator[str] = iter(())

    def refill(self, seconds: float) -> None:
        """Enough tokens for ``seconds`` of calls at 4 µs each: more than can run, since
        checking a token costs more than the HMAC of the floor alone."""
        count = int(seconds / 4e-6) + 100
        # Each its own expiry: tokens issued within one second would otherwise be the same.
        self.tokens = iter([self.issue(JOB_ID, ttl=3600 + n) for n in range(count)])

    def next(self) -> str:
        return next(self.tokens)


if __name__ == "__main__":
    main()
