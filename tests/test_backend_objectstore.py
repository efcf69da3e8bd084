"""The object-store backend: S3 on moto's server over HTTP, and fsspec's memory and local
filesystems, through the conformance suite and the object-store specifics."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobstatus import (
    ABSENT,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    JobNotFound,
    JobRecord,
    StatusService,
    StorageError,
    open_store,
)
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.store import Store
from jobstatus.testing import StoreTests
from jobstatus.testing.machine import BASE_TIME
from jobstatus.testing.suite import UNSAFE_JOB_IDS, UPSTREAM_EXAMPLE
from tests.s3_server import BUCKET, S3Endpoint

pytestmark = pytest.mark.extras
fsspec = pytest.importorskip("fsspec")

from jobstatus.backends.objectstore import ObjectStore, parse_store_url  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JOB_ID = UPSTREAM_EXAMPLE["job_id"]


def _record(job_id: str = "job-1", job_status: str = "queued", **fields: Any) -> JobRecord:
    return JobRecord(job_id=job_id, job_status=job_status, **fields)


def _object_store(url: str, **options: Any) -> ObjectStore:
    store = open_store(url, **options)
    assert isinstance(store, ObjectStore)
    return store


@pytest.fixture
def s3_store(s3_store_url: str) -> Iterator[ObjectStore]:
    with _object_store(s3_store_url) as store:
        yield store


# -- the conformance suite -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_s3_fs(s3_endpoint: S3Endpoint) -> Iterator[Any]:
    """One s3fs filesystem for the conformance suite: a client costs a few tenths of a second
    to make, and the suite makes a store per test."""
    with _object_store(s3_endpoint.store_url()) as opened:
        yield opened.fs


@pytest.mark.services
class TestS3Store(StoreTests):
    """Stamps live in object metadata at full precision, so no test needs to wait a second."""

    timestamp_resolution = 0.0
    state_machine_examples = 25

    @pytest.fixture
    def store(self, shared_s3_fs: Any) -> Iterator[Store]:
        with ObjectStore(shared_s3_fs, f"{BUCKET}/t-{uuid.uuid4().hex[:12]}") as store:
            yield store


class TestFsspecMemoryStore(StoreTests):
    timestamp_resolution = 0.0

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        prefix = f"jobstatus-tests/{uuid.uuid4().hex}"
        with open_store(f"fsspec+memory://{prefix}") as store:
            yield store
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{prefix}"):
            fs.rm(f"/{prefix}", recursive=True)


class TestFsspecLocalStore(StoreTests):
    """The generic fsspec path on the local filesystem (``fsspec+file://``)."""

    timestamp_resolution = 0.0
    state_machine_examples = 20

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with open_store(f"fsspec+file://{tmp_path}") as store:
            yield store


# -- URLs and options ----------------------------------------------------------------------------


def test_query_parameters_become_storage_options() -> None:
    target, options = parse_store_url(
        "s3://bucket/a/prefix?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000&anon=false"
        "&use_ssl=TRUE&max_concurrency=4&config_kwargs.connect_timeout=2.5"
        "&client_kwargs.region_name=eu-west-1&secret=a+b/c%2Bd&profile=1234"
    )
    assert target == "s3://bucket/a/prefix"
    assert options == {
        "endpoint_url": "http://127.0.0.1:9000",
        "anon": False,
        "use_ssl": True,
        "max_concurrency": 4,
        "config_kwargs": {"connect_timeout": 2.5},
        "client_kwargs": {"region_name": "eu-west-1"},
        "secret": "a+b/c+d",  # a plus stays a plus: AWS secret keys hold them
        "profile": "1234",  # numbers stay strings unless the option takes a number
    }


def test_fsspec_urls_name_their_protocol() -> None:
    assert parse_store_url("fsspec+memory://bucket/prefix") == ("memory://bucket/prefix", {})
    assert parse_store_url("FSSPEC+Memory://b") == ("memory://b", {})
    with pytest.raises(ConfigurationError, match=r"fsspec\+memory://"):
        parse_store_url("fsspec://bucket")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("max_concurrency=many", "takes a number"),
        ("anon=true&anon=false", "given twice"),
        ("anon", "needs a name and a value"),
        ("client_kwargs=x&client_kwargs.region_name=y", "both as a value and a group"),
    ],
)
def test_bad_query_strings_are_configuration_errors(query: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_store_url(f"s3://bucket/p?{query}")


def test_keyword_options_win_over_the_query_string() -> None:
    pytest.importorskip("s3fs")
    store = _object_store(
        "s3://bucket/p?endpoint_url=http://query:9000&anon=true"
        "&client_kwargs.region_name=eu-west-1&client_kwargs.verify=false",
        endpoint_url="http://keyword:9000",
        client_kwargs={"region_name": "us-east-2"},
    )
    assert store.fs.endpoint_url == "http://keyword:9000"
    assert store.fs.anon is True
    assert store.fs.client_kwargs == {"region_name": "us-east-2", "verify": False}
    assert store.root == "bucket/p"
    assert repr(store) == "ObjectStore('s3://bucket/p')"


def test_each_store_has_its_own_filesystem_without_listing_caches() -> None:
    a = _object_store("fsspec+memory://b/one")
    b = _object_store("fsspec+memory://b/one")
    assert a.fs is not b.fs
    assert a.fs.storage_options["use_listings_cache"] is False


@pytest.mark.parametrize(
    ("url", "extra", "package"),
    [
        ("gs://bucket/prefix", "gcs", "gcsfs"),
        ("gcs://bucket/prefix", "gcs", "gcsfs"),
        ("az://container/prefix", "azure", "adlfs"),
        ("abfss://container/prefix", "azure", "adlfs"),
    ],
)
def test_a_missing_protocol_package_names_its_extra(url: str, extra: str, package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        pass
    else:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert f'pip install "jobstatus[{extra}]"' in str(info.value)
    assert package in str(info.value)


def test_unknown_protocols_and_bucketless_urls_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="nosuchproto"):
        open_store("fsspec+nosuchproto://x/y")
    pytest.importorskip("s3fs")
    with pytest.raises(ConfigurationError, match="name a bucket"):
        open_store("s3://")


# -- layout: the bytes of the filesystem backend -------------------------------------------------


@pytest.mark.services
def test_objects_hold_the_filesystem_backends_bytes(s3_store: ObjectStore, tmp_path: Path) -> None:
    s3_store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    FileSystemStore(tmp_path).put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    key = f"{s3_store.root}/jobs/{JOB_ID}.json"
    assert s3_store.fs.ls(f"{s3_store.root}/jobs", detail=False, refresh=True) == [key]
    written = s3_store.fs.cat_file(key)
    assert written == (tmp_path / "jobs" / f"{JOB_ID}.json").read_bytes()
    assert written == json.dumps(UPSTREAM_EXAMPLE, indent=2).encode()


@pytest.mark.services
def test_a_folder_synced_into_the_bucket_is_read_as_is(
    s3_store: ObjectStore, tmp_path: Path
) -> None:
    """``aws s3 sync /data/jobs s3://b/p/jobs``: plain PUTs, no metadata; updated_at is then
    the object's LastModified."""
    folder = FileSystemStore(tmp_path)
    folder.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    folder.put(_record("other", "running"))
    before = int(time.time())
    s3_store.fs.put(f"{tmp_path}/jobs/", f"{s3_store.root}/jobs/", recursive=True)
    after = time.time()
    got = s3_store.get(JOB_ID)
    assert got.to_dict() == UPSTREAM_EXAMPLE
    assert got.updated_at is not None
    assert before <= got.updated_at <= after
    assert {r.job_id for r in s3_store.list(since=before)} == {JOB_ID, "other"}
    # and back: the bucket synced down is a filesystem store's folder
    down = tmp_path / "down"
    s3_store.fs.get(f"{s3_store.root}/jobs/", f"{down}/jobs/", recursive=True)
    assert FileSystemStore(down).get(JOB_ID).to_dict() == UPSTREAM_EXAMPLE


@pytest.mark.services
def test_restore_keeps_the_exact_stamp_in_metadata(s3_store: ObjectStore) -> None:
    stamp = 1_600_000_007.123456789
    s3_store.restore([_record(updated_at=stamp)])
    assert s3_store.get("job-1").updated_at == stamp
    key = f"{s3_store.root.partition('/')[2]}/jobs/job-1.json"
    head = s3_store.fs.call_s3("head_object", Bucket=BUCKET, Key=key)
    assert float(head["Metadata"]["updated-at"]) == stamp
    assert [r.updated_at for r in s3_store.list()] == [stamp]


@pytest.mark.services
def test_restore_refuses_a_stamp_in_the_future(s3_store: ObjectStore) -> None:
    """Listing bounds a restored object's stamp by its LastModified; a later stamp could not
    be found by list(since=...) nor kept by purge, so it is refused rather than misplaced."""
    with pytest.raises(InvalidRequest, match="later than now"):
        s3_store.restore(
            [_record("ok", updated_at=BASE_TIME), _record("future", updated_at=time.time() + 3600)]
        )
    assert list(s3_store.list()) == []  # nothing of the refused batch was written
    s3_store.restore([_record(updated_at=time.time() + 5)])  # within the clock skew: fine
    assert [r.job_id for r in s3_store.list(since=time.time() + 4)] == ["job-1"]


# -- exists(), and reads create nothing ----------------------------------------------------------


@pytest.mark.services
def test_exists_is_the_bucket_and_reads_create_none(
    s3_endpoint: S3Endpoint, s3_store: ObjectStore
) -> None:
    assert s3_store.exists() is True  # the bucket is there, the prefix empty
    with _object_store(s3_endpoint.store_url(bucket="never-made")) as missing:

        def read_all() -> None:
            assert missing.exists() is False
            with pytest.raises(StorageError, match="NoSuchBucket"):
                missing.get("job-1")
            with pytest.raises(StorageError, match="NoSuchBucket"):
                list(missing.list())
            with pytest.raises(StorageError, match="NoSuchBucket"):
                missing.purge(older_than=time.time())

        sent = s3_endpoint.requests_during(read_all)
        assert {method for method, _ in sent} == {"GET", "HEAD"}
        assert missing.exists() is False


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_a_fresh_store_creates_no_folder_until_it_writes(kind: str, tmp_path: Path) -> None:
    url = (
        f"fsspec+memory://jobstatus-tests/{uuid.uuid4().hex}"
        if kind == "memory"
        else f"fsspec+file://{tmp_path}/data"
    )
    with _object_store(url) as store:
        with pytest.raises(JobNotFound):
            store.get("job-1")
        assert list(store.list()) == []
        assert store.purge(older_than=time.time(), expired=True) == 0
        assert store.delete("job-1") is False
        assert store.exists() is False
        assert not store.fs.exists(store.root)
        store.put(_record())
        assert store.exists() is True
        assert store.fs.ls(f"{store.root}/jobs", detail=False) == [f"{store.root}/jobs/job-1.json"]
        store.delete("job-1")


# -- requests: what reaches the server -----------------------------------------------------------


def _methods(requests: list[tuple[str, str]]) -> list[str]:
    return [method for method, _ in requests]


@pytest.mark.services
def test_get_is_one_get_and_writes_are_conditional_on_what_was_read(
    s3_endpoint: S3Endpoint, s3_store: ObjectStore
) -> None:
    key = f"/{s3_store.root}/jobs/{JOB_ID}.json"

    def requests(action: Callable[[], Any]) -> list[tuple[str, dict[str, str]]]:
        sent = s3_endpoint.conditions_during(action)
        assert {path for _, path, _ in sent} == {key}
        return [(method, conditions) for method, _, conditions in sent]

    # a new job: one conditional PUT with ABSENT, else a GET (nothing there) first
    assert requests(lambda: s3_store.put(_record(JOB_ID), expect_version=ABSENT)) == [
        ("PUT", {"If-None-Match": "*"})
    ]
    assert requests(lambda: s3_store.get(JOB_ID)) == [("GET", {})]
    version = s3_store.get(JOB_ID).version
    assert requests(lambda: s3_store.put(_record(JOB_ID, "running"))) == [
        ("GET", {}),
        ("PUT", {"If-Match": f'"{version}"'}),
    ]
    done = JobRecord.from_dict(UPSTREAM_EXAMPLE)
    assert [m for m, _ in requests(lambda: s3_store.put(done))] == ["GET", "PUT"]
    assert requests(lambda: s3_store.put(_record(JOB_ID, "running"))) == [("GET", {})]  # kept
    assert requests(lambda: s3_store.put(_record(JOB_ID, "running"), force=True)) == [("PUT", {})]
    s3_store.delete(JOB_ID)
    assert requests(lambda: s3_store.put(done)) == [("GET", {}), ("PUT", {"If-None-Match": "*"})]


@pytest.mark.services
def test_list_never_downloads_objects_outside_the_window(
    s3_endpoint: S3Endpoint, s3_store: ObjectStore
) -> None:
    s3_store.restore([_record(f"old-{n}", "done", updated_at=BASE_TIME + n) for n in range(3)])
    for n in range(3):
        s3_store.put(_record(f"new-{n}", "running"))
    since = time.time() - 300
    requests = s3_endpoint.requests_during(lambda: list(s3_store.list(since=since)))
    gets = sorted(
        path.rsplit("/", 1)[-1] for method, path in requests if method == "GET" and "/jobs/" in path
    )
    assert gets == ["new-0.json", "new-1.json", "new-2.json"]
    # restored objects carry a stamp unrelated to LastModified: asked with HEAD, never GET
    heads = sorted(path.rsplit("/", 1)[-1] for method, path in requests if method == "HEAD")
    assert heads == ["old-0.json", "old-1.json", "old-2.json"]
    assert [r.job_id for r in s3_store.list(since=BASE_TIME + 1, status="done")] == [
        "old-2",
        "old-1",
    ]


@pytest.mark.services
def test_objects_written_long_ago_are_neither_read_nor_asked(
    s3_endpoint: S3Endpoint, s3_store: ObjectStore, tmp_path: Path
) -> None:
    """An object the listing places before the window costs no request in ``list``, and one it
    places before the cut is deleted by ``purge`` without being read."""
    prefix = s3_store.root.partition("/")[2]
    FileSystemStore(tmp_path).put(_record("synced", "done"))  # uploaded as a sync would
    s3_store.fs.put_file(f"{tmp_path}/jobs/synced.json", f"{s3_store.root}/jobs/synced.json")
    s3_store.restore([_record("restored", "done", updated_at=BASE_TIME)])
    s3_store.put(_record("recent", "running"))
    long_ago = BASE_TIME + 10_000_000  # after the restored stamp, as a restore's time is
    s3_endpoint.backdate(BUCKET, f"{prefix}/jobs/synced.json", long_ago)
    s3_endpoint.backdate(BUCKET, f"{prefix}/jobs/restored.json", long_ago)

    cut = time.time() - 300
    requests = s3_endpoint.requests_during(lambda: list(s3_store.list(since=cut)))
    assert [(m, p.rsplit("/", 1)[-1]) for m, p in requests if "/jobs/" in p] == [
        ("GET", "recent.json")
    ]
    assert len(requests) == 2  # the listing, and that GET
    requests = s3_endpoint.requests_during(lambda: s3_store.purge(older_than=cut))
    assert [m for m, _ in requests] == ["GET", "POST"]  # the listing, one bulk delete
    assert [r.job_id for r in s3_store.list()] == ["recent"]


@pytest.mark.services
def test_purge_deletes_in_one_bulk_request(s3_endpoint: S3Endpoint, s3_store: ObjectStore) -> None:
    s3_store.restore([_record(f"old-{n}", "done", updated_at=BASE_TIME) for n in range(30)])
    s3_store.put(_record("fresh", "done"))
    requests = s3_endpoint.requests_during(lambda: s3_store.purge(older_than=BASE_TIME + 1))
    assert [m for m, path in requests if m in ("DELETE", "POST")] == ["POST"]
    assert next(path for m, path in requests if m == "POST").endswith("?delete")
    assert [r.job_id for r in s3_store.list()] == ["fresh"]


# -- the final-state rule: conditional writes ----------------------------------------------------


@pytest.fixture
def two_stores(s3_store_url: str) -> Iterator[tuple[ObjectStore, ObjectStore]]:
    """Two stores on one prefix, as two processes have: ``mine`` and ``theirs``. The server
    runs a whole write of ``theirs`` inside a request of ``mine`` (:func:`_meanwhile`), so
    ``mine`` waits as long: more than the default timeout on a loaded machine."""
    with (
        _object_store(s3_store_url, timeout=120) as mine,
        _object_store(s3_store_url) as theirs,
    ):
        yield mine, theirs


def _meanwhile(s3_endpoint: S3Endpoint, write: Callable[[], Any]) -> None:
    """Run ``write`` in the server when the next write of job-1 arrives, before serving it:
    another writer coming between a store's read and its write."""
    s3_endpoint.before_next_write("/jobs/job-1.json", write)


@pytest.mark.services
def test_a_writer_between_the_read_and_the_write_makes_s3_refuse_it(
    s3_endpoint: S3Endpoint, two_stores: tuple[ObjectStore, ObjectStore]
) -> None:
    """The final-state check is atomic on S3: put() writes only if the object is still the one
    it read (If-Match); another writer's done landing in between makes S3 refuse the write,
    and put() reads again and keeps the final job."""
    mine, theirs = two_stores
    mine.put(_record(job_status="running"))
    _meanwhile(s3_endpoint, lambda: theirs.put(_record(job_status="done", response="finished")))
    kept: list[JobRecord] = []
    requests = s3_endpoint.conditions_during(
        lambda: kept.append(mine.put(_record(job_status="running")))
    )
    shown = [(method, sorted(conditions)) for method, _, conditions in requests]
    assert shown[:2] == [("GET", []), ("PUT", ["If-Match"])]  # mine: read, write if same
    # theirs' requests came in between; S3 refused mine, which read again and kept done
    assert shown[-1] == ("GET", [])
    assert len([m for m, _ in shown if m == "PUT"]) == 2
    assert (kept[0].job_status, kept[0].response) == ("done", "finished")
    assert theirs.get("job-1").response == "finished"


@pytest.mark.services
def test_a_new_job_is_created_only_if_nobody_did_meanwhile(
    s3_endpoint: S3Endpoint, two_stores: tuple[ObjectStore, ObjectStore]
) -> None:
    mine, theirs = two_stores
    _meanwhile(s3_endpoint, lambda: theirs.put(_record(job_status="done")))
    requests = s3_endpoint.conditions_during(lambda: mine.put(_record(job_status="running")))
    assert ("PUT", {"If-None-Match": "*"}) in [(m, c) for m, _, c in requests]
    assert mine.get("job-1").job_status == "done"


@pytest.mark.services
def test_two_stores_racing_never_undo_done(s3_store_url: str) -> None:
    stores = [_object_store(s3_store_url) for _ in range(3)]
    stores[0].put(_record(job_status="running"))
    errors: list[BaseException] = []

    def late(store: ObjectStore) -> None:
        try:
            for _ in range(15):
                store.put(_record(job_status="running"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=late, args=(s,)) for s in stores[1:]]
    for thread in threads:
        thread.start()
    stores[0].put(_record(job_status="done"))
    for thread in threads:
        thread.join()
    assert not errors
    assert all(s.get("job-1").job_status == "done" for s in stores)
    for store in stores:
        store.close()


# -- versions, conflicts and expiry on S3 --------------------------------------------------------


@pytest.mark.services
def test_a_write_between_the_read_and_a_versioned_put_is_a_conflict(
    s3_endpoint: S3Endpoint, two_stores: tuple[ObjectStore, ObjectStore]
) -> None:
    """expect_version holds across processes: the version is compared with the object read,
    and the write is conditional on that object, so a writer coming in between wins."""
    mine, theirs = two_stores
    seen = mine.put(_record(job_status="running"))
    _meanwhile(s3_endpoint, lambda: theirs.put(_record(job_status="running", response="x")))
    with pytest.raises(Conflict):
        mine.put(_record(job_status="running", response="mine"), expect_version=seen.version)
    assert mine.get("job-1").response == "x"


@pytest.mark.services
def test_absent_loses_to_a_job_created_in_between(
    s3_endpoint: S3Endpoint, two_stores: tuple[ObjectStore, ObjectStore]
) -> None:
    mine, theirs = two_stores
    _meanwhile(s3_endpoint, lambda: theirs.put(_record(response="theirs"), force=True))
    with pytest.raises(Conflict):
        mine.put(_record(response="mine"), expect_version=ABSENT)
    assert mine.get("job-1").response == "theirs"


@pytest.mark.services
def test_the_version_is_the_etag_and_survives_a_restore(s3_store: ObjectStore) -> None:
    stored = s3_store.put(_record())
    key = f"{s3_store.root.partition('/')[2]}/jobs/job-1.json"
    head = s3_store.fs.call_s3("head_object", Bucket=BUCKET, Key=key)
    assert head["ETag"] == f'"{stored.version}"'
    s3_store.restore([s3_store.get("job-1")])
    restored = s3_store.get("job-1")
    assert restored.version != stored.version  # a multipart ETag: marks the restore
    assert s3_store.put(_record("job-1", "done"), expect_version=restored.version).is_final


@pytest.mark.services
def test_purge_of_expired_records_asks_metadata_and_reads_only_foreign_objects(
    s3_endpoint: S3Endpoint, s3_store: ObjectStore
) -> None:
    """The expiry is written in each object's metadata with its stamp; a purge of expired
    records asks each object for it (HEAD) and downloads only objects written by others."""
    past, future = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)
    future = future.replace(year=future.year + 1)
    s3_store.put(_record("expired", "done", expires_at=past))
    s3_store.put(_record("later", "done", expires_at=future))
    s3_store.put(_record("forever", "running"))
    foreign = _record("synced", "done", expires_at=past).to_json().encode()
    s3_store.fs.pipe_file(f"{s3_store.root}/jobs/synced.json", foreign)  # no metadata of ours
    key = f"{s3_store.root.partition('/')[2]}/jobs/expired.json"
    head = s3_store.fs.call_s3("head_object", Bucket=BUCKET, Key=key)
    assert float(head["Metadata"]["expires-at"]) == past.timestamp()

    sent = s3_endpoint.requests_during(lambda: s3_store.purge(expired=True))
    names = sorted((m, p.rsplit("/", 1)[-1]) for m, p in sent if "/jobs/" in p)
    assert names == [
        ("GET", "synced.json"),
        ("HEAD", "expired.json"),
        ("HEAD", "forever.json"),
        ("HEAD", "later.json"),
        ("HEAD", "synced.json"),
    ]
    # and besides: the listing, one bulk delete
    assert [m for m, p in sent if "/jobs/" not in p] == ["GET", "POST"]
    assert sorted(r.job_id for r in s3_store.list()) == ["forever", "later"]
    assert s3_store.delete("synced") is False


def test_a_file_written_past_the_memory_store_has_its_own_stamp() -> None:
    """The memory filesystem has no settable time: the store keeps its stamps in a table of
    this process, valid only for the very file it wrote."""
    with _object_store(f"fsspec+memory://jobstatus-tests/{uuid.uuid4().hex}") as store:
        restored = 1_600_000_000.25
        store.restore([_record(updated_at=restored)])
        assert store.get("job-1").updated_at == restored
        store.fs.pipe_file(
            f"{store.root}/jobs/job-1.json", _record(job_status="done").to_json().encode()
        )
        got = store.get("job-1")
        assert got.job_status == "done"
        created = store.fs.info(f"{store.root}/jobs/job-1.json")["created"]
        assert got.updated_at == created.timestamp()
        assert got.updated_at != restored
        store.delete("job-1")


def test_local_files_are_replaced_whole(tmp_path: Path) -> None:
    with _object_store(f"fsspec+file://{tmp_path}") as store:
        for n in range(3):
            store.put(_record(response={"n": n}))
        assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["job-1.json"]
        assert FileSystemStore(tmp_path).get("job-1").response == {"n": 2}


# -- two processes -------------------------------------------------------------------------------

_PEER = """
import json, sys
from jobstatus import JobNotFound, JobRecord, open_store

store = open_store(sys.argv[1])
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "get":
        try:
            record = store.get(arg)
            answer = [record.job_status, record.updated_at]
        except JobNotFound:
            answer = None
    elif command == "list":
        answer = [r.job_id for r in store.list(since=float(arg))]
    else:
        job_id, status = arg.split()
        answer = store.put(JobRecord(job_id=job_id, job_status=status)).updated_at
    print(json.dumps(answer), flush=True)
"""


class _Peer:
    """Another process with its own store on the same URL, answering one line at a time."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PEER, url],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def ask(self, line: str) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the other process died"
        return json.loads(answer)

    def close(self) -> None:
        self.process.communicate(timeout=30)  # closes its stdin (it ends) and its stdout


@pytest.mark.services
def test_a_write_in_one_process_is_seen_at_once_by_another(s3_store_url: str) -> None:
    since = time.time() - 60
    peer = _Peer(s3_store_url)
    try:
        with _object_store(s3_store_url) as store:
            # warm both sides up, so that anything cached would be stale from here on
            assert peer.ask("get job-a") is None
            assert peer.ask(f"list {since}") == []
            assert list(store.list()) == []

            stamp = store.put(_record("job-a", "running")).updated_at
            assert peer.ask("get job-a") == ["running", stamp]
            assert peer.ask(f"list {since}") == ["job-a"]

            store.put(_record("job-a", "done"))
            assert peer.ask("get job-a")[0] == "done"
            assert peer.ask("put job-a running") is not None  # kept: done is final
            assert store.get("job-a").job_status == "done"

            peer_stamp = peer.ask("put job-b queued")
            assert store.get("job-b").updated_at == peer_stamp
            assert [r.job_id for r in store.list(since=since)] == ["job-b", "job-a"]

            store.delete("job-b")
            assert peer.ask("get job-b") is None
            assert peer.ask(f"list {since}") == ["job-a"]
    finally:
        peer.close()


@pytest.mark.services
def test_a_reader_in_another_process_never_sees_a_torn_record(s3_store_url: str) -> None:
    from jobstatus.testing.processes import rewrite_while_reading

    report = rewrite_while_reading(s3_store_url, min_reads=21, min_versions=6, size=20_000)
    assert report.reads > 20
    assert report.versions_seen > 5  # the writer was rewriting all along
    assert report.failed == 0


@pytest.mark.services
def test_a_store_opened_before_a_fork_works_in_the_child(s3_store: ObjectStore) -> None:
    s3_store.put(_record(job_status="running"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: fsspec's loop thread is gone, the store must make a new one
        try:
            ok = s3_store.get("job-1").job_status == "running"
            s3_store.put(_record(job_status="done"))
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert s3_store.get("job-1").job_status == "done"


# -- the HTTP path -------------------------------------------------------------------------------


def _post(app: Any, path: str, body: dict[str, Any], key: str = "k") -> tuple[str, Any]:
    data = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(data),
        "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": "application/json",
        "HTTP_X_API_KEY": key,
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []
    chunks = app(environ, lambda status, headers: statuses.append(status))
    return statuses[0], json.loads(b"".join(chunks))


@pytest.mark.services
def test_the_endpoint_answers_the_spec_example_from_s3(s3_store: ObjectStore) -> None:
    from jobstatus.adapters.wsgi import make_app

    s3_store.put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    app = make_app(
        StatusService(s3_store, api_keys=["k"], build_number="1.0.0", queue_id=140368864456064)
    )
    status, body = _post(app, "/v1/toolkit/job/status", {"job_id": JOB_ID})
    assert status == "200 OK"
    assert body["response"] == UPSTREAM_EXAMPLE
    assert (body["endpoint"], body["code"], body["job_id"], body["message"]) == (
        "/v1/toolkit/job/status",
        200,
        JOB_ID,
        "success",
    )
    status, body = _post(
        app, "/v1/toolkit/job/status", {"job_id": "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"}
    )
    assert (status, body) == (
        "404 Not Found",
        {"error": "Job not found", "job_id": "0b8e1c7e-2d3f-4a5b-8c9d-0e1f2a3b4c5d"},
    )
    status, body = _post(app, "/v1/toolkit/jobs/status", {})
    assert (status, body["response"]) == ("200 OK", {JOB_ID: "done"})
    assert (
        _post(app, "/v1/toolkit/job/status", {"job_id": JOB_ID}, key="wrong")[0]
        == "401 Unauthorized"
    )


# -- errors --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _BrokenS3(BaseHTTPRequestHandler):
    """An endpoint answering every request with one S3 error, as an overloaded or failing
    S3 does."""

    protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" before a PUT's body
    status = 500
    code = "InternalError"

    def _fail(self) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.code}</Code>'
            f"<Message>We encountered an internal error. Please try again.</Message>"
            f"<RequestId>r1</RequestId></Error>"
        ).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._fail()

    def do_HEAD(self) -> None:
        self._fail()

    def do_PUT(self) -> None:
        self._fail()

    def do_POST(self) -> None:
        self._fail()

    def do_DELETE(self) -> None:
        self._fail()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=[(500, "InternalError"), (503, "SlowDown")], ids=["500", "throttled"])
def broken_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    status, code = request.param
    handler = type("Handler", (_BrokenS3,), {"status": status, "code": code})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", code
    server.shutdown()
    thread.join()
    server.server_close()


# One attempt: botocore would otherwise retry failures with back-off.
_NO_RETRIES = {"config_kwargs": {"retries": {"max_attempts": 1}}}
_TOLD_SECRET = "s3cr3t+Value/That=Must-Not-Leak"


def _assert_secret_kept(error: BaseException, store: ObjectStore) -> None:
    assert _TOLD_SECRET not in str(error)
    assert _TOLD_SECRET not in repr(error)
    assert _TOLD_SECRET not in repr(store)
    assert _TOLD_SECRET not in json.dumps(getattr(error, "body", dict)())


@pytest.mark.services
def test_a_missing_bucket_is_a_storage_error_not_a_missing_job(s3_endpoint: S3Endpoint) -> None:
    with _object_store(s3_endpoint.store_url(bucket="no-such-bucket")) as store:
        with pytest.raises(StorageError, match="NoSuchBucket") as info:
            store.get("job-1")
        assert "s3://no-such-bucket/" in str(info.value)
        with pytest.raises(StorageError, match="NoSuchBucket"):
            list(store.list())


@pytest.mark.services
def test_wrong_credentials_are_a_storage_error_without_the_secret(
    strict_s3_endpoint: S3Endpoint,
) -> None:
    url = strict_s3_endpoint.store_url(key="AKIAWRONGKEY", secret=_TOLD_SECRET)
    with _object_store(url, **_NO_RETRIES) as store:
        for action in (
            lambda: store.get("job-1"),
            lambda: store.put(_record()),
            lambda: list(store.list()),
            lambda: store.delete("job-1"),
        ):
            # a HEAD (delete asks first) has no body to name the error: its status must do
            with pytest.raises(
                StorageError, match=r"InvalidAccessKeyId|HTTP 403 Forbidden"
            ) as info:
                action()
            assert info.value.status == 500
            _assert_secret_kept(info.value, store)


@pytest.mark.services
def test_the_http_answer_to_a_storage_failure_names_it_without_the_secret(
    strict_s3_endpoint: S3Endpoint,
) -> None:
    from jobstatus.adapters.wsgi import make_app

    url = strict_s3_endpoint.store_url(key="AKIAWRONGKEY", secret=_TOLD_SECRET)
    with _object_store(url, **_NO_RETRIES) as store:
        app = make_app(StatusService(store, api_keys=["k"]))
        status, body = _post(app, "/v1/toolkit/job/status", {"job_id": JOB_ID})
    assert status == "500 Internal Server Error"
    assert body["code"] == 500
    assert body["error"].startswith("Failed to retrieve job status: cannot read jobs/")
    assert "InvalidAccessKeyId" in body["error"]
    assert _TOLD_SECRET not in json.dumps(body)


@pytest.mark.services
def test_an_unreachable_endpoint_is_a_storage_error(aws_environment: dict[str, str]) -> None:
    url = (
        f"s3://{BUCKET}/p?endpoint_url=http://127.0.0.1:{_closed_port()}"
        f"&secret={_TOLD_SECRET.replace('+', '%2B').replace('=', '%3D').replace('/', '%2F')}"
        f"&key=AKIAEXAMPLE"
    )
    with _object_store(url, **_NO_RETRIES) as store:
        with pytest.raises(StorageError, match="Could not connect") as info:
            store.get("job-1")
        assert "cannot read jobs/job-1.json in s3://jobstatus-tests/p" in str(info.value)
        _assert_secret_kept(info.value, store)


@pytest.mark.services
def test_server_errors_and_throttling_are_storage_errors(
    broken_endpoint: tuple[str, str],
    aws_environment: dict[str, str],
) -> None:
    endpoint, code = broken_endpoint
    url = f"s3://{BUCKET}/p?endpoint_url={endpoint}&key=AKIAEXAMPLE"
    with _object_store(url, secret=_TOLD_SECRET, **_NO_RETRIES) as store:
        for action in (
            lambda: store.get("job-1"),
            lambda: store.put(_record("job-1", "done")),
            lambda: list(store.list()),
            lambda: store.purge(older_than=time.time()),
        ):
            with pytest.raises(StorageError, match=code) as info:
                action()
            _assert_secret_kept(info.value, store)


def test_a_corrupt_object_is_a_storage_error() -> None:
    with _object_store(f"fsspec+memory://jobstatus-tests/{uuid.uuid4().hex}") as store:
        store.fs.pipe_file(f"{store.root}/jobs/j.json", b'{"job_status": "do')
        with pytest.raises(StorageError, match=r"jobs/j\.json .* is not a job record"):
            store.get("j")
        assert list(store.list()) == []  # skipped with a warning, the listing goes on


@pytest.mark.services
def test_unsafe_ids_never_reach_the_server(s3_endpoint: S3Endpoint, s3_store: ObjectStore) -> None:
    def try_all() -> None:
        for job_id in UNSAFE_JOB_IDS:
            with pytest.raises(InvalidRequest):
                s3_store.get(job_id)
            with pytest.raises(InvalidRequest):
                s3_store.delete(job_id)
            with pytest.raises(InvalidRequest):
                s3_store.put(_record(job_id))
            with pytest.raises(InvalidRequest):
                s3_store.restore([_record(job_id)])

    assert s3_endpoint.requests_during(try_all) == []
