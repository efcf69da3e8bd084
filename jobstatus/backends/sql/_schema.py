"""Whether the jobs table is there and complete, and making it so on the first write.

Reads never change the database: a missing table reads as an empty store, and a table of an
earlier release (lacking columns :func:`make_table` now has) is read without them. The first
write creates the table, or adds the columns and indexes it lacks, one idempotent step at a
time (``CREATE TABLE``, ``ALTER TABLE … ADD COLUMN``, ``CREATE INDEX``): processes doing it at
once all succeed, since a step that fails is fine once the database shows its result.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from jobstatus.backends.sql._connections import Connections
from jobstatus.backends.sql._watchdog import NoAnswer
from jobstatus.errors import StorageError

__all__ = ["Schema"]

# Pauses between failed DDL steps (another process's step may hold a lock, or have won).
_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)
# Seconds a table found lacking columns is taken to still lack them before it is looked at again.
_RECHECK = 1.0


class _Found(NamedTuple):
    columns: frozenset[str]
    indexes: frozenset[str]


class Schema:
    """The state of ``table`` in the database, as far as the store needs it.

    ``create``: a write creates the table, or completes a table of an earlier release; without
    it a missing table or column is a :class:`~jobstatus.StorageError` (migrations own the
    schema).
    """

    def __init__(self, table: sa.Table, connections: Connections, *, create: bool) -> None:
        self.table = table
        self.create = create
        self._connections = connections
        self._columns = frozenset(table.c.keys())
        self._indexes = frozenset(str(index.name) for index in table.indexes)
        #: Every column is there (columns are never taken away, so this stays true).
        self.readable = False
        #: Every column and index is there.
        self.writable = False
        self._lacking: frozenset[str] = frozenset()
        self._lacking_until = -1.0
        self._lock = threading.Lock()

    def lacking(self, action: str) -> frozenset[str] | None:
        """For a read: the columns the table lacks, or None when there is no table.

        ``action`` names the call in an error (with ``create`` off, a missing table is one).
        """
        if self.readable:
            return frozenset()
        now = time.monotonic()
        if now < self._lacking_until:
            return self._lacking
        found = self._inspect(action)
        if found is None:
            if not self.create:
                raise self._missing(action, "does not exist")
            return None
        lacking = self._columns - found.columns
        if lacking:
            self._lacking, self._lacking_until = lacking, now + _RECHECK
        else:
            self.readable = True
        return lacking

    def ensure(self, action: str) -> None:
        """For a write: create the table, or add the columns and indexes it lacks."""
        with self._lock:
            failures = 0
            while not self.writable:
                step = self._next_step(action)
                if step is None:
                    self.writable = self.readable = True
                    return
                try:
                    with self._connections.connect(write=True) as conn:
                        step(conn)
                except NoAnswer as exc:
                    raise self._connections.failure(action, exc) from exc
                except sa_exc.SQLAlchemyError as exc:
                    # Lost a race (the other process's step won: "already exists", or on
                    # PostgreSQL a unique violation in pg_type) or met its lock (SQLite's
                    # "database is locked"): fine once the next look finds the step done.
                    if failures == len(_PAUSES):
                        raise self._connections.failure(action, exc) from exc
                    time.sleep(_PAUSES[failures])
                    failures += 1

    def missing(self, action: str) -> list[str] | None:
        """The columns and indexes the table lacks (``column x``, ``index y``), looked at now;
        None when there is no table."""
        found = self._inspect(action)
        if found is None:
            return None
        columns = sorted(self._columns - found.columns)
        indexes = sorted(self._indexes - found.indexes)
        return [f"column {c}" for c in columns] + [f"index {i}" for i in indexes]

    def complete(self, action: str) -> None:
        """Add what the table lacks now, even if this process saw it complete before."""
        with self._lock:
            self.writable = False
        self.ensure(action)

    def exists(self) -> bool:
        """The table is there (it is looked for now)."""
        return self._inspect("cannot look for the jobs table") is not None

    def _next_step(self, action: str) -> Callable[[Connection], object] | None:
        found = self._inspect(action)
        if found is None:
            if not self.create:
                raise self._missing(action, "does not exist")
            return partial(self.table.create, checkfirst=True)
        lacking = sorted(self._columns - found.columns)
        if lacking:
            if not self.create:
                raise self._missing(action, f"lacks the columns {', '.join(lacking)}")
            return partial(self._add_column, column=self.table.c[lacking[0]])
        for index in self.table.indexes:
            if self.create and index.name not in found.indexes:
                return index.create
        return None

    def _add_column(self, conn: Connection, column: sa.Column[object]) -> None:
        dialect = conn.dialect
        name = dialect.identifier_preparer.format_table(self.table)
        spec = CreateColumn(column).compile(dialect=dialect)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {spec}")

    def _inspect(self, action: str) -> _Found | None:
        """The table's columns and indexes, or None when there is no table."""
        if self._file_absent():
            return None
        table = self.table

        def look(conn: Connection) -> _Found | None:
            inspector = sa.inspect(conn)
            if not inspector.has_table(table.name, schema=table.schema):
                return None
            columns = inspector.get_columns(table.name, schema=table.schema)
            indexes = inspector.get_indexes(table.name, schema=table.schema)
            return _Found(
                frozenset(str(c["name"]) for c in columns),
                frozenset(str(i["name"]) for i in indexes),
            )

        return self._connections.run(action, look, write=False)

    def _file_absent(self) -> bool:
        """A SQLite database file that is not there (in a folder that is) holds no table;
        connecting would make the file. A file no write could make either, in a folder that
        is not there, is left to fail as it connects."""
        url = self._connections.engine.url
        database = url.database
        if url.get_backend_name() != "sqlite" or "uri" in url.query or not database:
            return False
        if database == ":memory:":
            return False
        return not os.path.exists(database) and os.path.isdir(os.path.dirname(database) or ".")

    def _missing(self, action: str, what: str) -> StorageError:
        return StorageError(
            f"{action} ({self._connections.where}): the table {self.table.fullname} {what} "
            "(create_table is off: the migrations own the schema)"
        )
