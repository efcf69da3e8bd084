"""Running the store's work on the engine: connections, transactions, retries, errors."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from jobstatus.backends.sql import _watchdog
from jobstatus.backends.sql._engine import watched
from jobstatus.backends.sql._keeper import Keeper, on_dispose
from jobstatus.backends.sql._watchdog import NoAnswer
from jobstatus.errors import StorageError

__all__ = ["Connections", "describe"]

T = TypeVar("T")

# Errors after which the database rolled the whole transaction back: it may simply run again.
_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
_MYSQL_RETRYABLE = frozenset({1213, 1205})  # deadlock, lock wait timeout
_ATTEMPTS = 3


class _InDoubt(Exception):
    """The commit failed: the database may have kept the write or not."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


class _Replacement:
    """After the server dropped a connection, every connection the pool opened before that is
    replaced on its next checkout, as SQLAlchemy does when a statement of its own meets a
    disconnect: a pool ``connect`` event marks each connection with the current generation, a
    ``checkout`` event turns away one of an older generation (SQLAlchemy then reconnects it).
    The events are added to the engine at the first drop; until then the pool is untouched.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.generation = 0
        self.key = f"jobstatus_generation_{id(self)}"  # one per store on a shared engine
        self._lock = threading.Lock()

    def on_connect(self, dbapi_connection: Any, record: Any) -> None:
        record.info[self.key] = self.generation

    def on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get(self.key, -1) < self.generation:
            raise sa_exc.DisconnectionError("opened before the server dropped a connection")

    def dropped(self) -> None:
        """Every connection open now is to be replaced before its next use."""
        with self._lock:
            if self.generation == 0:
                event.listen(self.engine, "connect", self.on_connect)
                event.listen(self.engine, "checkout", self.on_checkout)
            self.generation += 1

    def close(self) -> None:
        for name, listener in (("connect", self.on_connect), ("checkout", self.on_checkout)):
            if event.contains(self.engine, name, listener):
                event.remove(self.engine, name, listener)


class Connections:
    """The store's way to the database, safe to share between threads.

    - :meth:`call` runs a ``get``, ``put`` or ``restore`` on a DB-API connection the
      :class:`~jobstatus.backends.sql._keeper.Keeper` keeps, :meth:`run` everything else on a
      SQLAlchemy ``Connection`` from the pool; a write in one transaction, a read outside one
      (autocommit on PostgreSQL; rolled back at once elsewhere, so that no later read sees an
      old snapshot).
    - A read is run once more on a connection the server dropped, and so is a ``put`` or
      ``restore`` (upserts: running one twice leaves what running it once does); a write the
      database rolled back whole (a deadlock), up to three times. A call that failed after
      ``timeout`` seconds is not run again: it met a timeout, and so would a second run.
    - On libpq (psycopg), whose reads have no clock, a call is armed on the watchdog: a
      connection that got no answer within ``timeout`` seconds has its socket shut down, and
      the call fails with :class:`~._watchdog.NoAnswer` (a :class:`~jobstatus.StorageError`).
    - In a forked child the pool is replaced and the parent's connections left untouched.
    - Every failure becomes a :class:`~jobstatus.StorageError` naming the call and the
      database, the password hidden.
    """

    def __init__(self, engine: Engine, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._watched = watched(engine)
        self.where = engine.url.render_as_string(hide_password=True)
        self.keeper = Keeper(engine)
        self._on_dispose = on_dispose(self.keeper)
        event.listen(engine, "engine_disposed", self._on_dispose)
        weakref.finalize(self, self.keeper.release)  # dropped unclosed: give them back
        self._replacement = _Replacement(engine)
        self._driver_error: Any = engine.dialect.loaded_dbapi.Error
        # An in-memory SQLite database is one connection: take turns on it.
        self.serial: AbstractContextManager[Any] = (
            threading.RLock() if isinstance(engine.pool, StaticPool) else nullcontext()
        )
        # PostgreSQL reads run in autocommit: no BEGIN and ROLLBACK round trips around a SELECT.
        self._autocommit_reads = engine.dialect.name == "postgresql"

    def prepare(self) -> None:
        """Before any statement: a fresh pool after a fork, the parent's connections left be."""
        if self.keeper.pid != os.getpid():
            self.keeper.abandon()
            self.engine.dispose(close=False)

    @contextmanager
    def connect(self, *, write: bool) -> Iterator[Connection]:
        """A SQLAlchemy connection, in a transaction committed on exit for a write (a read's
        is rolled back as it closes), armed on the watchdog until it is closed."""
        self.prepare()
        with self.serial, self.engine.connect() as conn, self._armed(conn), closing(conn):
            if write:
                with conn.begin():
                    yield conn
            else:
                yield conn

    @contextmanager
    def _armed(self, conn: Connection) -> Iterator[None]:
        if not self._watched:
            yield
            return
        watch = _watchdog.arm(conn.connection.dbapi_connection, self.timeout)
        try:
            yield
        except Exception as exc:
            if _watchdog.disarm(watch):
                raise self._no_answer() from exc
            raise
        finally:
            _watchdog.disarm(watch)

    def _no_answer(self) -> NoAnswer:
        return NoAnswer(f"no answer within {self.timeout:g} s")

    def run(self, action: str, work: Callable[[Connection], T], *, write: bool) -> T:
        """``work`` on a SQLAlchemy connection (in a transaction for a write); ``action``
        names the call in an error."""
        started = time.monotonic()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.connect(write=write) as conn:
                    return work(conn)
            except sa_exc.DBAPIError as exc:
                if write:
                    again = _rolled_back_whole(exc.orig)
                else:
                    again = exc.connection_invalidated and attempt == 1
                again = again and time.monotonic() - started < self.timeout
                if not (again and attempt < _ATTEMPTS):
                    raise self.failure(action, exc) from exc
            except (sa_exc.SQLAlchemyError, NoAnswer) as exc:
                raise self.failure(action, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def call(
        self, job_id: str | None, work: Callable[[Any], T], *, write: bool, repeatable: bool = True
    ) -> T:
        """``work(cursor)`` on a kept DB-API connection, committing a write: ``get`` and
        ``put`` of ``job_id``, or ``restore`` (no ``job_id``).

        A write the server dropped the connection of is run again if it did not reach its
        commit, or if it is ``repeatable`` (running it twice leaves what running it once
        does); a conditional write whose commit failed is not, since it may have been kept:
        run again, it would find its own write and call it a conflict.
        """
        driver_error = self._driver_error
        started = time.monotonic()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self.prepare()
                with self.serial:
                    kept = self.keeper.take(started + self.timeout)
                    pooled = kept.connection
                    dbapi = pooled.dbapi_connection
                    watch = _watchdog.arm(dbapi, self.timeout) if self._watched else None
                    try:
                        try:
                            result = self._transaction(dbapi, work, write)
                        finally:
                            fired = watch is not None and _watchdog.disarm(watch)
                    except (driver_error, _InDoubt) as failure:
                        in_doubt = isinstance(failure, _InDoubt)
                        exc: Any = failure.cause if isinstance(failure, _InDoubt) else failure
                        if fired:
                            exc = self._no_answer()
                        dropped = fired or self.engine.dialect.is_disconnect(exc, dbapi, None)
                        if dropped:
                            self._replace_all(pooled, exc)
                        else:
                            pooled.close()
                        again = (
                            dropped and attempt == 1 and (repeatable or not in_doubt)
                        ) or _rolled_back_whole(exc)
                        again = again and time.monotonic() - started < self.timeout
                        if not (again and attempt < _ATTEMPTS):
                            error = self._failure_on(job_id, write, exc)
                            if in_doubt:
                                error = StorageError(f"{error} (the write may have been kept)")
                            raise error from failure
                    except BaseException:
                        pooled.close()
                        raise
                    else:
                        if fired:  # answered as the watchdog shut it down: not to be kept
                            pooled.invalidate()
                            pooled.close()
                        else:
                            self.keeper.give(kept)
                        return result
            # raw_connection() raises the driver's own error when it cannot connect, and the
            # idle ping a NoAnswer when the connection it pinged did not answer.
            except (sa_exc.SQLAlchemyError, driver_error, NoAnswer) as exc:
                raise self._failure_on(job_id, write, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _replace_all(self, pooled: Any, exc: BaseException) -> None:
        """The server dropped ``pooled``, so it dropped the others too: close this one and the
        kept ones, and have the pool replace every connection it holds on their next
        checkout."""
        pooled.invalidate(exc)
        self.keeper.release(invalidate=True)
        self._replacement.dropped()

    def _transaction(self, dbapi: Any, work: Callable[[Any], T], write: bool) -> T:
        """``work`` on ``dbapi``, its transaction over on return; no context manager, and no
        other work than the driver's, on the way of every lookup."""
        autocommit = self._autocommit_reads and not write
        if autocommit:
            dbapi.autocommit = True
        cursor = dbapi.cursor()
        try:
            result = work(cursor)
            if write:
                try:
                    dbapi.commit()
                except self._driver_error as exc:
                    raise _InDoubt(exc) from exc
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

    def failure(self, action: str, exc: BaseException) -> StorageError:
        """The error for a failed ``action`` (``"cannot read job 'x'"``)."""
        return StorageError(f"{action} ({self.where}): {describe(exc)}")

    def _failure_on(self, job_id: str | None, write: bool, exc: BaseException) -> StorageError:
        if job_id is None:
            return self.failure("cannot restore jobs", exc)
        return self.failure(f"cannot {'write' if write else 'read'} job {job_id!r}", exc)

    def close(self) -> None:
        """Give the kept connections back to the pool and take the store's listeners off the
        engine."""
        self.keeper.release()
        if event.contains(self.engine, "engine_disposed", self._on_dispose):
            event.remove(self.engine, "engine_disposed", self._on_dispose)
        self._replacement.close()


def _rolled_back_whole(error: BaseException | None) -> bool:
    """A deadlock or serialization failure: the database undid the whole transaction."""
    if getattr(error, "sqlstate", None) in _PG_RETRYABLE:
        return True
    args: tuple[Any, ...] = getattr(error, "args", ())
    return bool(args) and args[0] in _MYSQL_RETRYABLE


def describe(exc: BaseException) -> str:
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
