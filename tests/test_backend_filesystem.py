from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobstatus import JobRecord, StorageError, open_store
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.store import Store
from jobstatus.testing import ChangeNotificationTests, StoreTests
from jobstatus.testing.suite import UPSTREAM_EXAMPLE


class TestFileSystemStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with open_store(f"file://{tmp_path}") as store:
            yield store


class TestFileSystemStoreChanges(ChangeNotificationTests):
    """Every writer is reported: here another store object on the same folder (other
    processes and upstream in-place writers: tests/test_folder_watch.py)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        (tmp_path / "jobs").mkdir()  # a subscription needs the folder to watch
        with open_store(f"file://{tmp_path}") as store:
            yield store

    @pytest.fixture
    def other_writer(self, tmp_path: Path) -> Iterator[Store]:
        with open_store(f"file://{tmp_path}") as store:
            yield store


def test_a_plain_path_is_a_filesystem_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert isinstance(store, FileSystemStore)
    assert store.root == tmp_path


def test_reads_a_file_the_upstream_service_wrote(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    job_id = UPSTREAM_EXAMPLE["job_id"]
    with open(jobs / f"{job_id}.json", "w") as file:  # exactly as upstream's log_job_status
        json.dump(UPSTREAM_EXAMPLE, file, indent=2)
    os.utime(jobs / f"{job_id}.json", (1_700_000_000, 1_700_000_000))
    record = FileSystemStore(tmp_path).get(job_id)
    assert record.to_dict() == UPSTREAM_EXAMPLE
    assert record.updated_at == 1_700_000_000


def test_writes_the_upstream_layout_and_bytes(tmp_path: Path) -> None:
    FileSystemStore(tmp_path).put(JobRecord.from_dict(UPSTREAM_EXAMPLE))
    written = (tmp_path / "jobs" / f"{UPSTREAM_EXAMPLE['job_id']}.json").read_text()
    assert written == json.dumps(UPSTREAM_EXAMPLE, indent=2)
    assert sorted(os.listdir(tmp_path / "jobs")) == [f"{UPSTREAM_EXAMPLE['job_id']}.json"]


def test_a_corrupt_file_is_a_storage_error(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    store.put(JobRecord(job_id="j", job_status="queued"))
    (tmp_path / "jobs" / "j.json").write_text('{"job_status": "do')
    with pytest.raises(StorageError, match=r"j\.json is not a job record"):
        store.get("j")


def test_a_valid_json_file_that_is_no_record_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "j.json").write_text("[1, 2]")
    with pytest.raises(StorageError, match="must be a JSON object"):
        FileSystemStore(tmp_path).get("j")


def test_list_stats_before_it_reads(tmp_path: Path) -> None:
    """Files outside the window are never opened: a corrupt old file does not matter."""
    store = FileSystemStore(tmp_path)
    store.restore([JobRecord(job_id="old", job_status="done", updated_at=1_000_000_000)])
    (tmp_path / "jobs" / "old.json").write_text("not json")
    os.utime(tmp_path / "jobs" / "old.json", (1_000_000_000, 1_000_000_000))
    store.put(JobRecord(job_id="new", job_status="running"))
    opened: list[str] = []
    real_read = FileSystemStore._read

    def spy(self: FileSystemStore, path: str, job_id: str) -> JobRecord:
        opened.append(job_id)
        return real_read(self, path, job_id)

    FileSystemStore._read = spy  # type: ignore[method-assign]
    try:
        assert [r.job_id for r in store.list(since=1_500_000_000)] == ["new"]
    finally:
        FileSystemStore._read = real_read  # type: ignore[method-assign]
    assert opened == ["new"]


def test_no_temp_file_is_left_behind(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    for n in range(20):
        store.put(JobRecord(job_id=f"j{n % 3}", job_status="running", response=n))
    assert sorted(os.listdir(tmp_path / "jobs")) == ["j0.json", "j1.json", "j2.json"]


def test_file_urls(tmp_path: Path) -> None:
    from jobstatus import ConfigurationError

    assert open_store(f"file://localhost{tmp_path}").root == tmp_path  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="local absolute path"):
        open_store("file://somehost/data")
