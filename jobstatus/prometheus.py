"""Prometheus metrics of a status service: ``StatusService(store, metrics=True)``.

Needs the ``metrics`` extra (``pip install "jobstatus[metrics]"``: prometheus_client);
importing this module does not, making a :class:`PrometheusMetrics` does. The metrics, their
labels and sample queries are listed in the docs' "Operations" page.

Where the values live:

- By default in prometheus_client's global ``REGISTRY``, next to the process's own metrics and
  the host application's: ``GET /metrics`` shows them all, and so does any other exposition
  of that registry (``prometheus_client.start_http_server``, ``make_wsgi_app``).
  ``PrometheusMetrics(registry=CollectorRegistry())`` keeps them apart instead. The metrics
  are made once per registry: every service recording to one registry adds to the same series.
  In multiprocess mode, keep every service of a process on one registry (the default): the
  same series made in two registries would overwrite each other in the process's file.
- In multiprocess mode -- ``PROMETHEUS_MULTIPROC_DIR`` set to an empty folder before the
  processes start, as ``jobstatus serve --metrics`` does for its gunicorn workers -- each
  process writes its values to files in that folder, and ``GET /metrics``, whichever process
  answers it, shows the sum over all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from jobstatus.errors import missing_extra
from jobstatus.metrics import METRICS_PATH, ServiceMetrics

if TYPE_CHECKING:
    import prometheus_client

__all__ = ["MULTIPROCESS_VARIABLE", "SECONDS_BUCKETS", "PrometheusMetrics"]

#: The variable that turns prometheus_client's multiprocess mode on. It names a folder, empty
#: when the processes start, where each process keeps its values.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The buckets of both histograms, in seconds. A memory store answers in microseconds, a
#: database in milliseconds, a failing one at its timeout.
SECONDS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class _Families(NamedTuple):
    answers: Any
    answer_seconds: Any
    store_seconds: Any
    store_errors: Any
    waiters: Any
    reconnects: Any


_made: weakref.WeakKeyDictionary[Any, _Families] = weakref.WeakKeyDictionary()
_made_lock = threading.Lock()


def _families(registry: prometheus_client.CollectorRegistry) -> _Families:
    """The metrics of ``registry``, made on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    with _made_lock:
        families = _made.get(registry)
        if families is None:
            families = _made[registry] = _Families(
                Counter(
                    "jobstatus_answers",
                    "Answers of the status routes, by route and HTTP status code",
                    ["route", "code"],
                    registry=registry,
                ),
                Histogram(
                    "jobstatus_answer_seconds",
                    "Seconds from a request's arrival to its answer, by route (long-polls "
                    "that were held are not timed)",
                    ["route"],
                    registry=registry,
                    buckets=SECONDS_BUCKETS,
                ),
                Histogram(
                    "jobstatus_store_call_seconds",
                    "Seconds per store call, by backend and operation",
                    ["backend", "operation"],
                    registry=registry,
                    buckets=SECONDS_BUCKETS,
                ),
                Counter(
                    "jobstatus_store_errors",
                    "Store calls that failed, by backend and operation",
                    ["backend", "operation"],
                    registry=registry,
                ),
                Gauge(
                    "jobstatus_waiters",
                    "Requests waiting for a job to change, by mode (thread: holding a worker "
                    "thread; async: holding none)",
                    ["mode"],
                    registry=registry,
                    multiprocess_mode="livesum",
                ),
                Counter(
                    "jobstatus_watcher_reconnects",
                    "Times the watcher lost its source and started over, by reason (error: "
                    "a store call failed; missed: the change feed may have missed changes)",
                    ["reason"],
                    registry=registry,
                ),
            )
    return families


class PrometheusMetrics(ServiceMetrics):
    """The service's hooks recorded as Prometheus metrics in ``registry`` (prometheus_client's
    global ``REGISTRY`` when None), served by the service at ``GET path`` -- or, with ``path``
    None, by whatever else exposes the registry (an internal port of your own, say).

    Raises :class:`~jobstatus.ConfigurationError` naming ``jobstatus[metrics]`` when
    prometheus_client is not installed.
    """

    def __init__(
        self,
        registry: prometheus_client.CollectorRegistry | None = None,
        *,
        path: str | None = METRICS_PATH,
    ) -> None:
        try:
            import prometheus_client
        except ImportError as exc:
            raise missing_extra("metrics", exc) from exc
        self.path = path
        #: Where the metrics are registered.
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self._families = families = _families(self.registry)
        # Children by label values, looked up once: a dictionary read per hook afterwards.
        self._answers: dict[tuple[str, int], Any] = {}
        self._seconds: dict[str, Any] = {}
        self._store: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._waiters = {mode: families.waiters.labels(mode) for mode in ("thread", "async")}
        self._reconnects = {
            reason: families.reconnects.labels(reason) for reason in ("error", "missed")
        }

    def __repr__(self) -> str:
        return f"PrometheusMetrics({type(self.registry).__name__})"

    def answered(self, route: str, status: int, seconds: float | None) -> None:
        counter = self._answers.get((route, status))
        if counter is None:
            counter = self._answers[route, status] = self._families.answers.labels(
                route, str(status)
            )
        counter.inc()
        if seconds is not None:
            histogram = self._seconds.get(route)
            if histogram is None:
                histogram = self._seconds[route] = self._families.answer_seconds.labels(route)
            histogram.observe(seconds)

    def store_called(self, backend: str, operation: str, seconds: float, failed: bool) -> None:
        children = self._store.get((backend, operation))
        if children is None:  # both series appear with the first call, errors at 0
            families = self._families
            children = self._store[backend, operation] = (
                families.store_seconds.labels(backend, operation),
                families.store_errors.labels(backend, operation),
            )
        children[0].observe(seconds)
        if failed:
            children[1].inc()

    def waiters_changed(self, mode: str, change: int) -> None:
        self._waiters[mode].inc(change)

    def watcher_reconnected(self, reason: str) -> None:
        self._reconnects[reason].inc()

    def exposition(self) -> tuple[str, bytes]:
        """The text format of every metric of the registry -- or, in multiprocess mode, of
        every process's values, summed."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if os.environ.get(MULTIPROCESS_VARIABLE):
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return CONTENT_TYPE_LATEST, generate_latest(registry)
