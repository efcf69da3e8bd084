"""The jobs table: its columns, their types on each database, and its indexes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

__all__ = [
    "DEFAULT_TABLE_NAME",
    "KEY_LENGTH",
    "MYSQL",
    "BinaryString",
    "jobs_table",
    "make_table",
    "metadata",
]

DEFAULT_TABLE_NAME = "jobstatus_jobs"
#: The longest ``job_id`` and ``job_status`` the table holds, in characters.
KEY_LENGTH = 255
#: The dialect names of MariaDB and MySQL.
MYSQL = frozenset({"mysql", "mariadb"})


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
        if dialect.name in MYSQL:
            return dialect.type_descriptor(
                mysql.VARCHAR(self.length, charset="utf8mb4", collation=_binary_collation(dialect))
            )
        return dialect.type_descriptor(sa.String(self.length))


def _binary_collation(dialect: Dialect) -> str:
    if getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb":
        return "utf8mb4_nopad_bin"
    version = dialect.server_version_info or ()
    return "utf8mb4_0900_bin" if version >= (8,) else "utf8mb4_bin"


# Text, not JSONB/JSON: PostgreSQL's JSONB turns 1e300 into a 301-digit integer, drops -0.0's
# sign and reorders keys, and MySQL's JSON reorders keys; text gives back what was written.
_DOCUMENT = sa.Text().with_variant(
    mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def make_table(
    metadata: sa.MetaData, name: str = DEFAULT_TABLE_NAME, *, schema: str | None = None
) -> sa.Table:
    """The jobs table, defined in ``metadata`` (for Alembic: ``target_metadata``).

    ==============  ================================================================
    ``job_id``      the primary key, compared byte for byte
    ``job_status``  the status, for filters and the final-state rule
    ``document``    the job document as JSON text, exactly as written
    ``updated_at``  seconds since the epoch, stamped by every write
    ``version``     1 on insert, +1 on every write that changes the row
    ``expires_at``  the document's ``expires_at`` in seconds since the epoch, or NULL
    ``owner``       the document's ``owner``, or NULL
    ==============  ================================================================

    Indexes: ``(updated_at, job_id)``, ``(job_status, updated_at, job_id)``, ``(expires_at)``
    and ``(owner, updated_at, job_id)``, the last two partial on PostgreSQL and SQLite (rows
    where the column is set). ``expires_at`` and ``owner`` are new in this release and
    nullable, so a table of the previous release gains them with ``ALTER TABLE … ADD COLUMN``
    alone; it is read as one whose records never expire and have no owner until then.
    """
    table = sa.Table(
        name,
        metadata,
        sa.Column("job_id", BinaryString(KEY_LENGTH), primary_key=True),
        sa.Column("job_status", BinaryString(KEY_LENGTH), nullable=False),
        sa.Column("document", _DOCUMENT, nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("owner", BinaryString(KEY_LENGTH), nullable=True),
        sa.Index(f"ix_{name}_updated", "updated_at", "job_id"),
        sa.Index(f"ix_{name}_status", "job_status", "updated_at", "job_id"),
        schema=schema,
    )
    c = table.c
    # Partial where the database has them (PostgreSQL, SQLite): a row without an expiry or an
    # owner is in neither index, so its writes maintain two indexes, not four.
    sa.Index(f"ix_{name}_expires", c.expires_at, **_where_set(c.expires_at))
    sa.Index(f"ix_{name}_owner", c.owner, c.updated_at, c.job_id, **_where_set(c.owner))
    return table


def _where_set(column: sa.Column[Any]) -> dict[str, Any]:
    condition = column.is_not(None)
    return {"postgresql_where": condition, "sqlite_where": condition}


#: The default ``MetaData``, holding :data:`jobs_table` alone.
metadata = sa.MetaData()
#: The table under its default name, ``jobstatus_jobs``.
jobs_table = make_table(metadata)
