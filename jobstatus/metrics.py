"""What a service tells an operator while it answers: the hooks of :class:`ServiceMetrics`, and
:class:`MeasuredStore`, which times every call to a store.

``StatusService(store, metrics=...)`` takes a :class:`ServiceMetrics`; it then calls

- :meth:`~ServiceMetrics.answered` once per answer of one of its routes,
- :meth:`~ServiceMetrics.store_called` once per call to its store (through a
  :class:`MeasuredStore`, so every backend is measured the same way, in one place),
- :meth:`~ServiceMetrics.waiters_changed` as requests start and stop waiting for a change,
- :meth:`~ServiceMetrics.watcher_reconnected` when the watcher of its store loses its source,

and mounts the page of :meth:`~ServiceMetrics.exposition` at :attr:`ServiceMetrics.path`
(``GET /metrics``, :data:`METRICS_PATH`, for Prometheus). Without ``metrics`` none of this
exists: no hook is called, no store call is timed, nothing is added to a request's path.

Every hook here does nothing; :class:`jobstatus.prometheus.PrometheusMetrics` records them as
Prometheus metrics (``StatusService(store, metrics=True)``). Another recorder -- statsd,
OpenTelemetry -- subclasses :class:`ServiceMetrics`. Hooks run on the request's thread (the
watcher's, for the watcher's calls) and must return quickly and never raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from jobstatus.errors import Conflict, JobNotFound
from jobstatus.record import JobRecord
from jobstatus.store import ExpectedVersion, Store
from jobstatus.wire import Reply, Request

if TYPE_CHECKING:
    from jobstatus.waiting import Pending

__all__ = ["METRICS_PATH", "MeasuredStore", "ServiceMetrics", "backend_name", "measured"]

#: ``GET``: the metrics page, mounted when the service's metrics have one.
METRICS_PATH = "/metrics"

_T = TypeVar("_T")
_clock = time.perf_counter
# What a store raises as an answer rather than as a failure.
_ANSWERS = (JobNotFound, Conflict)


class ServiceMetrics:
    """The hooks a :class:`~jobstatus.StatusService` calls; each does nothing here."""

    #: Where the service mounts the metrics page (``GET``, answered by :meth:`exposition`);
    #: None mounts none.
    path: str | None = None

    def answered(self, route: str, status: int, seconds: float | None) -> None:
        """A route answered ``status``. ``route`` is the route's path as
        :attr:`StatusService.routes <jobstatus.StatusService.routes>` names it
        (``/v1/toolkit/jobs/{job_id}``, never a job id). ``seconds`` is the time from the
        request's arrival to its answer, or None for a long-poll that was held until its job
        changed or its wait ran out (its time is the wait the client asked for)."""

    def store_called(self, backend: str, operation: str, seconds: float, failed: bool) -> None:
        """A call to the store ended after ``seconds``. ``operation`` is the method: ``get``,
        ``put``, ``restore``, ``delete``, ``purge``, ``list`` or ``list_owned`` (a listing's
        time is the time spent in the store until it was read to its end or dropped).
        ``failed``: it raised something other than the protocol's answers
        :class:`~jobstatus.JobNotFound` and :class:`~jobstatus.Conflict`. ``backend`` is
        :func:`backend_name` of the store."""

    def waiters_changed(self, mode: str, change: int) -> None:
        """``change`` (+1 or -1) requests wait for a change now: ``mode`` is ``"thread"`` for
        those that hold a worker thread (WSGI, Flask), ``"async"`` for those that do not
        (FastAPI)."""

    def watcher_reconnected(self, reason: str) -> None:
        """The watcher of the service's store lost its source and starts over. ``reason`` is
        ``"error"`` (one of its store calls or the change feed's flush failed: it tries again
        after a pause, 0.1 s doubling up to 5 s) or ``"missed"`` (the store's change feed said
        changes may have been missed: it reads every waited job again). A store that offers
        no change notification is polled, which is no reconnect."""

    def exposition(self) -> tuple[str, bytes] | None:
        """The metrics page: its content type and body (None here: there is no page)."""
        return None


def measured(
    route: str, handler: Callable[[Request], Reply | Pending], metrics: ServiceMetrics
) -> Callable[[Request], Reply | Pending]:
    """``handler``, each answer told to ``metrics.answered`` under ``route``: a reply when it
    is returned, a held long-poll when its reply is built."""
    answered = metrics.answered
    clock = _clock

    def answer(request: Request) -> Reply | Pending:
        started = clock()
        outcome = handler(request)
        if isinstance(outcome, Reply):
            answered(route, outcome.status, clock() - started)
            return outcome
        return outcome.observed(lambda reply: answered(route, reply.status, None))

    return answer


def backend_name(store: object) -> str:
    """The ``backend`` label of a store: its class name, lower case, without ``Store``
    (``SQLStore`` → ``sql``, ``FileSystemStore`` → ``filesystem``)."""
    name = type(store).__name__
    if name.endswith("Store") and len(name) > len("Store"):
        name = name[: -len("Store")]
    return name.lower()


class MeasuredStore:
    """``store``, with the time and outcome of every call reported to ``metrics``
    (:meth:`ServiceMetrics.store_called`), ``list_owned`` included where the store has it.
    Anything else -- ``subscribe``, ``exists``, a backend's own attributes -- is the store's
    own, untouched."""

    def __init__(self, store: Store, metrics: ServiceMetrics, backend: str | None = None) -> None:
        #: The store measured.
        self.store = store
        #: The ``backend`` label of every call.
        self.backend = backend_name(store) if backend is None else backend
        self._report = metrics.store_called
        if hasattr(store, "list_owned"):  # the optional capability, measured as it is offered
            self.list_owned = self._list_owned

    def __repr__(self) -> str:
        return f"MeasuredStore({self.store!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _failed(self, operation: str, started: float, exc: Exception) -> None:
        failed = not isinstance(exc, _ANSWERS)
        self._report(self.backend, operation, _clock() - started, failed)

    def _measure(self, operation: str, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        started = _clock()
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            self._failed(operation, started, exc)
            raise
        self._report(self.backend, operation, _clock() - started, False)
        return result

    def get(self, job_id: str) -> JobRecord:
        # Every poll's call: spelled out, it costs half what _measure's generic call does.
        started = _clock()
        try:
            record = self.store.get(job_id)
        except Exception as exc:
            self._failed("get", started, exc)
            raise
        self._report(self.backend, "get", _clock() - started, False)
        return record

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        return self._measure(
            "put", self.store.put, record, force=force, expect_version=expect_version
        )

    def restore(self, records: Iterable[JobRecord]) -> int:
        return self._measure("restore", self.store.restore, records)

    def delete(self, job_id: str) -> bool:
        return self._measure("delete", self.store.delete, job_id)

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        return self._measure(
            "purge", self.store.purge, older_than=older_than, status=status, expired=expired
        )

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        return self._listing("list", self.store.list, since=since, status=status, limit=limit)

    def _list_owned(self, owner: str, **filters: Any) -> Iterator[JobRecord]:
        store: Any = self.store
        return self._listing("list_owned", store.list_owned, owner, **filters)

    def _listing(
        self, operation: str, call: Callable[..., Iterable[JobRecord]], *args: Any, **kwargs: Any
    ) -> Iterator[JobRecord]:
        started = _clock()
        try:
            records = iter(call(*args, **kwargs))
        except Exception as exc:
            self._failed(operation, started, exc)
            raise
        return self._timed(operation, records, _clock() - started)

    def _timed(
        self, operation: str, records: Iterator[JobRecord], spent: float
    ) -> Iterator[JobRecord]:
        """``records`` as they come; the time spent getting them is reported once they end,
        fail or are dropped."""
        failed = False
        clock = _clock
        try:
            while True:
                started = clock()
                try:
                    record = next(records)
                except StopIteration:
                    return
                except Exception:
                    failed = True
                    raise
                finally:
                    spent += clock() - started
                yield record
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
            self._report(self.backend, operation, spent, failed)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> MeasuredStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
