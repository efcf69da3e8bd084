"""Database URLs to engines: default drivers, SQLite settings, and the idle ping."""

from __future__ import annotations

import time
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from jobstatus.backends import missing_extra
from jobstatus.errors import ConfigurationError, redact

__all__ = ["PING_AFTER_IDLE", "SQLITE_BUSY_TIMEOUT_MS", "create_sql_engine", "idle_limit"]

#: Seconds a pooled connection may sit idle before it is pinged on checkout (engines made by
#: :func:`create_sql_engine`, whose ``ping_after_idle`` option overrides it;
#: ``pool_pre_ping=True`` pings every checkout instead).
PING_AFTER_IDLE = 1.0
#: How long a SQLite writer waits for another one, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The driver each database gets when the URL names none, and the extra that installs it.
_DEFAULT_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}
_IDLE_SINCE = "jobstatus_idle_since"
# Engine -> its ping_after_idle, for the engines create_sql_engine made.
_IDLE_LIMITS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def create_sql_engine(
    url: str | sa.URL, *, ping_after_idle: float = PING_AFTER_IDLE, **options: Any
) -> Engine:
    """An engine with the store's defaults. Keyword options go to
    ``sqlalchemy.create_engine``.

    - psycopg 3 for ``postgresql://`` and ``postgres://``, PyMySQL for ``mysql://`` and
      ``mariadb://`` (the drivers of the ``postgres`` and ``mysql`` extras);
    - servers: a connection idle for more than ``ping_after_idle`` seconds
      (:data:`PING_AFTER_IDLE`) is pinged before use (``pool_pre_ping=True`` pings every
      checkout instead); a store on the engine also gives back the connections it keeps
      once they sat idle that long;
    - SQLite: WAL mode, a 30 s busy timeout and ``synchronous=NORMAL``; ``sqlite://`` (in
      memory) is one connection shared by the threads of the process.

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
    backend = parsed.get_backend_name()
    memory = backend == "sqlite" and parsed.database in (None, "", ":memory:")
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
    if backend == "sqlite":
        if not memory:
            event.listen(engine, "connect", _sqlite_pragmas)
    elif not options.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle)
    return engine


def idle_limit(engine: Engine) -> float:
    """Seconds a connection of ``engine`` may sit idle before the pool's checkout rules must
    see it again: the engine's ``ping_after_idle``, or :data:`PING_AFTER_IDLE`."""
    return _IDLE_LIMITS.get(engine, PING_AFTER_IDLE)


def _ping_when_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection on checkout when it sat idle longer than ``idle`` seconds.

    That is when the server may have dropped it (a restart, an idle timeout, "server has gone
    away"); a dead one is replaced before use. A connection in steady use is not pinged, so a
    lookup stays one round trip. A connection that died within ``idle`` seconds fails its
    statement, and the store runs the call again on a new one.
    """
    dialect = engine.dialect

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool throws this connection away and checks out another.
                raise sa_exc.DisconnectionError("the server dropped the connection") from exc
            raise

    event.listen(engine, "checkin", on_checkin)
    event.listen(engine, "checkout", on_checkout)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL: readers never wait for the writer; a busy timeout: writers wait their turn;
    ``synchronous=NORMAL``: a commit survives a crash of the process (not of the machine)
    without an fsync per commit."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _missing_driver(url: sa.URL, exc: ImportError) -> ConfigurationError:
    for drivername, module, extra in _DEFAULT_DRIVERS.values():
        if url.drivername == drivername and exc.name == module:
            return missing_extra(extra, exc)
    return ConfigurationError(
        f"{exc.name or 'the driver'} is not installed (the URL names {url.drivername!r})"
    )
