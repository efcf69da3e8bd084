"""The store's SQL statements, built with SQLAlchemy Core for each dialect."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from jobstatus.backends.sql._table import MYSQL
from jobstatus.record import FINAL_STATES

__all__ = [
    "DriverStatement",
    "Statements",
    "Take",
    "delete_one",
    "expired",
    "list_query",
    "live",
    "purge_statement",
    "select_one",
    "update_expected",
    "upsert",
]

# Written into the SQL as literals: the statement text stays the same for every execution.
_FINAL: list[sa.ColumnElement[str]] = [
    sa.literal_column(f"'{state}'") for state in sorted(FINAL_STATES)
]
# A literal, not a parameter: PyMySQL's executemany cannot take parameters after VALUES.
_ONE: sa.ColumnClause[Any] = sa.literal_column("1")
# The columns a write takes from the record (job_id aside; version is counted by the database).
_WRITTEN = ("job_status", "document", "updated_at", "expires_at", "owner")

#: When an upsert replaces a stored row: always (``force``), unless the stored record is final
#: (``put``), or only when there is none (``expect_version=ABSENT``). An expired stored record
#: counts as none for the last two.
Take = Literal["always", "unless_final", "if_absent"]


def _now() -> sa.BindParameter[float]:
    return sa.bindparam("now", type_=sa.Double())


def expired(c: Any, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
    """The stored record has expired by ``now``."""
    return sa.and_(c.expires_at.is_not(None), c.expires_at <= now)


def live(c: Any, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
    """The stored record has not expired by ``now``."""
    return sa.or_(c.expires_at.is_(None), c.expires_at > now)


def _taken(c: Any, take: Take) -> sa.ColumnElement[bool]:
    """When a conflicting insert replaces the stored row (``take`` is not ``"always"``)."""
    if take == "if_absent":
        return expired(c, _now())
    return sa.or_(c.job_status.not_in(_FINAL), expired(c, _now()))


def upsert(table: sa.Table, dialect: str, take: Take, *, returning: bool = True) -> sa.Insert:
    """One statement that inserts a row, or replaces the stored one as ``take`` says.

    On PostgreSQL and SQLite it returns the row's new ``updated_at`` and ``version``
    (``returning``), and no row when it kept the stored one. On MariaDB/MySQL the caller reads
    the row back in the same transaction (the statement locked it).
    """
    c = table.c
    bumped = c.version + _ONE
    if dialect in MYSQL:
        stmt = mysql.insert(table)
        new = stmt.inserted
        if take == "always":
            return stmt.on_duplicate_key_update(
                [(name, new[name]) for name in _WRITTEN] + [("version", bumped)]
            )
        # MySQL assigns left to right, and a later expression sees the earlier assignments. So
        # the columns the condition reads (job_status, expires_at) go last, and are chosen by
        # whether the row now holds the new document and stamp: exactly when it was taken, or
        # when it held them already (then the new values are the stored ones).
        taken = _taken(c, take)
        holds_new = sa.and_(c.updated_at == new.updated_at, c.document == new.document)

        def pick(name: str, when: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
            return sa.case((when, new[name]), else_=c[name])

        return stmt.on_duplicate_key_update(
            [
                ("version", sa.case((taken, bumped), else_=c.version)),
                ("owner", pick("owner", taken)),
                ("document", pick("document", taken)),
                ("updated_at", pick("updated_at", taken)),
                ("job_status", pick("job_status", holds_new)),
                ("expires_at", pick("expires_at", holds_new)),
            ]
        )
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt_ = insert(table)
    replaced = stmt_.on_conflict_do_update(
        index_elements=[c.job_id],
        set_={**{name: stmt_.excluded[name] for name in _WRITTEN}, "version": bumped},
        where=None if take == "always" else _taken(c, take),
    )
    return replaced.returning(c.updated_at, c.version) if returning else replaced


def update_expected(table: sa.Table, *, force: bool) -> sa.Update:
    """Replace the stored row only while it is unexpired and still has ``expect_version`` and
    ``expect_stamp`` (its version counter and ``updated_at``), and, without ``force``, is not
    final. The row count says whether it did."""
    c = table.c
    now = _now()
    where = [
        c.job_id == sa.bindparam("job_id"),
        c.version == sa.bindparam("expect_version", type_=sa.Integer()),
        c.updated_at == sa.bindparam("expect_stamp", type_=sa.Double()),
        live(c, now),
    ]
    if not force:
        where.append(c.job_status.not_in(_FINAL))
    values: dict[str, Any] = {name: sa.bindparam(name) for name in _WRITTEN}
    return sa.update(table).where(*where).values(**values, version=c.version + _ONE)


def select_one(table: sa.Table, *, expiry: bool = True) -> sa.Select[Any]:
    """``document, updated_at, version, expires_at`` of one job; ``expires_at`` is NULL in a
    table without that column (``expiry`` false)."""
    c = table.c
    expires_at = c.expires_at if expiry else sa.null()
    return sa.select(c.document, c.updated_at, c.version, expires_at).where(
        c.job_id == sa.bindparam("job_id")
    )


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

    def matched(self, cursor: Any, values: dict[str, Any]) -> int:
        """Execute with ``values`` and return the number of rows it matched."""
        order = self.order
        cursor.execute(self.sql, values if order is None else tuple(map(values.__getitem__, order)))
        return int(cursor.rowcount)

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
    put_plain: DriverStatement  # force
    put_guarded: DriverStatement  # final is final
    put_absent: DriverStatement  # expect_version=ABSENT
    put_expected: DriverStatement  # expect_version=<version>
    put_expected_forced: DriverStatement  # expect_version=<version>, force
    restore_rows: DriverStatement

    @classmethod
    def compile(cls, table: sa.Table, dialect: Dialect) -> Statements:
        """Compile for ``dialect``, which must have met its server (MySQL 8 spells
        ``ON DUPLICATE KEY UPDATE`` differently from MariaDB)."""
        name = dialect.name

        def compiled(statement: sa.ClauseElement) -> DriverStatement:
            return DriverStatement.compile(statement, dialect)

        return cls(
            compiled(select_one(table)),
            compiled(upsert(table, name, "always")),
            compiled(upsert(table, name, "unless_final")),
            compiled(upsert(table, name, "if_absent")),
            compiled(update_expected(table, force=False)),
            compiled(update_expected(table, force=True)),
            # restore needs no rows back, so that executemany can batch it
            compiled(upsert(table, name, "always", returning=False)),
        )


def list_query(
    table: sa.Table,
    *,
    now: float | None,
    since: float | None = None,
    statuses: Collection[str] | None = None,
    limit: int | None = None,
    after: tuple[float, str] | None = None,
    owner: str | None = None,
) -> sa.Select[Any]:
    """One page of ``list``: a range scan of ``(updated_at, job_id)`` backwards, or of
    ``(job_status, updated_at, job_id)`` when filtered by status, or of ``(owner, updated_at,
    job_id)`` for one ``owner``'s records, skipping records expired by ``now`` (None: the table
    has no ``expires_at``). ``after`` is the last row of the previous page."""
    c = table.c
    query = sa.select(c.job_id, c.document, c.updated_at, c.version)
    if owner is not None:
        query = query.where(c.owner == owner)
    if since is not None:
        query = query.where(c.updated_at >= float(since))
    if statuses is not None:
        query = query.where(c.job_status.in_(sorted(statuses)))
    if now is not None:
        query = query.where(live(c, sa.literal(now, sa.Double())))
    if after is not None:
        stamp, last_id = after
        query = query.where(c.updated_at <= stamp, sa.or_(c.updated_at < stamp, c.job_id < last_id))
    return query.order_by(c.updated_at.desc(), c.job_id.desc()).limit(limit)


def purge_statement(
    table: sa.Table,
    dialect: str,
    *,
    older_than: float | None,
    statuses: Collection[str] | None,
    expired_by: float | None,
    batch_size: int,
) -> sa.Delete:
    """Delete at most ``batch_size`` of the rows ``purge`` removes: a status among
    ``statuses`` (any, when None), and written before ``older_than`` or expired by
    ``expired_by``. Run until it deletes fewer, so that no transaction holds many locks for
    long. Only the table's columns are read, never a document."""
    c = table.c
    reasons = []
    if older_than is not None:
        reasons.append(c.updated_at < float(older_than))
    if expired_by is not None:
        reasons.append(expired(c, sa.literal(expired_by, sa.Double())))
    doomed = sa.or_(*reasons)
    if statuses is not None:
        doomed = sa.and_(c.job_status.in_(sorted(statuses)), doomed)
    if dialect in MYSQL:
        return sa.delete(table).where(doomed).with_dialect_options(mysql_limit=batch_size)
    # The outer condition is checked again on rows a writer renewed meanwhile.
    batch = sa.select(c.job_id).where(doomed).limit(batch_size)
    return sa.delete(table).where(c.job_id.in_(batch), doomed)


def delete_one(table: sa.Table, *, live_only: bool) -> sa.Delete:
    """Delete the row of ``job_id``; with ``live_only``, only while it is unexpired by
    ``now``."""
    c = table.c
    statement = sa.delete(table).where(c.job_id == sa.bindparam("job_id"))
    return statement.where(live(c, _now())) if live_only else statement
