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
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from conftest import service_unavailable  # noqa: E402

from jobstatus import (  # noqa: E402
    ConfigurationError,
    Conflict,
    InvalidRequest,
    JobNotFound,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus.adapters.wsgi import make_app  # noqa: E402
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
    if store.exists():
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
    assert list(table.c.keys()) == [
        "job_id",
        "job_status",
        "document",
        "updated_at",
        "version",
        "expires_at",
        "owner",
    ]
    assert [c.name for c in table.primary_key] == ["job_id"]
    assert [c.name for c in table.c if c.nullable] == ["expires_at", "owner"]
    assert {ix.name: [c.name for c in ix.columns] for ix in table.indexes} == {
        "ix_my_jobs_updated": ["updated_at", "job_id"],
        "ix_my_jobs_status": ["job_status", "updated_at", "job_id"],
        "ix_my_jobs_expires": ["expires_at"],
        "ix_my_jobs_owner": ["owner", "updated_at", "job_id"],
    }
    partial = {  # rows without an expiry or an owner are in neither index
        ix.name
        for ix in table.indexes
        if ix.dialect_options["postgresql"]["where"] is not None
        and ix.dialect_options["sqlite"]["where"] is not None
    }
    assert partial == {"ix_my_jobs_expires", "ix_my_jobs_owner"}


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
    restored = sql_store.get("a").version
    assert sql_store.put(JobRecord(job_id="a", job_status="running")).version == restored
    assert sql_store.put(JobRecord(job_id="a", job_status="failed")).version == restored
    forced = sql_store.put(JobRecord(job_id="a", job_status="failed"), force=True)
    assert forced.version != restored
    with sql_store.engine.connect() as conn:
        versions = dict(
            conn.execute(sa.select(sql_store.table.c.job_id, sql_store.table.c.version)).all()
        )
    assert versions == {"a": 2, "b": 1}  # the refused writes changed nothing


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


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_reads_create_nothing_and_the_first_write_creates_the_table(
    database: str, new_table: str
) -> None:
    """A missing table is an empty store for every read, delete and purge; only a write
    creates it (with its indexes)."""
    with open_sql_store(database, table_name=new_table) as store:
        assert not store.exists()
        with pytest.raises(JobNotFound):
            store.get("job")
        assert list(store.list()) == []
        assert list(store.list(status="done", limit=3)) == []
        assert store.delete("job") is False
        assert store.purge(older_than=time.time()) == 0
        assert store.restore([]) == 0
        assert not store.exists()
        assert new_table not in _tables(database)
        store.put(JobRecord(job_id="job", job_status="queued"))
        assert store.exists()
        assert store.get("job").job_status == "queued"
    assert new_table in _tables(database)


def test_a_reader_sees_a_table_another_store_creates_later(database: str, new_table: str) -> None:
    with (
        open_sql_store(database, table_name=new_table) as reader,
        open_sql_store(database, table_name=new_table) as writer,
    ):
        with pytest.raises(JobNotFound):
            reader.get("job")
        writer.put(JobRecord(job_id="job", job_status="running"))
        assert reader.get("job").job_status == "running"
        assert [r.job_id for r in reader.list()] == ["job"]


def test_reading_a_sqlite_file_that_is_not_there_makes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with open_sql_store(f"sqlite:///{path}") as store:
        with pytest.raises(JobNotFound):
            store.get("job")
        assert list(store.list()) == []
        assert not store.exists()
    assert not path.exists()


def test_a_migrate_dry_run_into_a_new_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    import io

    from jobstatus.cli import main

    with open_store(str(tmp_path / "src")) as source:
        source.put(JobRecord(job_id="job", job_status="done"))
    target = tmp_path / "new.db"
    out = io.StringIO()
    assert main(["migrate", "--dry-run", str(tmp_path / "src"), f"sqlite:///{target}"], out) == 0
    assert not target.exists(), out.getvalue()


def test_a_negative_limit_is_a_value_error(sql_store: SQLStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        sql_store.list(limit=-1)


def test_a_table_missing_with_create_table_off_is_a_storage_error(database: str) -> None:
    store = open_sql_store(database, table_name=table_name("absent"), create_table=False)
    with store, pytest.raises(StorageError) as info:
        store.get("job")
    assert "cannot read job 'job'" in str(info.value)


# -- a table of the previous release ------------------------------------------------------------


def _previous_release_table(url: str, name: str) -> None:
    """The table as the previous release made it (no expires_at, no owner), with one row."""
    from jobstatus.backends.sql import BinaryString

    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("job_id", BinaryString(255), primary_key=True),
        sa.Column("job_status", BinaryString(255), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Index(f"ix_{name}_updated", "updated_at", "job_id"),
        sa.Index(f"ix_{name}_status", "job_status", "updated_at", "job_id"),
    )
    engine = create_sql_engine(url)
    try:
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    job_id="old",
                    job_status="done",
                    document='{"job_status":"done","job_id":"old","response":1}',
                    updated_at=1_600_000_000.0,
                    version=3,
                )
            )
    finally:
        engine.dispose()


def _layout(url: str, name: str) -> tuple[list[str], set[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            columns = [c["name"] for c in inspector.get_columns(name)]
            indexes = {str(i["name"]) for i in inspector.get_indexes(name)}
    finally:
        engine.dispose()
    return columns, indexes


def test_a_previous_release_table_is_read_as_it_is_and_completed_by_the_first_write(
    database: str, new_table: str
) -> None:
    _previous_release_table(database, new_table)
    before = _layout(database, new_table)
    with open_sql_store(database, table_name=new_table) as store:
        old = store.get("old")
        assert (old.job_status, old.response, old.updated_at) == ("done", 1, 1_600_000_000.0)
        assert old.version
        assert [r.job_id for r in store.list(status="done")] == ["old"]
        assert store.purge(expired=True) == 0
        assert store.delete("absent") is False
        assert _layout(database, new_table) == before  # reads changed nothing
        store.put(JobRecord(job_id="new", job_status="done", owner="alice", expires_at=_PAST))
        columns, indexes = _layout(database, new_table)
        assert columns == [*before[0], "expires_at", "owner"]
        assert indexes == {*before[1], f"ix_{new_table}_expires", f"ix_{new_table}_owner"}
        assert store.get("old").version == old.version  # the old row is as it was
        with pytest.raises(JobNotFound):
            store.get("new")  # written expired: the new columns are in use
        assert store.purge(expired=True) == 1
        assert store.put(JobRecord(job_id="old", job_status="running"), force=True).version
    with open_sql_store(database, table_name=new_table) as again:  # nothing left to do
        assert again.get("old").job_status == "running"
        again.put(JobRecord(job_id="more", job_status="queued"))
    assert _layout(database, new_table) == (columns, indexes)


def test_with_create_table_off_a_previous_release_table_is_read_but_not_changed(
    database: str, new_table: str
) -> None:
    _previous_release_table(database, new_table)
    with open_sql_store(database, table_name=new_table, create_table=False) as store:
        assert store.get("old").job_status == "done"
        with pytest.raises(StorageError, match="lacks the columns expires_at, owner"):
            store.put(JobRecord(job_id="new", job_status="queued"))
    assert "owner" not in _layout(database, new_table)[0]


def _write_one(url: str, name: str, worker: int, start: Any) -> None:
    with open_store(url, table_name=name) as store:
        start.wait(60)
        store.put(JobRecord(job_id=f"w{worker}", job_status="queued", owner=f"o{worker}"))


def test_processes_racing_to_upgrade_the_table_all_succeed(database: str, new_table: str) -> None:
    """Four fresh processes write at once to a table of the previous release: each adds the
    columns and indexes, the losers of each step find it done and go on."""
    _previous_release_table(database, new_table)
    _run_processes(_write_one, [(database, new_table, w) for w in range(4)])
    with open_sql_store(database, table_name=new_table) as store:
        assert sorted(r.job_id for r in store.list()) == ["old", "w0", "w1", "w2", "w3"]
        assert {store.get(f"w{w}").owner for w in range(4)} == {"o0", "o1", "o2", "o3"}
    assert _layout(database, new_table)[0][-2:] == ["expires_at", "owner"]


# -- versions and expiry in the table -----------------------------------------------------------

_PAST = datetime(2020, 1, 1, tzinfo=timezone.utc)


def test_a_job_deleted_and_written_again_has_a_new_version(sql_store: SQLStore) -> None:
    """The version counter starts at 1 again for a new row; the version still differs."""
    first = sql_store.put(JobRecord(job_id="j", job_status="queued", response="first"))
    assert sql_store.delete("j")
    second = sql_store.put(JobRecord(job_id="j", job_status="queued", response="second"))
    assert second.version != first.version
    with pytest.raises(Conflict):
        sql_store.put(JobRecord(job_id="j", job_status="running"), expect_version=first.version)
    for nonsense in ["", "1", "1-", "x-1.0", "0-1.0", "1-nan", "1-inf", f"{2**40}-1.0"]:
        with pytest.raises(Conflict):
            sql_store.put(JobRecord(job_id="j", job_status="running"), expect_version=nonsense)
    assert sql_store.get("j").version == second.version


def test_expiry_and_owner_are_columns(sql_store: SQLStore) -> None:
    later = datetime(2100, 1, 1, tzinfo=timezone.utc)
    sql_store.put(JobRecord(job_id="j", job_status="done", owner="alice", expires_at=later))
    sql_store.put(JobRecord(job_id="k", job_status="done"))
    c = sql_store.table.c
    with sql_store.engine.connect() as conn:
        rows = conn.execute(sa.select(c.job_id, c.expires_at, c.owner).order_by(c.job_id)).all()
    assert [tuple(row) for row in rows] == [("j", later.timestamp(), "alice"), ("k", None, None)]
    with pytest.raises(InvalidRequest, match="owner is longer than 255"):
        sql_store.put(JobRecord(job_id="j", job_status="done", owner="x" * 256))


def test_deleting_an_expired_record_removes_it_and_says_there_was_none(
    sql_store: SQLStore,
) -> None:
    sql_store.put(JobRecord(job_id="j", job_status="done", expires_at=_PAST))
    assert sql_store.delete("j") is False
    with sql_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sql_store.table)).scalar() == 0


def test_purge_reads_no_document(sql_store: SQLStore) -> None:
    sql_store.put(JobRecord(job_id="j", job_status="done", expires_at=_PAST))
    sql_store.restore([JobRecord(job_id="k", job_status="done", updated_at=1_600_000_000)])
    statement, _ = _statement_of(
        sql_store, lambda: sql_store.purge(older_than=1_700_000_000, expired=True)
    )
    assert statement.lstrip().upper().startswith("DELETE")
    assert "document" not in statement
    assert list(sql_store.list()) == []


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
            assert not store.exists()  # the read connected, and created nothing


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
    for module in [m for m in sys.modules if m.startswith("jobstatus.backends.sql")]:
        monkeypatch.delitem(sys.modules, module)  # imported afresh, as in a new process
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


_ALIVE = {
    "postgresql": "SELECT pid FROM pg_stat_activity WHERE pid IN ({})",
    "mariadb": "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({})",
}


def _track_connections(engine: Any, kind: str) -> list[int]:
    """The server's ids of every connection ``engine`` opens from now on (a pool ``connect``
    event asks each new connection for its id)."""
    ids: list[int] = []

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(_BACKEND_ID[kind])
        ids.append(int(cursor.fetchone()[0]))
        cursor.close()
        dbapi_connection.rollback()

    sa.event.listen(engine, "connect", on_connect)
    return ids


def _alive(conn: Any, kind: str, ids: list[int]) -> list[int]:
    """Which of ``ids`` the server's own view of its connections still lists."""
    listed = ", ".join(str(i) for i in ids) or "NULL"
    return [int(i) for i in conn.exec_driver_sql(_ALIVE[kind].format(listed)).scalars()]


def _kill_connections(kind: str, ids: list[int]) -> int:
    """Have the server drop every connection of ``ids`` it still has, wait until its view of
    its connections no longer lists them, and return how many there were."""
    killer = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as conn:
            doomed = _alive(conn, kind, ids)
            for backend in doomed:
                conn.exec_driver_sql(_KILL[kind].format(backend))
            deadline = time.monotonic() + 30
            while _alive(conn, kind, doomed):
                assert time.monotonic() < deadline, "the server did not drop the connections"
                time.sleep(0.01)
    finally:
        killer.dispose()
    return len(doomed)


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.parametrize("pre_ping", [True, False])
def test_a_connection_the_server_dropped_is_replaced(kind: str, pre_ping: bool) -> None:
    """With pool_pre_ping the pool notices before use; without it (connections used a moment
    ago are not pinged) the statement fails on the dead connection and the store runs it
    again on a new one: reads, and put and restore (upserts) too."""
    engine = create_sql_engine(server_url(kind), pool_pre_ping=pre_ping)
    opened = _track_connections(engine, kind)
    name = table_name("drop")
    try:
        store = SQLStore(engine, table=make_table(sa.MetaData(), name))
        store.put(JobRecord(job_id="j", job_status="running"))
        assert _kill_connections(kind, opened) >= 1
        assert store.get("j").job_status == "running"
        assert _kill_connections(kind, opened) >= 1
        assert [r.job_id for r in store.list()] == ["j"]
        assert _kill_connections(kind, opened) >= 1
        assert store.put(JobRecord(job_id="j", job_status="done")).job_status == "done"
        assert _kill_connections(kind, opened) >= 1
        restored = JobRecord(job_id="r", job_status="failed", updated_at=1_700_000_000.5)
        assert store.restore([restored]) == 1
        assert store.get("r").updated_at == 1_700_000_000.5
    finally:
        engine.dispose()
        drop(SERVERS[kind], name)


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_an_idle_connection_is_pinged_and_replaced_before_use(kind: str) -> None:
    """Through a bare SQLAlchemy connection (no retry of the store's): the dead connection
    never reaches a statement, the checkout ping replaced it."""
    engine = create_sql_engine(server_url(kind), ping_after_idle=0.05)
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


@pytest.mark.services
def test_a_conditional_write_whose_commit_failed_is_not_run_again() -> None:
    """The server drops the connection during COMMIT (a deferred trigger ends its own
    session, once): the write may have been kept, so a conditional put is not run again (it
    would find its own write and call it a conflict) but reported; a plain put is run again."""
    url, name = server_url("postgresql"), table_name("doubt")
    engine = create_sql_engine(url)
    try:
        store = SQLStore(engine, table=make_table(sa.MetaData(), name))
        first = store.put(JobRecord(job_id="j", job_status="queued"))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SEQUENCE {name}_kills")
            conn.exec_driver_sql(
                f"CREATE FUNCTION {name}_kill() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF nextval('{name}_kills') = 1 THEN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NULL; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE CONSTRAINT TRIGGER {name}_kill AFTER INSERT OR UPDATE ON {name} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {name}_kill()"
            )
        with pytest.raises(StorageError, match="may have been kept"):
            store.put(JobRecord(job_id="j", job_status="running"), expect_version=first.version)
        assert store.get("j").version == first.version  # the session ended before its commit
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER SEQUENCE {name}_kills RESTART")
        assert store.put(JobRecord(job_id="j", job_status="running")).job_status == "running"
        store.close()
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}_kill")
            conn.exec_driver_sql(f"DROP SEQUENCE IF EXISTS {name}_kills")
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
    assert 1 <= engine.pool.checkedout() <= 2  # no call is running: the store keeps these
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
        assert reader.engine.pool.checkedout() == 1  # kept by the reader
        writer.put(JobRecord(job_id="j", job_status="running"))
        assert reader.get("j").job_status == "running"
        writer.put(JobRecord(job_id="j", job_status="done"))
        assert reader.get("j").job_status == "done"


def test_kept_connections_go_back_to_the_pool_when_idle(
    database: str, new_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ping_after_idle seconds the next call checks a connection out again, so the pool's
    checkout rules (the idle ping, pre-ping, recycle) apply to it. The keeper's clock is the
    test's, so a loaded machine cannot stretch "quick succession" past the limit."""
    from jobstatus.backends.sql import _keeper

    now = [1000.0]
    monkeypatch.setattr(_keeper, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with open_sql_store(database, table_name=new_table, ping_after_idle=0.5) as store:
        store.put(JobRecord(job_id="j", job_status="running"))  # creates the table, too
        checkouts: list[object] = []
        sa.event.listen(store.engine, "checkout", lambda *args: checkouts.append(args))
        for _ in range(20):
            now[0] += 0.4
            store.get("j")
        assert checkouts == []  # kept between calls less than ping_after_idle apart
        now[0] += 0.6
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
    checked_out: list[Any] = []
    closed: list[Any] = []
    sa.event.listen(engine, "checkout", lambda dbapi, record, proxy: checked_out.append(dbapi))
    sa.event.listen(engine, "close", lambda dbapi, record: closed.append(dbapi))
    store = SQLStore(engine, table=make_table(sa.MetaData(), new_table))
    store.put(JobRecord(job_id="j", job_status="running"))
    assert engine.pool.checkedout() == 1  # kept by the store
    kept = checked_out[-1]
    engine.dispose()
    assert any(c is kept for c in closed)
    assert engine.pool.checkedout() == 0
    assert store.get("j").job_status == "running"  # on a new pool
    assert engine.pool.checkedout() == 1
    del store
    gc.collect()
    assert engine.pool.checkedout() == 0
    engine.dispose()


def test_a_connection_in_use_while_the_engine_is_disposed_of_is_closed_after(
    database: str, new_table: str
) -> None:
    """engine.dispose() in the middle of a call (here as the call checks its connection out):
    the call ends well, and its connection, of the old pool, is closed rather than kept."""
    engine = create_sql_engine(database, pool_size=1)  # keeps none: every call checks out
    store = SQLStore(engine, table=make_table(sa.MetaData(), new_table))
    store.put(JobRecord(job_id="j", job_status="running"))
    checked_out: list[Any] = []
    closed: list[Any] = []

    def dispose_on_first_checkout(dbapi: Any, record: Any, proxy: Any) -> None:
        checked_out.append(dbapi)
        if len(checked_out) == 1:
            engine.dispose()

    sa.event.listen(engine, "checkout", dispose_on_first_checkout)
    sa.event.listen(engine, "close", lambda dbapi, record: closed.append(dbapi))
    assert store.get("j").job_status == "running"
    assert any(c is checked_out[0] for c in closed)
    assert store.get("j").job_status == "running"
    store.close()
    engine.dispose()


# -- several processes -----------------------------------------------------------------------------


def test_a_reader_never_sees_a_torn_record_sqlite(tmp_path: Path) -> None:
    report = rewrite_while_reading(
        f"sqlite:///{tmp_path / 'torn.db'}", min_reads=101, min_versions=11, table_name="torn"
    )
    assert report.reads > 100
    assert report.versions_seen > 10  # the writer really was rewriting
    assert report.failed == 0


@pytest.mark.services
def test_a_reader_never_sees_a_torn_record_postgresql() -> None:
    url, name = server_url("postgresql"), table_name("torn")
    try:
        report = rewrite_while_reading(url, min_reads=101, min_versions=11, table_name=name)
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


def _statement_of(store: SQLStore, call: Any) -> tuple[str, Any]:
    """The one SQL statement ``call()`` sends through SQLAlchemy, and its parameters."""
    sent: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)
    assert len(sent) == 1, sent
    return sent[0]


def _plan(store: SQLStore, call: Any) -> str:
    """The database's plan of the statement ``call()`` runs."""
    statement, parameters = _statement_of(store, call)
    with store.engine.connect() as conn:
        prefix = _EXPLAIN[store.engine.dialect.name]
        rows = conn.exec_driver_sql(prefix + statement, parameters).mappings().all()
    return "\n".join(" ".join(str(v) for v in row.values()) for row in rows)


def test_list_and_purge_use_the_indexes(sql_store: SQLStore) -> None:
    """5,000 old finished jobs, 20 recent running ones and 5 of one owner: the 600 s window, a
    status filter and one owner's jobs are index range scans, never a scan of the table; so is
    a purge of expired jobs."""
    now = time.time()
    sql_store.restore(
        JobRecord(job_id=f"old-{n}", job_status="done", updated_at=now - 86400 - n)
        for n in range(5000)
    )
    sql_store.restore(
        JobRecord(job_id=f"new-{n}", job_status="running", updated_at=now - n) for n in range(20)
    )
    sql_store.restore(
        JobRecord(job_id=f"mine-{n}", job_status="done", updated_at=now - n, owner="alice")
        for n in range(5)
    )
    name = sql_store.table.name
    with sql_store.engine.begin() as conn:
        conn.exec_driver_sql(_ANALYZE[sql_store.engine.dialect.name].format(name))

    def since() -> None:
        assert len(list(sql_store.list(since=now - 600))) == 25

    def by_status() -> None:
        assert len(list(sql_store.list(status="running"))) == 20

    def both() -> None:
        assert len(list(sql_store.list(since=now - 600, status=["running", "failed"]))) == 20

    def owned() -> None:
        assert [r.job_id for r in sql_store.list_owned("alice")] == [f"mine-{n}" for n in range(5)]

    assert f"ix_{name}_updated" in _plan(sql_store, since)
    assert f"ix_{name}_owner" in _plan(sql_store, owned)
    assert f"ix_{name}_status" in _plan(sql_store, by_status)
    assert re.search(f"ix_{name}_(status|updated)", _plan(sql_store, both))
    for query in (since, by_status, both, owned):
        plan = _plan(sql_store, query)
        assert "Seq Scan" not in plan, plan  # PostgreSQL
        assert f"SCAN {name}" not in plan, plan  # SQLite
        assert " ALL " not in plan, plan  # MariaDB's full table scan
    plan = _plan(sql_store, lambda: sql_store.purge(expired=True))  # deletes nothing here
    assert f"ix_{name}_expires" in plan, plan


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
