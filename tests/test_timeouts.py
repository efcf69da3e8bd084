"""The ``timeout`` option of the network stores: how it is given (a URL's query, a keyword),
checked, and turned into each driver's own options -- which an explicit driver option still
overrides -- and the watchdog that ends a psycopg read nobody answers.

What the timeouts do under a silent network is tests/test_silence.py; here, what the stores
are told. Nothing here needs a server: an engine records its connect arguments in a
``do_connect`` listener, which stops the connect before it starts.
"""

from __future__ import annotations

import math
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from jobstatus import ConfigurationError, open_store
from jobstatus.backends import DEFAULT_TIMEOUT
from jobstatus.backends._timeout import check_timeout

BAD_TIMEOUTS = ["0", "-1", "inf", "nan", "soon", ""]


@pytest.mark.parametrize(("given", "seconds"), [("2.5", 2.5), (3, 3.0), (0.25, 0.25)])
def test_a_timeout_is_a_positive_finite_number_of_seconds(given: Any, seconds: float) -> None:
    assert check_timeout(given) == seconds


@pytest.mark.parametrize("given", [*BAD_TIMEOUTS, 0, -2.0, math.inf, math.nan, True, None])
def test_a_bad_timeout_is_a_configuration_error_naming_it(given: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout") as info:
        check_timeout(given)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "file:///tmp/jobs",
        "/tmp/jobs",
    ],
)
def test_the_local_stores_take_no_timeout(url: str) -> None:
    """Memory and files wait on nothing a timeout could bound (a hung network mount blocks
    the kernel's file calls, which no process can cut short): a timeout is refused, not
    ignored."""
    with pytest.raises((ConfigurationError, TypeError), match="timeout"):
        open_store(url, timeout=2)


# -- SQL ----------------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by the do_connect listener: the connect arguments are seen, nothing is sent."""


def _connect_args(url: str, **options: Any) -> dict[str, Any]:
    """What the engine of ``open_store(url, **options)`` would hand its driver's connect()."""
    from sqlalchemy import event

    store: Any = open_store(url, **options)
    seen: dict[str, Any] = {}

    def record(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.update(cparams)
        raise _Stop

    event.listen(store.engine, "do_connect", record)
    try:
        with pytest.raises(_Stop):
            store.engine.connect()
    finally:
        store.close()
    return seen


POSTGRES = "postgresql://u@127.0.0.1:1/db"
MYSQL = "mysql://u@127.0.0.1:1/db"


@pytest.mark.extras
def test_postgresql_gets_libpq_timeouts_from_the_timeout() -> None:
    pytest.importorskip("psycopg")
    args = _connect_args(f"{POSTGRES}?timeout=2.5")
    assert "timeout" not in args  # the store's option, not libpq's
    assert args["connect_timeout"] == "3"  # whole seconds, rounded up
    assert args["keepalives"] == "1"
    assert int(args["keepalives_idle"]) + int(args["keepalives_count"]) * int(
        args["keepalives_interval"]
    ) == math.ceil(2.5)
    assert args["tcp_user_timeout"] == "2500"
    assert args["options"] == "-c statement_timeout=2500"
    default = _connect_args(POSTGRES)
    assert default["tcp_user_timeout"] == str(int(DEFAULT_TIMEOUT * 1000))
    # libpq waits at least 2 s for a connect, whatever it is told: it is told so.
    assert _connect_args(POSTGRES, timeout=0.5)["connect_timeout"] == "2"


@pytest.mark.extras
def test_explicit_driver_options_win_over_the_derived_ones() -> None:
    pytest.importorskip("psycopg")
    args = _connect_args(
        f"{POSTGRES}?timeout=2&connect_timeout=7",
        connect_args={"options": "-c search_path=jobs", "keepalives": "0"},
    )
    assert args["connect_timeout"] == "7"  # the URL's own libpq option
    assert args["options"] == "-c search_path=jobs"  # theirs, whole: no statement_timeout
    assert args["keepalives"] == "0"
    assert args["tcp_user_timeout"] == "2000"  # what they did not set is still derived


@pytest.mark.extras
def test_the_keyword_wins_over_the_url_and_reaches_the_store() -> None:
    pytest.importorskip("psycopg")
    assert _connect_args(f"{POSTGRES}?timeout=9", timeout=3)["tcp_user_timeout"] == "3000"
    with open_store(f"{POSTGRES}?timeout=9", timeout=3) as store:
        assert store.timeout == 3.0  # type: ignore[attr-defined]
        # and no call waits longer than that for a free connection of the pool
        assert store.engine.pool.timeout() == 3.0  # type: ignore[attr-defined]
    with open_store(POSTGRES, timeout=3, pool_timeout=30) as store:
        assert store.engine.pool.timeout() == 30  # type: ignore[attr-defined]
    with open_store(POSTGRES) as store:
        assert store.timeout == DEFAULT_TIMEOUT  # type: ignore[attr-defined]


@pytest.mark.extras
def test_mysql_gets_pymysql_timeouts_from_the_timeout() -> None:
    pytest.importorskip("pymysql")
    args = _connect_args(f"{MYSQL}?timeout=2.5")
    assert "timeout" not in args
    assert (args["connect_timeout"], args["read_timeout"], args["write_timeout"]) == (2.5,) * 3
    assert _connect_args(MYSQL, connect_args={"read_timeout": 30})["read_timeout"] == 30


@pytest.mark.extras
def test_a_host_engine_keeps_its_options_and_the_store_takes_the_timeout() -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    engine = sqlalchemy.create_engine("postgresql+psycopg://u@127.0.0.1:1/db")
    with open_store(POSTGRES, engine=engine) as store:
        assert store.timeout == DEFAULT_TIMEOUT  # type: ignore[attr-defined]
    with open_store(POSTGRES, engine=engine, timeout="1.5") as store:
        assert store.timeout == 1.5  # type: ignore[attr-defined]
    engine.dispose()


def _busy_timeout_ms(store: Any) -> int:
    with store.engine.connect() as conn:
        value: int = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    return value


@pytest.mark.extras
def test_sqlite_takes_the_timeout_as_its_busy_timeout(tmp_path: Path) -> None:
    """A file has no network to go silent; what a SQLite call may wait for is another
    writer's lock: 30 s unless ``timeout`` says otherwise."""
    pytest.importorskip("sqlalchemy")
    with open_store(f"sqlite:///{tmp_path}/a.db") as store:
        assert _busy_timeout_ms(store) == 30_000
    with open_store(f"sqlite:///{tmp_path}/b.db?timeout=0.25") as store:
        assert _busy_timeout_ms(store) == 250
    # sqlite3's own option, given explicitly, is left to do its work.
    with open_store(f"sqlite:///{tmp_path}/c.db", connect_args={"timeout": 7}) as store:
        assert _busy_timeout_ms(store) == 7000


@pytest.mark.extras
@pytest.mark.parametrize("bad", [b for b in BAD_TIMEOUTS if b])  # SQLAlchemy drops "timeout="
def test_a_bad_timeout_in_a_database_url_names_it(bad: str, tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    with pytest.raises(ConfigurationError, match="timeout"):
        open_store(f"sqlite:///{tmp_path}/a.db?timeout={bad}")
    with pytest.raises(ConfigurationError, match="timeout is given 2 times"):
        open_store(f"sqlite:///{tmp_path}/a.db?timeout=1&timeout=2")


# -- S3 -----------------------------------------------------------------------------------------

S3 = "s3://bucket/p?endpoint_url=http://127.0.0.1:1"


@pytest.mark.extras
def test_s3_gets_botocore_timeouts_from_the_timeout() -> None:
    pytest.importorskip("s3fs")
    with open_store(f"{S3}&timeout=2.5") as store:
        config = store.fs.config_kwargs  # type: ignore[attr-defined]
        assert (config["connect_timeout"], config["read_timeout"]) == (2.5, 2.5)
        assert "timeout" not in store.fs.storage_options  # type: ignore[attr-defined]
    with open_store(S3, timeout=1, config_kwargs={"read_timeout": 9}) as store:
        config = store.fs.config_kwargs  # type: ignore[attr-defined]
        assert (config["connect_timeout"], config["read_timeout"]) == (1, 9)
    with open_store(S3) as store:
        config = store.fs.config_kwargs  # type: ignore[attr-defined]
        assert config["read_timeout"] == DEFAULT_TIMEOUT


@pytest.mark.extras
@pytest.mark.parametrize("bad", BAD_TIMEOUTS)
def test_a_bad_timeout_in_an_s3_url_names_it(bad: str) -> None:
    pytest.importorskip("s3fs")
    with pytest.raises(ConfigurationError, match="timeout"):
        open_store(f"{S3}&timeout={bad}")


# -- Redis --------------------------------------------------------------------------------------


@pytest.mark.extras
def test_redis_gets_its_socket_timeouts_from_the_timeout() -> None:
    pytest.importorskip("redis")
    from jobstatus.backends.redis._url import parse_redis_url

    both = parse_redis_url("redis://h/0?timeout=2.5", {}).connection
    assert (both["socket_timeout"], both["socket_connect_timeout"]) == (2.5, 2.5)
    one = parse_redis_url("redis://h/0?timeout=2.5&socket_timeout=9", {}).connection
    assert (one["socket_timeout"], one["socket_connect_timeout"]) == (9.0, 2.5)
    keyword = parse_redis_url("redis://h/0?timeout=2.5", {"timeout": 1}).connection
    assert keyword["socket_timeout"] == 1.0
    sentinel = parse_redis_url("redis+sentinel://s1/m?timeout=2", {})
    assert sentinel.sentinel_kwargs == {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
    for bad in BAD_TIMEOUTS:
        with pytest.raises(ConfigurationError, match="timeout"):
            parse_redis_url(f"redis://h/0?timeout={bad}", {})


@pytest.mark.extras
def test_a_host_redis_client_keeps_its_own_timeouts() -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis()
    with pytest.raises(ConfigurationError, match="timeout"):
        open_store("redis://", client=client, timeout=2)


# -- the watchdog -------------------------------------------------------------------------------


class _Connection:
    """What the watchdog asks of a psycopg connection: ``closed`` and ``fileno()``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.mark.extras
def test_the_watchdog_ends_a_read_nobody_answers_and_leaves_the_others_be() -> None:
    pytest.importorskip("sqlalchemy")
    from jobstatus.backends.sql import _watchdog

    ours, silent = socket.socketpair()
    kept, peer = socket.socketpair()
    with ours, silent, kept, peer:
        armed = _watchdog.arm(_Connection(ours), 0.2)
        read: list[bytes] = []
        reader = threading.Thread(target=lambda: read.append(ours.recv(1)))
        reader.start()
        reader.join(30)  # a bound on the test, not the measure: the watchdog ends it first
        assert read == [b""]  # the read ended: the socket was shut down under it
        assert _watchdog.disarm(armed)

        answered = _watchdog.arm(_Connection(kept), 30)
        peer.sendall(b"x")
        assert kept.recv(1) == b"x"
        assert not _watchdog.disarm(answered)
        peer.sendall(b"y")
        assert kept.recv(1) == b"y"  # disarmed in time: still open
