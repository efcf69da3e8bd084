"""``Webhooks``: the secrets, address policy, timeouts and retry schedule of deliveries.

One :class:`Webhooks` configures a :class:`~jobstatus.JobTracker` (``webhooks=``) and its
deliverer; ``jobstatus deliver`` builds one from the environment
(``JOBSTATUS_WEBHOOK_SECRETS``, ``JOBSTATUS_WEBHOOK_ALLOW``). Every value is checked here, so a
bad configuration fails when the tracker is built, not at the first delivery.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable, Sequence

from jobstatus.webhooks.policy import AddressPolicy, Resolver
from jobstatus.webhooks.signing import decode_secret

__all__ = ["DEFAULT_RETRY_SCHEDULE", "Webhooks"]

#: Seconds to wait before each retry -- 5 s, 30 s, 2 min, 10 min, 1 h -- six attempts in all.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 3600)
#: A retry waits its step plus up to this fraction more, so that receivers that failed together
#: are not retried together.
JITTER = 0.2


class Webhooks:
    """How a tracker's jobs call their ``webhook_url`` when they end.

    Args:
        secret: the signing secret (``whsec_…``, see
            :func:`~jobstatus.webhooks.generate_secret`), or several: during a
            rotation every one signs each delivery and a receiver holding any of them accepts.
            None only with ``deliver_in_process=False``.
        allow: host names, addresses and networks (``"hooks.internal"``, ``"127.0.0.1"``,
            ``"10.1.0.0/16"``) deliveries may reach although they are not public addresses.
        timeout: seconds one attempt may take in all: connect, send, answer.
        connect_timeout: seconds to wait for the connection (default: ``min(timeout, 5)``).
        retry_schedule: seconds before each retry (plus up to 20 % jitter); after the last
            step the delivery is recorded ``failed``. ``()``: one attempt only.
        lease: seconds a deliverer holds an attempt it claimed (default ``3 * timeout``);
            a deliverer that dies mid-attempt leaves it to another once the lease ran out.
        concurrency: attempts a deliverer sends at once (one connection each, reused per host).
        sweep_interval: seconds between a tracker's deliverer's looks at the store for
            deliveries other processes left behind (None: only this process's own jobs; then
            run ``jobstatus deliver``).
        look_back: how far back, in seconds, a deliverer's first look at the store reaches
            (default: the longest a pending delivery can go unwritten: 1.2 times the longest
            step, plus the lease and a minute).
        deliver_in_process: False: a tracker only records its jobs' deliveries (it needs no
            secret then), and ``jobstatus deliver`` sends them.
        tls_context: how ``https`` receivers are verified (default: the system's CAs and
            the host name, :func:`ssl.create_default_context`); give one trusting a private
            CA for internal receivers.
        resolver: resolves host names instead of :func:`socket.getaddrinfo` (same
            signature), for tests that stage what a name resolves to.
    """

    def __init__(
        self,
        secret: str | bytes | Sequence[str | bytes] | None,
        *,
        allow: Iterable[str] = (),
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        lease: float | None = None,
        concurrency: int = 4,
        sweep_interval: float | None = 60.0,
        look_back: float | None = None,
        deliver_in_process: bool = True,
        tls_context: ssl.SSLContext | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        secrets = (
            [] if secret is None else [secret] if isinstance(secret, (str, bytes)) else list(secret)
        )
        if not secrets and deliver_in_process:
            raise ValueError(
                "Webhooks needs a secret to sign with (or deliver_in_process=False, leaving the "
                "sending to `jobstatus deliver`)"
            )
        self.deliver_in_process = deliver_in_process
        self.tls_context = tls_context
        self._keys = tuple(decode_secret(s) for s in secrets)
        self.policy = AddressPolicy.from_allow(allow, resolver=resolver)
        self.timeout = _positive("timeout", timeout)
        self.connect_timeout = _positive(
            "connect_timeout",
            min(self.timeout, 5.0) if connect_timeout is None else connect_timeout,
        )
        if isinstance(retry_schedule, (str, bytes)):
            raise ValueError("retry_schedule takes a sequence of seconds")
        self.retry_schedule = tuple(_positive("a retry_schedule step", s) for s in retry_schedule)
        self.lease = _positive("lease", 3 * self.timeout if lease is None else lease)
        if self.lease <= self.timeout:
            raise ValueError(f"lease ({self.lease}) must be longer than timeout ({self.timeout})")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(
                f"concurrency must be a whole number of at least 1, got {concurrency!r}"
            )
        self.concurrency = concurrency
        self.sweep_interval = (
            None if sweep_interval is None else _positive("sweep_interval", sweep_interval)
        )
        longest = max(self.retry_schedule, default=0.0)
        self.look_back = _positive(
            "look_back",
            (1 + JITTER) * longest + self.lease + 60 if look_back is None else look_back,
        )

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The signing keys, decoded (``repr()`` only says how many there are)."""
        return self._keys

    @property
    def max_attempts(self) -> int:
        """Attempts before a delivery is recorded ``failed``: one plus a retry per step."""
        return 1 + len(self.retry_schedule)

    def __repr__(self) -> str:
        return (
            f"Webhooks(<{len(self._keys)} secret(s)>, allow={sorted(self.policy.names)!r} + "
            f"{[str(n) for n in self.policy.networks]!r}, timeout={self.timeout!r}, "
            f"retry_schedule={self.retry_schedule!r})"
        )


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
