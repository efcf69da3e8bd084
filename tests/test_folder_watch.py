"""The filesystem store's folder watch (Linux inotify): change notification and the recency
index, against writes by this process, by other processes through the store, and by upstream
writers that rewrite a file in place -- and the same listing as a scan of the folder, always.

Other processes' writes are finished when their process returns; the store reads the kernel's
queue before it answers, so no test waits for an event to arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobstatus import JobRecord, StorageError, open_store
from jobstatus.backends import _inotify
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.store import subscribe

pytestmark = pytest.mark.skipif(not _inotify.AVAILABLE, reason="inotify is Linux's")

ROOT = Path(__file__).resolve().parents[1]


def in_place(folder: Path, job_id: str, status: str, mtime: float | None = None) -> None:
    """Another process rewrites a job file in place, as the upstream service does."""
    document = {"job_status": status, "job_id": job_id, "queue_id": 1, "process_id": 2}
    code = (
        "import json, os, sys\n"
        "path, doc, mtime = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]\n"
        "with open(path, 'w') as file:\n"
        "    json.dump(doc, file, indent=2)\n"
        "if mtime:\n"
        "    os.utime(path, (float(mtime), float(mtime)))\n"
    )
    path = folder / "jobs" / f"{job_id}.json"
    argv = [sys.executable, "-c", code, str(path), json.dumps(document), str(mtime or "")]
    subprocess.run(argv, check=True)


def through_the_store(folder: Path, *operations: str) -> None:
    """Another process writes through its own store: ``put:<id>:<status>``, ``delete:<id>``."""
    code = (
        "import sys\n"
        "from jobstatus import JobRecord\n"
        "from jobstatus.backends.filesystem import FileSystemStore\n"
        "store = FileSystemStore(sys.argv[1])\n"
        "for op in sys.argv[2:]:\n"
        "    kind, job_id, *rest = op.split(':')\n"
        "    if kind == 'put':\n"
        "        store.put(JobRecord(job_id=job_id, job_status=rest[0]))\n"
        "    else:\n"
        "        store.delete(job_id)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(folder), *operations], check=True, env=env)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FileSystemStore]:
    with FileSystemStore(tmp_path) as store:
        store.put(JobRecord(job_id="first", job_status="queued"))
        yield store


def listed(store: FileSystemStore, since: float | None = None) -> list[tuple[str, float | None]]:
    return [(r.job_id, r.updated_at) for r in store.list(since=since)]


def scanned(folder: Path, since: float | None = None) -> list[tuple[str, float | None]]:
    with FileSystemStore(folder, notify=False) as scanner:
        return listed(scanner, since)


# -- change notification --------------------------------------------------------------------


def test_every_writer_is_reported_once_flushed(store: FileSystemStore, tmp_path: Path) -> None:
    seen: list[str | None] = []
    subscription = subscribe(store, seen.append)
    assert subscription is not None
    flush = subscription.flush  # type: ignore[attr-defined]
    store.put(JobRecord(job_id="ours", job_status="running"))
    flush()
    assert "ours" in seen
    in_place(tmp_path, "upstream", "running")
    flush()
    assert "upstream" in seen
    through_the_store(tmp_path, "put:theirs:queued", "delete:first")
    flush()
    assert {"theirs", "first"} <= set(seen)
    seen.clear()
    os.utime(tmp_path / "jobs" / "ours.json", (1e9, 1e9))
    flush()
    assert seen == ["ours"]
    seen.clear()
    (tmp_path / "jobs" / "notes.txt").write_text("not a job")
    flush()
    assert seen == []
    subscription.close()
    store.put(JobRecord(job_id="after", job_status="running"))
    flush()
    assert seen == []


def test_changes_arrive_without_a_flush(store: FileSystemStore, tmp_path: Path) -> None:
    """The reader thread pushes them: a waiter needs nobody to call flush."""
    import threading

    arrived = threading.Event()
    subscription = store.subscribe(lambda job_id: job_id == "pushed" and arrived.set())
    in_place(tmp_path, "pushed", "running")
    assert arrived.wait(20)
    subscription.close()


def test_a_folder_that_goes_and_comes_back_is_watched_again(
    store: FileSystemStore, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    subscription = store.subscribe(seen.append)
    shutil.rmtree(tmp_path / "jobs")
    subscription.flush()  # type: ignore[attr-defined]
    assert None in seen  # changes may have been missed: subscribers re-read
    store.put(JobRecord(job_id="again", job_status="queued"))  # makes the folder again
    assert listed(store) == scanned(tmp_path)
    seen.clear()
    in_place(tmp_path, "later", "running")
    subscription.flush()  # type: ignore[attr-defined]
    assert "later" in seen
    subscription.close()


def test_notification_can_be_turned_off(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}?notify=false")
    store.put(JobRecord(job_id="a", job_status="queued"))
    with pytest.raises(StorageError, match="off"):
        subscribe(store, print)
    assert [r.job_id for r in store.list()] == ["a"]
    with pytest.raises(ValueError, match="notify"):
        open_store(f"file://{tmp_path}?notify=maybe")


# -- the recency index ----------------------------------------------------------------------


def test_the_index_lists_what_a_scan_lists(store: FileSystemStore, tmp_path: Path) -> None:
    now = time.time()
    listed(store)  # the index is built here
    store.put(JobRecord(job_id="ours", job_status="running"))
    in_place(tmp_path, "upstream", "running")
    in_place(tmp_path, "old-upstream", "done", mtime=now - 3600)
    through_the_store(tmp_path, "put:theirs:queued", "put:first:running", "delete:ours")
    in_place(tmp_path, "upstream", "done")  # rewritten in place: newer now
    os.utime(tmp_path / "jobs" / "theirs.json", (now - 7200, now - 7200))  # moved back in time
    for since in (None, now - 600, now - 5000, now + 3600):
        assert listed(store, since) == scanned(tmp_path, since), since
    assert [job_id for job_id, _ in listed(store, now - 600)] == ["upstream", "first"]


def test_after_the_first_scan_listing_reads_no_folder(
    store: FileSystemStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(50):
        in_place(tmp_path, f"old-{n}", "done", mtime=1e9 + n)
    listed(store)
    scans = []
    real_scandir = os.scandir

    def counting(path: str) -> object:
        scans.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    in_place(tmp_path, "new", "running")
    assert [job_id for job_id, _ in listed(store, time.time() - 600)] == ["new", "first"]
    assert scans == []


def test_an_overflowing_queue_rebuilds_the_index(store: FileSystemStore, tmp_path: Path) -> None:
    """The kernel drops events once its queue is full (16,384 by default): the index then
    scans again, and subscribers re-read."""
    seen: list[str | None] = []
    subscription = store.subscribe(seen.append)
    listed(store)
    watch = store._watch
    assert watch is not None
    with _inotify.HUB.lock:  # as the hub hands an overflow to every folder
        (tmp_path / "jobs" / "sneaked.json").write_text('{"job_id": "sneaked", "job_status": "x"}')
        _inotify.HUB.flush()  # (the write's own event, read now)
        watch._mtimes.pop("sneaked")
        watch._order = [item for item in watch._order if item[1] != "sneaked"]
        watch._on_event(_inotify.Event(_inotify.IN_Q_OVERFLOW, ""))
    assert None in seen
    assert listed(store) == scanned(tmp_path)
    subscription.close()


def test_a_forked_child_lists_with_its_own_watch(store: FileSystemStore, tmp_path: Path) -> None:
    listed(store)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own inotify instance, the parent's untouched
        try:
            in_place(tmp_path, "child", "running")
            ok = [job_id for job_id, _ in listed(store)] == ["child", "first"]
            os.write(writer, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(writer)
    assert os.read(reader, 1) == b"1"
    os.waitpid(pid, 0)
    assert [job_id for job_id, _ in listed(store)] == ["child", "first"]
