"""``sqlite:///jobs.db``, ``postgresql+psycopg://…``, ``mysql+pymysql://…``: one SQL table.

SQLAlchemy 2 Core on SQLite, PostgreSQL and MariaDB/MySQL. A record is one row of
``jobstatus_jobs`` (the name is configurable; :func:`make_table` describes it)::

    job_id      VARCHAR(255) primary key, compared byte for byte ('a', 'A', 'a ' are three ids)
    job_status  VARCHAR(255), indexed with updated_at and job_id
    document    the job document as JSON text, exactly as written
    updated_at  DOUBLE: seconds since the epoch (microseconds and finer), indexed
    version     INTEGER: 1 on insert, +1 on every write that changes the row
    expires_at  DOUBLE, nullable: the document's expires_at in seconds, indexed
    owner       VARCHAR(255), nullable: the document's owner, indexed with updated_at, job_id

- Every ``put`` is one statement in one transaction (a guarded upsert, an insert that keeps
  any unexpired row, or an ``UPDATE … WHERE version = …``): the version check, the
  final-state rule and expiry are decided by the database, never by a read before a write.
- A record's version is its row's counter and ``updated_at``; an expired record reads as
  absent for ``get``, ``list`` and ``put``, and ``purge(expired=True)`` deletes it.
- ``get``, ``put`` and ``restore`` run their statement, compiled once by SQLAlchemy, on a
  DB-API connection the store keeps checked out of the engine's pool between calls (up to one
  fewer than the pool's size; ``restore`` hands a batch to the driver's ``executemany``).
  Everything else goes through SQLAlchemy Core.
- A connection the server dropped is replaced and the call run once more (not a conditional
  write whose commit failed); pools and kept connections are never shared across ``fork()``.
- Reads never change the database: a missing table is an empty store, a table of the
  previous release is read as it is. The first write creates the table, or adds what it lacks.
- Every driver failure becomes a :class:`~jobstatus.StorageError` naming the failure and the
  database, with the password hidden.

:data:`metadata` and :data:`jobs_table` (or :func:`make_table`) are for Alembic users.

The modules: ``_engine`` (URLs to engines), ``_table`` (the table), ``_schema`` (the table's
presence and upgrade), ``_statements`` (the SQL), ``_rows`` (records to rows and back),
``_keeper`` (kept connections), ``_connections`` (transactions, retries, errors) and
``_store`` (the store).
"""

from __future__ import annotations

from jobstatus.backends.sql import _table
from jobstatus.backends.sql._engine import PING_AFTER_IDLE, create_sql_engine
from jobstatus.backends.sql._keeper import KEEP_FOR
from jobstatus.backends.sql._store import SQLStore, open_sql_store
from jobstatus.backends.sql._table import DEFAULT_TABLE_NAME, BinaryString, make_table

__all__ = [
    "DEFAULT_TABLE_NAME",
    "KEEP_FOR",
    "PING_AFTER_IDLE",
    "BinaryString",
    "SQLStore",
    "create_sql_engine",
    "jobs_table",
    "make_table",
    "metadata",
    "open_sql_store",
]

#: The default ``MetaData``, holding :data:`jobs_table` alone.
metadata = _table.metadata
#: The table under its default name, ``jobstatus_jobs``.
jobs_table = _table.jobs_table
