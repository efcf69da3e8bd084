"""What crash trials need to know of particular stores (private).

- The command line opens a SQL store on its default table, so a trial on a shared PostgreSQL
  or MariaDB server gets a database of its own: :func:`own_database`.
- A server may still apply a request a killed writer sent: :class:`InFlight` waits for it.
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


#: Sessions of another client that may still change the database: running a statement, or
#: inside a transaction (a dead client's COMMIT may still wait in the server's socket buffer).
_BUSY_SESSIONS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND state IN "
    "('active', 'idle in transaction', 'idle in transaction (aborted)')",
    "mysql": "SELECT count(*) FROM information_schema.PROCESSLIST p WHERE p.DB = DATABASE() "
    "AND p.ID <> CONNECTION_ID() AND (p.COMMAND <> 'Sleep' OR p.ID IN "
    "(SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX))",
}


class InFlight:
    """Waits until a killed writer's last request is done with, where a server may still be
    working on it after the writer died: its SQL session gone or idle, or (elsewhere) the
    records reading the same twice in a row, ``pause`` seconds apart.

    Once a writer process is reaped, its file-system calls (the filesystem store, SQLite) are
    over; a request it sent a server may still be applied after that -- the dead writer's
    last write landing while the store is read would look like a reader seeing two states.
    """

    def __init__(self, store: object, pause: float = 0.05) -> None:
        engine = getattr(store, "engine", None)
        dialect = None if engine is None else engine.dialect.name
        self._query = _BUSY_SESSIONS.get("mysql" if dialect == "mariadb" else str(dialect))
        self._engine = engine
        local = type(store).__name__ == "FileSystemStore" or dialect == "sqlite"
        self.pause = 0.0 if local or self._query else pause

    def sessions(self, cap: float = 30.0) -> None:
        """Wait (up to ``cap`` seconds) until no other session of the database is busy."""
        if self._query is None or self._engine is None:
            return
        import time

        deadline = time.monotonic() + cap
        with self._engine.connect() as conn:
            while time.monotonic() < deadline:
                busy = conn.exec_driver_sql(self._query).scalar()
                conn.rollback()
                if not busy:
                    return
                time.sleep(0.005)
