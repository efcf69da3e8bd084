"""Crash consistency: writers SIGKILLed mid-write, and what ``check --deep`` repairs.

The trials (``jobstatus.testing._crash``) run a few dozen seeded kills per backend; the
1,000-trial runs are ``benchmarks/crash_trials.py``. The targeted tests stage each leftover a
backend can really have -- by a real kill at a precise point where one exists (the writer
kills itself at the audit event of its rename), else as the kill leaves it -- and check what
``check --deep`` reports and does, ``--dry-run`` included.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, open_store
from jobstatus.backends import _filesystem_repair
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.repair import repair
from jobstatus.testing._crash import CrashTrials, Summary, deep_check
from jobstatus.testing._crash_stores import own_database
from tests.cli_run import cli

SEED = 19


def _trials(url: str, count: int, *, audit_share: float = 0.5, cli_every: int = 3) -> Summary:
    """``count`` seeded trials on the empty store at ``url``; none may find a violation."""
    summary = Summary()
    with open_store(url) as store:
        trials = CrashTrials(store, url, seed=SEED, audit_share=audit_share, cli_every=cli_every)
        trials.calibrate(runs=2)
        for _ in range(count):
            summary.add(trials.trial())
        summary.add(trials.finish())
    assert summary.violations == []
    assert summary.trials == count
    assert summary.mid_write > 0  # kills did land inside store calls
    assert summary.repaired == summary.found  # whatever was found was repaired
    return summary


# -- the trials ------------------------------------------------------------------------------


@pytest.mark.slow
def test_filesystem_trials(tmp_path: Path) -> None:
    summary = _trials(str(tmp_path), 40)
    assert set(summary.found) <= {"temp_file"}


@pytest.mark.slow
@pytest.mark.extras
def test_sqlite_trials(tmp_path: Path) -> None:
    summary = _trials(f"sqlite:///{tmp_path / 'crash.db'}", 30)
    assert summary.found == {}


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.test_backend_sql import server_url

    name = f"jobstatus_crash_{uuid.uuid4().hex[:10]}"
    with own_database(server_url(request.param), name) as url:
        yield url


@pytest.mark.slow
@pytest.mark.extras
@pytest.mark.services
def test_sql_server_trials(server_database: str) -> None:
    summary = _trials(server_database, 30)
    assert summary.found == {}


@pytest.mark.slow
@pytest.mark.extras
@pytest.mark.services
def test_redis_trials(redis_url: str) -> None:
    summary = _trials(redis_url, 30)
    assert summary.found == {}


@pytest.mark.slow
@pytest.mark.extras
@pytest.mark.services
def test_s3_trials(s3_store_url: str) -> None:
    # 15 trials, not 30: each forked writer builds an S3 client of its own (about 1 s of CPU).
    summary = _trials(s3_store_url, 15, cli_every=5)
    assert set(summary.found) <= {"incomplete_upload"}


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    from tests.redis_server import new_prefix, remove_prefix, shared_redis_url

    base, prefix = shared_redis_url(), new_prefix("crash")
    yield f"{base}?prefix={prefix}"
    client = redis.Redis.from_url(base)
    remove_prefix(client, prefix)
    client.close()


# -- the filesystem: temp files, held locks, unreadable records ------------------------------


def _fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        return os.fork()


def _writer_stopped_at(event: str, stop: signal.Signals, write: Callable[[], Any]) -> int:
    """Fork a writer that sends itself ``stop`` at the first audited ``event`` of ``write``;
    return its pid once it is killed or stopped there."""
    pid = _fork()
    if pid == 0:

        def hook(name: str, args: tuple[Any, ...]) -> None:
            if name == event:
                os.kill(os.getpid(), stop)

        sys.addaudithook(hook)
        write()
        os._exit(3)  # the event never came
    _, status = os.waitpid(pid, os.WUNTRACED)
    stopped = os.WIFSTOPPED(status) if stop == signal.SIGSTOP else os.WIFSIGNALED(status)
    assert stopped, f"the writer ended with {status}, not at {event}"
    return pid


def _record(status: str = "running", job_id: str = "job-1", **response: Any) -> JobRecord:
    return JobRecord(job_id=job_id, job_status=status, response=response or None)


def test_a_writer_killed_before_its_rename_leaves_a_temp_file_check_deep_removes(
    tmp_path: Path,
) -> None:
    store = FileSystemStore(tmp_path)
    store.put(_record("running", step=1))
    _writer_stopped_at("os.rename", signal.SIGKILL, lambda: store.put(_record("done", step=2)))
    temp_files = list((tmp_path / "jobs").glob(".tmp-*.json.part"))
    assert len(temp_files) == 1
    assert store.get("job-1").response == {"step": 1}  # the old record, whole

    code, out, err = cli("check", "--deep", "--dry-run", "--store", str(tmp_path))
    assert code == 1
    assert f"found temp_file {temp_files[0]}: would be removed (dry run)" in out
    assert "1 leftover found, to repair (dry run) (temp_file 1)" in err
    assert temp_files[0].exists()

    code, out, err = cli("check", "--deep", "--store", str(tmp_path))
    assert (code, err) == (0, "")
    assert f"repaired temp_file {temp_files[0]}: removed" in out
    assert out.endswith("deep check: 1 leftover found, 1 repaired (temp_file 1)\n")
    assert not temp_files[0].exists()
    assert store.get("job-1").response == {"step": 1}

    code, again = deep_check(str(tmp_path))
    assert (code, again["repair"]["leftovers"]) == (0, [])


def test_a_stopped_writer_holds_its_lock_check_deep_keeps_its_temp_file_until_it_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_filesystem_repair, "LOCK_WAIT", 0.2)
    store = FileSystemStore(tmp_path)
    pid = _writer_stopped_at("os.rename", signal.SIGSTOP, lambda: store.put(_record()))
    try:
        (temp_file,) = (tmp_path / "jobs").glob(".tmp-*.json.part")
        code, outcome = deep_check(str(tmp_path))
        assert code == 1
        leftovers = {item["kind"]: item for item in outcome["repair"]["leftovers"]}
        assert set(leftovers) == {"temp_file", "lock_held"}
        assert leftovers["temp_file"]["repaired"] is False
        assert leftovers["temp_file"]["note"].startswith("kept: a lock stripe is held")
        assert f"held by pid {pid} " in leftovers["lock_held"]["note"]
        assert temp_file.exists()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    code, outcome = deep_check(str(tmp_path))  # the kernel released the dead writer's lock
    assert code == 0
    assert outcome["repair"]["repaired"] == {"temp_file": 1}
    assert not temp_file.exists()


def test_a_torn_upstream_record_is_reported_never_removed(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.put(_record())
    torn = tmp_path / "jobs" / "job-2.json"
    torn.write_text('{"job_status": "runn')  # an in-place writer killed halfway
    code, outcome = deep_check(str(tmp_path))
    assert code == 1
    (leftover,) = outcome["repair"]["leftovers"]
    assert (leftover["kind"], leftover["target"], leftover["repaired"]) == (
        "unreadable_record",
        str(torn),
        False,
    )
    assert torn.read_text() == '{"job_status": "runn'


def test_dry_run_goes_with_deep(tmp_path: Path) -> None:
    code, _, err = cli("check", "--dry-run", "--store", str(tmp_path))
    assert (code, err) == (2, "jobstatus: --dry-run goes with --deep\n")


def test_a_dry_run_writes_no_probe(tmp_path: Path) -> None:
    FileSystemStore(tmp_path).put(_record())
    before = sorted(p.name for p in (tmp_path / "jobs").iterdir())
    code, out, _ = cli("check", "--deep", "--dry-run", "--json", "--store", str(tmp_path))
    outcome = json.loads(out)
    assert (code, outcome["ok"], outcome["repair"]["dry_run"]) == (0, True, True)
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == before


# -- a local folder through fsspec: temp files, by age --------------------------------------


@pytest.mark.extras
def test_fsspec_temp_files_are_removed_once_older_than_the_grace(tmp_path: Path) -> None:
    url = f"fsspec+file://{tmp_path}"
    with open_store(url) as store:
        store.put(_record())
    leftover = tmp_path / "jobs" / ".tmp-abc123"
    leftover.write_bytes(b'{"job_st')
    code, outcome = deep_check(url, "--grace", "1h")  # the last --grace wins
    assert code == 1
    (kept,) = outcome["repair"]["leftovers"]
    assert (kept["kind"], kept["repaired"]) == ("temp_file", False)
    assert "younger than the grace of 3600 s" in kept["note"]
    code, outcome = deep_check(url)
    assert (code, outcome["repair"]["repaired"]) == (0, {"temp_file": 1})
    assert not leftover.exists()


# -- S3: the upload of a restore killed before it completed ---------------------------------


@pytest.mark.extras
@pytest.mark.services
def test_an_incomplete_upload_is_aborted(s3_endpoint: Any, s3_store_url: str) -> None:
    import botocore.session

    with open_store(s3_store_url) as store:
        store.put(_record())
    bucket, _, rest = s3_store_url.removeprefix("s3://").partition("/")
    key = f"{rest.partition('?')[0]}/jobs/job-2.json"
    client = botocore.session.get_session().create_client("s3", endpoint_url=s3_endpoint.url)
    try:
        # What a restore killed between its create and complete requests leaves.
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"{}")
        code, outcome = deep_check(s3_store_url, "--dry-run")
        assert code == 1
        (found,) = outcome["repair"]["leftovers"]
        assert found == {
            "kind": "incomplete_upload",
            "target": f"s3://{bucket}/{key} (upload {upload})",
            "repaired": False,
            "note": "would be cleared (dry run)",
        }
        code, outcome = deep_check(s3_store_url)
        assert (code, outcome["repair"]["repaired"]) == (0, {"incomplete_upload": 1})
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
        assert uploads == []
        code, outcome = deep_check(s3_store_url)
        assert (code, outcome["repair"]["leftovers"]) == (0, [])
    finally:
        client.close()


# -- Redis: index entries of records Redis expired -----------------------------------------


@pytest.mark.extras
@pytest.mark.services
def test_redis_index_entries_of_expired_records_are_dropped(redis_url: str) -> None:
    from datetime import datetime, timedelta, timezone

    with open_store(redis_url) as store:
        soon = datetime.now(timezone.utc) + timedelta(milliseconds=50)
        store.put(JobRecord(job_id="gone", job_status="done", expires_at=soon))
        store.put(_record())
        client, prefix = store.client, store.prefix  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while client.exists(f"{prefix}:job:gone") and time.monotonic() < deadline:
            time.sleep(0.01)  # until Redis dropped the record itself
        assert not client.exists(f"{prefix}:job:gone")
        code, outcome = deep_check(redis_url)
        assert code == 0
        targets = {item["target"] for item in outcome["repair"]["leftovers"]}
        assert targets == {
            f"{prefix}:updated gone",
            f"{prefix}:expires gone",
            f"{prefix}:status:done gone",
            f"{prefix}:statuses done",
        }
        assert client.zscore(f"{prefix}:updated", "gone") is None
        assert [r.job_id for r in store.list()] == ["job-1"]
        assert repair(store).leftovers == []


@pytest.mark.extras
@pytest.mark.services
def test_redis_owner_indexes_follow_the_records(redis_url: str) -> None:
    """An owned record Redis expired leaves entries in its owner's index and in
    ``P:expiring-owners``; a write past the store's scripts leaves a record in another owner's
    index and out of its own: ``repair`` puts both right."""
    from datetime import datetime, timedelta, timezone

    with open_store(redis_url) as store:
        soon = datetime.now(timezone.utc) + timedelta(milliseconds=50)
        store.put(JobRecord(job_id="gone", job_status="done", owner="carol", expires_at=soon))
        store.put(JobRecord(job_id="moved", job_status="running", owner="alice"))
        client, prefix = store.client, store.prefix  # type: ignore[attr-defined]
        client.hset(f"{prefix}:job:moved", "owner", "bob")  # as a foreign write would
        deadline = time.monotonic() + 30
        while client.exists(f"{prefix}:job:gone") and time.monotonic() < deadline:
            time.sleep(0.01)  # until Redis dropped the record itself
        assert not client.exists(f"{prefix}:job:gone")
        targets = {item.target for item in repair(store).leftovers}
        assert {
            f"{prefix}:owner:carol gone",
            f"{prefix}:expiring-owners gone",
            f"{prefix}:owner:alice moved",
            f"{prefix}:owner:bob moved",
        } <= targets
        assert client.zrange(f"{prefix}:owner:bob", 0, -1) == [b"moved"]
        assert client.zrange(f"{prefix}:owner:alice", 0, -1) == []
        assert client.hlen(f"{prefix}:expiring-owners") == 0
        assert [r.job_id for r in store.list_owned("carol")] == []  # type: ignore[attr-defined]
        assert repair(store).leftovers == []


# -- SQL: a table whose first write was killed before its indexes were made -----------------


def _unfinished_table(url: str) -> list[str]:
    """Drop the indexes of the store's table, as a kill between its CREATE TABLE and CREATE
    INDEX steps leaves it; return their names."""
    from jobstatus.backends.sql import SQLStore

    with open_store(url) as store:
        assert isinstance(store, SQLStore)
        store.put(_record())
        names = sorted(str(index.name) for index in store.table.indexes)
        with store.engine.begin() as conn:
            for index in list(store.table.indexes):
                index.drop(conn)
    return names


def _check_schema_repair(url: str) -> None:
    names = _unfinished_table(url)
    assert names
    code, outcome = deep_check(url, "--dry-run")
    assert code == 1
    assert outcome["repair"]["found"] == {"schema": len(names)}
    code, outcome = deep_check(url)
    assert (code, outcome["repair"]["repaired"]) == (0, {"schema": len(names)})
    assert {item["target"].rsplit(" ", 1)[1] for item in outcome["repair"]["leftovers"]} == set(
        names
    )
    code, outcome = deep_check(url)
    assert (code, outcome["repair"]["leftovers"]) == (0, [])
    with open_store(url) as store:
        assert store.get("job-1").job_status == "running"


@pytest.mark.extras
def test_sqlite_indexes_an_interrupted_first_write_left_out_are_added(tmp_path: Path) -> None:
    _check_schema_repair(f"sqlite:///{tmp_path / 'jobs.db'}")


@pytest.mark.extras
@pytest.mark.services
def test_server_indexes_an_interrupted_first_write_left_out_are_added(
    server_database: str,
) -> None:
    _check_schema_repair(server_database)


@pytest.mark.extras
def test_schema_repair_is_left_to_the_migrations_when_create_table_is_off(
    tmp_path: Path,
) -> None:
    from jobstatus.backends.sql import open_sql_store

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    names = _unfinished_table(url)
    with open_sql_store(url, create_table=False) as store:
        report = store.repair()
    assert [left.target.rsplit(" ", 1)[1] for left in report.leftovers] == names
    assert {(left.repaired, left.note) for left in report.leftovers} == {
        (False, "kept: create_table is off, the migrations own the schema")
    }


def test_a_store_without_repair_finds_nothing() -> None:
    assert repair(object()).leftovers == []
    with pytest.raises(ValueError, match="grace must not be negative"):
        repair(object(), grace=-1)
