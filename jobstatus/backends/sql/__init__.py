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
- ``get``, ``put`` and ``restore`` run their statement, compiled once by SQLAlchemy, on a
  DB-API connection the store keeps checked out of the engine's pool between calls (up to one
  fewer than the pool's size; ``restore`` hands a batch to the driver's ``executemany``).
  Everything else goes through SQLAlchemy Core.
- A connection the server dropped is replaced and the call run once more; pools and kept
  connections are never shared across ``fork()``.
- Reads never create anything: a missing table is an empty store. The first write creates the
  table, or completes a table of an earlier release.
- Every driver failure becomes a :class:`~jobstatus.StorageError` naming the failure and the
  database, with the password hidden.

:data:`metadata` and :data:`jobs_table` (or :func:`make_table`) are for Alembic users.

The modules: ``_engine`` (URLs to engines), ``_table`` (the table), ``_schema`` (the table's
presence and upgrade), ``_statements`` (the SQL), ``_keeper`` (kept connections),
``_connections`` (transactions, retries, errors) and ``_store`` (the store).
"""

from __future__ import annotations

from jobstatus.backends.sql._engine import PING_AFTER_IDLE, create_sql_engine
from jobstatus.backends.sql._keeper import KEEP_FOR
from jobstatus.backends.sql._store import DEFAULT_BATCH_SIZE, SQLStore, open_sql_store
from jobstatus.backends.sql._table import (
    DEFAULT_TABLE_NAME,
    BinaryString,
    jobs_table,
    make_table,
    metadata,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
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
