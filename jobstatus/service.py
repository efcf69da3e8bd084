"""StatusService: auth → validate → store → envelope, with no web framework in sight.

Adapters hand it a :class:`~jobstatus.wire.Request` (method, path, query, body, two headers)
and send back the :class:`Reply` it returns -- or, for a long-poll, wait for the
:class:`~jobstatus.waiting.Pending` it returns. Every answer, errors included, is JSON (a 304
has no body).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, NamedTuple

from jobstatus._answers import Answers, document_json
from jobstatus._cursor import CursorSigner
from jobstatus._freshness import (
    DEFAULT_RETRY_AFTER,
    DEFAULT_RETRY_AFTER_BOUNDS,
    parse_if_none_match,
)
from jobstatus._listing import (
    page_reply,
    status_reply,
)
from jobstatus._polling import JobReads
from jobstatus._requests import JOB_PREFIX, RequestReader
from jobstatus._schema import (
    DEFAULT_MAX_BODY_BYTES,
    UUID_PATTERN,
)
from jobstatus.access import Access, ApiKeys, KeyRing, _bearer, visible, visible_store
from jobstatus.errors import Forbidden, Unauthorized
from jobstatus.metrics import MeasuredStore, ServiceMetrics, measured
from jobstatus.record import FINAL_STATES
from jobstatus.store import Store
from jobstatus.tracker import JobTracker
from jobstatus.waiting import DEFAULT_MAX_ASYNC_WAITERS, DEFAULT_MAX_WAITERS, Pending, WaitLimits
from jobstatus.watch import Watcher
from jobstatus.wire import JSON_HEADERS, Reply, Request, dump_json

__all__ = [
    "DEFAULT_MAX_WAIT",
    "JOBS_PATH",
    "JOBS_STATUS_PATH",
    "JOB_CANCEL_PATH",
    "JOB_PATH",
    "JOB_STATUS_PATH",
    "Reply",
    "Route",
    "StatusService",
    "dump_json",
]

log = logging.getLogger(__name__)

JOB_STATUS_PATH = "/v1/toolkit/job/status"
JOBS_STATUS_PATH = "/v1/toolkit/jobs/status"
#: ``POST``: ask a job to stop (mounted with ``allow_cancel``).
JOB_CANCEL_PATH = "/v1/toolkit/job/cancel"
#: ``GET``: recent jobs, a page at a time.
JOBS_PATH = "/v1/toolkit/jobs"
#: ``GET``: one job, with ``ETag``, ``If-None-Match`` and ``?wait=``; the one route with a
#: parameter in its path.
JOB_PATH = "/v1/toolkit/jobs/{job_id}"
#: The longest wait a request may ask for, in seconds, unless ``max_wait`` says otherwise.
DEFAULT_MAX_WAIT = 30.0
# A POST listing of more jobs than this is streamed rather than built whole.
_STREAM_AFTER = 1000
_NO_CACHE = ("Cache-Control", "no-cache")


class Route(NamedTuple):
    """One route of the service: the method it answers, its handler, and the scope
    (``read``, ``list`` or ``cancel``) a key needs for it (``metrics`` for the metrics page,
    which any key bound to no owner may read)."""

    method: str
    handler: Callable[[Request], Reply | Pending]
    scope: str = "read"


class StatusService:
    """Answers the status routes from a :class:`~jobstatus.Store`, in the shapes the docs'
    "The endpoint" page lists: the spec's ``POST /v1/toolkit/job/status`` and
    ``POST /v1/toolkit/jobs/status``, and ``GET /v1/toolkit/jobs/{job_id}`` and
    ``GET /v1/toolkit/jobs`` for clients that poll (see the docs' "Polling" page).

    Args:
        store: where records are read. Reading a status never writes.
        api_keys: the accepted ``x-api-key`` values (several at once, for rotation); an empty
            collection accepts nobody; ``None`` turns authentication off for hosts that
            authenticate requests themselves.
        build_number: echoed as ``build_number`` in every envelope.
        queue_id: echoed as ``queue_id``; like upstream, defaults to an id of this service.
        queue_length: the host's queue length, or a function returning it.
        job_id_pattern: a regular expression every requested job id must match whole
            (a UUID by default).
        max_body_bytes: larger request bodies are refused with a 400.
        upstream_wire: answer as the running upstream service does rather than as its
            document says: a 404 or 500 wrapped in an envelope whose ``message`` holds the
            error, and a fresh outer ``job_id`` per request.
        allow_cancel: mount ``POST /v1/toolkit/job/cancel``. True cancels with a plain
            :class:`~jobstatus.JobTracker` on ``store``; pass the host's own tracker so that
            a cancelled job gets its ``failure_ttl`` and ``build_number``.
        max_wait: the longest ``wait`` a request may ask for, in seconds (30).
        max_waiters: how many requests may block a thread while they wait (WSGI, Flask; 8);
            past that, a wait answers at once. Keep it below your server's thread count.
        max_async_waiters: how many requests may wait without a thread (ASGI; 10,000).
        retry_after: the ``Retry-After`` seconds of a job that is not final and has no
            progress to estimate from (2).
        retry_after_bounds: the least and most seconds an estimate from progress says (1, 30).
        cursor_secret: the key that signs list cursors; derived from ``api_keys`` when not
            given. Give it when the keys change often or authentication is off.
        metrics: what the service tells an operator (:mod:`jobstatus.metrics`): True
            records Prometheus metrics and serves them at ``GET /metrics``
            (:class:`~jobstatus.prometheus.PrometheusMetrics`, the ``metrics`` extra); or any
            :class:`~jobstatus.metrics.ServiceMetrics`. The store is then
            :attr:`store` wrapped in a :class:`~jobstatus.metrics.MeasuredStore`.
    """

    def __init__(
        self,
        store: Store,
        *,
        api_keys: ApiKeys,
        token_secrets: Iterable[str] | None = None,
        build_number: str | None = None,
        queue_id: int | None = None,
        queue_length: int | Callable[[], int] = 0,
        job_id_pattern: str = UUID_PATTERN,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        upstream_wire: bool = False,
        allow_cancel: bool | JobTracker = False,
        max_wait: float = DEFAULT_MAX_WAIT,
        max_waiters: int = DEFAULT_MAX_WAITERS,
        max_async_waiters: int = DEFAULT_MAX_ASYNC_WAITERS,
        retry_after: int = DEFAULT_RETRY_AFTER,
        retry_after_bounds: tuple[int, int] = DEFAULT_RETRY_AFTER_BOUNDS,
        cursor_secret: str | bytes | None = None,
        metrics: bool | ServiceMetrics | None = None,
    ) -> None:
        if not (isinstance(max_wait, (int, float)) and 0 < max_wait < math.inf):
            raise ValueError(f"max_wait must be a positive number of seconds, got {max_wait!r}")
        #: The hooks told of every answer, store call, wait and watcher restart (or None).
        self.metrics = _recorder(metrics)
        if self.metrics is not None:
            store = MeasuredStore(store, self.metrics)
        self.store = store
        if not (
            api_keys is None or isinstance(api_keys, (str, bytes, Mapping)) or callable(api_keys)
        ):
            api_keys = list(api_keys)  # read twice: the key ring and the cursor key
        self._keyring = KeyRing(api_keys, token_secrets=token_secrets)
        self.build_number = build_number
        self.queue_id = id(self) if queue_id is None else queue_id
        self._answers = Answers(
            build_number=build_number,
            queue_id=self.queue_id,
            queue_length=queue_length,
            upstream_wire=upstream_wire,
            retry_after=retry_after,
            retry_after_bounds=retry_after_bounds,
        )
        self.job_id_pattern = job_id_pattern
        self.max_body_bytes = max_body_bytes
        self.upstream_wire = upstream_wire
        self.max_wait = float(max_wait)
        self._requests = RequestReader(
            job_id_pattern=job_id_pattern, max_body_bytes=max_body_bytes, max_wait=self.max_wait
        )
        #: How many requests wait now, and the caps.
        self.wait_limits = WaitLimits(max_waiters, max_async_waiters, self.metrics)
        self._cursors = CursorSigner.from_configuration(
            cursor_secret, _cursor_material(api_keys, token_secrets)
        )
        #: How a job is read: conditionally, from the watcher, and while clients wait.
        self._reads = JobReads(store, self._answers, self.wait_limits, self.metrics)
        #: path → route; adapters mount exactly these paths (``JOB_PATH`` with its parameter).
        self.routes: dict[str, Route] = {
            JOB_STATUS_PATH: Route("POST", self.job_status, "read"),
            JOBS_STATUS_PATH: Route("POST", self.jobs_status, "list"),
        }
        # The spec's route, the one polled most, skips a frame: straight to the steps.
        self.routes[JOB_STATUS_PATH] = Route(
            "POST",
            partial(self._answer, JOB_STATUS_PATH, self._requests.job_request, self._job, "read"),
            "read",
        )
        self._canceller: JobTracker | None = None
        if allow_cancel:
            self._canceller = (
                allow_cancel
                if isinstance(allow_cancel, JobTracker)
                else JobTracker(store, build_number=build_number, queue_id=self.queue_id)
            )
            self.routes[JOB_CANCEL_PATH] = Route("POST", self.job_cancel, "cancel")
        self.routes[JOBS_PATH] = Route("GET", self.list_jobs, "list")
        self.routes[JOB_PATH] = Route("GET", self.get_job, "read")
        if self.metrics is not None:
            self._measure(self.metrics)

    def _measure(self, metrics: ServiceMetrics) -> None:
        """Mount the metrics page, if any; tell ``metrics`` of every route's answers."""
        if metrics.path is not None:
            if metrics.path in self.routes or self._job_route(metrics.path) is not None:
                raise ValueError(f"the metrics page cannot be at {metrics.path}: a route is")
            self.routes[metrics.path] = Route("GET", self.metrics_page, "metrics")
        for path, route in self.routes.items():
            self.routes[path] = route._replace(handler=measured(path, route.handler, metrics))

    def __repr__(self) -> str:
        auth = "off" if not self._keyring.enabled else f"{len(self._keyring)} key(s)"
        return f"StatusService({self.store!r}, auth={auth})"

    @property
    def watcher(self) -> Watcher:
        """The watcher of the service's store in this process (shared by its services)."""
        return self._reads.watcher

    # -- dispatch ----------------------------------------------------------------------------

    def route(self, path: str) -> Route | None:
        """The route answering ``path``, or None. ``/v1/toolkit/jobs/<id>`` is the job route
        for any ``<id>`` without a slash, except the paths of the other routes."""
        route = self.routes.get(path)
        return self._job_route(path) if route is None else route

    def _job_route(self, path: str) -> Route | None:
        if path.startswith(JOB_PREFIX):
            job_id = path[len(JOB_PREFIX) :]
            if job_id and "/" not in job_id:
                return self.routes[JOB_PATH]
        return None

    def respond(self, request: Request) -> Reply | Pending:
        """Answer ``request``: a :class:`Reply`, or a :class:`~jobstatus.waiting.Pending`
        for a long-poll, which the adapter waits for. An unknown path is a JSON 404, another
        method a JSON 405 naming the route's method in ``Allow``."""
        route = self.routes.get(request.path) or self._job_route(request.path)
        if route is None:
            return Reply.json(404, {"message": f"Not found: {request.path}"})
        if request.method != route.method:
            return self._refuse_method(request.path, route.method)
        return route.handler(request)

    def _refuse_method(self, path: str, allowed: str) -> Reply:
        started = time.perf_counter()
        reply = Reply.method_not_allowed(allowed)
        if self.metrics is not None:
            route = path if path in self.routes else JOB_PATH
            self.metrics.answered(route, 405, time.perf_counter() - started)
        return reply

    def handle(self, path: str, body: bytes, api_key: str | None) -> Reply:
        """Answer a POST to ``path`` (waiting in this thread, if the request waits)."""
        outcome = self.respond(Request("POST", path, body, api_key))
        return outcome if isinstance(outcome, Reply) else outcome.result()

    # -- the routes --------------------------------------------------------------------------

    def issue_token(self, job_id: str, *, ttl: float = 3600) -> str:
        """A token that lets its bearer (``Authorization: Bearer <token>``) read ``job_id``'s
        status -- POST and GET routes, waits included -- and nothing else, for ``ttl``
        seconds. Needs ``token_secrets``."""
        return self._keyring.issue_token(job_id, ttl=ttl)

    def job_status(self, request: Request) -> Reply | Pending:
        """``POST /v1/toolkit/job/status``: one job's record in an envelope; with ``"wait"``,
        held until the job changes from the version seen on arrival, ends, or the wait ends."""
        return self._answer(JOB_STATUS_PATH, self._requests.job_request, self._job, "read", request)

    def job_cancel(self, request: Request) -> Reply | Pending:
        """``POST /v1/toolkit/job/cancel`` (with ``allow_cancel``): ask a job to stop. A 202
        envelope when a running job was asked to stop, a 200 one when the job is now (or
        already was) final; ``response`` is the record as stored after the call."""
        return self._answer(
            JOB_CANCEL_PATH, self._requests.job_request, self._cancel, "cancel", request
        )

    def jobs_status(self, request: Request) -> Reply | Pending:
        """``POST /v1/toolkit/jobs/status``: job_id → job_status of recently updated jobs."""
        return self._answer(
            JOBS_STATUS_PATH, self._requests.jobs_request, self._jobs, "list", request
        )

    def get_job(self, request: Request) -> Reply | Pending:
        """``GET /v1/toolkit/jobs/{job_id}``: the job's envelope with its ``ETag``; a 304 when
        ``If-None-Match`` matches, held with ``?wait=`` until the job changes."""
        return self._answer(request.path, self._requests.job_query, self._get, "read", request)

    def list_jobs(self, request: Request) -> Reply | Pending:
        """``GET /v1/toolkit/jobs``: a page of recent jobs, newest first."""
        return self._answer(JOBS_PATH, self._requests.list_query, self._list, "list", request)

    def metrics_page(self, request: Request) -> Reply:
        """``GET /metrics`` (where the metrics have a page): the metrics, for any key bound to
        no owner, sent as ``x-api-key`` or as ``Authorization: Bearer <key>`` (what a
        Prometheus ``authorization`` setting sends); for anyone with authentication off."""
        try:
            access = self._keyring.authorize(request.api_key or _bearer(request.authorization))
            if access.owner is not None:
                raise Forbidden("metrics")
            page = self.metrics.exposition() if self.metrics is not None else None
            if page is None:
                return Reply.json(404, {"message": f"Not found: {request.path}"})
        except Exception as exc:
            return self._answers.failure(request.path, exc, None, time.perf_counter())
        return Reply(200, page[1], (("Content-Type", page[0]),))

    # -- the steps ---------------------------------------------------------------------------

    def _answer(
        self,
        endpoint: str,
        read: Callable[[Request], dict[str, Any]],
        respond: Callable[[str, dict[str, Any], Access, float], Reply | Pending],
        scope: str,
        request: Request,
    ) -> Reply | Pending:
        """Authenticate, check the scope, read, respond; every failure becomes its documented
        answer. The scope is checked before the body and the store: a key without it gets a
        403 whatever job it names."""
        started = time.perf_counter()
        payload: dict[str, Any] | None = None
        try:
            access = self._authenticate(request, scope)
            payload = read(request)
            if access.job_id is not None and payload["job_id"] != access.job_id:
                raise Unauthorized()  # a token reads its own job, nothing else
            return respond(endpoint, payload, access, started)
        except Exception as exc:
            request_id = None if payload is None else payload.get("id")
            return self._answers.failure(endpoint, exc, request_id, started)

    def _authenticate(self, request: Request, scope: str) -> Access:
        """The one place that decides who may ask: every route calls it first. A per-job
        token is good for reading its job only (a 401 elsewhere, like any bad credential)."""
        access = self._keyring.authorize(request.api_key, request.authorization)
        if access.job_id is not None and scope != "read":
            raise Unauthorized()
        if scope not in access.scopes:
            raise Forbidden(scope)
        return access

    # -- one job -----------------------------------------------------------------------------

    def _job(
        self, endpoint: str, payload: dict[str, Any], access: Access, started: float
    ) -> Reply | Pending:
        job_id: str = payload["job_id"]
        if "wait" in payload:
            return self._reads.held(
                endpoint, job_id, payload.get("id"), None, payload["wait"], started, access
            )
        record = visible(self.store.get(job_id), access)
        return Reply(
            200,
            self._answers.success_body(
                endpoint, 200, payload.get("id"), job_id, document_json(record), started
            ),
            JSON_HEADERS
            if record.job_status in FINAL_STATES
            else JSON_HEADERS + self._answers.retry_headers(record),
        )

    def _get(
        self, endpoint: str, payload: dict[str, Any], access: Access, started: float
    ) -> Reply | Pending:
        condition = parse_if_none_match(payload["if_none_match"])
        return self._reads.get(
            endpoint, payload["job_id"], condition, payload["wait"], started, access
        )

    def _cancel(
        self, endpoint: str, payload: dict[str, Any], access: Access, started: float
    ) -> Reply:
        job_id: str = payload["job_id"]
        assert self._canceller is not None  # the route is mounted only with one
        if access.owner is not None:
            visible(self.store.get(job_id), access)  # another owner's job is a plain 404
        record = self._canceller.cancel(job_id)
        code = 200 if record.is_final else 202
        body = self._answers.success_body(
            endpoint, code, payload.get("id"), job_id, document_json(record), started
        )
        return Reply(code, body, JSON_HEADERS + self._answers.retry_headers(record))

    # -- lists -------------------------------------------------------------------------------

    def _jobs(
        self, endpoint: str, payload: dict[str, Any], access: Access, started: float
    ) -> Reply:
        return status_reply(
            visible_store(self.store, access), self._answers, endpoint, payload, started
        )

    def _list(
        self, endpoint: str, payload: dict[str, Any], access: Access, started: float
    ) -> Reply:
        store = visible_store(self.store, access)
        return page_reply(store, self._answers, self._cursors, payload, started)


def _recorder(metrics: bool | ServiceMetrics | None) -> ServiceMetrics | None:
    if metrics is True:
        from jobstatus.prometheus import PrometheusMetrics

        return PrometheusMetrics()
    return metrics or None


def _cursor_material(api_keys: ApiKeys, token_secrets: Iterable[str] | None) -> list[bytes] | None:
    """What cursors are signed with when no ``cursor_secret`` is given (UTF-8 bytes): the
    configured keys (a mapping's keys) or, for a host's ``authorize`` callable, the token
    secrets."""
    if api_keys is None:
        return None
    if callable(api_keys) and not isinstance(api_keys, Mapping):
        names: Iterable[str] = token_secrets or ()
    else:
        names = api_keys
    return [str(name).encode("utf-8", "surrogateescape") for name in names]
