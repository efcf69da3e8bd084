"""The Redis store: conformance, the key layout, expiry, the change feed, URLs, host clients,
Sentinel, the HTTP suite over Redis, and a migration file → Redis → SQLite.

Runs against the Redis at 127.0.0.1:6379 (``JOBSTATUS_TEST_REDIS_URL`` to override), each test
under a key prefix of its own that is removed afterwards; Sentinel gets servers of its own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from jobstatus import (  # noqa: E402
    ABSENT,
    ConfigurationError,
    Conflict,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus.backends.filesystem import FileSystemStore  # noqa: E402
from jobstatus.backends.redis import RedisStore, _scripts  # noqa: E402
from jobstatus.backends.redis._url import parse_redis_url  # noqa: E402
from jobstatus.migrate import migrate  # noqa: E402
from jobstatus.store import Store, version_of  # noqa: E402
from jobstatus.testing import ChangeNotificationTests, StoreTests  # noqa: E402
from jobstatus.testing.suite import UPSTREAM_EXAMPLE  # noqa: E402
from tests import test_http as http_suite  # noqa: E402
from tests.clients import Client  # noqa: E402
from tests.redis_server import (  # noqa: E402
    RedisServer,
    keys_under,
    make_certificates,
    new_prefix,
    remove_prefix,
    shared_redis_url,
)

pytestmark = [pytest.mark.extras, pytest.mark.services]

PASSWORD = "s3cr3t-Redis-pa55"
JOB_ID = UPSTREAM_EXAMPLE["job_id"]


@pytest.fixture(scope="module")
def raw() -> Iterator[Any]:
    """A plain redis-py client on the shared server, to look at what the store wrote."""
    client = redis.Redis.from_url(shared_redis_url())
    yield client
    client.close()


@pytest.fixture
def prefix(raw: Any) -> Iterator[str]:
    name = new_prefix("t")
    yield name
    remove_prefix(raw, name)


@pytest.fixture
def redis_store(prefix: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(shared_redis_url(), prefix=prefix, batch_size=3, page_size=3) as store:
        yield store


def _in(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


# -- the conformance suite ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_store(raw: Any) -> Iterator[RedisStore]:
    name = new_prefix("suite")
    # Small batches: list pages, restore batches and purge rounds are all exercised.
    with RedisStore.from_url(shared_redis_url(), prefix=name, batch_size=2, page_size=2) as store:
        yield store
    remove_prefix(raw, name)


class TestRedisStore(StoreTests):
    state_machine_examples = 30

    @pytest.fixture
    def store(self, suite_store: RedisStore, raw: Any) -> RedisStore:
        remove_prefix(raw, suite_store.prefix)
        return suite_store


class TestRedisStoreChanges(ChangeNotificationTests):
    """Every writer on the same Redis and prefix is reported: here another store object."""

    @pytest.fixture
    def store(self, prefix: str) -> Iterator[Store]:
        with RedisStore.from_url(shared_redis_url(), prefix=prefix) as store:
            yield store

    @pytest.fixture
    def other_writer(self, prefix: str) -> Iterator[Store]:
        with RedisStore.from_url(shared_redis_url(), prefix=prefix) as store:
            yield store


class TestRedisStoreOnAHostClient(StoreTests):
    """A host's own client that decodes answers to str: the store reads either kind."""

    state_machine_examples = 10

    @pytest.fixture
    def store(self, raw: Any, prefix: str) -> Iterator[Store]:
        client = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
        with RedisStore(client, prefix=prefix) as store:
            yield store
        assert client.ping()  # the host's client is left open
        client.close()


# -- the layout --------------------------------------------------------------------------------


def test_the_layout_one_hash_per_record_and_its_indexes(
    redis_store: RedisStore, raw: Any, prefix: str
) -> None:
    expires = _in(3600).replace(microsecond=123000)
    stored = redis_store.put(
        JobRecord(job_id="j1", job_status="running", response={"r": 1}, expires_at=expires)
    )
    key = f"{prefix}:job:j1".encode()
    assert keys_under(raw, prefix) == sorted(
        k.encode()
        for k in (
            f"{prefix}:job:j1",
            f"{prefix}:updated",
            f"{prefix}:status:running",
            f"{prefix}:statuses",
            f"{prefix}:expires",
        )
    )
    fields = raw.hgetall(key)
    assert set(fields) == {b"doc", b"status", b"updated_at", b"version"}
    assert fields[b"doc"] == stored.to_json().encode("utf-8")  # the file store's bytes
    assert fields[b"version"].decode() == stored.version == version_of(fields[b"doc"])
    assert float(fields[b"updated_at"]) == stored.updated_at
    assert raw.zscore(f"{prefix}:updated", "j1") == stored.updated_at
    assert raw.zscore(f"{prefix}:status:running", "j1") == stored.updated_at
    expires_ms = round(expires.timestamp() * 1000)
    assert raw.zscore(f"{prefix}:expires", "j1") == expires_ms
    assert raw.pexpiretime(key) == expires_ms - 1  # gone once its time has come

    redis_store.put(JobRecord(job_id="j1", job_status="done"))  # no expiry any more
    assert raw.ttl(key) == -1
    assert raw.zscore(f"{prefix}:expires", "j1") is None
    assert raw.exists(f"{prefix}:status:running") == 0
    assert raw.smembers(f"{prefix}:statuses") == {b"done"}
    assert redis_store.delete("j1") is True
    assert keys_under(raw, prefix) == []


def test_updated_at_is_kept_exactly(redis_store: RedisStore) -> None:
    stamps = [1_700_000_000.123456, 1_700_000_000.1234561, 0.1 + 0.2]
    redis_store.restore(
        JobRecord(job_id=f"s{n}", job_status="done", updated_at=s) for n, s in enumerate(stamps)
    )
    assert [redis_store.get(f"s{n}").updated_at for n in range(3)] == stamps
    assert [r.updated_at for r in redis_store.list()] == sorted(stamps, reverse=True)


def test_list_pages_through_ties_and_statuses(redis_store: RedisStore) -> None:
    """Batches of 3 over 20 records in pairs of equal stamps: ties are job id descending,
    nothing is repeated or skipped, limits and multi-status merges hold."""
    redis_store.restore(
        JobRecord(
            job_id=f"j{n:02d}",
            job_status=["done", "failed", "running"][n % 3],
            updated_at=1_600_000_000 + n // 2,
        )
        for n in range(20)
    )
    listed = [r.job_id for r in redis_store.list()]
    assert listed == [f"j{n:02d}" for n in reversed(range(20))]
    assert [r.job_id for r in redis_store.list(limit=7)] == listed[:7]
    assert [r.job_id for r in redis_store.list(since=1_600_000_005)] == listed[:10]
    finished = [r.job_id for r in redis_store.list(status=["done", "failed"])]
    assert finished == [j for j in listed if int(j[1:]) % 3 != 2]
    assert [r.job_id for r in redis_store.list(status=["done", "failed"], limit=4)] == finished[:4]
    assert redis_store.purge(older_than=1_600_000_009, status="running") == 6
    assert redis_store.purge(older_than=1_600_000_009) == 12
    assert [r.job_id for r in redis_store.list()] == ["j19", "j18"]


# -- expiry ------------------------------------------------------------------------------------


def test_redis_drops_expired_records_and_their_entries_go_lazily(
    redis_store: RedisStore, raw: Any, prefix: str
) -> None:
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    redis_store.put(JobRecord(job_id="gone", job_status="done", expires_at=past))
    redis_store.put(JobRecord(job_id="kept", job_status="done"))
    assert raw.exists(f"{prefix}:job:gone") == 0  # dropped by Redis at once
    assert raw.zscore(f"{prefix}:updated", "gone") is not None  # its entries are still there
    assert [r.job_id for r in redis_store.list(status="done")] == ["kept"]
    # the listing swept what it met
    assert raw.zscore(f"{prefix}:updated", "gone") is None
    assert raw.zscore(f"{prefix}:status:done", "gone") is None
    assert raw.zscore(f"{prefix}:expires", "gone") is None
    assert redis_store.purge(expired=True) == 0


def test_a_new_record_over_an_expired_one_leaves_no_stale_entry(
    redis_store: RedisStore, raw: Any, prefix: str
) -> None:
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    redis_store.put(JobRecord(job_id="j", job_status="failed", expires_at=past))
    redis_store.put(JobRecord(job_id="j", job_status="queued"), expect_version=ABSENT)
    assert raw.zscore(f"{prefix}:status:failed", "j") is None
    assert raw.smembers(f"{prefix}:statuses") == {b"queued"}
    assert [r.job_id for r in redis_store.list(status="failed")] == []
    assert redis_store.purge(expired=True) == 0
    assert redis_store.get("j").job_status == "queued"


def test_each_owner_has_an_index_that_follows_every_write(
    redis_store: RedisStore, raw: Any, prefix: str
) -> None:
    """``P:owner:<owner>`` holds exactly that owner's jobs, through a change of owner, a
    delete, a purge, and a record Redis dropped at its expiry (its owner kept aside until a
    listing or a purge sweeps it)."""

    def index(owner: str) -> set[bytes]:
        return set(raw.zrange(f"{prefix}:owner:{owner}", 0, -1))

    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    redis_store.put(JobRecord(job_id="a", job_status="queued", owner="alice"))
    redis_store.restore([JobRecord(job_id="b", job_status="done", owner="alice", updated_at=1.0)])
    redis_store.put(JobRecord(job_id="c", job_status="running", owner="bob"))
    redis_store.put(JobRecord(job_id="d", job_status="running"))
    assert (index("alice"), index("bob")) == ({b"a", b"b"}, {b"c"})
    assert raw.hget(f"{prefix}:job:a", "owner") == b"alice"
    assert raw.hget(f"{prefix}:job:d", "owner") is None

    redis_store.put(JobRecord(job_id="a", job_status="running", owner="bob"))  # alice → bob
    assert (index("alice"), index("bob")) == ({b"b"}, {b"a", b"c"})
    assert [r.job_id for r in redis_store.list_owned("bob")] == ["a", "c"]
    assert redis_store.delete("c")
    assert redis_store.purge(older_than=2.0) == 1  # b
    assert (index("alice"), index("bob")) == (set(), {b"a"})

    redis_store.put(JobRecord(job_id="e", job_status="done", owner="carol", expires_at=past))
    assert raw.exists(f"{prefix}:job:e") == 0  # dropped by Redis at once
    assert raw.hget(f"{prefix}:expiring-owners", "e") == b"carol"
    assert list(redis_store.list_owned("carol")) == []
    assert index("carol") == set()  # the listing swept what it met
    assert raw.hlen(f"{prefix}:expiring-owners") == 0

    redis_store.put(JobRecord(job_id="f", job_status="done", owner="carol", expires_at=past))
    assert redis_store.purge(expired=True) == 1
    assert index("carol") == set()
    assert raw.hlen(f"{prefix}:expiring-owners") == 0
    redis_store.put(JobRecord(job_id="a", job_status="failed", owner="bob", expires_at=_in(600)))
    redis_store.put(JobRecord(job_id="a", job_status="failed", owner="bob"), force=True)
    assert raw.hlen(f"{prefix}:expiring-owners") == 0  # no expiry any more: nothing kept aside


def test_purge_expired_in_batches_with_a_status(redis_store: RedisStore) -> None:
    past = datetime(2020, 1, 1, tzinfo=timezone.utc)
    redis_store.restore(
        JobRecord(job_id=f"e{n}", job_status="done" if n % 2 else "failed", expires_at=past)
        for n in range(11)
    )
    redis_store.restore([JobRecord(job_id="live", job_status="done", expires_at=_in(600))])
    assert redis_store.purge(expired=True, status="done") == 5
    assert redis_store.purge(expired=True, status=["failed", "done"]) == 6
    assert redis_store.purge(expired=True) == 0
    assert [r.job_id for r in redis_store.list()] == ["live"]


# -- conditional writes ------------------------------------------------------------------------


def test_a_retried_conditional_put_recognises_its_own_write(
    redis_store: RedisStore, prefix: str
) -> None:
    """The reply of a conditional put was lost and redis-py sent it again: the second run of
    the script finds its own token and answers as the first did, not with a Conflict."""
    first = redis_store.put(JobRecord(job_id="j", job_status="queued"))
    script = redis_store.client.register_script(_scripts.PUT)
    doc = JobRecord(job_id="j", job_status="running").to_json().encode()

    def args(token: str) -> list[Any]:
        head = [prefix, "j", doc, "running", version_of(doc), repr(time.time()), "", "0", "v"]
        return [*head, first.version, token, ""]  # "": no owner

    assert script(args=args("token-1")) == [1]
    again = script(args=args("token-1"))
    assert again[0] == 0
    assert again[2].decode() == version_of(doc)
    assert script(args=args("token-2"))[0] == -1  # another call: a conflict
    with pytest.raises(Conflict):
        redis_store.put(JobRecord(job_id="j", job_status="done"), expect_version=first.version)


# -- the change feed ---------------------------------------------------------------------------


def test_every_write_is_published_on_the_changes_channel(redis_store: RedisStore) -> None:
    with redis_store.changes() as feed:
        assert feed.channel == f"{redis_store.prefix}:changes"
        redis_store.put(JobRecord(job_id="a", job_status="queued"))
        redis_store.put(JobRecord(job_id="a", job_status="done"))
        redis_store.put(JobRecord(job_id="a", job_status="running"))  # kept: nothing changed
        redis_store.restore([JobRecord(job_id="b", job_status="done", updated_at=1.0)])
        redis_store.delete("a")
        redis_store.purge(older_than=2.0)
        redis_store.delete("never-there")
        seen = []
        while (job_id := feed.get(timeout=0.5)) is not None:
            seen.append(job_id)
    assert seen == ["a", "a", "b", "a", "b"]


# -- URLs, options, clients --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        (
            f"redis://:{PASSWORD}@example.org:6380/3?prefix=app1&socket_timeout=1.5",
            "tcp",
            {"host": "example.org", "port": 6380, "db": 3, "password": PASSWORD,
             "socket_timeout": 1.5, "socket_connect_timeout": 5.0},
        ),
        (
            "rediss://alice:pw@[::1]/0?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional"
            "&ssl_check_hostname=false&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
            "tcp",
            {"host": "::1", "port": 6379, "db": 0, "username": "alice", "password": "pw",
             "ssl": True, "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "optional",
             "ssl_check_hostname": False, "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem",
             "socket_timeout": 5.0, "socket_connect_timeout": 5.0},
        ),
        (
            "unix:///run/redis/redis.sock?db=2&socket_connect_timeout=0.5",
            "unix",
            {"unix_socket_path": "/run/redis/redis.sock", "db": 2,
             "socket_timeout": 5.0, "socket_connect_timeout": 0.5},
        ),
        (
            "redis://localhost",
            "tcp",
            {"host": "localhost", "port": 6379, "db": 0,
             "socket_timeout": 5.0, "socket_connect_timeout": 5.0},
        ),
    ],
)  # fmt: skip
def test_urls(url: str, kind: str, expected: dict[str, Any]) -> None:
    target = parse_redis_url(url, {})
    assert target.kind == kind
    assert target.connection == expected
    assert PASSWORD not in target.where


def test_a_sentinel_url() -> None:
    target = parse_redis_url(
        f"redis+sentinel://:{PASSWORD}@s1:26379,s2,[::1]:26380/mymaster/2?prefix=p", {}
    )
    assert target.kind == "sentinel"
    assert target.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.service_name, target.prefix) == ("mymaster", "p")
    assert target.connection["db"] == 2
    assert target.connection["password"] == PASSWORD
    assert target.sentinel_kwargs == {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}


def test_keyword_options_win_over_the_query() -> None:
    target = parse_redis_url("redis://h/1?prefix=a&socket_timeout=2", {"prefix": "b"})
    assert target.prefix == "b"
    assert target.connection["socket_timeout"] == 2.0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"redis://:{PASSWORD}@h:99999/0", "bad port"),
        (f"redis://:{PASSWORD}@h/zero", "must be a number"),
        (f"redis://:{PASSWORD}@h/0?color=blue", "unknown Redis store options"),
        (f"redis://:{PASSWORD}@h/0?ssl_ca_certs=/ca.pem", "need a rediss:// URL"),
        (f"redis://:{PASSWORD}@h/0?socket_timeout=-1", "bad value for socket_timeout"),
        (f"redis://:{PASSWORD}@h/0?prefix=", "prefix must be a non-empty string"),
        (f"redis+cluster://:{PASSWORD}@h:7000", "Redis Cluster is not supported"),
        (f"rediss+cluster://:{PASSWORD}@h:7000", "Redis Cluster is not supported"),
        (f"redis+sentinel://:{PASSWORD}@h:26379", "names the sentinels and the service"),
        (f"rediss+sentinel://:{PASSWORD}@h:26379/m", "not a Redis URL"),
        ("unix://host/run/redis.sock", "names a socket path"),
    ],
)
def test_bad_urls_are_configuration_errors_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as info:
        open_store(url)
    assert PASSWORD not in str(info.value)


def test_a_cluster_client_is_refused() -> None:
    from redis.cluster import RedisCluster

    cluster = RedisCluster.__new__(RedisCluster)  # no cluster to connect to: never used
    with pytest.raises(ConfigurationError, match="Redis Cluster is not supported"):
        RedisStore(cluster)


def test_a_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    for name in [m for m in sys.modules if m.startswith("jobstatus.backends.redis")]:
        monkeypatch.delitem(sys.modules, name)
    for url in ("redis://h/0", "rediss://h/0", "unix:///r.sock", "redis+sentinel://h/m"):
        with pytest.raises(ConfigurationError, match=r'pip install "jobstatus\[redis\]"'):
            open_store(url)


def test_open_store_with_a_host_client(prefix: str) -> None:
    client = redis.Redis.from_url(shared_redis_url())
    store = open_store(f"redis://ignored/0?prefix={prefix}", client=client)
    assert isinstance(store, RedisStore)
    assert store.client.connection_pool is client.connection_pool
    assert store.prefix == prefix
    store.put(JobRecord(job_id="j", job_status="queued"))
    store.close()
    assert client.hget(f"{prefix}:job:j", "status") == b"queued"
    with pytest.raises(ConfigurationError, match="cannot apply"):
        open_store("redis://", client=client, socket_timeout=1)
    client.close()


def test_each_thread_keeps_one_connection_until_close(prefix: str, raw: Any) -> None:
    """Four threads polling at once hold four connections (plus the one the store loaded its
    scripts on), whatever the number of calls; closing the store closes them all."""
    tag = f"jskeep-{prefix[-12:]}"

    def sessions() -> int:
        return sum(1 for c in raw.client_list() if c.get("name") == tag)

    store = RedisStore.from_url(f"{shared_redis_url()}?prefix={prefix}&client_name={tag}")
    store.put(JobRecord(job_id="j", job_status="running"))
    barrier = threading.Barrier(4)

    def poll() -> None:
        barrier.wait()
        for _ in range(50):
            assert store.get("j").job_status == "running"

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 4 <= sessions() <= 6
    store.close()
    deadline = time.monotonic() + 10  # the server notices closed sockets on its next loop
    while sessions() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sessions() == 0


def test_a_unix_socket_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path, unix_socket=True) as server:
        url = f"unix://{server.socket_path}?db=1&prefix=p"
        with open_store(url) as store:
            store.put(JobRecord(job_id="j", job_status="done"))
            assert store.get("j").job_status == "done"
        assert server.client(db=1).hget("p:job:j", "status") == b"done"


def test_a_tls_url_with_certificates(tmp_path: Path) -> None:
    """rediss:// to a server that speaks TLS only and wants a client certificate."""
    with RedisServer(tmp_path, tls=True) as server:
        certs = {name: tmp_path / f"{name}" for name in ("ca.pem", "client.pem", "client.key")}
        base = f"rediss://127.0.0.1:{server.port}/0?prefix=tls"
        full = (f"{base}&ssl_ca_certs={certs['ca.pem']}&ssl_certfile={certs['client.pem']}"
                f"&ssl_keyfile={certs['client.key']}&socket_timeout=3")  # fmt: skip
        with open_store(full) as store:
            store.put(JobRecord(job_id="j", job_status="done"))
            assert store.get("j").job_status == "done"
        assert server.client().hget("tls:job:j", "status") == b"done"
        # the server's certificate is checked against the CA, unless told not to
        other_ca = tmp_path / "other"
        other_ca.mkdir()
        make_certificates(other_ca)
        wrong = full.replace(str(certs["ca.pem"]), str(other_ca / "ca.pem"))
        with open_store(wrong) as store, pytest.raises(StorageError, match="certificate verify"):
            store.get("j")
        unchecked = wrong + "&ssl_cert_reqs=none"
        with open_store(unchecked) as store:
            assert store.get("j").job_status == "done"
        # no client certificate: the server refuses the connection
        anonymous = open_store(f"{base}&ssl_ca_certs={certs['ca.pem']}&socket_timeout=3")
        with anonymous, pytest.raises(StorageError, match="ConnectionError"):
            anonymous.get("j")


# -- Sentinel ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_store_through_sentinel(tmp_path: Path) -> None:
    (tmp_path / "master").mkdir()
    with RedisServer(tmp_path / "master") as master, master.sentinel(tmp_path) as port:
        url = f"redis+sentinel://127.0.0.1:{port}/jobs/0?prefix=sent&socket_timeout=2"
        with open_store(url) as store:
            store.put(JobRecord(job_id="j", job_status="running"))
            assert store.get("j").job_status == "running"
        assert master.client().hget("sent:job:j", "status") == b"running"
        nobody = open_store(f"redis+sentinel://127.0.0.1:{port}/nobody/0")
        with nobody, pytest.raises(StorageError, match="MasterNotFoundError"):
            nobody.get("j")


# -- the HTTP suite over Redis -----------------------------------------------------------------

# Every case of tests/test_http.py that speaks through the protocol alone runs again here, its
# `store` a Redis store holding the spec's example; the two that look at files have their Redis
# counterparts below.
_FILE_CASES = {"test_a_corrupt_record_is_the_spec_500", "test_answering_writes_nothing"}
for _name in dir(http_suite):
    if _name.startswith("test_") and _name not in _FILE_CASES:
        globals()[f"test_http_{_name[5:]}"] = getattr(http_suite, _name)
adapter = http_suite.adapter
client = http_suite.client


@pytest.fixture
def store(prefix: str) -> Iterator[Store]:
    with RedisStore.from_url(shared_redis_url(), prefix=prefix) as store:
        store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
        yield store


def test_http_a_corrupt_record_is_the_spec_500(client: Client, raw: Any, prefix: str) -> None:
    other = http_suite.OTHER_ID
    raw.hset(f"{prefix}:job:{other}", mapping={"doc": '{"job_status": "run', "updated_at": "1"})
    answer = http_suite.post(client, http_suite.STATUS, {"job_id": other})
    body = http_suite.assert_json(answer, 500)
    assert list(body) == ["error", "code"]
    assert body["error"].startswith("Failed to retrieve job status: ")
    assert f"job {other!r} ({prefix}:job:{other}) is not a job record" in body["error"]


def test_http_answering_writes_nothing(client: Client, raw: Any, prefix: str) -> None:
    def snapshot() -> dict[bytes, Any]:
        return {key: (raw.dump(key), raw.pttl(key)) for key in keys_under(raw, prefix)}

    before = snapshot()
    for body in ({"job_id": JOB_ID}, {"job_id": http_suite.OTHER_ID}, b"bad"):
        http_suite.post(client, http_suite.STATUS, body)
    http_suite.post(client, http_suite.LISTING, None)
    assert snapshot() == before


def test_a_wrong_password_is_a_500_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(tmp_path, password="the-right-one") as server:
        url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
        with open_store(url) as store:
            assert PASSWORD not in repr(store)
            reply = StatusService(store, api_keys=["k"]).handle(
                "/v1/toolkit/job/status", json.dumps({"job_id": JOB_ID}).encode(), "k"
            )
            with pytest.raises(StorageError) as info:
                store.put(JobRecord(job_id="j", job_status="queued"))
    assert reply.status == 500
    body = reply.parsed()
    assert body["error"].startswith("Failed to retrieve job status: cannot read job ")
    assert "AuthenticationError" in body["error"]
    assert "***@" in body["error"] or "127.0.0.1" in body["error"]
    for text in (json.dumps(body), str(info.value), caplog.text):
        assert PASSWORD not in text


# -- jobstatus migrate: files → Redis → SQLite -------------------------------------------------


@pytest.mark.slow
def test_migrate_files_to_redis_to_sqlite_keeps_every_byte(tmp_path: Path, prefix: str) -> None:
    pytest.importorskip("sqlalchemy")
    files = FileSystemStore(tmp_path / "files")
    files.jobs_dir.mkdir(parents=True)
    base = 1_700_000_000_000_000_000
    originals: dict[str, tuple[bytes, int]] = {}
    for n in range(10_000):
        job_id = f"{n:08d}-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
        doc = {**UPSTREAM_EXAMPLE, "job_id": job_id, "job_status": ["done", "running"][n % 2]}
        if n % 3 == 0:
            doc["extra é ✓"] = {"n": n, "f": n / 7}
        data = JobRecord.from_dict(doc).to_json().encode("utf-8")
        path = files.jobs_dir / f"{job_id}.json"
        path.write_bytes(data)
        os.utime(path, ns=(base + n * 1_000_123, base + n * 1_000_123))
        originals[job_id] = (data, base + n * 1_000_123)
    with RedisStore.from_url(shared_redis_url(), prefix=prefix) as middle:
        assert migrate(files, middle).copied == 10_000
        raw = middle.client
        for job_id, (data, stamp_ns) in originals.items():
            doc, updated_at = raw.hmget(f"{prefix}:job:{job_id}", ["doc", "updated_at"])
            assert doc == data
            assert float(updated_at) == stamp_ns / 1e9
        with open_store(f"sqlite:///{tmp_path / 'jobs.db'}") as sqlite:
            assert migrate(middle, sqlite).copied == 10_000
            copied = {r.job_id: r for r in sqlite.list()}
        assert migrate(files, middle).unchanged == 10_000  # run again: nothing to do
    assert len(copied) == 10_000
    for job_id, (data, stamp_ns) in originals.items():
        assert copied[job_id].to_json().encode("utf-8") == data
        assert copied[job_id].updated_at == stamp_ns / 1e9
