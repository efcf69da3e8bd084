"""Redis store URLs → where to connect and how, without importing redis-py.

Accepted forms (every query option may also be given as a keyword option of ``open_store``)::

    redis://[[user]:password@]host[:port][/db][?prefix=jobstatus&timeout=5…]
    rediss://…                                     TLS; ssl_ca_certs, ssl_certfile, ssl_keyfile,
                                                   ssl_cert_reqs (none|optional|required),
                                                   ssl_check_hostname (true|false)
    unix://[[user]:password@]/path/redis.sock[?db=0&prefix=…]
    redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service_name[/db][?…]

The password is the Redis server's (for Sentinel: the master's); it never appears in
:attr:`RedisTarget.where`, the text errors and ``repr`` use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from jobstatus.backends._timeout import DEFAULT_TIMEOUT as _DEFAULT_TIMEOUT
from jobstatus.backends._timeout import check_timeout
from jobstatus.errors import ConfigurationError, redact

DEFAULT_PREFIX = "jobstatus"
#: Seconds a connect, and a command's answer, may take before the call fails (``timeout``).
DEFAULT_TIMEOUT = _DEFAULT_TIMEOUT
_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379

_FLOAT_OPTIONS = frozenset({"socket_timeout", "socket_connect_timeout"})
_INT_OPTIONS = frozenset({"db", "max_connections"})
_TLS_OPTIONS = frozenset(
    {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname"}
)
#: Options a URL's query (or a keyword) may set, besides ``prefix``.
CONNECTION_OPTIONS = _FLOAT_OPTIONS | _INT_OPTIONS | _TLS_OPTIONS | {"client_name", "timeout"}
_CERT_REQS = frozenset({"none", "optional", "required"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})


@dataclass(frozen=True)
class RedisTarget:
    """Where a Redis store lives, parsed from its URL and keyword options."""

    #: ``tcp``, ``unix`` or ``sentinel``
    kind: str
    #: Keyword arguments for ``redis.Redis`` (for Sentinel: for ``Sentinel.master_for``).
    connection: dict[str, Any]
    prefix: str
    #: The URL without its password, for messages.
    where: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    #: Keyword arguments for the Sentinel connections themselves.
    sentinel_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_redis_url(url: str, options: dict[str, Any]) -> RedisTarget:
    """Parse ``url``; ``options`` (keyword options of ``open_store``) win over its query.

    Raises :class:`~jobstatus.ConfigurationError` naming what is wrong, never the password.
    """
    where = redact(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in _CLUSTER_SCHEMES:
        raise ConfigurationError(
            f"Redis Cluster is not supported ({where!r}): the store's atomic steps span a "
            "record and its indexes, which would all have to live in one hash slot, i.e. on one "
            "shard. Use a standalone primary (with replicas, or Sentinel: redis+sentinel://)."
        )
    if scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        raise ConfigurationError(
            f"not a Redis URL: {where!r} (redis://, rediss://, unix:// or redis+sentinel://)"
        )
    try:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    except ValueError as exc:
        raise ConfigurationError(f"not a Redis URL: {where!r}: {exc}") from None
    settings: dict[str, Any] = {**query, **options}
    prefix = _prefix(settings.pop("prefix", DEFAULT_PREFIX))
    sentinel_kwargs = settings.pop("sentinel_kwargs", None) or {}
    unknown = sorted(set(settings) - CONNECTION_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown Redis store options {unknown} in {where!r}; known: prefix, "
            f"sentinel_kwargs, {', '.join(sorted(CONNECTION_OPTIONS))}"
        )
    timeout = check_timeout(settings.pop("timeout", DEFAULT_TIMEOUT))
    connection = _typed(settings, where)
    if scheme != "rediss" and _TLS_OPTIONS.intersection(connection):
        raise ConfigurationError(f"TLS options need a rediss:// URL, not {where!r}")
    connection.setdefault("socket_timeout", timeout)
    connection.setdefault("socket_connect_timeout", timeout)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        if user:
            connection["username"] = unquote(user)
        if has_password:
            connection["password"] = unquote(password)
    if scheme == "unix":
        if hosts not in ("", "localhost") or not parts.path:
            raise ConfigurationError(
                f"a unix:// URL names a socket path, e.g. unix:///run/redis.sock, not {where!r}"
            )
        connection["unix_socket_path"] = unquote(parts.path)
        return RedisTarget("unix", connection, prefix, where)
    path = [unquote(p) for p in parts.path.split("/") if p]
    if scheme == "redis+sentinel":
        return _sentinel(hosts, path, connection, prefix, where, sentinel_kwargs)
    if sentinel_kwargs:
        raise ConfigurationError("sentinel_kwargs needs a redis+sentinel:// URL")
    host, port = _host_port(hosts or "127.0.0.1", _DEFAULT_PORT, where)
    connection.update(host=host, port=port, db=_db(path, connection, where, 1))
    if scheme == "rediss":
        connection["ssl"] = True
    return RedisTarget("tcp", connection, prefix, where)


def _sentinel(
    hosts: str,
    path: list[str],
    connection: dict[str, Any],
    prefix: str,
    where: str,
    sentinel_kwargs: dict[str, Any],
) -> RedisTarget:
    if not hosts or not path:
        raise ConfigurationError(
            "a Sentinel URL names the sentinels and the service: "
            f"redis+sentinel://host:26379,host2:26379/mymaster/0, not {where!r}"
        )
    sentinels = tuple(_host_port(h, _DEFAULT_SENTINEL_PORT, where) for h in hosts.split(","))
    connection["db"] = _db(path[1:], connection, where, 1)
    kwargs = {
        "socket_timeout": connection["socket_timeout"],
        "socket_connect_timeout": connection["socket_connect_timeout"],
        **sentinel_kwargs,
    }
    return RedisTarget("sentinel", connection, prefix, where, sentinels, path[0], kwargs)


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError("the Redis store's prefix must be a non-empty string")
    return value


def _typed(settings: dict[str, Any], where: str) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for name, value in settings.items():
        try:
            if name in _FLOAT_OPTIONS:
                typed[name] = float(value)
                if not typed[name] > 0:
                    raise ValueError("must be positive")
            elif name in _INT_OPTIONS:
                typed[name] = int(value)
                if typed[name] < 0:
                    raise ValueError("must not be negative")
            elif name == "ssl_check_hostname" and isinstance(value, str):
                typed[name] = _BOOLEANS[value.lower()]
            elif name == "ssl_cert_reqs" and isinstance(value, str):
                if value.lower() not in _CERT_REQS:
                    raise ValueError(f"one of {sorted(_CERT_REQS)}")
                typed[name] = value.lower()
            else:
                typed[name] = value
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"bad value for {name} in {where!r}: {exc}") from None
    return typed


def _host_port(text: str, default: int, where: str) -> tuple[str, int]:
    host, port = text, default
    if text.startswith("["):  # [::1]:6379
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], where)
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = _port(raw, where)
    if not host:
        raise ConfigurationError(f"no host in {where!r}")
    return host, port


def _port(raw: str, where: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigurationError(f"bad port {raw!r} in {where!r}")
    return int(raw)


def _db(path: list[str], connection: dict[str, Any], where: str, most: int) -> int:
    """The database number: from the URL's path, else the ``db`` option, else 0."""
    if len(path) > most:
        raise ConfigurationError(f"unexpected path in {where!r}")
    if path:
        if not path[0].isdigit():
            raise ConfigurationError(f"the database must be a number, not {path[0]!r}")
        if "db" in connection and connection["db"] != int(path[0]):
            raise ConfigurationError(f"two database numbers in {where!r}")
        return int(path[0])
    db: int = connection.pop("db", 0)
    return db
