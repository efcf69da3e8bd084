"""The SQL store: job records as rows of one table."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobstatus.backends.sql._connections import Connections
from jobstatus.backends.sql._engine import create_sql_engine
from jobstatus.backends.sql._schema import Schema
from jobstatus.backends.sql._statements import Statements, list_query, purge_statement
from jobstatus.backends.sql._table import (
    DEFAULT_TABLE_NAME,
    KEY_LENGTH,
    MYSQL,
    jobs_table,
    make_table,
)
from jobstatus.errors import ConfigurationError, InvalidRequest, JobNotFound, StorageError
from jobstatus.record import JobRecord, check_job_id
from jobstatus.store import BaseStore, normalize_status

__all__ = ["DEFAULT_BATCH_SIZE", "SQLStore", "open_sql_store"]

#: Rows per statement for ``restore``, per ``DELETE`` for ``purge``, per page for ``list``.
DEFAULT_BATCH_SIZE = 1000
# The most parsed records kept for lookups of the same row again.
_RECENT_MAX = 1024


class SQLStore(BaseStore):
    """Job records as rows of one table, through a SQLAlchemy :class:`~sqlalchemy.Engine`.

    Args:
        engine: the engine to use; the host app's own, or one from :func:`create_sql_engine`.
        table: the jobs table (:func:`make_table`); :data:`jobs_table` by default.
        create_table: the first write creates the table (and its indexes) when it is missing,
            or adds what a table of an earlier release lacks. Reads never create anything.
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
        if dialect not in ("sqlite", "postgresql", *MYSQL):
            raise ConfigurationError(
                f"the SQL store supports SQLite, PostgreSQL and MariaDB/MySQL, not {dialect}"
            )
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self.engine = engine
        self.table = jobs_table if table is None else table
        self.batch_size = batch_size
        self._dialect = dialect
        self._dispose_engine = dispose_engine
        self._connections = Connections(engine)
        self._schema = Schema(self.table, self._connections, create=create_table)
        self._returning = dialect not in MYSQL
        # Compiled once the table is known to have every column.
        self._statements: Statements | None = None
        # job_id -> (document, updated_at, record): a record polled again and again is parsed
        # once. A hit needs the very same text and stamp, so it can never be stale.
        self._recent: dict[str, tuple[str, float, JobRecord]] = {}
        c = self.table.c
        self._delete_one = sa.delete(self.table).where(c.job_id == sa.bindparam("job_id"))

    def __repr__(self) -> str:
        return f"SQLStore({self._connections.where!r}, table={self.table.fullname!r})"

    def exists(self) -> bool:
        """The table is there. Nothing is created: the first write does that."""
        return self._schema.exists()

    def _readable(self, action: str) -> Statements | None:
        """The statements of a read, or None when the table is missing (an empty store)."""
        statements = self._statements
        if statements is None:
            if self._schema.lacking(action) is None:
                return None
            statements = self._compiled()
        return statements

    def _writable(self, action: str) -> Statements:
        """The statements of a write, once the table is there and complete."""
        if not self._schema.writable:
            self._schema.ensure(action)
        return self._statements or self._compiled()

    def _compiled(self) -> Statements:
        # The dialect has met its server: the schema was looked at, or made, on a connection.
        statements = self._statements = Statements.compile(self.table, self.engine.dialect)
        return statements

    # -- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        statements = self._statements or self._readable(f"cannot read job {job_id!r}")
        if statements is None:
            raise JobNotFound(job_id)
        select_one = statements.select_one
        values = {"job_id": job_id}
        row = self._connections.call(
            job_id, lambda cursor: select_one.run(cursor, values), write=False
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
        left out. A negative ``limit`` is a ``ValueError``."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        return self._pages(since, normalize_status(status), limit)

    def _pages(
        self, since: float | None, statuses: frozenset[str] | None, limit: int | None
    ) -> Iterator[JobRecord]:
        if (statuses is not None and not statuses) or limit == 0:
            return
        if self._readable("cannot list jobs") is None:
            return
        left = limit
        after: tuple[float, str] | None = None
        while left is None or left > 0:
            page = self.batch_size if left is None else min(left, self.batch_size)
            query = list_query(self.table, since=since, statuses=statuses, limit=page, after=after)
            fetch = partial(_fetch_all, query)
            rows = self._connections.run("cannot list jobs", fetch, write=False)
            for job_id, document, updated_at in rows:
                yield self._decode(job_id, document, updated_at)
            if len(rows) < page:
                return
            if left is not None:
                left -= len(rows)
            after = (rows[-1][2], rows[-1][0])

    # -- writing ---------------------------------------------------------------------------------

    def put(self, record: JobRecord, *, force: bool = False) -> JobRecord:
        row = self._row(record, None)
        job_id = record.job_id
        s = self._writable(f"cannot write job {job_id!r}")
        # Only a record that is not final can be refused, by a stored final one: that check is
        # in the statement, where no other writer can come between.
        guarded = not force and not record.is_final
        upsert = s.put_guarded if guarded else s.put_plain
        select_one = s.select_one

        def write(cursor: Any) -> tuple[str, float]:
            written = upsert.run(cursor, row)
            if written is not None:  # RETURNING updated_at: the row was written
                return row["document"], written[0]
            if not self._returning and not guarded:
                return row["document"], row["updated_at"]
            # Kept as it was; the statement locked the row until this transaction ends.
            stored = select_one.run(cursor, {"job_id": job_id})
            return stored[0], stored[1]

        document, stamp = self._connections.call(job_id, write, write=True)
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
            rows = list({r.job_id: self._row(r, r.updated_at) for r in batch}.values())
            restore_rows = self._writable("cannot restore jobs").restore_rows
            self._connections.call(None, partial(restore_rows.run_many, rows=rows), write=True)
            count += len(batch)
        return count

    def delete(self, job_id: str) -> bool:
        check_job_id(job_id)
        action = f"cannot delete job {job_id!r}"
        if self._readable(action) is None:
            return False  # no table, no job
        statement = self._delete_one

        def delete(conn: Connection) -> int:
            return conn.execute(statement, {"job_id": job_id}).rowcount

        return bool(self._connections.run(action, delete, write=True))

    def purge(self, *, older_than: float, status: str | Collection[str] | None = None) -> int:
        """Delete in batches of ``batch_size`` rows, one transaction each (no transaction
        holds many locks for long), until a batch finds fewer; documents are never read."""
        statuses = normalize_status(status)
        if statuses is not None and not statuses:
            return 0
        if self._readable("cannot purge jobs") is None:
            return 0
        statement = purge_statement(
            self.table,
            self._dialect,
            older_than=older_than,
            statuses=statuses,
            batch_size=self.batch_size,
        )

        def purge(conn: Connection) -> int:
            return conn.execute(statement).rowcount

        total = 0
        while True:
            deleted = self._connections.run("cannot purge jobs", purge, write=True)
            total += deleted
            if deleted < self.batch_size:
                return total

    def close(self) -> None:
        """Give the kept connections back to the pool; dispose of the engine's pool if the
        store made the engine (a host's engine is left as it is)."""
        self._connections.close()
        if self._dispose_engine:
            self.engine.dispose()


def _fetch_all(query: sa.Select[Any], conn: Connection) -> Sequence[Any]:
    return conn.execute(query).all()


_dump_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _storable_json(record: JobRecord) -> str:
    """The document as compact JSON text, refused exactly when :meth:`JobRecord.to_json` refuses
    it: in any doubt (an error, an escaped NUL) ``to_json`` decides and raises."""
    try:
        text = _dump_compact(record.to_dict())
        text.encode("utf-8")  # a lone surrogate cannot be stored
    except (TypeError, ValueError, RecursionError):
        record.to_json()  # raises InvalidRequest, saying what is wrong
        raise
    if "\\u0000" in text:  # a NUL character, or a backslash followed by "u0000"
        record.to_json()
    return text


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
