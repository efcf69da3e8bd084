"""The SQL store on SQLite, PostgreSQL and MariaDB: conformance, processes, failures, plans.

The servers are the ones on loopback (override with JOBSTATUS_TEST_POSTGRES_URL and
JOBSTATUS_TEST_MARIADB_URL). Every table is named per test session and dropped at the end, so
runs in parallel never meet.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from conftest import service_unavailable  # noqa: E402

from jobstatus import (  # noqa: E402
    ConfigurationError,
    InvalidRequest,
    JobNotFound,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus.adapters.wsgi import make_app  # noqa: E402
from jobstatus.backends import sql as sql_backend  # noqa: E402
from jobstatus.backends.sql import (  # noqa: E402
    DEFAULT_TABLE_NAME,
    SQLStore,
    create_sql_engine,
    jobs_table,
    make_table,
    metadata,
    open_sql_store,
)
from jobstatus.store import Store  # noqa: E402
from jobstatus.testing import StoreTests  # noqa: E402
from jobstatus.testing.processes import rewrite_while_reading  # noqa: E402
from jobstatus.testing.suite import UPSTREAM_EXAMPLE  # noqa: E402

pytestmark = pytest.mark.extras

POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "JOBSTATUS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
SERVERS = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}
SESSION = uuid.uuid4().hex[:8]
PASSWORD = "s3cr3t-Pa55word"
_counter = iter(range(1_000_000))


def table_name(purpose: str) -> str:
    """A table name no other test session uses."""
    return f"js_{SESSION}_{purpose}_{next(_counter)}"


def server_url(kind: str) -> str:
    """The URL of a server that answers, or a skip (a failure when services are required)."""
    url = SERVERS[kind]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        service_unavailable(f"{kind} is not reachable at {sa.make_url(url)!r}: {exc}")
    finally:
        engine.dispose()
    return url


def drop(url: str, name: str) -> None:
    engine = create_sql_engine(url)
    try:
        make_table(sa.MetaData(), name).drop(engine, checkfirst=True)
    finally:
        engine.dispose()


def empty(store: SQLStore) -> None:
    store._prepare()
    with store.engine.begin() as conn:
        conn.execute(sa.delete(store.table))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.services),
        pytest.param("mariadb", marks=pytest.mark.services),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each database in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return server_url(request.param)


@pytest.fixture
def new_table(database: str) -> Iterator[str]:
    """A table name on ``database``, dropped after the test."""
    name = table_name("t")
    yield name
    drop(database, name)


@pytest.fixture
def sql_store(database: str, new_table: str) -> Iterator[SQLStore]:
    with open_sql_store(database, table_name=new_table) as store:
        yield store


# -- the conformance suite -------------------------------------------------------------------------


def _session_store(url: str) -> Iterator[SQLStore]:
    name = table_name("suite")
    # Small batches: list pages, restore batches and purge rounds are all exercised.
    with open_sql_store(url, table_name=name, batch_size=2) as store:
        yield store
    drop(url, name)


@pytest.fixture(scope="session")
def sqlite_suite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLStore]:
    yield from _session_store(f"sqlite:///{tmp_path_factory.mktemp('sql') / 'suite.db'}")


@pytest.fixture(scope="session")
def postgres_suite_store() -> Iterator[SQLStore]:
    yield from _session_store(server_url("postgresql"))


@pytest.fixture(scope="session")
def mariadb_suite_store() -> Iterator[SQLStore]:
    yield from _session_store(server_url("mariadb"))


class TestSQLiteStore(StoreTests):
    @pytest.fixture
    def store(self, sqlite_suite_store: SQLStore) -> Store:
        empty(sqlite_suite_store)
        return sqlite_suite_store


class TestSQLiteInMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with open_store("sqlite://", batch_size=2) as store:
            yield store


@pytest.mark.services
class TestPostgreSQLStore(StoreTests):
    state_machine_examples = 25

    @pytest.fixture
    def store(self, postgres_suite_store: SQLStore) -> Store:
        empty(postgres_suite_store)
        return postgres_suite_store


@pytest.mark.services
class TestMariaDBStore(StoreTests):
    state_machine_examples = 25

    @pytest.fixture
    def store(self, mariadb_suite_store: SQLStore) -> Store:
        empty(mariadb_suite_store)
        return mariadb_suite_store


# -- the table -------------------------------------------------------------------------------------


def test_the_table_is_exposed_for_alembic() -> None:
    assert metadata.tables[DEFAULT_TABLE_NAME] is jobs_table
    table = make_table(sa.MetaData(), "my_jobs", schema="app")
    assert table.fullname == "app.my_jobs"
    assert list(table.c.keys()) == ["job_id", "job_status", "document", "updated_at", "version"]
    assert [c.name for c in table.primary_key] == ["job_id"]
    assert {ix.name: [c.name for c in ix.columns] for ix in table.indexes} == {
        "ix_my_jobs_updated": ["updated_at", "job_id"],
        "ix_my_jobs_status": ["job_status", "updated_at", "job_id"],
    }


def test_ids_differ_by_case_and_trailing_space(sql_store: SQLStore) -> None:
    """MariaDB's default collations would make these one id; the table's collation does not."""
    ids = ["job", "JOB", "job ", "jöb", "jo\u0308b"]
    for n, job_id in enumerate(ids):
        sql_store.put(JobRecord(job_id=job_id, job_status="DONE" if n else "done", response=n))
    assert [sql_store.get(job_id).response for job_id in ids] == list(range(len(ids)))
    assert [r.job_id for r in sql_store.list(status="done")] == ["job"]


def test_documents_are_kept_as_written(sql_store: SQLStore) -> None:
    """JSONB would give back 1e300 as a 301-digit integer and reorder nested keys."""
    response = {
        "z": 1e300,
        "a": 5e-324,
        "m": -0.0,
        "big": 2**53 - 1,
        "s": "✓ 😀 \u2028",
        "nested": {"b": 1, "a": [1.5, None, True]},
    }
    sql_store.put(JobRecord(job_id="exact", job_status="done", response=response))
    got = sql_store.get("exact")
    assert json.dumps(got.response) == json.dumps(response)  # key order and number spelling


def test_updated_at_keeps_microseconds_and_versions_count_writes(sql_store: SQLStore) -> None:
    stamps = [1_700_000_000.123456, 1_700_000_000.123457]
    sql_store.restore(
        [
            JobRecord(job_id="a", job_status="done", updated_at=stamps[0]),
            JobRecord(job_id="b", job_status="done", updated_at=stamps[1]),
        ]
    )
    assert [r.updated_at for r in sql_store.list()] == stamps[::-1]
    assert sql_store.put(JobRecord(job_id="a", job_status="running")).job_status == "done"
    sql_store.put(JobRecord(job_id="a", job_status="failed"))
    with sql_store.engine.connect() as conn:
        versions = dict(
            conn.execute(sa.select(sql_store.table.c.job_id, sql_store.table.c.version)).all()
        )
    assert versions == {"a": 2, "b": 1}  # the refused write changed nothing


def test_a_status_longer_than_the_column_is_refused(sql_store: SQLStore) -> None:
    with pytest.raises(InvalidRequest, match="longer than 255"):
        sql_store.put(JobRecord(job_id="j", job_status="x" * 256))
    sql_store.put(JobRecord(job_id="j", job_status="x" * 255))
    assert sql_store.get("j").job_status == "x" * 255


def test_list_and_purge_in_batches(database: str, new_table: str) -> None:
    with open_sql_store(database, table_name=new_table, batch_size=3) as store:
        store.restore(
            JobRecord(job_id=f"j{n:02d}", job_status="done", updated_at=1_600_000_000 + n // 2)
            for n in range(20)
        )
        listed = [r.job_id for r in store.list()]
        assert listed == [f"j{n:02d}" for n in reversed(range(20))]  # ties: job_id descending
        assert [r.job_id for r in store.list(limit=7)] == listed[:7]
        assert [r.job_id for r in store.list(since=1_600_000_005)] == listed[:10]
        assert store.purge(older_than=1_600_000_009) == 18
        assert [r.job_id for r in store.list()] == ["j19", "j18"]


def test_restore_keeps_the_last_of_one_id_in_a_batch(sql_store: SQLStore) -> None:
    first = JobRecord(job_id="j", job_status="done", response=1, updated_at=1_600_000_001)
    last = JobRecord(job_id="j", job_status="running", response=2, updated_at=1_600_000_000)
    assert sql_store.restore([first, last]) == 2
    got = sql_store.get("j")
    assert (got.response, got.updated_at) == (2, 1_600_000_000)


def test_a_row_that_is_no_record_is_the_spec_500(sql_store: SQLStore) -> None:
    """A row some other writer broke: named in the error, never a traceback."""
    sql_store.put(JobRecord(job_id=UPSTREAM_EXAMPLE["job_id"], job_status="running"))
    with sql_store.engine.begin() as conn:
        conn.execute(sa.update(sql_store.table).values(document='{"job_status": "run'))
    status, body = _ask(sql_store)
    assert status == 500
    assert body["error"].startswith("Failed to retrieve job status: job ")
    assert "is not a job record" in body["error"]


def test_a_table_missing_with_create_table_off_is_a_storage_error(database: str) -> None:
    store = open_sql_store(database, table_name=table_name("absent"), create_table=False)
    with store, pytest.raises(StorageError) as info:
        store.get("job")
    assert "cannot read job 'job'" in str(info.value)


# -- engines, URLs and extras ----------------------------------------------------------------------


def test_a_host_engine_is_used_and_left_open(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    store = open_store(
        f"sqlite:///{tmp_path / 'ignored.db'}", engine=engine, table_name="host_jobs"
    )
    assert isinstance(store, SQLStore)
    assert store.engine is engine
    store.put(JobRecord(job_id="j", job_status="queued"))
    store.close()
    with engine.connect() as conn:  # the host's engine still works, and holds the row
        assert conn.execute(sa.text("SELECT job_id FROM host_jobs")).scalar_one() == "j"
    assert not (tmp_path / "ignored.db").exists()
    with pytest.raises(ConfigurationError, match="cannot apply"):
        open_store("sqlite://", engine=engine, pool_size=3)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    with open_sql_store(f"sqlite:///{tmp_path / 'wal.db'}") as store:
        store.put(JobRecord(job_id="j", job_status="queued"))
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


@pytest.mark.services
def test_urls_without_a_driver_get_psycopg_and_pymysql() -> None:
    pg = sa.make_url(server_url("postgresql"))
    maria = sa.make_url(server_url("mariadb"))
    for url, driver in [
        (pg.set(drivername="postgresql"), "postgresql+psycopg"),
        (pg.set(drivername="postgres"), "postgresql+psycopg"),
        (maria.set(drivername="mysql"), "mysql+pymysql"),
        (maria.set(drivername="mariadb"), "mariadb+pymysql"),
    ]:
        with open_store(
            url.render_as_string(hide_password=False), table_name=table_name("url")
        ) as store:
            assert isinstance(store, SQLStore)
            assert store.engine.url.drivername == driver
            with pytest.raises(JobNotFound):
                store.get("nothing")
            store.table.drop(store.engine)


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql+psycopg://u:pw@127.0.0.1/db", "psycopg", "postgres"),
        ("postgresql://u:pw@127.0.0.1/db", "psycopg", "postgres"),
        ("mysql+pymysql://u:pw@127.0.0.1/db", "pymysql", "mysql"),
        ("mariadb://u:pw@127.0.0.1/db", "pymysql", "mysql"),
    ],
)
def test_a_missing_driver_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert f'pip install "jobstatus[{extra}]"' in str(info.value)
    assert "pw" not in str(info.value)


def test_missing_sqlalchemy_names_the_sql_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.delitem(sys.modules, "jobstatus.backends.sql")
    with pytest.raises(ConfigurationError, match=r'pip install "jobstatus\[sql\]"'):
        open_store("sqlite:///jobs.db")


def test_a_driver_the_url_names_but_nobody_installed() -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql.psycopg2")
    if "psycopg2" in sys.modules or _importable("psycopg2"):
        pytest.skip("psycopg2 is installed here")
    with pytest.raises(ConfigurationError, match="psycopg2 is not installed"):
        open_store(f"postgresql+psycopg2://u:{PASSWORD}@127.0.0.1/db")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(
    "url", [f"postgresql://u:{PASSWORD}@host:notaport/db", "sqlite+nodriver:///x.db"]
)
def test_a_bad_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert PASSWORD not in str(info.value)


# -- failures: a 500 in the spec's shape, never the password ---------------------------------------


def _ask(store: Store, job_id: str = UPSTREAM_EXAMPLE["job_id"]) -> tuple[int, Any]:
    service = StatusService(store, api_keys=["k"])
    reply = service.handle("/v1/toolkit/job/status", json.dumps({"job_id": job_id}).encode(), "k")
    return reply.status, reply.parsed()


def _assert_spec_500(status: int, body: Any, *, says: str) -> None:
    assert status == 500
    assert list(body) == ["error", "code"]
    assert body["code"] == 500
    assert body["error"].startswith("Failed to retrieve job status: cannot read job ")
    assert says in body["error"], body["error"]
    assert PASSWORD not in json.dumps(body)


@pytest.mark.services
def test_a_wrong_password_is_a_500_without_the_password() -> None:
    url = sa.make_url(server_url("mariadb")).set(password=PASSWORD)
    store = open_store(url.render_as_string(hide_password=False))
    assert PASSWORD not in repr(store)
    status, body = _ask(store)
    _assert_spec_500(status, body, says="Access denied for user")
    assert "***@" in body["error"]  # the database is named, its password hidden
    with pytest.raises(StorageError) as info:
        store.put(JobRecord(job_id="j", job_status="queued"))
    assert PASSWORD not in str(info.value)
    with pytest.raises(StorageError, match="cannot restore jobs") as info:
        store.restore([JobRecord(job_id="j", job_status="done", updated_at=1_700_000_000.0)])
    assert PASSWORD not in str(info.value)


@pytest.mark.services
def test_an_unreachable_host_is_a_500_without_the_password() -> None:
    url = sa.make_url(server_url("postgresql")).set(password=PASSWORD, port=1)
    store = open_store(url.render_as_string(hide_password=False))
    assert PASSWORD not in repr(store)
    _assert_spec_500(*_ask(store), says="port 1 failed")


def test_an_unopenable_sqlite_file_is_a_500(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'no-such-folder' / 'jobs.db'}")
    _assert_spec_500(*_ask(store), says="unable to open database file")


# -- connections: dropped by the server, and fork() ------------------------------------------------

_BACKEND_ID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}
_KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mariadb": "KILL {}"}


def _kill_connections(store: SQLStore, kind: str) -> int:
    """Have the server drop every connection the store's pool holds, and those the store keeps
    checked out between calls; return how many."""
    pool_ids = []
    conns = [store.engine.connect() for _ in range(store.engine.pool.checkedin())]
    for conn in conns:
        pool_ids.append(conn.exec_driver_sql(_BACKEND_ID[kind]).scalar())
    for conn in conns:
        conn.close()
    for kept in store._keeper.idle:
        dbapi = kept.connection.dbapi_connection
        try:
            cursor = dbapi.cursor()
            cursor.execute(_BACKEND_ID[kind])
            pool_ids.append(cursor.fetchone()[0])
            cursor.close()
            dbapi.rollback()
        except store.engine.dialect.loaded_dbapi.Error:
            pass  # dropped by an earlier round and not used since: dead already
    killer = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as conn:
            for backend in pool_ids:
                conn.exec_driver_sql(_KILL[kind].format(int(backend)))
    finally:
        killer.dispose()
    time.sleep(0.2)
    return len(pool_ids)


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("pre_ping", [True, False])
def test_a_connection_the_server_dropped_is_replaced(kind: str, pre_ping: bool) -> None:
    """With pool_pre_ping the pool notices before use; without it (connections used a moment
    ago are not pinged) the statement fails on the dead connection and the store runs it
    again on a new one: reads, and put and restore (upserts) too."""
    engine = create_sql_engine(server_url(kind), pool_pre_ping=pre_ping)
    name = table_name("drop")
    try:
        store = SQLStore(engine, table=make_table(sa.MetaData(), name))
        store.put(JobRecord(job_id="j", job_status="running"))
        assert _kill_connections(store, kind) >= 1
        assert store.get("j").job_status == "running"
        assert _kill_connections(store, kind) >= 1
        assert [r.job_id for r in store.list()] == ["j"]
        assert _kill_connections(store, kind) >= 1
        assert store.put(JobRecord(job_id="j", job_status="done")).job_status == "done"
        assert _kill_connections(store, kind) >= 1
        restored = JobRecord(job_id="r", job_status="failed", updated_at=1_700_000_000.5)
        assert store.restore([restored]) == 1
        assert store.get("r").updated_at == 1_700_000_000.5
    finally:
        engine.dispose()
        drop(SERVERS[kind], name)


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_an_idle_connection_is_pinged_and_replaced_before_use(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a bare SQLAlchemy connection (no retry of the store's): the dead connection
    never reaches a statement, the checkout ping replaced it."""
    monkeypatch.setattr(sql_backend, "PING_AFTER_IDLE", 0.05)
    engine = create_sql_engine(server_url(kind))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        with engine.connect() as conn:
            first = conn.exec_driver_sql(_BACKEND_ID[kind]).scalar()
        killer = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
        with killer.connect() as conn:
            conn.exec_driver_sql(_KILL[kind].format(int(first)))
        killer.dispose()
        time.sleep(0.2)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(_BACKEND_ID[kind]).scalar() != first
    finally:
        engine.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_its_own_connections(database: str, new_table: str) -> None:
    """As under gunicorn --preload: the parent used the pool before forking."""
    store = open_sql_store(database, table_name=new_table)
    store.put(JobRecord(job_id="j", job_status="running"))
    with store.engine.connect() as conn:
        parent_connection = conn.connection.dbapi_connection
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            ok = store.get("j").job_status == "running"
            store.put(JobRecord(job_id="child", job_status="done"))
            with store.engine.connect() as conn:
                fresh = conn.connection.dbapi_connection is not parent_connection
            code = 0 if ok and fresh else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"\x00"
    # The parent's own connection was left alone by the child and still works.
    assert store.get("child").job_status == "done"
    assert store.get("j").job_status == "running"
    store.close()


# -- kept connections ------------------------------------------------------------------------------


def test_get_and_put_keep_connections_and_leave_the_pool_one(database: str, new_table: str) -> None:
    """Calls from several threads at once keep at most pool_size - 1 connections between
    calls, so the host app sharing the engine still finds one in the pool."""
    import threading

    engine = create_sql_engine(database, pool_size=3, max_overflow=5)
    store = SQLStore(engine, table=make_table(sa.MetaData(), new_table))
    store.put(JobRecord(job_id="j", job_status="running"))
    barrier = threading.Barrier(6)

    def poll() -> None:
        barrier.wait()
        for _ in range(50):
            assert store.get("j").job_status == "running"

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= len(store._keeper.idle) <= 2
    assert engine.pool.checkedout() == len(store._keeper.idle)
    with engine.connect() as conn:  # the host's own query does not wait
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    store.close()
    assert engine.pool.checkedout() == 0
    engine.dispose()


def test_a_kept_connection_sees_other_writers_at_once(database: str, new_table: str) -> None:
    """A kept connection holds no transaction between calls: no stale snapshot (MariaDB's
    REPEATABLE READ would otherwise show the first read forever)."""
    with (
        open_sql_store(database, table_name=new_table) as reader,
        open_sql_store(database, table_name=new_table) as writer,
    ):
        writer.put(JobRecord(job_id="j", job_status="queued"))
        assert reader.get("j").job_status == "queued"
        assert len(reader._keeper.idle) == 1
        writer.put(JobRecord(job_id="j", job_status="running"))
        assert reader.get("j").job_status == "running"
        writer.put(JobRecord(job_id="j", job_status="done"))
        assert reader.get("j").job_status == "done"


def test_kept_connections_go_back_to_the_pool_when_idle(
    database: str, new_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After PING_AFTER_IDLE seconds the next call checks a connection out again, so the pool's
    checkout rules (the idle ping, pre-ping, recycle) apply to it."""
    monkeypatch.setattr(sql_backend, "PING_AFTER_IDLE", 0.05)
    with open_sql_store(database, table_name=new_table) as store:
        store.put(JobRecord(job_id="j", job_status="running"))  # creates the table, too
        checkouts: list[object] = []
        sa.event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))
        for _ in range(20):
            store.get("j")
        assert checkouts == []  # kept between calls in quick succession
        time.sleep(0.1)
        store.get("j")
        assert len(checkouts) == 1  # went back to the pool, checked out anew


def test_kept_connections_close_with_the_engine_and_the_store(
    database: str, new_table: str
) -> None:
    """engine.dispose() closes them (no connection left open for the garbage collector to
    find: pytest turns that warning into an error); a dropped, unclosed store gives its back
    to the pool."""
    import gc

    engine = create_sql_engine(database)
    store = SQLStore(engine, table=make_table(sa.MetaData(), new_table))
    store.put(JobRecord(job_id="j", job_status="running"))
    kept = store._keeper.idle[0].connection
    engine.dispose()
    assert not kept.is_valid
    assert not store._keeper.idle
    assert store.get("j").job_status == "running"  # on a new pool
    assert engine.pool.checkedout() == 1
    del store
    gc.collect()
    assert engine.pool.checkedout() == 0
    engine.dispose()


def test_a_connection_in_use_while_the_engine_is_disposed_of_is_closed_after(
    database: str, new_table: str
) -> None:
    """engine.dispose() from another thread in the middle of a call: the call ends well, and its
    connection, of the old pool, is closed rather than kept."""
    engine = create_sql_engine(database)
    store = SQLStore(engine, table=make_table(sa.MetaData(), new_table))
    store.put(JobRecord(job_id="j", job_status="running"))

    def dispose_midway(cursor: Any, statements: Any) -> Any:
        engine.dispose()
        return statements.select_one.run(cursor, {"job_id": "j"})

    row = store._call("j", dispose_midway, write=False)
    assert json.loads(row[0])["job_status"] == "running"
    assert not store._keeper.idle
    assert store.get("j").job_status == "running"
    store.close()
    engine.dispose()


# -- several processes -----------------------------------------------------------------------------


def test_a_reader_never_sees_a_torn_record_sqlite(tmp_path: Path) -> None:
    report = rewrite_while_reading(
        f"sqlite:///{tmp_path / 'torn.db'}", min_reads=101, table_name="torn"
    )
    assert report.reads > 100
    assert report.versions_seen > 10  # the writer really was rewriting
    assert report.failed == 0


@pytest.mark.services
def test_a_reader_never_sees_a_torn_record_postgresql() -> None:
    url, name = server_url("postgresql"), table_name("torn")
    try:
        report = rewrite_while_reading(url, min_reads=101, table_name=name)
    finally:
        drop(url, name)
    assert report.reads > 100
    assert report.versions_seen > 10  # the writer really was rewriting
    assert report.failed == 0


WRITERS = 4
WRITES = 500


def _write_many(url: str, name: str, worker: int, start: Any) -> None:
    with open_store(url, table_name=name) as store:
        start.wait(60)
        for n in range(WRITES):
            store.put(
                JobRecord(
                    job_id="shared", job_status="running", response={"worker": worker, "n": n}
                )
            )
            store.put(JobRecord(job_id=f"own-{worker}", job_status="running", response={"n": n}))


def _run_processes(target: Any, args: list[tuple[Any, ...]]) -> None:
    """Run ``target(*a, start)`` in a fresh process for each ``a``; they all pass ``start``
    (a barrier) together, so they really do run at once."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(args))
    processes = [context.Process(target=target, args=(*a, start)) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert [p.exitcode for p in processes] == [0] * len(processes)


@pytest.mark.slow
def test_many_writer_processes(database: str, new_table: str) -> None:
    """4 processes x 500 upserts of one shared id and of their own: no error ("database is
    locked", a deadlock), no lost write, the last write wins."""
    _run_processes(_write_many, [(database, new_table, w) for w in range(WRITERS)])
    with open_sql_store(database, table_name=new_table) as store:
        assert store.get("shared").response["n"] == WRITES - 1
        assert {store.get(f"own-{w}").response["n"] for w in range(WRITERS)} == {WRITES - 1}
        with store.engine.connect() as conn:
            versions = dict(
                conn.execute(sa.select(store.table.c.job_id, store.table.c.version)).all()
            )
    # every write changed the row once: none was lost
    assert versions == {"shared": WRITERS * WRITES, **{f"own-{w}": WRITES for w in range(4)}}


def _create_and_write(url: str, name: str, worker: int, start: Any) -> None:
    with open_store(url, table_name=name) as store:
        start.wait(60)
        store.put(JobRecord(job_id=f"w{worker}", job_status="queued"))


def test_processes_racing_to_create_the_table_all_succeed(database: str, new_table: str) -> None:
    """Four fresh processes meet at a barrier, then each writes to a table none has created:
    all CREATE at once, the losers see "already exists" (or PostgreSQL's pg_type unique
    violation), find the table and go on."""
    _run_processes(_create_and_write, [(database, new_table, w) for w in range(4)])
    with open_sql_store(database, table_name=new_table) as store:
        assert sorted(r.job_id for r in store.list()) == ["w0", "w1", "w2", "w3"]


# -- the query plans -------------------------------------------------------------------------------

_EXPLAIN = {
    "sqlite": "EXPLAIN QUERY PLAN ",
    "postgresql": "EXPLAIN ",
    "mysql": "EXPLAIN ",
    "mariadb": "EXPLAIN ",
}
_ANALYZE = {
    "sqlite": "ANALYZE",
    "postgresql": "ANALYZE {}",
    "mysql": "ANALYZE TABLE {}",
    "mariadb": "ANALYZE TABLE {}",
}


def _plan(store: SQLStore, query: Any) -> str:
    dialect = store.engine.dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(_EXPLAIN[dialect.name] + sql).mappings().all()
    return "\n".join(" ".join(str(v) for v in row.values()) for row in rows)


def test_list_uses_the_indexes(sql_store: SQLStore) -> None:
    """5,000 old finished jobs and 20 recent running ones: the 600 s window and a status
    filter are index range scans, never a scan of the table."""
    now = time.time()
    sql_store.restore(
        JobRecord(job_id=f"old-{n}", job_status="done", updated_at=now - 86400 - n)
        for n in range(5000)
    )
    sql_store.restore(
        JobRecord(job_id=f"new-{n}", job_status="running", updated_at=now - n) for n in range(20)
    )
    name = sql_store.table.name
    with sql_store.engine.begin() as conn:
        conn.exec_driver_sql(_ANALYZE[sql_store.engine.dialect.name].format(name))
    since = sql_store._list_query(since=now - 600, limit=1000)
    by_status = sql_store._list_query(statuses=["running"], limit=1000)
    both = sql_store._list_query(since=now - 600, statuses=["running", "failed"], limit=1000)
    assert f"ix_{name}_updated" in _plan(sql_store, since)
    assert f"ix_{name}_status" in _plan(sql_store, by_status)
    assert re.search(f"ix_{name}_(status|updated)", _plan(sql_store, both))
    for query in (since, by_status, both):
        plan = _plan(sql_store, query)
        assert "Seq Scan" not in plan, plan  # PostgreSQL
        assert f"SCAN {name}" not in plan, plan  # SQLite
        assert " ALL " not in plan, plan  # MariaDB's full table scan
    assert len(list(sql_store.list(since=now - 600))) == 20
    assert len(list(sql_store.list(status="running"))) == 20


# -- the HTTP path ---------------------------------------------------------------------------------


def _post(app: Any, path: str, body: bytes, key: str = "k") -> tuple[int, bytes]:
    import io

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_X_API_KEY": key,
    }
    seen: list[str] = []
    payload = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return int(seen[0].split()[0]), payload


def test_the_endpoint_answers_the_spec_example_from_sql(sql_store: SQLStore) -> None:
    job_id = UPSTREAM_EXAMPLE["job_id"]
    sql_store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    sql_store.restore([JobRecord(job_id="ancient", job_status="done", updated_at=1e9)])
    app = make_app(
        StatusService(sql_store, api_keys=["k"], build_number="1.0.0", queue_id=140368864456064)
    )
    status, body = _post(app, "/v1/toolkit/job/status", json.dumps({"job_id": job_id}).encode())
    assert status == 200
    envelope = json.loads(body)
    assert envelope["response"] == UPSTREAM_EXAMPLE
    assert json.dumps(envelope["response"]) == json.dumps(UPSTREAM_EXAMPLE)  # order kept
    assert (envelope["endpoint"], envelope["code"], envelope["job_id"], envelope["message"]) == (
        "/v1/toolkit/job/status",
        200,
        job_id,
        "success",
    )
    status, body = _post(app, "/v1/toolkit/jobs/status", b"")
    assert (status, json.loads(body)["response"]) == (200, {job_id: "done"})
    other = "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
    status, body = _post(app, "/v1/toolkit/job/status", json.dumps({"job_id": other}).encode())
    assert (status, json.loads(body)) == (404, {"error": "Job not found", "job_id": other})
