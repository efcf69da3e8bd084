"""``sqlite:///jobs.db``, ``postgresql+psycopg://…``, ``mysql+pymysql://…``: one SQL table.

SQLAlchemy 2 Core on SQLite, PostgreSQL and MariaDB/MySQL. A record is one row of
``jobstatus_jobs`` (the name is configurable)::

    job_id      VARCHAR(255) primary key, compared byte for byte ('a', 'A', 'a ' are three ids)
    job_status  VARCHAR(255), indexed with updated_at and job_id
    document    the job document as JSON text, exactly as written
    updated_at  DOUBLE: seconds since the epoch (microseconds and finer), indexed
    version     INTEGER: 1 on insert, +1 on every write that changes the row

- ``put`` is one upsert statement (``INSERT … ON CONFLICT DO UPDATE … WHERE`` on PostgreSQL
  and SQLite, ``INSERT … ON DUPLICATE KEY UPDATE col = CASE …`` on MariaDB/MySQL) in one
  transaction: the final-state rule is checked by the database, never by a read before a write.
- The document is text, not ``JSONB``/``JSON``: PostgreSQL's ``JSONB`` turns ``1e300`` into a
  301-digit integer, drops ``-0.0``'s sign and reorders keys, and MySQL's ``JSON`` reorders keys,
  so neither gives back the document it was given.
- ``get``, ``put`` and ``restore`` run their statement, compiled once by SQLAlchemy, on a
  DB-API connection of the engine's pool: SQLAlchemy's per-statement machinery costs more than
  the statement itself on SQLite or a nearby server (``restore`` hands a batch to the driver's
  ``executemany``). Everything else goes through SQLAlchemy Core.
- ``get``, ``put`` and ``restore`` keep the connections they used checked out of the pool
  between calls (up to one fewer than the pool's size), since a checkout and a checkin cost
  several times a SQLite lookup. A kept connection goes back to the pool once it sat idle
  :data:`PING_AFTER_IDLE` seconds or was kept :data:`KEEP_FOR` seconds, so the pool's own rules
  (pre-ping, recycle, events) still apply to it.
- A pooled connection idle for more than :data:`PING_AFTER_IDLE` seconds is pinged before use;
  a connection the server dropped anyway is replaced and the call run once more. Pools and
  kept connections are never shared across ``fork()``.
- Every driver failure becomes a :class:`~jobstatus.StorageError` naming the failure and the
  database, with the password hidden.

:data:`metadata` and :data:`jobs_table` (or :func:`make_table`) are for Alembic users; without
Alembic the table is created on first use.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from itertools import islice
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import Pool, QueuePool, StaticPool

from jobstatus.backends import missing_extra
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, StorageError, redact
from jobstatus.record import FINAL_STATES, JobRecord, check_job_id
from jobstatus.store import BaseStore, normalize_status

__all__ = [
    "DEFAULT_TABLE_NAME",
    "BinaryString",
    "KEEP_FOR",
    "PING_AFTER_IDLE",
    "SQLStore",
    "create_sql_engine",
    "jobs_table",
    "make_table",
    "metadata",
    "open_sql_store",
]

T = TypeVar("T")

DEFAULT_TABLE_NAME = "jobstatus_jobs"
#: The longest ``job_id`` and ``job_status`` the table holds, in characters.
KEY_LENGTH = 255
#: Rows per statement for ``restore``, per ``DELETE`` for ``purge``, per page for ``list``.
DEFAULT_BATCH_SIZE = 1000
#: How long a SQLite writer waits for another one, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Seconds a pooled connection may sit idle before it is pinged on checkout (engines the store
#: creates; ``pool_pre_ping=True`` pings every time instead).
PING_AFTER_IDLE = 1.0
#: Seconds a connection ``get``, ``put`` and ``restore`` keep checked out of the pool, at most,
#: before it goes back there (and meets the pool's pre-ping and recycle rules again).
KEEP_FOR = 30.0

# The driver each database gets when the URL names none, and the extra that installs it.
_DEFAULT_DRIVERS = {
    "postgresql": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mariadb+pymysql", "pymysql", "mysql"),
}
_MYSQL = frozenset({"mysql", "mariadb"})
# Written into the SQL as literals: an expanding IN parameter costs a re-render per statement.
_FINAL: list[sa.ColumnElement[str]] = [
    sa.literal_column(f"'{state}'") for state in sorted(FINAL_STATES)
]
# Errors after which the database rolled the whole transaction back: it may simply run again.
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
_MYSQL_RETRYABLE = frozenset({1213, 1205})  # deadlock, lock wait timeout
_ATTEMPTS = 3
_RECENT_MAX = 1024
_IDLE_SINCE = "jobstatus_idle_since"
# Kept connections a forked child inherited: never used, never closed (closing, or a rollback
# as the pool gives one back, would speak on the parent's socket), so never garbage-collected.
_INHERITED: list[Any] = []


# -- the table ----------------------------------------------------------------------------------


class BinaryString(sa.types.TypeDecorator[str]):
    """``VARCHAR(n)`` compared byte for byte on every database.

    PostgreSQL and SQLite compare strings exactly already; MariaDB and MySQL get a binary
    *no-pad* collation (``utf8mb4_nopad_bin``, ``utf8mb4_0900_bin`` on MySQL 8), since their
    default ones find ``'a' = 'A'`` and ``'a' = 'a '``.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(
                mysql.VARCHAR(self.length, charset="utf8mb4", collation=_binary_collation(dialect))
            )
        return dialect.type_descriptor(sa.String(self.length))


def _binary_collation(dialect: Dialect) -> str:
    if getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb":
        return "utf8mb4_nopad_bin"
    version = dialect.server_version_info or ()
    return "utf8mb4_0900_bin" if version >= (8,) else "utf8mb4_bin"


_DOCUMENT = sa.Text().with_variant(
    mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def make_table(
    metadata: sa.MetaData, name: str = DEFAULT_TABLE_NAME, *, schema: str | None = None
) -> sa.Table:
    """The jobs table, defined in ``metadata`` (for Alembic: ``target_metadata``)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("job_id", BinaryString(KEY_LENGTH), primary_key=True),
        sa.Column("job_status", BinaryString(KEY_LENGTH), nullable=False),
        sa.Column("document", _DOCUMENT, nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Index(f"ix_{name}_updated", "updated_at", "job_id"),
        sa.Index(f"ix_{name}_status", "job_status", "updated_at", "job_id"),
        schema=schema,
    )


#: The default ``MetaData``, holding :data:`jobs_table` alone.
metadata = sa.MetaData()
#: The table under its default name, ``jobstatus_jobs``.
jobs_table = make_table(metadata)


# -- the statements -----------------------------------------------------------------------------


def _upsert(table: sa.Table, dialect: str, *, guarded: bool, returning: bool = True) -> sa.Insert:
    """One statement that inserts or replaces a row.

    ``guarded``: the row stays as it is when it holds a final state (the caller guards only
    a record that is not final). On PostgreSQL and SQLite the statement returns the stored
    ``updated_at`` (``returning``), and no row when it kept the stored one; on MariaDB/MySQL
    the caller reads the row back in the same transaction.
    """
    c = table.c
    # A literal, not a parameter: PyMySQL's executemany cannot take parameters after VALUES.
    bumped = c.version + sa.literal_column("1")
    if dialect in _MYSQL:
        stmt = mysql.insert(table)
        new = stmt.inserted
        kept = c.job_status.in_(_FINAL)

        def pick(name: str) -> sa.ColumnElement[Any]:
            return sa.case((kept, c[name]), else_=new[name]) if guarded else new[name]

        bump = sa.case((kept, c.version), else_=bumped) if guarded else bumped
        # MySQL assigns left to right and later expressions see earlier assignments:
        # job_status goes last so that `kept` reads the stored status everywhere.
        return stmt.on_duplicate_key_update(
            [
                ("document", pick("document")),
                ("updated_at", pick("updated_at")),
                ("version", bump),
                ("job_status", pick("job_status")),
            ]
        )
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt_ = insert(table)
    new_ = stmt_.excluded
    upsert = stmt_.on_conflict_do_update(
        index_elements=[c.job_id],
        set_={
            "job_status": new_.job_status,
            "document": new_.document,
            "updated_at": new_.updated_at,
            "version": bumped,
        },
        where=c.job_status.not_in(_FINAL) if guarded else None,
    )
    return upsert.returning(c.updated_at) if returning else upsert


class _DriverStatement(NamedTuple):
    """A statement compiled once for one dialect, to run on a DB-API cursor."""

    sql: str
    order: tuple[str, ...] | None  # parameter names in order, for positional paramstyles

    @classmethod
    def compile(cls, statement: sa.ClauseElement, dialect: Dialect) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order)

    def run(self, cursor: Any, values: dict[str, Any]) -> Any:
        """Execute with ``values`` (already of the driver's types) and return the first row."""
        order = self.order
        cursor.execute(self.sql, values if order is None else tuple(map(values.__getitem__, order)))
        return cursor.fetchone() if cursor.description else None

    def run_many(self, cursor: Any, rows: Iterable[dict[str, Any]]) -> None:
        """Execute once per row, in one ``executemany`` (batched by the driver)."""
        order = self.order
        if order is None:
            cursor.executemany(self.sql, list(rows))
        else:
            cursor.executemany(self.sql, [tuple(map(row.__getitem__, order)) for row in rows])


class _Statements(NamedTuple):
    select_one: _DriverStatement
    put_plain: _DriverStatement
    put_guarded: _DriverStatement
    restore_rows: _DriverStatement


class _Kept:
    """A pool connection the store keeps checked out, and when."""

    __slots__ = ("connection", "pool", "since", "used")

    def __init__(self, connection: Any, pool: Pool, now: float) -> None:
        self.connection = connection  # SQLAlchemy's PoolProxiedConnection
        self.pool = pool  # the engine's pool it came from
        self.since = now  # time.monotonic() when it left the pool
        self.used = now  # time.monotonic() when its last call began


class _Keeper:
    """The pool connections ``get``, ``put`` and ``restore`` keep checked out between calls.

    Checking a connection out of SQLAlchemy's pool and back in costs about 40 µs (events, a
    lock and a condition, a weakref, a rollback on return): several times a SQLite lookup. A
    kept one is a deque pop away. At most ``size`` connections are kept, one fewer than the
    pool's size, so the host app and the store's other calls always find one in the pool.

    Kept connections are closed when the engine is disposed of and given back when the store
    is closed or garbage-collected; a forked child never touches its parent's.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        pool = engine.pool
        # Only a QueuePool's connections are worth keeping: StaticPool has one connection,
        # NullPool users asked for none to be kept.
        self.size = pool.size() - 1 if type(pool) is QueuePool else 0
        self.idle: deque[_Kept] = deque()
        self.pid = os.getpid()  # the process the kept connections belong to

    def take(self) -> _Kept:
        """A kept connection, or one fresh from the pool."""
        now = time.monotonic()
        while True:
            try:
                kept = self.idle.pop()
            except IndexError:
                pool = self.engine.pool
                return _Kept(self.engine.raw_connection(), pool, now)
            if now - kept.used < PING_AFTER_IDLE and now - kept.since < KEEP_FOR:
                kept.used = now
                return kept
            kept.connection.close()  # back to the pool, whose checkout rules apply to it

    def give(self, kept: _Kept) -> None:
        """Keep a connection after a call that went well (its transaction is over)."""
        if kept.pool is not self.engine.pool:  # disposed of during the call: close it
            kept.connection.invalidate()
            kept.connection.close()
        elif len(self.idle) < self.size:
            self.idle.append(kept)
        else:
            kept.connection.close()

    def release(self, *, invalidate: bool = False) -> None:
        """Give every kept connection back to the pool, or close it for good (``invalidate``:
        the server dropped one, or the engine was disposed of)."""
        if os.getpid() != self.pid:
            self.abandon()
            return
        while self.idle:
            try:
                connection = self.idle.pop().connection
            except IndexError:  # another thread took the last one
                return
            if invalidate:
                connection.invalidate()
            connection.close()

    def abandon(self) -> None:
        """After a fork: forget the parent's connections without a word on their sockets."""
        _INHERITED.extend(self.idle)
        self.idle = deque()
        self.pid = os.getpid()


def _on_dispose(keeper: _Keeper) -> Callable[[Engine], None]:
    """A listener for ``Engine.dispose()``: the pool is gone, so the kept connections go too.
    It holds ``keeper`` weakly, so that a host's engine does not keep a dropped store alive."""
    ref = weakref.ref(keeper)

    def on_dispose(engine: Engine) -> None:
        keeper = ref()
        if keeper is not None:
            keeper.release(invalidate=True)

    return on_dispose


# -- the store ----------------------------------------------------------------------------------


class SQLStore(BaseStore):
    """Job records as rows of one table, through a SQLAlchemy :class:`~sqlalchemy.Engine`.

    Args:
        engine: the engine to use; the host app's own, or one from :func:`create_sql_engine`.
        table: the jobs table (:func:`make_table`); :data:`jobs_table` by default.
        create_table: create the table (and its indexes) on first use if it is missing.
        batch_size: rows per statement for ``restore``, per ``DELETE`` for ``purge`` and per
            page for ``list``.
        dispose_engine: dispose of the engine on ``close()`` (for an engine the store made).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: sa.Table | None = None,
        create_table: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        dispose_engine: bool = False,
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql", *_MYSQL):
            raise ConfigurationError(
                f"the SQL store supports SQLite, PostgreSQL and MariaDB/MySQL, not {dialect}"
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.engine = engine
        self.table = jobs_table if table is None else table
        self.batch_size = batch_size
        self._dialect = dialect
        self._create_table = create_table
        self._dispose_engine = dispose_engine
        self._where = engine.url.render_as_string(hide_password=True)
        self._keeper = _Keeper(engine)
        self._on_dispose = _on_dispose(self._keeper)
        event.listen(engine, "engine_disposed", self._on_dispose)
        weakref.finalize(self, self._keeper.release)  # a store dropped unclosed gives them back
        self._driver_error: Any = engine.dialect.loaded_dbapi.Error
        self._table_ready = False
        self._ddl_lock = threading.Lock()
        # An in-memory SQLite database is one connection: take turns on it.
        self._serial: AbstractContextManager[Any] = (
            threading.RLock() if isinstance(engine.pool, StaticPool) else nullcontext()
        )
        # PostgreSQL reads run in autocommit: no BEGIN and ROLLBACK round trips around a SELECT.
        self._autocommit_reads = dialect == "postgresql"
        self._returning = dialect not in _MYSQL
        self._statements: _Statements | None = None
        # job_id -> (document, updated_at, record): a record polled again and again is parsed
        # once. A hit needs the very same text and stamp, so it can never be stale.
        self._recent: dict[str, tuple[str, float, JobRecord]] = {}
        c = self.table.c
        self._delete_one = sa.delete(self.table).where(c.job_id == sa.bindparam("job_id"))

    def __repr__(self) -> str:
        return f"SQLStore({self._where!r}, table={self.table.fullname!r})"

    # -- connections -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Before any statement: a fresh pool after a fork, and the table."""
        if self._keeper.pid != os.getpid():  # forked: the parent's connections are not ours
            self._keeper.abandon()
            self.engine.dispose(close=False)
        if not self._table_ready and self._create_table:
            self._create_table_once()

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        self._prepare()
        with self._serial:
            if write:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self.engine.connect() as conn:
                    yield conn

    def _run(self, action: str, work: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``work`` on a SQLAlchemy connection (in a transaction for a write).

        A read is run once more on a connection the server dropped; a write when the database
        rolled it back whole (a deadlock), since nothing of it was kept.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._connection(write=write) as conn:
                    return work(conn)
            except sa_exc.DBAPIError as exc:
                if write:
                    again = _rolled_back_whole(exc.orig)
                else:
                    again = exc.connection_invalidated and attempt == 1
                if not (again and attempt < _ATTEMPTS):
                    raise self._failure(action, exc) from exc
            except sa_exc.SQLAlchemyError as exc:
                raise self._failure(action, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, job_id: str | None, work: Callable[[Any, _Statements], T], *, write: bool) -> T:
        """Run ``work(cursor, statements)`` on a kept DB-API connection (:class:`_Keeper`),
        committing a write: the fast path of ``get`` and ``put`` of ``job_id``, and of
        ``restore`` (no ``job_id``).

        On a connection the server dropped the call runs once more on a new one (``put`` is an
        upsert: running it twice leaves what running it once does); on a deadlock, again.
        """
        driver_error = self._driver_error
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._prepare()
                with self._serial:
                    kept = self._keeper.take()
                    pooled = kept.connection
                    try:
                        result = self._on(pooled.dbapi_connection, work, write)
                    except driver_error as exc:
                        dropped = self.engine.dialect.is_disconnect(
                            exc, pooled.dbapi_connection, None
                        )
                        if dropped:  # the server went away: its other connections did too
                            self._keeper.release(invalidate=True)
                            # As SQLAlchemy does on a disconnect: every connection of the pool
                            # older than now is replaced on its next checkout.
                            self.engine.pool._invalidate(pooled, exc)
                        pooled.close()
                        again = (dropped and attempt == 1) or _rolled_back_whole(exc)
                        if not (again and attempt < _ATTEMPTS):
                            raise self._failure_on(job_id, write, exc) from exc
                    except BaseException:
                        pooled.close()
                        raise
                    else:
                        self._keeper.give(kept)
                        return result
            # raw_connection() raises the driver's own error when it cannot connect.
            except (sa_exc.SQLAlchemyError, driver_error) as exc:
                raise self._failure_on(job_id, write, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _on(self, dbapi: Any, work: Callable[[Any, _Statements], T], write: bool) -> T:
        """One call's statements on ``dbapi``, its transaction over on return.

        Written with bare ``try`` blocks: ``contextlib.suppress`` costs more than a tenth of a
        SQLite lookup.
        """
        autocommit = self._autocommit_reads and not write
        if autocommit:
            dbapi.autocommit = True
        cursor = dbapi.cursor()
        try:
            result = work(cursor, self._statements or self._compile())
            if write:
                dbapi.commit()
            elif not autocommit:  # end the read's transaction (MySQL opens one), as a checkin would
                dbapi.rollback()
        except BaseException:
            if not autocommit:
                try:  # noqa: SIM105
                    dbapi.rollback()
                except Exception:  # the error being raised says more
                    pass
            raise
        finally:
            try:  # noqa: SIM105
                cursor.close()
            except Exception:  # a broken connection: the caller deals with it
                pass
            if autocommit:
                try:  # noqa: SIM105
                    dbapi.autocommit = False
                except Exception:
                    pass
        return result

    def _compile(self) -> _Statements:
        """Compile the fast-path statements, once the dialect has met its server (MySQL 8
        spells ``ON DUPLICATE KEY UPDATE`` differently from MariaDB)."""
        dialect, table, c = self.engine.dialect, self.table, self.table.c
        select_one = sa.select(c.document, c.updated_at).where(c.job_id == sa.bindparam("job_id"))
        statements = _Statements(
            _DriverStatement.compile(select_one, dialect),
            _DriverStatement.compile(_upsert(table, self._dialect, guarded=False), dialect),
            _DriverStatement.compile(_upsert(table, self._dialect, guarded=True), dialect),
            # restore needs no rows back, so that executemany can batch it
            _DriverStatement.compile(
                _upsert(table, self._dialect, guarded=False, returning=False), dialect
            ),
        )
        self._statements = statements
        return statements

    def _failure(self, action: str, exc: BaseException) -> StorageError:
        return StorageError(f"{action} ({self._where}): {_describe(exc)}")

    def _failure_on(self, job_id: str | None, write: bool, exc: BaseException) -> StorageError:
        if job_id is None:
            return self._failure("cannot restore jobs", exc)
        return self._failure(f"cannot {'write' if write else 'read'} job {job_id!r}", exc)

    def _create_table_once(self) -> None:
        """Create the table on first use; another process creating it at the same time is fine.

        Raises the driver's error (translated by the caller) if the table is not there after.
        """
        with self._ddl_lock:
            if self._table_ready:
                return
            for pause in (0.05, 0.1, 0.2, 0.4, None):
                try:
                    with self._serial, self.engine.begin() as conn:
                        self.table.create(conn, checkfirst=True)
                    break
                except sa_exc.SQLAlchemyError:
                    # Lost a race: the other process's CREATE won ("already exists", or on
                    # PostgreSQL a unique violation in pg_type), or is still running (SQLite's
                    # "database is locked"). Fine once the table is there.
                    with self._serial, self.engine.connect() as conn:
                        if sa.inspect(conn).has_table(self.table.name, schema=self.table.schema):
                            break
                    if pause is None:
                        raise
                    time.sleep(pause)
            self._table_ready = True

    # -- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        values = {"job_id": job_id}
        row = self._call(
            job_id,
            lambda cursor, s: s.select_one.run(cursor, values),
            write=False,
        )
        if row is None:
            raise JobNotFound(job_id)
        return self._decode(job_id, row[0], row[1])

    def _decode(self, job_id: str, document: str, updated_at: float) -> JobRecord:
        recent = self._recent.get(job_id)
        if recent is not None and recent[1] == updated_at and recent[0] == document:
            return recent[2]
        try:
            record = JobRecord.from_json(document, updated_at=float(updated_at))
        except InvalidRequest as exc:
            raise StorageError(
                f"job {job_id!r} in table {self.table.name} is not a job record: {exc}"
            ) from exc
        if len(self._recent) >= _RECENT_MAX:
            self._recent.clear()
        self._recent[job_id] = (document, updated_at, record)
        return record

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Newest first, read in pages of ``batch_size`` rows (no connection is held between
        pages): a record written while a long listing is read may show its new state or be
        left out."""
        statuses = normalize_status(status)
        if statuses is not None and not statuses:
            return
        left = limit
        after: tuple[float, str] | None = None
        while left is None or left > 0:
            page = self.batch_size if left is None else min(left, self.batch_size)
            query = self._list_query(since=since, statuses=statuses, limit=page, after=after)
            rows = self._run("cannot list jobs", _fetch_all(query), write=False)
            for job_id, document, updated_at in rows:
                yield self._decode(job_id, document, updated_at)
            if len(rows) < page:
                return
            if left is not None:
                left -= len(rows)
            after = (rows[-1][2], rows[-1][0])

    def _list_query(
        self,
        *,
        since: float | None = None,
        statuses: Collection[str] | None = None,
        limit: int | None = None,
        after: tuple[float, str] | None = None,
    ) -> sa.Select[Any]:
        """The query behind :meth:`list`: a range scan of ``(updated_at, job_id)`` backwards, or
        of ``(job_status, updated_at, job_id)`` when filtered by status. ``after`` is the last
        row of the previous page."""
        c = self.table.c
        query = sa.select(c.job_id, c.document, c.updated_at)
        if since is not None:
            query = query.where(c.updated_at >= float(since))
        if statuses is not None:
            query = query.where(c.job_status.in_(sorted(statuses)))
        if after is not None:
            stamp, last_id = after
            query = query.where(
                c.updated_at <= stamp, sa.or_(c.updated_at < stamp, c.job_id < last_id)
            )
        return query.order_by(c.updated_at.desc(), c.job_id.desc()).limit(limit)

    # -- writing ---------------------------------------------------------------------------------

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        row = self._row(record, None)
        # Only a record that is not final can be refused, by a stored final one: that check is
        # in the statement, where no other writer can come between.
        guarded = not force and not record.is_final
        job_id = record.job_id

        def write(cursor: Any, s: _Statements) -> tuple[str, float]:
            written = (s.put_guarded if guarded else s.put_plain).run(cursor, row)
            if written is not None:  # RETURNING updated_at: the row was written
                return row["document"], written[0]
            if not self._returning and not guarded:
                return row["document"], row["updated_at"]
            # Kept as it was; the statement locked the row until this transaction ends.
            stored = s.select_one.run(cursor, {"job_id": job_id})
            return stored[0], stored[1]

        document, stamp = self._call(job_id, write, write=True)
        return self._decode(job_id, document, stamp)

    def _row(self, record: JobRecord, updated_at: float | None) -> dict[str, Any]:
        check_job_id(record.job_id)
        if len(record.job_status) > KEY_LENGTH:
            raise InvalidRequest(
                f"job_status is longer than {KEY_LENGTH} characters (the SQL store's limit)"
            )
        return {
            "job_id": record.job_id,
            "job_status": record.job_status,
            "document": _storable_json(record),
            "updated_at": time.time() if updated_at is None else float(updated_at),
            "version": 1,
        }

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        iterator = iter(records)
        while batch := list(islice(iterator, self.batch_size)):
            # One row per id: the last one wins, as if they were written in turn.
            rows = {r.job_id: self._row(r, r.updated_at) for r in batch}.values()
            self._call(None, partial(_write_rows, rows), write=True)
            count += len(batch)
        return count

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        deleted = self._run(
            f"cannot delete job {job_id!r}",
            lambda conn: conn.execute(self._delete_one, {"job_id": job_id}).rowcount,
            write=True,
        )
        return bool(deleted)

    def purge(self, *, older_than: float, status: str | Collection[str] | None = None) -> int:
        """Delete in batches of ``batch_size`` rows, one transaction each, so that purging a
        million rows never holds one long lock."""
        statuses = normalize_status(status)
        if statuses is not None and not statuses:
            return 0
        c = self.table.c
        doomed = c.updated_at < float(older_than)
        if statuses is not None:
            doomed = sa.and_(doomed, c.job_status.in_(sorted(statuses)))
        statement: sa.Delete
        if self._dialect in _MYSQL:
            statement = (
                sa.delete(self.table)
                .where(doomed)
                .with_dialect_options(mysql_limit=self.batch_size)
            )
        else:  # the outer condition is checked again on rows a writer renewed meanwhile
            batch = sa.select(c.job_id).where(doomed).limit(self.batch_size)
            statement = sa.delete(self.table).where(c.job_id.in_(batch), doomed)
        total = 0
        while True:
            deleted: int = self._run(
                "cannot purge jobs", lambda conn: conn.execute(statement).rowcount, write=True
            )
            total += deleted
            if deleted < self.batch_size:
                return total

    def close(self) -> None:
        """Give the kept connections back to the pool; dispose of the engine's pool if the
        store made the engine (a host's engine is left as it is)."""
        self._keeper.release()
        if event.contains(self.engine, "engine_disposed", self._on_dispose):
            event.remove(self.engine, "engine_disposed", self._on_dispose)
        if self._dispose_engine:
            self.engine.dispose()


_dump_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _storable_json(record: JobRecord) -> str:
    """The document as compact JSON text, refused exactly when :meth:`JobRecord.to_json` refuses
    it: in any doubt (an error, an escaped NUL) ``to_json`` decides and raises. Compact text is
    smaller than ``to_json``'s indented one and made by the C encoder, several times faster."""
    try:
        text = _dump_compact(record.to_dict())
        text.encode("utf-8")  # a lone surrogate cannot be stored
    except (TypeError, ValueError, RecursionError):
        record.to_json()  # raises InvalidRequest, saying what is wrong
        raise
    if "\\u0000" in text:  # a NUL character, or a backslash followed by "u0000"
        record.to_json()
    return text


def _fetch_all(query: sa.Select[Any]) -> Callable[[Connection], Sequence[Any]]:
    def fetch(conn: Connection) -> Sequence[Any]:
        return conn.execute(query).all()

    return fetch


def _write_rows(rows: Iterable[dict[str, Any]], cursor: Any, statements: _Statements) -> None:
    statements.restore_rows.run_many(cursor, rows)


def _rolled_back_whole(error: BaseException | None) -> bool:
    """A deadlock or serialization failure: the database undid the whole transaction."""
    if getattr(error, "sqlstate", None) in _PG_RETRYABLE:
        return True
    args: tuple[Any, ...] = getattr(error, "args", ())
    return bool(args) and args[0] in _MYSQL_RETRYABLE


def _describe(exc: BaseException) -> str:
    """One line naming the failure: the driver's message without SQLAlchemy's decorations."""
    cause: BaseException = exc
    if isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, BaseException):
        cause = exc.orig
    args = cause.args
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        text = f"{args[1]} (error {args[0]})"
    elif isinstance(cause, sa_exc.SQLAlchemyError) and args:
        text = str(args[0])
    else:
        text = str(cause)
    text = " ".join(text.split())
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


# -- opening --------------------------------------------------------------------------------------


def create_sql_engine(url: str | sa.URL, **options: Any) -> Engine:
    """An engine with the store's defaults. Keyword options go to
    ``sqlalchemy.create_engine``.

    - psycopg 3 for ``postgresql://`` and ``postgres://``, PyMySQL for ``mysql://`` and
      ``mariadb://`` (the drivers of the ``postgres`` and ``mysql`` extras);
    - servers: a connection idle for more than :data:`PING_AFTER_IDLE` seconds is pinged before
      use (``pool_pre_ping=True`` pings every checkout instead);
    - SQLite: WAL mode, a 30 s busy timeout and ``synchronous=NORMAL``; ``sqlite://`` (in
      memory) is one connection shared by the threads of the process.

    Use it to share one pool between the store and the host app.
    """
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
    if backend == "sqlite":
        if not memory:
            event.listen(engine, "connect", _sqlite_pragmas)
    elif not options.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE)
    return engine


def _ping_when_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection on checkout when it sat idle longer than ``idle`` seconds.

    That is when the server may have dropped it (a restart, an idle timeout, "server has gone
    away"); a dead one is replaced before use. A connection in steady use is not pinged: the
    ping would double the round trips of a status lookup. A connection that died within
    ``idle`` seconds fails its statement, and the store runs the call again on a new one.
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


def open_sql_store(
    url: str,
    *,
    engine: Engine | None = None,
    table_name: str = DEFAULT_TABLE_NAME,
    schema: str | None = None,
    create_table: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **engine_options: Any,
) -> SQLStore:
    """Factory for ``sqlite:``, ``postgresql:``, ``postgres:``, ``mysql:`` and ``mariadb:``
    URLs (``open_store`` calls it).

    ``engine`` hands the store the host app's engine (the URL then only picks this backend);
    other keyword options go to :func:`create_sql_engine`.
    """
    table = (
        jobs_table
        if (table_name, schema) == (DEFAULT_TABLE_NAME, None)
        else make_table(sa.MetaData(), table_name, schema=schema)
    )
    if engine is not None:
        if engine_options:
            raise ConfigurationError(
                f"engine options {sorted(engine_options)} cannot apply to an engine you pass"
            )
        return SQLStore(engine, table=table, create_table=create_table, batch_size=batch_size)
    return SQLStore(
        create_sql_engine(url, **engine_options),
        table=table,
        create_table=create_table,
        batch_size=batch_size,
        dispose_engine=True,
    )
