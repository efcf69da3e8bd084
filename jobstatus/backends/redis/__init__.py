"""``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``: job records in Redis.

Needs the ``redis`` extra (redis-py 5 or later; ``hiredis``, when installed, parses answers
faster). One store keeps every key under its prefix (``jobstatus`` by default), so several apps
share one database::

    P:job:<job_id>     hash: doc (the document's bytes, as the file store writes them),
                       status, updated_at, version; a TTL when the record has expires_at
    P:updated          sorted set of job ids by updated_at: list, purge
    P:status:<status>  sorted set per status by updated_at: status filters
    P:statuses         the statuses in use
    P:expires          sorted set of job ids by expires_at (ms): purge(expired=True)
    P:changes          pub/sub channel: each write publishes the job id (store.changes())

Every write is one Lua script run atomically by Redis: the version check, the final-state rule,
the record and its index entries happen in one step. Redis Cluster is refused (the indexes
would have to share one hash slot: one shard); use a standalone primary, with Sentinel if it
must fail over.
"""

from __future__ import annotations

from typing import Any

from jobstatus.backends.redis._changes import ChangeFeed
from jobstatus.backends.redis._client import Connector
from jobstatus.backends.redis._store import DEFAULT_BATCH_SIZE, DEFAULT_PAGE_SIZE, RedisStore
from jobstatus.backends.redis._url import (
    CONNECTION_OPTIONS,
    DEFAULT_PREFIX,
    DEFAULT_TIMEOUT,
    parse_redis_url,
)
from jobstatus.errors import ConfigurationError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "ChangeFeed",
    "RedisStore",
    "open_redis_store",
]


def open_redis_store(url: str, *, client: Any = None, **options: Any) -> RedisStore:
    """Factory for the Redis schemes (``open_store`` calls it).

    ``client`` hands the store the host's ``redis.Redis`` (the URL then only picks this
    backend, and may still give ``prefix``); ``batch_size`` and ``page_size`` size the script
    calls; other keyword options are those of the URL's query: ``prefix``, ``timeout`` (both
    of the next two, :data:`DEFAULT_TIMEOUT` by default), ``socket_timeout``,
    ``socket_connect_timeout``, the ``ssl_*`` options, ``max_connections``, ``client_name``,
    and ``sentinel_kwargs``.
    """
    if client is None:
        return RedisStore.from_url(url, **options)
    sizes = {k: options.pop(k) for k in ("batch_size", "page_size") if k in options}
    prefix = options.pop("prefix", None)
    refused = sorted(set(options) & (CONNECTION_OPTIONS | {"sentinel_kwargs"}))
    if refused:
        raise ConfigurationError(f"options {refused} cannot apply to a client you pass")
    if prefix is None:
        prefix = parse_redis_url(url, options).prefix
    return RedisStore(Connector(client=client), prefix=prefix, **sizes)
