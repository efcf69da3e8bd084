"""``jobstatus purge``, ``migrate`` and ``check`` as a user runs them, and :func:`migrate`."""

from __future__ import annotations

import io
import itertools
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from jobstatus import JobRecord, StorageError, open_store
from jobstatus.cli.progress import LINE_WIDTH, ProgressPrinter, bar_line, plain_line
from jobstatus.migrate import MigrationProgress, migrate
from jobstatus.store import BaseStore, Store
from tests.cli_run import ROOT, Spy, SpyWithExists, cli, one_line_error, run, stand_in

DAY = 86_400.0


def stored(store: Store) -> dict[str, tuple[dict[str, Any], float | None]]:
    return {r.job_id: (r.to_dict(), r.updated_at) for r in store.list()}


# -- purge -------------------------------------------------------------------------------------


@pytest.fixture(params=["filesystem", pytest.param("sqlite", marks=pytest.mark.extras)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        pytest.importorskip("sqlalchemy")
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return f"file://{tmp_path / 'data'}"


def _aged(store_url: str) -> None:
    """Jobs 1..9 days old, cycling through done, failed, running; and a fresh one."""
    now = time.time()
    with open_store(store_url) as store:
        store.restore(
            JobRecord(
                job_id=f"age-{days}",
                job_status=("done", "failed", "running")[days % 3],
                updated_at=now - days * DAY - 60,
            )
            for days in range(1, 10)
        )
        store.put(JobRecord(job_id="fresh", job_status="done"))


def _ids(store_url: str) -> set[str]:
    with open_store(store_url) as store:
        return {r.job_id for r in store.list()}


def test_purge_removes_only_what_is_older(store_url: str) -> None:
    _aged(store_url)
    code, out, err = cli("purge", "--older-than", "7d", "--store", store_url)
    assert (code, err) == (0, "")
    assert _ids(store_url) == {"fresh", *(f"age-{d}" for d in range(1, 7))}  # 7 is 7d + 1m old
    assert re.fullmatch(r"removed 3 jobs updated before \S+Z\n", out)


def test_purge_removes_only_the_states_asked_for(store_url: str) -> None:
    _aged(store_url)
    code, out, _ = cli(
        "purge", "--older-than", "2d", "--status", "done,failed", "--store", store_url
    )
    assert code == 0
    # older than 2 days: ages 2..9; of those done/failed: 3, 4, 6, 7, 9 (2, 5, 8 are running)
    assert _ids(store_url) == {"fresh", "age-1", "age-2", "age-5", "age-8"}
    assert out.startswith("removed 5 jobs updated before ")
    assert out.endswith(" with status done, failed\n")


def test_purge_counts_in_the_singular_and_with_separators(store_url: str) -> None:
    _aged(store_url)
    code, out, _ = cli("purge", "--older-than", "9d", "--store", store_url, "--dry-run")
    assert out.splitlines()[-1].startswith("would remove 1 job updated before ")
    code, out, _ = cli("purge", "--older-than", "9d", "--store", store_url)
    assert (code, out.startswith("removed 1 job updated before ")) == (0, True)
    code, out, _ = cli("purge", "--older-than", "9d", "--store", store_url)
    assert (code, out.startswith("removed 0 jobs updated before ")) == (0, True)


def test_purge_is_one_call_of_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SpyWithExists(open_store("memory://"), answers={"exists": True, "purge": 12_345})
    stand_in(monkeypatch, spy)
    before = time.time()
    code, out, _ = cli("purge", "--older-than", "1h", "--status", "done", "--store", "x://y")
    assert code == 0
    assert out.startswith("removed 12,345 jobs updated before ")
    assert spy.names() == ["exists", "purge", "close"]  # no listing, no batches
    options = spy.calls[1][1]
    assert options.keys() == {"older_than", "status"}
    assert before - 3600 <= options["older_than"] <= time.time() - 3600
    assert options["status"] == ["done"]

    spy = SpyWithExists(open_store("memory://"), answers={"exists": True, "purge": 1})
    stand_in(monkeypatch, spy)
    code, out, _ = cli("purge", "--expired", "--store", "x://y")
    assert (code, out) == (0, "removed 1 job expired\n")
    assert spy.calls[1] == ("purge", {"status": None, "expired": True})

    spy = SpyWithExists(open_store("memory://"), answers={"exists": True, "purge": 2})
    stand_in(monkeypatch, spy)
    code, out, _ = cli("purge", "--expired", "--older-than", "7d", "--json", "--store", "x://y")
    outcome = json.loads(out)
    assert spy.calls[1][1].keys() == {"older_than", "status", "expired"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", outcome.pop("older_than"))
    assert outcome == {"dry_run": False, "expired": True, "status": None, "count": 2}


def test_purge_needs_something_to_purge(store_url: str) -> None:
    code, out, err = cli("purge", "--status", "done", "--store", store_url)
    assert (code, out) == (2, "")
    assert err == "jobstatus: purge needs --older-than DURATION, --expired, or both\n"


def test_purge_dry_run_lists_what_would_go_and_deletes_nothing(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aged(store_url)
    before = _ids(store_url)
    code, out, _ = cli(
        "purge", "--older-than", "6d", "--status", "done", "--dry-run", "--store", store_url
    )
    assert code == 0
    assert _ids(store_url) == before
    lines = out.splitlines()
    assert lines[0].split() == ["JOB_ID", "STATUS", "UPDATED", "(UTC)"]
    assert [line.split()[:2] for line in lines[1:-1]] == [["age-9", "done"], ["age-6", "done"]]
    assert lines[-1].startswith("would remove 2 jobs updated before ")
    assert lines[-1].endswith("with status done (dry run: nothing removed)")

    code, out, _ = cli("purge", "--older-than", "6d", "--dry-run", "--json", "--store", store_url)
    outcome = json.loads(out)
    assert (outcome["dry_run"], outcome["count"]) == (True, 4)
    assert [job["job_id"] for job in outcome["jobs"]] == ["age-9", "age-8", "age-7", "age-6"]

    with open_store(store_url) as store:
        spy = SpyWithExists(store)
        stand_in(monkeypatch, spy)
        assert cli("purge", "--older-than", "1d", "--expired", "--dry-run", "--store", "x")[0] == 0
    assert set(spy.names()) == {"exists", "list", "close"}  # read-only


def test_purge_expired(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    now = datetime.now(timezone.utc)
    with open_store(url) as store:
        store.restore(
            JobRecord(
                job_id=f"job-{n}",
                job_status=("done", "failed")[n % 2],
                expires_at=now + timedelta(days=1 if n < 2 else -1),
                updated_at=time.time() - n * DAY,
            )
            for n in range(6)
        )
        store.put(JobRecord(job_id="forever", job_status="done"))
    code, out, _ = cli("purge", "--expired", "--dry-run", "--store", url)
    assert (code, out) == (
        0,
        "would remove 0 jobs expired (dry run: nothing removed; expired jobs are hidden from "
        "listings and not counted)\n",
    )
    # expired: 2..5; of those failed: 3, 5
    assert cli("purge", "--expired", "--status", "failed", "--store", url)[1] == (
        "removed 2 jobs expired with status failed\n"
    )
    # left: 0 and 1 (not expired, 0 and 1 day old), 2 and 4 (expired)
    code, out, _ = cli("purge", "--expired", "--older-than", "12h", "--store", url)
    assert code == 0
    assert re.fullmatch(r"removed 3 jobs expired or updated before \S+Z\n", out)
    with open_store(url) as store:
        assert sorted(r.job_id for r in store.list()) == ["forever", "job-0"]


def test_purge_as_a_user_runs_it(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    _aged(url)
    result = run("purge", "--older-than", "8d", "--store", url)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("removed 2 jobs updated before ")
    missing = run("purge", "--store", url)
    assert missing.returncode == 2
    assert "--older-than" in missing.stderr
    assert one_line_error(missing.stderr)
    bad = run("purge", "--older-than", "soon", "--store", url)
    assert bad.returncode == 2
    assert "invalid duration" in bad.stderr


# -- migrate -----------------------------------------------------------------------------------

BASE = 1_650_000_000


def _documents(count: int) -> Iterator[dict[str, Any]]:
    """Varied upstream documents: every state, nested envelopes, unicode, unknown keys."""
    for n in range(count):
        job_id = f"{n:08x}-9c9f-4b8a-b7c3-f0e3c9f6b9d7"
        doc: dict[str, Any] = {
            "job_status": ("queued", "running", "done", "failed", "submitted")[n % 5],
            "job_id": job_id,
            "queue_id": 140368864456064,
            "process_id": 1000 + n % 7,
            "response": None,
        }
        if doc["job_status"] in ("done", "failed"):
            doc["response"] = {
                "endpoint": "/v1/media/transcribe",
                "code": 200 if doc["job_status"] == "done" else 500,
                "id": f"req-{n}",
                "job_id": job_id,
                "response": {"text": f"tränscript {n} ✓", "words": [n, n / 7, None]},
                "message": "success",
                "pid": 1000 + n % 7,
                "queue_id": 140368864456064,
                "run_time": 5.234,
                "queue_time": 1.123,
                "total_time": 6.357,
                "queue_length": n % 3,
                "build_number": "1.0.0",
            }
        if n % 11 == 0:
            doc["custom"] = {"kept": [True, None]}
        if n % 13 == 0:
            del doc["process_id"]  # an absent key stays absent
        yield doc


def write_upstream_files(root: Path, count: int, *, fraction: bool) -> dict[str, Any]:
    """The files the upstream service leaves in LOCAL_STORAGE_PATH/jobs, with their mtimes."""
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    expected = {}
    for n, doc in enumerate(_documents(count)):
        stamp_ns = (BASE + n) * 10**9 + (123_456_789 if fraction else 0)
        path = jobs / f"{doc['job_id']}.json"
        path.write_text(json.dumps(doc, indent=2))
        os.utime(path, ns=(stamp_ns, stamp_ns))
        expected[doc["job_id"]] = (doc, stamp_ns / 1e9)
    return expected


def _summary(out: str) -> tuple[int, int, int]:
    match = re.search(r"copied ([\d,]+) of ([\d,]+) records? \(([\d,]+) unchanged", out)
    assert match, out
    return tuple(int(match[i].replace(",", "")) for i in (1, 2, 3))  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.extras
def test_migrate_10000_records_through_filesystem_sqlite_filesystem(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    expected = write_upstream_files(tmp_path / "upstream", 10_000, fraction=True)
    hops = [
        str(tmp_path / "upstream"),  # a plain path, as LOCAL_STORAGE_PATH is
        f"sqlite:///{tmp_path / 'jobs.db'}",
        f"file://{tmp_path / 'back'}",
    ]
    for src, dst in itertools.pairwise(hops):
        code, out, err = cli("migrate", src, dst)
        assert (code, err) == (0, "")
        assert _summary(out) == (10_000, 10_000, 0)
        code, out, _ = cli("migrate", src, dst)  # again: nothing is copied twice
        assert _summary(out) == (0, 10_000, 10_000)
        with open_store(dst) as store:
            assert stored(store) == expected


@pytest.mark.slow
@pytest.mark.extras
@pytest.mark.services
def test_migrate_through_an_s3_endpoint_and_back(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """1,000 records here (10,000 in the test above): moto's S3 server takes milliseconds a
    request, and the object store's restore makes three requests a record."""
    pytest.importorskip("sqlalchemy")
    s3_url = request.getfixturevalue("s3_store_url")
    expected = write_upstream_files(tmp_path / "upstream", 1_000, fraction=True)
    hops = [
        f"file://{tmp_path / 'upstream'}",
        f"sqlite:///{tmp_path / 'jobs.db'}",
        s3_url,
        f"file://{tmp_path / 'back'}",
    ]
    for src, dst in itertools.pairwise(hops):
        code, out, err = cli("migrate", src, dst, "--batch-size", "250")
        assert (code, err) == (0, "")
        assert _summary(out) == (1_000, 1_000, 0)
    code, out, _ = cli("migrate", hops[1], hops[2], "--batch-size", "250")
    assert _summary(out) == (0, 1_000, 1_000)
    with open_store(hops[-1]) as store:
        assert stored(store) == expected


class FailingAfter(BaseStore):
    """A real store that stops accepting writes after ``limit`` records, like a disk filling
    up or a database going away half-way."""

    def __init__(self, store: Store, limit: int) -> None:
        self.store, self.limit, self.written = store, limit, 0

    def restore(self, records: Iterable[JobRecord]) -> int:
        batch = list(records)
        if self.written + len(batch) > self.limit:
            room = self.limit - self.written
            self.written += self.store.restore(batch[:room])
            raise StorageError("no space left on device")
        self.written += self.store.restore(batch)
        return len(batch)

    def list(self, **filters: Any) -> Iterator[JobRecord]:
        return self.store.list(**filters)


def test_an_interrupted_migration_completes_when_run_again(tmp_path: Path) -> None:
    expected = write_upstream_files(tmp_path / "src", 2_000, fraction=True)
    src, dst = open_store(str(tmp_path / "src")), open_store("memory://")
    with pytest.raises(StorageError, match=r"migrate stopped after copying 700 records") as info:
        migrate(src, FailingAfter(dst, 750), batch_size=100)  # type: ignore[arg-type]
    assert "no space left on device" in str(info.value)
    assert len(stored(dst)) == 750  # 7 whole batches, and half of the 8th
    result = migrate(src, dst, batch_size=100)
    assert (result.copied, result.unchanged, result.seen) == (1_250, 750, 2_000)
    assert stored(dst) == expected
    assert migrate(src, dst).copied == 0


def test_a_killed_migration_completes_when_run_again(tmp_path: Path) -> None:
    expected = write_upstream_files(tmp_path / "src", 2_000, fraction=True)
    jobs = tmp_path / "dst" / "jobs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "jobstatus",
        "migrate",
        str(tmp_path / "src"),
        f"file://{tmp_path / 'dst'}",
        "--batch-size",
        "50",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            # count records only: a temp file of the write in flight is not one
            if jobs.is_dir() and sum(e.name.endswith(".json") for e in os.scandir(jobs)) >= 500:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL, "the migration ended before it was killed"
    copied_before = sum(1 for name in os.listdir(jobs) if name.endswith(".json"))
    assert 500 <= copied_before < 2_000
    again = run(*command[3:])
    assert again.returncode == 0, again.stderr
    copied, seen, unchanged = _summary(again.stdout)
    assert (copied + unchanged, seen) == (2_000, 2_000)
    assert unchanged >= copied_before - 50  # at most the batch in flight is copied again
    with open_store(f"file://{tmp_path / 'dst'}") as store:
        assert stored(store) == expected


def test_migrate_keeps_a_newer_destination_record(tmp_path: Path) -> None:
    src, dst = open_store(str(tmp_path)), open_store("memory://")
    src.restore(
        [
            JobRecord(job_id="a", job_status="running", updated_at=BASE),
            JobRecord(job_id="b", job_status="queued", updated_at=BASE),
        ]
    )
    dst.put(JobRecord(job_id="a", job_status="done"))  # the host already writes here
    dst.restore([JobRecord(job_id="b", job_status="queued", response=1, updated_at=BASE - 5)])
    result = migrate(src, dst)
    assert (result.copied, result.kept_newer, result.unchanged) == (1, 1, 0)
    assert dst.get("a").job_status == "done"
    assert (dst.get("b").response, dst.get("b").updated_at) == (None, BASE)


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and mtime."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_migrate_dry_run_writes_nothing(tmp_path: Path) -> None:
    write_upstream_files(tmp_path / "src", 30, fraction=False)
    before = _tree(tmp_path)
    dst = f"file://{tmp_path / 'dst'}"
    code, out, _ = cli("migrate", str(tmp_path / "src"), dst, "--dry-run")
    assert code == 0
    assert out.splitlines()[-1] == (
        "would copy 30 of 30 records (0 unchanged, 0 kept as newer in the destination) in "
        f"{out.rsplit(' in ', 1)[1].split(' s')[0]} s (dry run: nothing written)"
    )
    assert _tree(tmp_path) == before  # the source untouched, no destination created
    assert not (tmp_path / "dst").exists()

    with open_store(dst) as store:  # a destination that exists: read, never written
        store.restore([JobRecord(job_id="ffffffff-0000-4000-8000-000000000000", job_status="x")])
    before = _tree(tmp_path)
    code, out, _ = cli("migrate", str(tmp_path / "src"), dst, "--dry-run", "--json")
    assert code == 0
    counts = json.loads(out)
    assert counts.pop("elapsed_s") >= 0
    assert counts == {"dry_run": True, "seen": 30, "copied": 30, "unchanged": 0, "kept_newer": 0}
    assert _tree(tmp_path) == before


def test_migrate_dry_run_calls_nothing_that_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_upstream_files(tmp_path / "src", 30, fraction=False)
    src = SpyWithExists(open_store(str(tmp_path / "src")))
    dst = SpyWithExists(open_store("memory://"), answers={"exists": False})
    stand_in(monkeypatch, src, dst)
    assert cli("migrate", "a://", "b://", "--dry-run")[0] == 0
    assert set(src.names()) == {"exists", "list", "close"}
    assert dst.names() == ["exists", "close"]  # not there: not even read
    for spy in (src, dst):
        assert not Spy.WRITES.intersection(spy.names())


@pytest.mark.extras
def test_migrate_dry_run_leaves_sqlite_untouched(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    write_upstream_files(tmp_path / "src", 30, fraction=False)
    db = tmp_path / "jobs.db"
    code, _, err = cli("migrate", str(tmp_path / "src"), f"sqlite:///{db}", "--dry-run")
    assert (code, err) == (0, "")
    assert not db.exists()  # no file, no table
    assert cli("migrate", str(tmp_path / "src"), f"sqlite:///{db}")[0] == 0
    before = _tree(tmp_path)
    code, out, _ = cli("migrate", f"sqlite:///{db}", f"file://{tmp_path / 'copy'}", "--dry-run")
    assert (code, _summary(out.replace("would copy", "copied"))) == (0, (30, 30, 0))
    assert _tree(tmp_path) == before


def test_migrate_from_a_store_that_does_not_exist(tmp_path: Path) -> None:
    code, out, err = cli("migrate", str(tmp_path / "nothing"), f"file://{tmp_path / 'dst'}")
    assert (code, out) == (1, "")
    assert err == f"jobstatus: store does not exist: {tmp_path / 'nothing'}\n"
    assert not (tmp_path / "dst").exists()


def test_migrate_summary_separates_thousands_and_agrees_in_number(tmp_path: Path) -> None:
    write_upstream_files(tmp_path / "src", 1, fraction=False)
    code, out, _ = cli("migrate", str(tmp_path / "src"), "memory://")
    assert (code, out.startswith("copied 1 of 1 record (0 unchanged, ")) == (0, True)
    src = open_store("memory://")
    src.restore(JobRecord(job_id=f"job-{n}", job_status="done") for n in range(1_234))
    result = migrate(src, open_store("memory://"))
    from jobstatus.cli.migrate import summary

    assert summary(result, dry_run=False).startswith(
        "copied 1,234 of 1,234 records (0 unchanged, 0 kept as newer in the destination) in "
    )


def test_migrate_reports_progress_with_a_total_and_an_eta(tmp_path: Path) -> None:
    write_upstream_files(tmp_path / "src", 250, fraction=False)
    seen: list[tuple[str, int | None, int, float | None]] = []

    def progress(state: MigrationProgress) -> None:
        seen.append((state.phase, state.total, state.seen, state.eta))

    migrate(
        open_store(str(tmp_path / "src")),
        open_store("memory://"),
        batch_size=100,
        progress=progress,
        count_first=True,
    )
    phases = [phase for phase, *_ in seen]
    assert phases == ["count", "index", "copy", "copy", "copy", "copy", "done"]
    copying = [entry for entry in seen if entry[0] == "copy"]
    assert [entry[2] for entry in copying] == [0, 100, 200, 250]
    assert {entry[1] for entry in copying} == {250}
    assert copying[0][3] is None  # no rate yet, no ETA
    assert all(eta is not None and eta >= 0 for *_, eta in copying[1:])
    assert copying[-1][3] == 0


def test_migrate_without_count_first_reads_the_source_once(tmp_path: Path) -> None:
    write_upstream_files(tmp_path / "src", 250, fraction=False)
    seen: list[tuple[str, int | None]] = []
    result = migrate(
        open_store(str(tmp_path / "src")),
        open_store("memory://"),
        batch_size=100,
        progress=lambda state: seen.append((state.phase, state.total)),
    )
    assert [phase for phase, _ in seen] == ["index", "copy", "copy", "copy", "copy", "done"]
    assert [total for _, total in seen] == [None] * 5 + [250]
    assert (result.total, result.copied) == (250, 250)


def test_migrate_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = cli("migrate", "nope://x", f"file://{tmp_path}")
    assert code == 2
    assert err.startswith("jobstatus: unknown store scheme 'nope'")
    assert err.count("\n") == 1
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")
    write_upstream_files(tmp_path / "src", 3, fraction=False)
    result = run("migrate", str(tmp_path / "src"), f"file://{blocked}")
    assert result.returncode == 1
    assert "migrate stopped after copying 0 records; run it again to finish" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


# -- progress output ---------------------------------------------------------------------------


def _copying(seen: int, total: int) -> MigrationProgress:
    """A copy ``seen`` records in after 2 s (a clock that stopped: the rate is exact)."""
    state = MigrationProgress(phase="copy", total=total, seen=seen, copied=seen)
    state.copy_started = 1000.0
    state.finished = 1002.0
    return state


def test_the_terminal_bar_redraws_one_line_with_rate_and_eta() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=True, interval=0)
    printer(_copying(2_000, 10_000))
    printer(_copying(5_000, 10_000))
    printer(MigrationProgress(phase="done"))
    text = out.getvalue()
    assert text.count("\r") == 2
    assert text.endswith("\n")
    assert text.count("\n") == 1
    last = text.split("\r")[-1]
    assert re.search(r"\[#{15}\.{15}\]\s+50%\s+5,000/10,000\s+2,500 records/s\s+ETA 0:02", last)


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=False, interval=0)
    printer(_copying(2_000, 10_000))
    without_total = _copying(3_000, 0)
    without_total.total = None
    printer(without_total)
    printer(MigrationProgress(phase="done"))
    assert "\r" not in out.getvalue()
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(
        r"migrate: 2,000/10,000 \(20%\), 2,000 copied, 1,000 records/s, ETA 0:08",
        first,
    )
    assert re.fullmatch(r"migrate: 3,000 read, 3,000 copied, 0 unchanged, 1,500 records/s", second)


def _at_rate(seen: int, total: int | None, rate: float, phase: str = "copy") -> MigrationProgress:
    """A state ``seen`` records in, at ``rate`` records/s (a clock that stopped: no sleeping)."""
    state = MigrationProgress(
        phase=phase, total=total, seen=seen, copied=seen, unchanged=seen, counted=seen
    )
    state.indexed = seen
    state.copy_started = 1000.0
    state.finished = 1000.0 + (seen / rate if rate else 0.0)
    return state


SIZES = [0, 1, 999, 12_345, 1_000_000, 123_456_789, 10**12]
RATES = [0.0, 0.4, 950.0, 123_456.0, 9.9e9]


@pytest.mark.parametrize("width", [LINE_WIDTH, 60, 40])
def test_progress_lines_never_exceed_their_width(width: int) -> None:
    for seen, rate, phase in itertools.product(SIZES, RATES, ["count", "index", "copy"]):
        for total in (None, seen, max(seen, 1) * 3):
            state = _at_rate(seen, total, rate, phase)
            for line in (plain_line(state, width), bar_line(state, width)):
                assert len(line) <= width, (line, width)
                assert line.strip()


def test_progress_counts_agree_in_number() -> None:
    assert plain_line(_at_rate(1, None, 1.0, "count")) == "counting the source: 1 record"
    assert plain_line(_at_rate(2_000, None, 1.0, "index")) == (
        "reading the destination: 2,000 records"
    )
    src = open_store("memory://")
    src.restore(JobRecord(job_id=f"job-{n}", job_status="done") for n in range(3))
    failing = FailingAfter(open_store("memory://"), 1)
    with pytest.raises(StorageError, match="after copying 1 record; run it again"):
        migrate(src, failing, batch_size=1)  # type: ignore[arg-type]


def test_progress_lines_drop_the_least_useful_parts_first() -> None:
    state = _at_rate(123_456_789, 987_654_321, 123_456.0)
    plain = plain_line(state)
    assert plain == (  # the unchanged count left out first, then the copied one
        "migrate: 123,456,789/987,654,321 (12%), 123,456 records/s, ETA 1:56:40"
    )
    state.unchanged = 0
    assert plain_line(state, width=100) == (
        "migrate: 123,456,789/987,654,321 (12%), 123,456,789 copied, 123,456 records/s, ETA 1:56:40"
    )
    bar = bar_line(state)
    assert re.fullmatch(
        r"\[#*\.*\]\s+12%  123,456,789/987,654,321  123,456 records/s  ETA 1:56:40", bar
    )
    assert len(bar) <= LINE_WIDTH
    assert "ETA ?" in plain_line(_at_rate(1, 10**12, 0.001))  # further off than 100 hours


def test_plain_lines_come_every_few_seconds_only() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, terminal=False)
    for seen in range(0, 10_000, 100):
        printer(_copying(seen, 10_000))
    printer(MigrationProgress(phase="done"))
    assert out.getvalue() == ""  # a short migration prints its summary alone


def test_a_real_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    write_upstream_files(tmp_path / "src", 1_500, fraction=False)
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobstatus",
            "migrate",
            str(tmp_path / "src"),
            f"file://{tmp_path / 'dst'}",
            "--batch-size",
            "50",
        ],
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower side closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(30) == 0
    screen = b"".join(chunks).decode()
    assert "\r[" in screen
    assert "records/s" in screen
    assert "ETA" in screen
    assert screen.rstrip().splitlines()[-1].startswith("copied 1,500 of 1,500 records")
    progress = screen.rstrip().replace("\r", "\n").splitlines()[:-1]  # the summary aside
    assert progress
    assert all(len(line) <= LINE_WIDTH for line in progress)


# -- check -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["memory", "filesystem", pytest.param("sqlite", marks=pytest.mark.extras)]
)
def test_check_passes_on_a_good_store_and_leaves_nothing_behind(tmp_path: Path, kind: str) -> None:
    url = {
        "memory": "memory://",
        "filesystem": f"file://{tmp_path}",
        "sqlite": f"sqlite:///{tmp_path / 'jobs.db'}",
    }[kind]
    if kind == "sqlite":
        pytest.importorskip("sqlalchemy")
        cli("check", "--create", "--store", url)
    code, out, err = cli("check", "--store", url)
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"ok: {re.escape(url)} can be reached, read and written \(\d+ ms\)\n", out)
    with open_store(url) as store:
        assert list(store.list()) == []


def test_check_fails_on_a_store_that_can_be_read_but_not_written(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / ".jobstatus-locks").write_text("a file where the lock folder should be")
    result = run("check", "--store", f"file://{tmp_path}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"jobstatus: check failed: cannot write to file://{tmp_path}: ")
    assert one_line_error(result.stderr)


def test_check_fails_on_a_store_that_cannot_be_read(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")
    result = run("check", "--create", "--store", f"file://{blocked}")
    assert result.returncode == 1
    assert result.stderr.startswith(f"jobstatus: check failed: cannot read from file://{blocked}: ")
    assert one_line_error(result.stderr)


def test_check_fails_on_an_unknown_scheme() -> None:
    code, out, err = cli("check", "--store", "nope://x")
    assert (code, out) == (1, "")
    assert err.startswith("jobstatus: check failed: cannot open nope://x: unknown store scheme")


def test_every_new_command_has_help() -> None:
    for command in ("purge", "migrate", "check"):
        result = run(command, "--help")
        assert result.returncode == 0
        assert result.stdout.startswith(f"usage: jobstatus {command}")
