"""Database URLs to engines: default drivers, timeouts, SQLite settings, and the idle ping."""

from __future__ import annotations

import importlib
import math
import time
import weakref
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from jobstatus.backends import missing_extra
from jobstatus.backends._timeout import DEFAULT_TIMEOUT, check_timeout
from jobstatus.backends.sql import _watchdog
from jobstatus.errors import ConfigurationError, redact

__all__ = [
    "PING_AFTER_IDLE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_sql_engine",
    "idle_limit",
    "timeout_of",
    "watched",
]

#: Seconds a pooled connection may sit idle before it is pinged on checkout (engines made by
#: :func:`create_sql_engine`, whose ``ping_after_idle`` option overrides it;
#: ``pool_pre_ping=True`` pings every checkout instead).
PING_AFTER_IDLE = 1.0
#: How long a SQLite writer waits for another one, in milliseconds, unless ``timeout`` is given.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The driver each database gets when the URL names none, and the extra that installs it.
_DEFAULT_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}
_IDLE_SINCE = "jobstatus_idle_since"
# Engine -> its ping_after_idle, and its timeout, for the engines create_sql_engine made.
_IDLE_LIMITS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_TIMEOUTS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
# Drivers on libpq (no read timeout of their own: the watchdog bounds their reads), and on
# MySQL's protocol with their own connect, read and write timeouts (in seconds; int or float).
_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg2", "psycopg2cffi"})
_MYSQL_DRIVERS: Mapping[str, Any] = {"pymysql": float, "mysqldb": math.ceil}


def create_sql_engine(
    url: str | sa.URL,
    *,
    ping_after_idle: float = PING_AFTER_IDLE,
    timeout: float | str | None = None,
    **options: Any,
) -> Engine:
    """An engine with the store's defaults. Keyword options go to
    ``sqlalchemy.create_engine``.

    - psycopg 3 for ``postgresql://`` and ``postgres://``, PyMySQL for ``mysql://`` and
      ``mariadb://`` (the drivers of the ``postgres`` and ``mysql`` extras);
    - servers: ``timeout`` (seconds, :data:`~jobstatus.backends.DEFAULT_TIMEOUT` by
      default; also ``?timeout=`` in the URL) bounds every connect and every wait for an
      answer, through the driver's options (``connect_timeout``, keepalives,
      ``tcp_user_timeout`` and ``statement_timeout`` on libpq; ``connect_timeout``,
      ``read_timeout`` and ``write_timeout`` on PyMySQL and mysqlclient), each unless the URL's
      query or ``connect_args`` sets it, and the pool's ``pool_timeout`` unless given;
    - servers: a connection idle for more than ``ping_after_idle`` seconds
      (:data:`PING_AFTER_IDLE`) is pinged before use (``pool_pre_ping=True`` pings every
      checkout instead), within ``timeout``; a store on the engine also gives back the
      connections it keeps once they sat idle that long;
    - SQLite: WAL mode, a busy timeout (``timeout``, 30 s by default: how long a writer waits
      for another one) and ``synchronous=NORMAL``; ``sqlite://`` (in memory) is one
      connection shared by the threads of the process.

    Use it to share one pool between the store and the host app.
    """
    if not ping_after_idle >= 0:
        raise ConfigurationError("ping_after_idle must be a number of seconds, 0 or more")
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        # SQLAlchemy's message quotes the URL whole, password included.
        raise ConfigurationError(f"not a database URL: {redact(str(url))!r}") from None
    default = _DEFAULT_DRIVERS.get(parsed.drivername)
    if default is not None:
        parsed = parsed.set(drivername=default[0])
    parsed, seconds = _taken_timeout(parsed, timeout)
    backend = parsed.get_backend_name()
    memory = backend == "sqlite" and parsed.database in (None, "", ":memory:")
    if backend == "sqlite":
        busy_ms: int | None = (
            SQLITE_BUSY_TIMEOUT_MS if seconds is None else math.ceil(seconds * 1000)
        )
        if "timeout" in options.get("connect_args", {}):  # sqlite3's own, in seconds
            busy_ms = None
        limit = DEFAULT_TIMEOUT if busy_ms is None else busy_ms / 1000
    else:
        limit = DEFAULT_TIMEOUT if seconds is None else seconds
        _bound_server_waits(parsed, limit, options)
        pre_ping = bool(options.pop("pool_pre_ping", False))
    if memory:
        options.setdefault("poolclass", StaticPool)
        options["connect_args"] = {"check_same_thread": False, **options.get("connect_args", {})}
    try:
        engine = sa.create_engine(parsed, **options)
    except ImportError as exc:
        raise _missing_driver(parsed, exc) from exc
    except sa_exc.NoSuchModuleError as exc:
        raise ConfigurationError(f"unknown database driver {parsed.drivername!r}") from exc
    except (sa_exc.ArgumentError, TypeError) as exc:
        raise ConfigurationError(f"bad engine options for the SQL store: {exc}") from exc
    _IDLE_LIMITS[engine] = ping_after_idle
    _TIMEOUTS[engine] = limit
    if backend == "sqlite":
        if not memory:
            event.listen(engine, "connect", _sqlite_pragmas(busy_ms))
    else:
        _ping_when_idle(engine, 0.0 if pre_ping else ping_after_idle, limit)
    return engine


def idle_limit(engine: Engine) -> float:
    """Seconds a connection of ``engine`` may sit idle before the pool's checkout rules must
    see it again: the engine's ``ping_after_idle``, or :data:`PING_AFTER_IDLE`."""
    return _IDLE_LIMITS.get(engine, PING_AFTER_IDLE)


def timeout_of(engine: Engine) -> float | None:
    """The ``timeout`` of an engine :func:`create_sql_engine` made; None for another one."""
    return _TIMEOUTS.get(engine)


def watched(engine: Engine) -> bool:
    """The engine's driver waits for an answer without a clock of its own (libpq): the
    store's calls are armed on the watchdog (:mod:`~jobstatus.backends.sql._watchdog`)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver in _LIBPQ_DRIVERS


def _taken_timeout(url: sa.URL, timeout: float | str | None) -> tuple[sa.URL, float | None]:
    """The URL without its ``timeout`` query option (the store's, not the driver's), and the
    timeout: the keyword's, else the URL's, else None."""
    value = url.query.get("timeout")
    if value is None:
        return url, None if timeout is None else check_timeout(timeout)
    if isinstance(value, tuple):
        raise ConfigurationError(f"timeout is given {len(value)} times in the URL")
    return url.difference_update_query(["timeout"]), check_timeout(
        value if timeout is None else timeout
    )


def _bound_server_waits(url: sa.URL, seconds: float, options: dict[str, Any]) -> None:
    """Add to the engine's ``options`` the driver's timeouts (those neither the URL's query nor
    ``connect_args`` set) and the pool's ``pool_timeout`` (unless set, or another pool)."""
    connect_args = options.get("connect_args", {})
    derived = _driver_timeouts(url.get_driver_name(), seconds)
    options["connect_args"] = {
        **{k: v for k, v in derived.items() if k not in url.query},
        **connect_args,
    }
    if "poolclass" not in options:  # a QueuePool: waiting for a free connection too
        options.setdefault("pool_timeout", seconds)


def _driver_timeouts(driver: str, seconds: float) -> dict[str, Any]:
    """The driver's own options that bound a connect and a wait for an answer to ``seconds``.

    libpq counts in whole seconds (``connect_timeout`` at least 2, libpq's floor, which psycopg
    keeps); its keepalives notice a dead peer of an idle connection, ``tcp_user_timeout``
    bytes that are never acknowledged, and ``statement_timeout`` ends on the server a
    statement nobody waits for any more. None of them ends a wait on a server that says
    nothing over a path that still acknowledges: the watchdog does.
    """
    if driver in _LIBPQ_DRIVERS:
        whole = math.ceil(seconds)
        idle = max(1, math.ceil(seconds / 2))
        millis = math.ceil(seconds * 1000)
        options = {
            "connect_timeout": str(max(2, whole)),
            "keepalives": "1",
            "keepalives_idle": str(idle),
            "keepalives_interval": "1",
            "keepalives_count": str(max(1, whole - idle)),
            "tcp_user_timeout": str(millis),
            "options": f"-c statement_timeout={millis}",
        }
        if _libpq_version(driver) < 120000:  # libpq 11 and older refuse an unknown option
            del options["tcp_user_timeout"]
        return options
    convert = _MYSQL_DRIVERS.get(driver)
    if convert is None:
        return {}
    return {name: convert(seconds) for name in ("connect_timeout", "read_timeout", "write_timeout")}


def _libpq_version(driver: str) -> int:
    """The version of the libpq the driver runs on (``120000`` for 12.0); 0 when unknown."""
    try:
        module: Any = importlib.import_module(driver)  # imported by the engine anyway
        if driver == "psycopg":
            return int(module.pq.version())
        return int(module.__libpq_version__)  # psycopg2
    except (ImportError, AttributeError):
        return 0


def _ping_when_idle(engine: Engine, idle: float, timeout: float) -> None:
    """Ping a pooled connection on checkout when it sat idle longer than ``idle`` seconds.

    That is when the server may have dropped it (a restart, an idle timeout, "server has gone
    away"); a dead one is replaced before use. A connection in steady use is not pinged, so a
    lookup stays one round trip. A connection that died within ``idle`` seconds fails its
    statement, and the store runs the call again on a new one.

    A ping that got no answer within ``timeout`` is a :class:`~._watchdog.NoAnswer`, not a
    dropped connection: the pool does not connect again (which would wait as long), and the
    call fails.
    """
    dialect = engine.dialect
    armed = watched(engine)

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        started = time.monotonic()
        if since is None or started - since < idle:
            return
        watch = _watchdog.arm(dbapi_connection, timeout) if armed else None
        try:
            try:
                dialect.do_ping(dbapi_connection)
            finally:
                fired = watch is not None and _watchdog.disarm(watch)
        except dialect.loaded_dbapi.Error as exc:
            if fired or time.monotonic() - started >= timeout:
                raise _watchdog.NoAnswer(f"no answer to a ping within {timeout:g} s") from exc
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool throws this connection away and checks out another.
                raise sa_exc.DisconnectionError("the server dropped the connection") from exc
            raise

    event.listen(engine, "checkin", on_checkin)
    event.listen(engine, "checkout", on_checkout)


def _sqlite_pragmas(busy_ms: int | None) -> Any:
    """The ``connect`` listener of a SQLite file: WAL: readers never wait for the writer; a
    busy timeout (unless ``connect_args`` gave sqlite3's own): writers wait their turn;
    ``synchronous=NORMAL``: a commit survives a crash of the process (not of the machine)
    without an fsync per commit."""
    pragmas = [
        *([] if busy_ms is None else [f"PRAGMA busy_timeout = {busy_ms}"]),
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
    ]

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return on_connect


def _missing_driver(url: sa.URL, exc: ImportError) -> ConfigurationError:
    for drivername, module, extra in _DEFAULT_DRIVERS.values():
        if url.drivername == drivername and exc.name == module:
            return missing_extra(extra, exc)
    return ConfigurationError(
        f"{exc.name or 'the driver'} is not installed (the URL names {url.drivername!r})"
    )
