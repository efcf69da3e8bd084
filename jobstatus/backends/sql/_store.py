"""The SQL store: job records as rows of one table."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobstatus.backends._timeout import DEFAULT_TIMEOUT, check_timeout
from jobstatus.backends.sql._connections import Connections
from jobstatus.backends.sql._engine import create_sql_engine, timeout_of
from jobstatus.backends.sql._repair import repair_schema
from jobstatus.backends.sql._rows import Decoder, parse_version, row_of
from jobstatus.backends.sql._schema import Schema
from jobstatus.backends.sql._statements import (
    DriverStatement,
    Statements,
    delete_one,
    list_query,
    purge_statement,
    select_one,
)
from jobstatus.backends.sql._table import DEFAULT_TABLE_NAME, MYSQL, jobs_table, make_table
from jobstatus.errors import ConfigurationError, Conflict, JobNotFound
from jobstatus.record import JobRecord, check_job_id
from jobstatus.repair import DEFAULT_GRACE, RepairReport
from jobstatus.store import (
    ABSENT,
    BaseStore,
    ExpectedVersion,
    check_limit,
    check_purge,
    normalize_status,
)

__all__ = ["DEFAULT_BATCH_SIZE", "SQLStore", "open_sql_store"]

#: Rows per statement for ``restore``, per ``DELETE`` for ``purge``, per page for ``list``.
DEFAULT_BATCH_SIZE = 1000

# What a write leaves stored: (document, updated_at, version counter); None for a conflict.
_Stored = tuple[str, float, int] | None


class _Reads(NamedTuple):
    """How to read the table: its ``get`` statement, and whether it has ``expires_at``."""

    select_one: DriverStatement
    expiry: bool


class SQLStore(BaseStore):
    """Job records as rows of one table, through a SQLAlchemy :class:`~sqlalchemy.Engine`.

    Args:
        engine: the engine to use; the host app's own, or one from :func:`create_sql_engine`.
        table: the jobs table (:func:`make_table`); :data:`jobs_table` by default.
        create_table: the first write creates the table (and its indexes) when it is missing,
            or adds the columns and indexes a table of an earlier release lacks. Reads never
            change the database. Off: migrations own the schema, and a missing table or
            column is a :class:`~jobstatus.StorageError`.
        batch_size: rows per statement for ``restore``, per ``DELETE`` for ``purge`` and per
            page for ``list``.
        dispose_engine: dispose of the engine on ``close()`` (for an engine the store made).
        timeout: seconds a call waits for an answer before it fails with a
            :class:`~jobstatus.StorageError` (see :func:`create_sql_engine`); by default the
            engine's own ``timeout`` when :func:`create_sql_engine` made it, else
            :data:`~jobstatus.backends.DEFAULT_TIMEOUT`. It bounds the store's calls only:
            the connects and pings of a host's engine follow that engine's options.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: sa.Table | None = None,
        create_table: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        dispose_engine: bool = False,
        timeout: float | None = None,
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
        if timeout is None:
            timeout = timeout_of(engine) or DEFAULT_TIMEOUT
        self.timeout = check_timeout(timeout)
        self._connections = Connections(engine, self.timeout)
        self._schema = Schema(self.table, self._connections, create=create_table)
        self._returning = dialect not in MYSQL
        self._decoder = Decoder(self.table.name)
        # Compiled once the table is known to be complete (every column there).
        self._statements: Statements | None = None
        self._reads: _Reads | None = None
        self._legacy_reads: _Reads | None = None

    def __repr__(self) -> str:
        return f"SQLStore({self._connections.where!r}, table={self.table.fullname!r})"

    def exists(self) -> bool:
        """The table is there. Nothing is created: the first write does that."""
        return self._schema.exists()

    def _readable(self, action: str) -> _Reads | None:
        """How to read the table, or None when it is missing (an empty store)."""
        lacking = self._schema.lacking(action)
        if lacking is None:
            return None
        if not lacking:
            return self._compiled()[1]
        # A table of an earlier release: read without expires_at (nothing there expires).
        legacy = self._legacy_reads
        if legacy is None:
            legacy = _Reads(
                DriverStatement.compile(select_one(self.table, expiry=False), self.engine.dialect),
                expiry=False,
            )
            self._legacy_reads = legacy
        return legacy

    def _writable(self, action: str) -> Statements:
        """The statements of a write, once the table is there and complete."""
        statements = self._statements
        if statements is None or not self._schema.writable:
            self._schema.ensure(action)
            statements = self._compiled()[0]
        return statements

    def _compiled(self) -> tuple[Statements, _Reads]:
        """Compile the statements; the dialect has met its server, since the schema was
        looked at, or made, on a connection."""
        statements = self._statements
        reads = self._reads
        if statements is None or reads is None:
            statements = Statements.compile(self.table, self.engine.dialect)
            reads = _Reads(statements.select_one, expiry=True)
            self._statements, self._reads = statements, reads
        return statements, reads

    # -- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        reads = self._reads or self._readable(f"cannot read job {job_id!r}")
        if reads is None:
            raise JobNotFound(job_id)
        select = reads.select_one
        values = {"job_id": job_id}
        row = self._connections.call(job_id, lambda cursor: select.run(cursor, values), write=False)
        if row is None or (row[3] is not None and row[3] <= time.time()):
            raise JobNotFound(job_id)
        return self._decoder.record(job_id, row[0], row[1], row[2])

    def list(
        self,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Newest first, unexpired, read in pages of ``batch_size`` rows (no connection is
        held between pages): a record written while a long listing is read may show its new
        state or be left out. A negative ``limit`` is a ``ValueError``."""
        check_limit(limit)
        return self._pages(since, normalize_status(status), limit)

    def list_owned(
        self,
        owner: str,
        *,
        since: float | None = None,
        status: str | Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """:meth:`list` for one owner's records, through the ``(owner, updated_at, job_id)``
        index: the rows of other owners are never read."""
        check_limit(limit)
        return self._pages(since, normalize_status(status), limit, owner)

    def _pages(
        self,
        since: float | None,
        statuses: frozenset[str] | None,
        limit: int | None,
        owner: str | None = None,
    ) -> Iterator[JobRecord]:
        if (statuses is not None and not statuses) or limit == 0:
            return
        reads = self._reads or self._readable("cannot list jobs")
        if reads is None:
            return
        if owner is not None and not reads.expiry:
            return  # a table of an earlier release: it has no owner column, so no owned rows
        now = time.time() if reads.expiry else None
        left = limit
        after: tuple[float, str] | None = None
        while left is None or left > 0:
            page = self.batch_size if left is None else min(left, self.batch_size)
            query = list_query(
                self.table,
                now=now,
                since=since,
                statuses=statuses,
                limit=page,
                after=after,
                owner=owner,
            )
            fetch = partial(_fetch_all, query)
            rows = self._connections.run("cannot list jobs", fetch, write=False)
            for job_id, document, updated_at, counter in rows:
                yield self._decoder.record(job_id, document, updated_at, counter)
            if len(rows) < page:
                return
            if left is not None:
                left -= len(rows)
            after = (rows[-1][2], rows[-1][0])

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self, record: JobRecord, *, force: bool = False, expect_version: ExpectedVersion = None
    ) -> JobRecord:
        """One statement decides, where no other writer can come between: an upsert that
        keeps a stored final record (unless ``force``), an insert that keeps any unexpired
        record (``expect_version=ABSENT``), or an ``UPDATE … WHERE version = …`` (a version);
        an expired stored record counts as none."""
        row = row_of(record, None)
        job_id = record.job_id
        s = self._writable(f"cannot write job {job_id!r}")
        work: Any
        if expect_version is None:
            upsert = s.put_plain if force else s.put_guarded
            work = partial(self._upsert, upsert, s.select_one, row, False)
        elif expect_version is ABSENT:
            work = partial(self._upsert, s.put_absent, s.select_one, row, True)
        else:
            expected = parse_version(expect_version)
            if expected is None:  # no row has such a version
                raise Conflict(job_id, "the job was changed by another writer")
            update = s.put_expected_forced if force else s.put_expected
            row.update(expect_version=expected[0], expect_stamp=expected[1])
            work = partial(self._update, update, s.select_one, row, expected)
        stored: _Stored = self._connections.call(
            job_id, work, write=True, repeatable=expect_version is None
        )
        if stored is None:
            reason = "the job already has a record" if expect_version is ABSENT else None
            raise Conflict(job_id, reason or "the job was changed by another writer")
        return self._decoder.record(job_id, *stored)

    def _upsert(
        self,
        upsert: DriverStatement,
        select: DriverStatement,
        row: dict[str, Any],
        conflict_if_kept: bool,
        cursor: Any,
    ) -> _Stored:
        written = upsert.run(cursor, row)
        if written is not None:  # RETURNING updated_at, version: the row was written
            return row["document"], written[0], written[1]
        # Kept as it was (or MariaDB/MySQL, which return nothing); the statement locked the
        # row until this transaction ends.
        document, updated_at, counter, _ = select.run(cursor, row)
        kept = self._returning or (updated_at, document) != (row["updated_at"], row["document"])
        if kept and conflict_if_kept:
            return None
        return document, updated_at, counter

    def _update(
        self,
        update: DriverStatement,
        select: DriverStatement,
        row: dict[str, Any],
        expected: tuple[int, float],
        cursor: Any,
    ) -> _Stored:
        if update.matched(cursor, row) == 1:
            return row["document"], row["updated_at"], expected[0] + 1
        # Not written: a conflict, unless the row still has the version and is final.
        stored = select.run(cursor, row)
        if stored is None or (stored[3] is not None and stored[3] <= row["now"]):
            return None
        if (stored[2], stored[1]) != expected:
            return None
        return stored[0], stored[1], stored[2]

    def restore(self, records: Iterable[JobRecord]) -> int:
        count = 0
        iterator = iter(records)
        while batch := list(islice(iterator, self.batch_size)):
            # One row per id: the last one wins, as if they were written in turn.
            rows = list({r.job_id: row_of(r, r.updated_at) for r in batch}.values())
            restore_rows = self._writable("cannot restore jobs").restore_rows
            self._connections.call(None, partial(restore_rows.run_many, rows=rows), write=True)
            count += len(batch)
        return count

    def delete(self, job_id: str) -> bool:
        """Remove the job's row; True if it held an unexpired record."""
        check_job_id(job_id)
        action = f"cannot delete job {job_id!r}"
        reads = self._reads or self._readable(action)
        if reads is None:
            return False  # no table, no job
        values = {"job_id": job_id, "now": time.time()}
        any_row = delete_one(self.table, live_only=False)
        live_row = delete_one(self.table, live_only=True) if reads.expiry else any_row

        def delete(conn: Connection) -> int:
            deleted: int = conn.execute(live_row, values).rowcount
            if not deleted and reads.expiry:
                conn.execute(any_row, values)  # an expired record: gone, but it was no job
            return deleted

        return bool(self._connections.run(action, delete, write=True))

    def purge(
        self,
        *,
        older_than: float | None = None,
        status: str | Collection[str] | None = None,
        expired: bool = False,
    ) -> int:
        """One pass over the table's columns (a document is never read), deleting in batches
        of ``batch_size`` rows, one transaction each, until a batch finds fewer: no
        transaction holds many locks for long."""
        check_purge(older_than, expired)
        statuses = normalize_status(status)
        if statuses is not None and not statuses:
            return 0
        reads = self._reads or self._readable("cannot purge jobs")
        if reads is None:
            return 0
        expired_by = time.time() if expired and reads.expiry else None
        if older_than is None and expired_by is None:
            return 0  # expired records asked for, and the table has no expiry
        statement = purge_statement(
            self.table,
            self._dialect,
            older_than=older_than,
            statuses=statuses,
            expired_by=expired_by,
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

    def repair(self, *, dry_run: bool = False, grace: float = DEFAULT_GRACE) -> RepairReport:
        """Add the indexes (and columns) an interrupted first write left the table without;
        a killed writer's transaction leaves nothing else, so ``grace`` is not needed (see
        :mod:`jobstatus.repair`)."""
        return repair_schema(self._schema, dry_run=dry_run)

    def close(self) -> None:
        """Give the kept connections back to the pool; dispose of the engine's pool if the
        store made the engine (a host's engine is left as it is)."""
        self._connections.close()
        if self._dispose_engine:
            self.engine.dispose()


def _fetch_all(query: sa.Select[Any], conn: Connection) -> Sequence[Any]:
    return conn.execute(query).all()


def open_sql_store(
    url: str,
    *,
    engine: Engine | None = None,
    table_name: str = DEFAULT_TABLE_NAME,
    schema: str | None = None,
    create_table: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeout: float | str | None = None,
    **engine_options: Any,
) -> SQLStore:
    """Factory for ``sqlite:``, ``postgresql:``, ``postgres:``, ``mysql:`` and ``mariadb:``
    URLs (``open_store`` calls it).

    ``timeout`` (or ``?timeout=`` in the URL) goes to :func:`create_sql_engine`; ``engine``
    hands the store the host app's engine (the URL then only picks this backend, and
    ``timeout`` bounds the store's calls on it); other keyword options go to
    :func:`create_sql_engine`.
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
        return SQLStore(
            engine,
            table=table,
            create_table=create_table,
            batch_size=batch_size,
            timeout=None if timeout is None else check_timeout(timeout),
        )
    return SQLStore(
        create_sql_engine(url, timeout=timeout, **engine_options),
        table=table,
        create_table=create_table,
        batch_size=batch_size,
        dispose_engine=True,
    )
