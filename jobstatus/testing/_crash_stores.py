"""Stores for crash trials that ``check --deep`` can open by URL alone (private).

The command line opens a SQL store on its default table, so a trial on a shared PostgreSQL or
MariaDB server gets a database of its own: :func:`own_database`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__: list[str] = []


@contextmanager
def own_database(server_url: str, name: str) -> Iterator[str]:
    """A new database ``name`` on the server of ``server_url`` (any database of it, which is
    left alone), dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    url = sa.make_url(server_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                if admin.dialect.name == "postgresql":  # a pooled session may linger
                    conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.dispose()
