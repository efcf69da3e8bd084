"""The store's SQL statements, built with SQLAlchemy Core for each dialect."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from jobstatus.backends.sql._table import MYSQL
from jobstatus.record import FINAL_STATES

__all__ = ["DriverStatement", "Statements", "list_query", "purge_statement"]

# Written into the SQL as literals: an expanding IN parameter costs a re-render per statement.
_FINAL: list[sa.ColumnElement[str]] = [
    sa.literal_column(f"'{state}'") for state in sorted(FINAL_STATES)
]


def upsert(table: sa.Table, dialect: str, *, guarded: bool, returning: bool = True) -> sa.Insert:
    """One statement that inserts or replaces a row.

    ``guarded``: the row stays as it is when it holds a final state (the caller guards only
    a record that is not final). On PostgreSQL and SQLite the statement returns the stored
    ``updated_at`` (``returning``), and no row when it kept the stored one; on MariaDB/MySQL
    the caller reads the row back in the same transaction.
    """
    c = table.c
    # A literal, not a parameter: PyMySQL's executemany cannot take parameters after VALUES.
    bumped = c.version + sa.literal_column("1")
    if dialect in MYSQL:
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


class DriverStatement(NamedTuple):
    """A statement compiled once for one dialect, to run on a DB-API cursor."""

    sql: str
    order: tuple[str, ...] | None  # parameter names in order, for positional paramstyles

    @classmethod
    def compile(cls, statement: sa.ClauseElement, dialect: Dialect) -> DriverStatement:
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


class Statements(NamedTuple):
    """The statements ``get``, ``put`` and ``restore`` run on a DB-API connection."""

    select_one: DriverStatement
    put_plain: DriverStatement
    put_guarded: DriverStatement
    restore_rows: DriverStatement

    @classmethod
    def compile(cls, table: sa.Table, dialect: Dialect) -> Statements:
        """Compile for ``dialect``, which must have met its server (MySQL 8 spells
        ``ON DUPLICATE KEY UPDATE`` differently from MariaDB)."""
        c, name = table.c, dialect.name
        select_one = sa.select(c.document, c.updated_at).where(c.job_id == sa.bindparam("job_id"))
        return cls(
            DriverStatement.compile(select_one, dialect),
            DriverStatement.compile(upsert(table, name, guarded=False), dialect),
            DriverStatement.compile(upsert(table, name, guarded=True), dialect),
            # restore needs no rows back, so that executemany can batch it
            DriverStatement.compile(upsert(table, name, guarded=False, returning=False), dialect),
        )


def list_query(
    table: sa.Table,
    *,
    since: float | None = None,
    statuses: Collection[str] | None = None,
    limit: int | None = None,
    after: tuple[float, str] | None = None,
) -> sa.Select[Any]:
    """One page of ``list``: a range scan of ``(updated_at, job_id)`` backwards, or of
    ``(job_status, updated_at, job_id)`` when filtered by status. ``after`` is the last row of
    the previous page."""
    c = table.c
    query = sa.select(c.job_id, c.document, c.updated_at)
    if since is not None:
        query = query.where(c.updated_at >= float(since))
    if statuses is not None:
        query = query.where(c.job_status.in_(sorted(statuses)))
    if after is not None:
        stamp, last_id = after
        query = query.where(c.updated_at <= stamp, sa.or_(c.updated_at < stamp, c.job_id < last_id))
    return query.order_by(c.updated_at.desc(), c.job_id.desc()).limit(limit)


def purge_statement(
    table: sa.Table,
    dialect: str,
    *,
    older_than: float,
    statuses: Collection[str] | None,
    batch_size: int,
) -> sa.Delete:
    """Delete at most ``batch_size`` of the rows ``purge`` removes; run until it deletes
    fewer, so that no transaction holds many locks for long."""
    c = table.c
    doomed = c.updated_at < float(older_than)
    if statuses is not None:
        doomed = sa.and_(doomed, c.job_status.in_(sorted(statuses)))
    if dialect in MYSQL:
        return sa.delete(table).where(doomed).with_dialect_options(mysql_limit=batch_size)
    # The outer condition is checked again on rows a writer renewed meanwhile.
    batch = sa.select(c.job_id).where(doomed).limit(batch_size)
    return sa.delete(table).where(c.job_id.in_(batch), doomed)
