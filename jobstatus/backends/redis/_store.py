"""The Redis store: the store protocol over the layout and scripts of ``_scripts``."""

from __future__ import annotations

import dataclasses
import heapq
import math
import os
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import redis
from redis.commands.core import Script

from jobstatus.backends.redis import _scripts
from jobstatus.backends.redis._changes import ChangeFeed
from jobstatus.backends.redis._client import ERRORS, Connector, failure
from jobstatus.backends.redis._repair import REPAIR, repair_indexes
from jobstatus.backends.redis._subscription import FeedSubscription
from jobstatus.backends.redis._url import DEFAULT_PREFIX, DEFAULT_TIMEOUT, parse_redis_url
from jobstatus.errors import Conflict, InvalidRequest, JobNotFound, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.repair import DEFAULT_GRACE, RepairReport
from jobstatus.store import (
    ABSENT,
    BaseStore,
    ChangeCallback,
    ExpectedVersion,
    check_expected,
    check_limit,
    check_purge,
    expiry_of,
    normalize_status,
    version_of,
)

#: Records per script call of ``restore`` and ``purge``, and entries per page of ``list`` (a
#: page costs Redis far less per entry than a write): each call keeps Redis busy, its other
#: clients waiting, for a few milliseconds at most.
DEFAULT_BATCH_SIZE = 200
DEFAULT_PAGE_SIZE = 1000
_RECENT_MAX = 1024
_GET_FIELDS = ("doc", "updated_at", "version")
# A page entry of the list script: the score (updated_at), the id, the record.
_Entry = tuple[float, bytes, JobRecord]


class RedisStore(BaseStore):
    """Job records in Redis: ``RedisStore(client, prefix=...)`` with a host's ``redis.Redis``,
    or ``RedisStore.from_url("redis://…")`` (what ``open_store`` calls). Thread-safe; safe
    across ``fork()``."""

    def __init__(
        self,
        client: redis.Redis | Connector,
        *,
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = DEFAULT_BATCH_SIZE,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        if batch_size < 1 or page_size < 1:
            raise ValueError("batch_size and page_size must be at least 1")
        self._connector = client if isinstance(client, Connector) else Connector(client=client)
        self.prefix = prefix
        self.batch_size = batch_size
        self.page_size = page_size
        self.where = self._connector.where
        self._job_prefix = f"{prefix}:job:"
        self._updated_key = f"{prefix}:updated"
        #: The pub/sub channel every write publishes the job id on.
        self.channel = f"{prefix}:changes"
        # Scripts are sent by SHA1 (EVALSHA) and loaded again after a server restart.
        registrar = self._connector.shared()
        self._put = registrar.register_script(_scripts.PUT)
        self._restore = registrar.register_script(_scripts.RESTORE)
        self._delete = registrar.register_script(_scripts.DELETE)
        self._page = registrar.register_script(_scripts.LIST_PAGE)
        self._purge_older = registrar.register_script(_scripts.PURGE_OLDER)
        self._purge_expired = registrar.register_script(_scripts.PURGE_EXPIRED)
        # job_id -> (version, updated_at, record): a record polled again is parsed once. A hit
        # needs the same version (a hash of the stored bytes): never a stale record.
        self._recent: dict[str, tuple[Any, float, JobRecord]] = {}
        self._subscriptions: weakref.WeakSet[FeedSubscription] = weakref.WeakSet()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """A store with a client of its own; ``options`` as in the URL's query."""
        sizes = {k: options.pop(k) for k in ("batch_size", "page_size") if k in options}
        target = parse_redis_url(url, options)
        return cls(Connector(target=target), prefix=target.prefix, **sizes)

    def __repr__(self) -> str:
        return f"RedisStore({self.where!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> redis.Redis:
        """The redis-py client this thread uses (it keeps one connection of the pool)."""
        return self._connector.client()

    def _run(self, script: Script, args: list[Any], what: str) -> Any:
        try:
            return script(args=args, client=self._connector.client())
        except ERRORS as exc:
            raise failure(what, self.where, exc) from exc

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        key = self._job_prefix + check_job_id(job_id)
        try:
            doc, updated_at, version = self._connector.client().hmget(key, _GET_FIELDS)
        except ERRORS as exc:
            raise failure(f"cannot read job {job_id!r}", self.where, exc) from exc
        if doc is None:
            raise JobNotFound(job_id)
        if updated_at is None:
            raise StorageError(f"job {job_id!r} ({key}) is not a job record: no updated_at")
        record = self._decode(job_id, doc, float(updated_at), version)
        if record.expires_at is not None and record.is_expired(time.time()):
            raise JobNotFound(job_id)  # due by this clock, not yet by the server's
        return record

    def _decode(self, job_id: str, doc: Any, updated_at: float, version: Any) -> JobRecord:
        recent = self._recent.get(job_id)
        if recent is not None and recent[0] == version and recent[1] == updated_at:
            return recent[2]
        try:
            record = JobRecord.from_json(doc, updated_at=updated_at, version=_text(version))
        except InvalidRequest as exc:
            raise StorageError(
                f"job {job_id!r} ({self._job_prefix}{job_id}) is not a job record: {exc}"
            ) from exc
        if len(self._recent) >= _RECENT_MAX:
            self._recent.clear()
        self._recent[job_id] = (version, updated_at, record)
        return record

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Newest first (ties: job id descending), read in pages of ``page_size`` entries; a
        record written while a long listing is read may show its new state or be left out."""
        check_limit(limit)
        statuses = normalize_status(status)
        if statuses is None:
            return self._indexed([self._updated_key], since, limit)
        keys = [f"{self.prefix}:status:{s}" for s in sorted(statuses)]
        return self._indexed(keys, since, limit)

    def list_owned(
        self,
        owner: str,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """:meth:`list` for one owner's records, read from the owner's index (``P:owner:<owner>``,
        a zset like ``P:updated``): other owners' records are never read; a status filter is
        applied to the owner's records as they are read."""
        check_limit(limit)
        statuses = normalize_status(status)
        key = f"{self.prefix}:owner:{owner}"
        if statuses is None:
            return self._indexed([key], since, limit)
        return self._indexed([key], since, limit, lambda record: record.job_status in statuses)

    def _indexed(
        self,
        keys: Sequence[str],
        since: float | None,
        limit: int | None,
        keep: Callable[[JobRecord], bool] | None = None,
    ) -> Iterator[JobRecord]:
        """The unexpired records the indexes ``keys`` name with a score from ``since`` (and
        that ``keep`` keeps), newest first across the indexes, at most ``limit``."""
        if limit == 0 or not keys:
            return
        low = "-inf" if since is None else repr(float(since))
        page = self.page_size if limit is None else min(limit, self.page_size)
        scans = [self._scan(key, low, page) for key in keys]
        entries: Iterable[_Entry] = (
            scans[0] if len(scans) == 1 else heapq.merge(*scans, key=_order, reverse=True)
        )
        now = time.time()
        live = (
            record
            for _, _, record in entries
            if (record.expires_at is None or not record.is_expired(now))
            and (keep is None or keep(record))
        )
        yield from live if limit is None else islice(live, limit)

    def _scan(self, key: str, low: str, page: int) -> Iterator[_Entry]:
        """The entries of one index, newest first, page by page: each page starts at the last
        score seen, past the entries at that score already seen."""
        high, last, same = "+inf", math.nan, 0
        while True:
            found = self._run(
                self._page, [self.prefix, key, high, low, same, page], "cannot list jobs"
            )
            more = found[-1]
            for n in range(0, len(found) - 1, 4):
                job_id, score, doc, version = found[n : n + 4]
                if doc is None:
                    continue  # Redis expired it; the script dropped its index entries
                stamp = float(score)
                if stamp == last:
                    same += 1
                else:
                    last, same = stamp, 1
                text_id = _text(job_id)
                yield stamp, _raw(job_id), self._decode(text_id, doc, stamp, version)
            if not more:
                return
            if same:
                high = repr(last)

    # -- writing ---------------------------------------------------------------------------

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        job_id = check_job_id(record.job_id)
        data = record.to_json().encode("utf-8")
        version = version_of(data)
        if expect_version is None:
            mode, expected, token = "n", "", ""
        elif expect_version is ABSENT:
            mode, expected, token = "a", "", os.urandom(8).hex()
        else:
            mode, expected, token = "v", str(expect_version), os.urandom(8).hex()
        stamp = time.time()
        args = [self.prefix, job_id, data, record.job_status, version, repr(stamp)]
        args += [_expiry_ms(record), "1" if force else "0", mode, expected, token]
        args.append(record.owner or "")
        reply = self._run(self._put, args, f"cannot write job {job_id!r}")
        if reply[0] == 1:
            return dataclasses.replace(record, updated_at=stamp, version=version)
        if reply[0] == -1:
            stored = None if reply[1] is None else _text(reply[1])
            check_expected(job_id, stored, expect_version)
            raise Conflict(job_id)  # pragma: no cover - check_expected raised already
        return self._decode(job_id, reply[1], float(reply[3]), reply[2])

    def restore(self, records: Iterable[JobRecord]) -> int:
        """Write records exactly as given (one script call per ``batch_size`` records, each
        call atomic); each keeps its ``updated_at`` (now, where it is None)."""
        count = 0
        iterator = iter(records)
        while batch := list(islice(iterator, self.batch_size)):
            args: list[Any] = [self.prefix]
            for record in batch:
                job_id = check_job_id(record.job_id)
                data = record.to_json().encode("utf-8")
                stamp = time.time() if record.updated_at is None else float(record.updated_at)
                args += [job_id, data, record.job_status, version_of(data), repr(stamp)]
                args += [_expiry_ms(record), record.owner or ""]
            self._run(self._restore, args, "cannot restore jobs")
            count += len(batch)
        return count

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        deleted = self._run(self._delete, [self.prefix, job_id], f"cannot delete job {job_id!r}")
        return bool(deleted)

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        """Delete in batches of ``batch_size`` records, one atomic script call each, so that
        purging a million records never blocks Redis for long."""
        check_purge(older_than, expired)
        statuses = normalize_status(status)
        if statuses is not None and not statuses:
            return 0
        total = 0
        if older_than is not None:
            bound = "(" + repr(float(older_than))
            keys = (
                [self._updated_key]
                if statuses is None
                else [f"{self.prefix}:status:{s}" for s in sorted(statuses)]
            )
            for key in keys:
                while True:
                    args = [self.prefix, key, bound, self.batch_size]
                    removed = self._run(self._purge_older, args, "cannot purge jobs")
                    total += removed
                    if removed < self.batch_size:
                        break
        if expired:
            now_ms = math.floor(time.time() * 1000)
            skipped = 0
            while True:
                args = [self.prefix, now_ms, skipped, self.batch_size, *sorted(statuses or ())]
                removed, looked = self._run(self._purge_expired, args, "cannot purge jobs")
                total += removed
                skipped += looked - removed
                if looked < self.batch_size:
                    break
        return total

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Reconcile the indexes with the records: drop the entries of records Redis expired,
        index records an index lacks. Every write is one script, so a killed writer leaves
        nothing half-done and ``grace`` is not needed (see :mod:`jobstatus.repair`)."""
        script = self._connector.shared().register_script(REPAIR)
        return repair_indexes(self._connector, script, self.prefix, self.where, dry_run=dry_run)

    # -- the change feed, and the rest -----------------------------------------------------

    def changes(self) -> ChangeFeed:
        """A :class:`ChangeFeed` of the ids this store's writers change (on any process); it
        waits for Redis to confirm the subscription as long as a command's answer."""
        client = self._connector.shared()
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        return ChangeFeed(client, self.channel, self.where, timeout=timeout or DEFAULT_TIMEOUT)

    def subscribe(self, callback: ChangeCallback) -> FeedSubscription:
        """Change notification (see :mod:`jobstatus.store`): ``callback`` gets the id of every
        job any process changes through this Redis and prefix, from a thread that reads the
        change feed; ``callback(None)`` after the feed reconnected."""
        subscription = FeedSubscription(self.changes, callback)
        self._subscriptions.add(subscription)
        return subscription

    def close(self) -> None:
        """Close the subscriptions, then the connections of a client the store built; a host's
        client stays open."""
        for subscription in list(self._subscriptions):
            subscription.close()
        self._connector.close()


def _order(entry: _Entry) -> tuple[float, bytes]:
    return entry[0], entry[1]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _expiry_ms(record: JobRecord) -> str:
    """``expires_at`` in epoch milliseconds (documents keep milliseconds), or ''."""
    seconds = expiry_of(record)
    return "" if seconds is None else str(round(seconds * 1000))
