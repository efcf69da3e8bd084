"""Serve the endpoints under gunicorn: each worker opens its own store after the fork.

Before gunicorn starts, :func:`serve` checks that the address can be bound, so a port another
server holds is one line naming the port and ``--port`` rather than gunicorn's retries and
"Connection in use" log.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from jobstatus._schema import UUID_PATTERN
from jobstatus.errors import ConfigurationError, missing_extra

__all__ = ["THREADS", "check_address", "serve"]

#: How many threads each worker answers from. The service lets at most ``max_waiters`` (8) of
#: them wait (long-polls), so as many again are always free for other requests.
THREADS = 16


def check_address(host: str, port: int) -> None:
    """Raise :class:`~jobstatus.ConfigurationError` unless a server can listen on ``host:port``.

    It binds a socket as gunicorn does (``SO_REUSEADDR``, IPv6 for an address with a colon)
    and closes it at once: a port another server listens on is refused, one in ``TIME_WAIT``
    is not. The message is one line naming the address and the option that changes it.
    """
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"--port {port} is not a port number (0 to 65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        # (TypeError, UnicodeError: a host name that cannot be encoded for the resolver)
        except (OSError, TypeError, UnicodeError) as exc:
            code = getattr(exc, "errno", None)
            if code == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} on {host} is already in use (another server, perhaps an "
                    f"earlier jobstatus serve?); stop it or choose another port with --port"
                ) from exc
            if code == errno.EACCES:
                raise ConfigurationError(
                    f"not allowed to listen on port {port} of {host}; "
                    f"choose a port above 1023 with --port"
                ) from exc
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigurationError(
                f"cannot listen on {host} port {port} ({reason}); "
                f"check --host, or choose another port with --port"
            ) from exc


def serve(
    *,
    store_url: str,
    api_keys: Sequence[str] | None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    build_number: str | None = None,
    upstream_wire: bool = False,
    job_id_pattern: str = UUID_PATTERN,
    dashboard: bool = False,
    metrics: bool = False,
    extra_options: dict[str, Any] | None = None,
) -> None:
    """Run gunicorn in the foreground until it is stopped. ``job_id_pattern`` is the
    :class:`~jobstatus.StatusService`'s: the job ids it serves (a UUID by default).

    Each worker answers from :data:`THREADS` threads (gunicorn's ``gthread`` workers): a
    long-poll (``?wait=``, the dashboard following running jobs) holds a thread while it
    waits, and would hold a single-threaded worker whole. With ``dashboard``, the job
    dashboard is served at ``/v1/toolkit/dashboard/`` too.

    With ``metrics``, every worker records Prometheus metrics and serves them at
    ``GET /metrics`` in prometheus_client's multiprocess mode: the page shows the sum over
    every worker, whichever answers. The values live in ``$PROMETHEUS_MULTIPROC_DIR`` when
    it is set (empty it before each start), else in a folder made for the run and removed
    after it.

    Raises :class:`~jobstatus.ConfigurationError` before starting gunicorn when gunicorn (or,
    with ``metrics``, prometheus_client) is not installed, ``workers`` is below 1, the address
    cannot be bound (:func:`check_address`) or the store cannot be opened.
    """
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError as exc:
        raise missing_extra("serve", exc) from exc

    from jobstatus.adapters.wsgi import make_app
    from jobstatus.backends import open_store
    from jobstatus.service import StatusService

    if workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    check_address(host, port)
    open_store(store_url).close()  # fail fast, in the master, on a bad URL or a missing extra

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "accesslog": "-",
                "worker_class": "gthread",
                "threads": THREADS,
                **metrics_options,
                **(extra_options or {}),
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            store = open_store(store_url)
            service = StatusService(
                store,
                api_keys=api_keys,
                build_number=build_number,
                upstream_wire=upstream_wire,
                job_id_pattern=job_id_pattern,
                metrics=metrics,
            )
            return make_app(service, dashboard=dashboard)

    setup: AbstractContextManager[dict[str, Any]] = (
        _multiprocess_metrics() if metrics else nullcontext({})
    )
    with setup as metrics_options:
        _Server().run()


@contextmanager
def _multiprocess_metrics() -> Iterator[dict[str, Any]]:
    """prometheus_client's multiprocess mode for the workers, set up before any of them
    starts: ``$PROMETHEUS_MULTIPROC_DIR`` (a folder of this run's own unless it is set), and
    the gunicorn settings that forget a worker's live values once it exits."""
    from jobstatus.prometheus import MULTIPROCESS_VARIABLE

    made = None
    if not os.environ.get(MULTIPROCESS_VARIABLE):
        if "prometheus_client" in sys.modules:  # it chose where values live when imported
            raise ConfigurationError(
                f"metrics under several processes need {MULTIPROCESS_VARIABLE} set before "
                "prometheus_client is imported"
            )
        made = tempfile.mkdtemp(prefix="jobstatus-metrics-")
        os.environ[MULTIPROCESS_VARIABLE] = made
    try:
        try:  # (imported once the variable is set: it decides where values live)
            from prometheus_client import multiprocess
        except ImportError as exc:
            raise missing_extra("metrics", exc) from exc

        def child_exit(server: Any, worker: Any) -> None:
            multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

        yield {"child_exit": child_exit}
    finally:
        if made is not None:
            del os.environ[MULTIPROCESS_VARIABLE]
            shutil.rmtree(made, ignore_errors=True)
