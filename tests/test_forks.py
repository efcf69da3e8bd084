"""gunicorn ``--preload``: a store opened in the master before it forks its workers.

What is guaranteed: every worker answers every job with that job's own record, no worker goes
on using the master's connection or session (the servers count one session per worker), and
gunicorn's error log shows no SSL error, no "commands out of sync", no traceback. The figures
are printed on the terminal (``FIGURES …`` lines) and copied into docs/reliability.rst.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import s3_server
from tests.forks import FORK_WORKERS, check_fork_load, serve_preloaded
from tests.staging import SQL_SERVERS, drop_table, require_port

pytestmark = [pytest.mark.extras, pytest.mark.services, pytest.mark.slow]


@contextlib.contextmanager
def tagged_sessions(database: str) -> Iterator[tuple[str, dict[str, Any], Callable[[], int]]]:
    """A store URL and options whose server sessions carry a tag of their own (PostgreSQL: the
    application name; MariaDB: a user made for the test, dropped after it), and a function
    counting the server's sessions with that tag."""
    tag = f"jsfork_{uuid.uuid4().hex[:8]}"
    if database == "postgresql":
        import psycopg

        def count_postgresql() -> int:
            with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
                query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                row = conn.execute(query, (tag,)).fetchone()
                return int(row[0]) if row else 0

        url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        yield url, {"connect_args": {"application_name": tag}}, count_postgresql
        return
    import pymysql

    admin = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{tag}'@'127.0.0.1'")
            cursor.execute(f"GRANT ALL ON test.* TO '{tag}'@'127.0.0.1'")

        def count_mariadb() -> int:
            with admin.cursor() as cursor:
                query = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s"
                cursor.execute(query, (tag,))
                row = cursor.fetchone()
                return int(row[0]) if row else 0

        yield f"mysql+pymysql://{tag}@127.0.0.1:3306/test", {}, count_mariadb
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{tag}'@'127.0.0.1'")
        admin.close()


@pytest.mark.parametrize("database", list(SQL_SERVERS))
def test_gunicorn_preload_shares_no_database_connection(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("sqlalchemy")
    _, port, name = SQL_SERVERS[database]
    require_port(port, name)
    table = f"jobstatus_forks_{uuid.uuid4().hex[:10]}"
    with tagged_sessions(database) as (url, options, count_sessions):
        try:
            load, problems, sessions = serve_preloaded(
                url, {**options, "table_name": table}, tmp_path, count_sessions=count_sessions
            )
        finally:
            drop_table(url, table)
    check_fork_load(load, problems, capsys, database, sessions)
    # The master's session and each worker's own: no worker kept using the master's.
    assert sessions is not None
    assert sessions >= FORK_WORKERS + 1


def test_gunicorn_preload_shares_no_s3_session(
    s3_endpoint: s3_server.S3Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gunicorn")
    load, problems, _ = serve_preloaded(s3_endpoint.store_url(), {}, tmp_path)
    check_fork_load(load, problems, capsys, "s3")
