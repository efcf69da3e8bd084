"""Sending one attempt: an HTTP POST with :mod:`http.client`, safely and with reused connections.

- The host is resolved at connect time and the connection goes to an address the
  :class:`~jobstatus.webhooks.policy.AddressPolicy` accepted -- the very one it checked; the
  ``Host`` header and TLS's SNI and certificate check still use the name.
- One attempt takes at most ``timeout`` seconds in all (the connect at most
  ``connect_timeout``): a watchdog thread shuts down the socket of a request still running at
  its deadline, so a receiver that drips its answer byte by byte cannot hold a deliverer.
- Redirects are not followed; at most :data:`~jobstatus.webhooks.state.MAX_ANSWER_BYTES` of
  the answer are kept. An answer small enough is read to its end so that its connection can
  serve the next attempt to the same host; idle connections are kept per host.
- Nothing here logs, and no outcome carries a secret: the signature is computed by the caller.
"""

from __future__ import annotations

import http.client
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

from jobstatus.errors import redact
from jobstatus.webhooks.config import Webhooks
from jobstatus.webhooks.policy import AddressPolicy, AddressRefused
from jobstatus.webhooks.state import MAX_ANSWER_BYTES, Outcome
from jobstatus.webhooks.urls import redact_url

__all__ = ["RETRIED_STATUSES", "Sender"]

#: Answers worth another attempt besides every 5xx (request timeout, too many requests).
RETRIED_STATUSES = frozenset({408, 429})
#: An answer longer than this is not read to its end: its connection is closed instead.
_DRAIN_BYTES = 64 * 1024
_USER_AGENT = "jobstatus-webhooks"

_Key = tuple[str, str, int]


class _Connection(http.client.HTTPConnection):
    """A connection to the checked address of ``host``, TLS when given a context."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        policy: AddressPolicy,
        connect_timeout: float,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.default_port = 443 if tls_context is not None else 80
        self.policy = policy
        self.tls_context = tls_context
        self.deadline = math.inf
        self.timed_out = False

    def connect(self) -> None:
        addresses = self.policy.resolve(self.host, self.port)
        failure: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock = sock  # from here on the watchdog can shut it down
            sock.settimeout(max(0.001, min(self.timeout or math.inf, self._remaining())))
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                self.sock = None
                failure = exc
                if self.timed_out or self._remaining() <= 0:
                    raise TimeoutError("connect timed out") from exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(max(0.001, self._remaining()))
            if self.tls_context is not None:
                self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
            return
        assert failure is not None  # resolve() returns at least one address
        raise failure

    def start(self, deadline: float) -> None:
        """Bound the next request by ``deadline`` (``time.monotonic()``)."""
        self.deadline, self.timed_out = deadline, False
        if self.sock is not None:
            self.sock.settimeout(max(0.001, self._remaining()))

    def expire(self) -> None:
        """The deadline passed: stop whatever the request is blocked on."""
        self.timed_out = True
        sock = self.sock
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()


class _Watchdog:
    """One thread per sender and process: expires the requests still running at their
    deadline. It exists only while requests do."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: dict[int, tuple[float, _Connection]] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @contextmanager
    def watch(self, conn: _Connection, deadline: float) -> Iterator[None]:
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._running, self._thread = os.getpid(), {}, None
            self._running[id(conn)] = (deadline, conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._expire_until_idle, name="jobstatus-webhook-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._running.pop(id(conn), None)

    def _expire_until_idle(self) -> None:
        with self._cond:
            while True:
                if not self._running:
                    self._cond.wait(5.0)
                    if not self._running:
                        self._thread = None
                        return
                now = time.monotonic()
                for key, (deadline, conn) in list(self._running.items()):
                    if deadline <= now:
                        del self._running[key]
                        conn.expire()
                soonest = min((d for d, _ in self._running.values()), default=now + 5.0)
                self._cond.wait(max(0.001, soonest - now))


class Sender:
    """Sends attempts for one :class:`~jobstatus.Webhooks` configuration; safe to use
    from several threads, and in a forked child (which opens connections of its own)."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[_Connection]] = {}
        self._pid = os.getpid()
        self._watchdog = _Watchdog()
        self._tls: ssl.SSLContext | None = webhooks.tls_context

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """POST ``body`` to ``url`` with ``headers`` (and a JSON content type); the outcome,
        never an exception for what the network or the receiver did."""
        try:
            key, target = _split(url)
        except ValueError as exc:
            return Outcome(error=f"not a deliverable URL: {exc}")
        all_headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers}
        deadline = time.monotonic() + self.webhooks.timeout
        while True:
            conn, reused = self._take(key)
            try:
                with self._watchdog.watch(conn, deadline):
                    conn.start(deadline)
                    conn.request("POST", target, body, all_headers)
                    response = conn.getresponse()
                    answer = response.read(MAX_ANSWER_BYTES)
                    self._put_back(key, conn, response)
                if conn.timed_out:  # cut short: what was read may be a truncated answer
                    raise TimeoutError("deadline passed")
            except AddressRefused as exc:
                conn.close()
                return Outcome(error=f"address refused: {exc.reason}")
            except ssl.SSLCertVerificationError as exc:
                conn.close()
                return Outcome(error=f"TLS certificate refused: {exc.verify_message}")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if conn.timed_out or time.monotonic() >= deadline or isinstance(exc, TimeoutError):
                    return Outcome(error=f"timed out after {self.webhooks.timeout:g} s", retry=True)
                if reused and isinstance(exc, (ConnectionError, http.client.BadStatusLine)):
                    continue  # a kept-alive connection the receiver had closed: once more, fresh
                return Outcome(error=f"connection failed: {_describe(exc)}", retry=True)
            return _outcome(response, answer)

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, {}
        _close_all(idle)

    def forget(self) -> None:
        """In a forked child: close this process's copies of the parent's idle connections
        (the parent's stay open), taking no lock a parent's thread may have held."""
        idle, self._idle = self._idle, {}
        _close_all(idle)

    def _take(self, key: _Key) -> tuple[_Connection, bool]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
                self._pid = os.getpid()
                self.forget()
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, host, port = key
        return (
            _Connection(
                host,
                port,
                policy=self.webhooks.policy,
                connect_timeout=self.webhooks.connect_timeout,
                tls_context=self._tls_context() if scheme == "https" else None,
            ),
            False,
        )

    def _put_back(self, key: _Key, conn: _Connection, response: http.client.HTTPResponse) -> None:
        if not response.isclosed():
            response.read(_DRAIN_BYTES)
        if not response.isclosed() or conn.sock is None or conn.timed_out:
            response.close()
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.webhooks.concurrency:
                idle.append(conn)
                return
        conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


def _close_all(idle: dict[_Key, list[_Connection]]) -> None:
    for conns in idle.values():
        for conn in conns:
            conn.close()


def _split(url: str) -> tuple[_Key, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http or https URL with a host is needed")
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, parts.hostname, port), target


def _outcome(response: http.client.HTTPResponse, answer: bytes) -> Outcome:
    status = response.status
    text = answer.decode("utf-8", "replace") or None
    if 300 <= status < 400:
        location = response.getheader("Location")
        where = f" to {redact_url(location)}" if location else ""
        return Outcome(
            status=status,
            error=f"the receiver answered {status}: the redirect{where} is not followed",
            answer=text,
        )
    retry = status >= 500 or status in RETRIED_STATUSES
    return Outcome(status=status, answer=text, retry=retry)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}" if str(exc) else text)
