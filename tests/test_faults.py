"""Faults of the filesystem store, staged for real: a read-only or full disk, and an upstream
writer rewriting a job file in place while the endpoint reads it.

The figures each test measures are printed on the terminal (``FIGURES …`` lines, shown even
without ``-s``) and copied into docs/reliability.rst. Outages of a database or an S3 endpoint
are in tests/test_outages.py, forks under gunicorn in tests/test_forks.py.
"""

from __future__ import annotations

import copy
import errno
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from jobstatus import JobRecord, StatusService, StorageError
from jobstatus.backends.filesystem import FileSystemStore
from jobstatus.testing.suite import UPSTREAM_EXAMPLE
from tests.clients import Answer, Client, wsgi_client
from tests.conftest import service_unavailable
from tests.figures import report
from tests.opens import watching_opens
from tests.staging import ERROR_PREFIX, JOB_ID, KEY, STATUS

BODY = json.dumps({"job_id": JOB_ID}).encode()


def upstream_document(n: int, job_id: str = JOB_ID) -> dict[str, Any]:
    """A job file as the upstream queue writes it (the upstream documentation's example),
    numbered."""
    doc = copy.deepcopy(UPSTREAM_EXAMPLE)
    doc.update(job_status="running" if n % 2 else "queued", job_id=job_id)
    doc["response"].update(job_id=job_id, response=f"step {n}", n=n)
    return doc


def no_temp_files(store: FileSystemStore) -> list[str]:
    """Names in jobs/ that are not records: what a failed write left behind."""
    if not store.jobs_dir.exists():
        return []
    return sorted(p.name for p in store.jobs_dir.iterdir() if not p.name.endswith(".json"))


def is_spec_500(answer: Answer) -> bool:
    """The spec's answer to a storage failure: ``{"error": "Failed to retrieve job status: …",
    "code": 500}``."""
    if answer.status != 500:
        return False
    body = answer.json()
    return (
        set(body) == {"error", "code"}
        and body["code"] == 500
        and body["error"].startswith(ERROR_PREFIX)
        and len(body["error"]) > len(ERROR_PREFIX)
    )


# -- filesystem faults: a read-only folder, a full disk ------------------------------------------


def _mount_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs with 64 inodes: small enough to fill in a moment. Mounting needs root
    (CI runs as root); elsewhere the tests skip, or fail under JOBSTATUS_REQUIRE_SERVICES=1."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None:
        service_unavailable("no mount command: the filesystem fault tests need a tmpfs")
    mounted = _mount_command("-t", "tmpfs", "-o", "size=256k,nr_inodes=64", "tmpfs", str(folder))
    if mounted.returncode != 0:
        service_unavailable(
            f"cannot mount a tmpfs ({mounted.stderr.strip()}): the filesystem fault tests "
            "need root, or a machine that lets this user mount"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def remount_read_only(folder: Path) -> None:
    remounted = _mount_command("-o", "remount,ro", str(folder))
    assert remounted.returncode == 0, remounted.stderr


def test_a_read_only_folder_refuses_writes_and_keeps_serving(small_disk: Path) -> None:
    store = FileSystemStore(small_disk)
    old = store.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    remount_read_only(small_disk)

    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id=JOB_ID, job_status="done", response={"step": 2}))
    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id="new-job", job_status="queued"))
    with pytest.raises(StorageError, match="Read-only file system"):
        store.delete(JOB_ID)
    with pytest.raises(StorageError, match="Read-only file system"):
        store.restore([JobRecord(job_id=JOB_ID, job_status="failed")])

    assert store.get(JOB_ID).to_dict() == old.to_dict()
    assert store.get(JOB_ID).updated_at == old.updated_at
    assert no_temp_files(store) == []
    # The endpoint only reads: it goes on answering from the read-only folder.
    answer = wsgi_client(StatusService(store, api_keys=[KEY]))(
        "POST", STATUS, BODY, {"x-api-key": KEY}
    )
    assert answer.status == 200
    assert answer.json()["response"] == old.to_dict()


def test_a_read_only_folder_never_written_to(small_disk: Path) -> None:
    remount_read_only(small_disk)
    store = FileSystemStore(small_disk / "data")
    with pytest.raises(StorageError, match="Read-only file system"):
        store.put(JobRecord(job_id=JOB_ID, job_status="queued"))
    assert list(store.list()) == []


def fill(folder: Path, *, inodes: bool) -> int:
    """Use up the free space (or the free inodes) of the filesystem holding ``folder``; return
    the errno of the write that failed."""
    filler = folder / "filler"
    filler.mkdir(exist_ok=True)
    try:
        if inodes:
            for n in range(10_000):
                (filler / f"{n}").touch()
        else:
            with open(filler / "blob", "wb", buffering=0) as blob:
                for _ in range(10_000):
                    blob.write(b"\0" * 4096)
    except OSError as exc:
        return exc.errno or 0
    raise AssertionError("the filesystem never filled up")


@pytest.mark.parametrize("exhausted", ["space", "inodes"])
def test_a_full_disk_refuses_writes_and_keeps_the_record(small_disk: Path, exhausted: str) -> None:
    store = FileSystemStore(small_disk)
    old = store.put(JobRecord(job_id=JOB_ID, job_status="running", response={"step": 1}))
    assert fill(small_disk, inodes=exhausted == "inodes") == errno.ENOSPC

    big = JobRecord(job_id=JOB_ID, job_status="done", response={"log": "x" * 16_000})
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(big)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(JobRecord(job_id="another-job", job_status="queued"))
    assert store.get(JOB_ID).to_dict() == old.to_dict()
    assert no_temp_files(store) == []

    # Space freed: the very same store writes again.
    shutil.rmtree(small_disk / "filler")
    assert store.put(big).to_dict() == big.to_dict()
    assert store.get(JOB_ID).to_dict() == big.to_dict()
    assert no_temp_files(store) == []


# -- an upstream writer rewriting job files in place ---------------------------------------------

# The upstream queue writes a job file in place: open(path, "w") truncates it, then
# json.dump(document, file, indent=2) writes it. This writer does the same, on commands read
# from stdin, one JSON line each:
#   {"tear": document, "cut": k}        truncate, write the document's first k characters and
#                                       print "torn"; on the next line write the rest, close,
#                                       print "written"
#   {"loop": [documents], "stop": path} rewrite the documents in turn, without pause, until the
#                                       file at path exists; print how many writes it made
UPSTREAM_WRITER = """
import json, os, sys
path = sys.argv[1]
while line := sys.stdin.readline():
    command = json.loads(line)
    if "tear" in command:
        text = json.dumps(command["tear"], indent=2)  # what json.dump(..., indent=2) writes
        with open(path, "w") as file:
            file.write(text[: command["cut"]])
            file.flush()
            print("torn", flush=True)
            sys.stdin.readline()
            file.write(text[command["cut"] :])
        print("written", flush=True)
    else:
        documents, n = command["loop"], 0
        while not os.path.exists(command["stop"]):
            with open(path, "w") as file:
                json.dump(documents[n % len(documents)], file, indent=2)
            n += 1
        print(n, flush=True)
"""


class UpstreamWriter:
    """The upstream writer of ``path``, in a process of its own, driven through its stdin."""

    def __init__(self, path: Path) -> None:
        self.stop_file = path.parent.parent / "stop-writer"
        self.process = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM_WRITER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _answer(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def tear(self, document: dict[str, Any], cut: int) -> None:
        """Truncate the file and write the first ``cut`` characters of ``document``; return
        once they are in the file. The writer then waits for :meth:`finish`."""
        self._send(json.dumps({"tear": document, "cut": cut}))
        assert self._answer() == "torn"

    def finish(self) -> None:
        """Write the rest of the torn document and close the file; return once it is closed."""
        self._send("")
        assert self._answer() == "written"

    def loop(self, documents: list[dict[str, Any]]) -> None:
        """Rewrite ``documents`` in turn, without pause, until :meth:`stop_loop`."""
        self._send(json.dumps({"loop": documents, "stop": str(self.stop_file)}))

    def stop_loop(self) -> int:
        """Stop the loop; the number of writes it made."""
        self.stop_file.touch()
        return int(self._answer())

    def __enter__(self) -> UpstreamWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_file.touch()
        try:
            self.process.communicate(timeout=30)  # closes stdin: the writer's loop ends
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        if kind is None:
            assert self.process.returncode == 0


def job_file(root: Path, document: dict[str, Any]) -> Path:
    """The job's file in a filesystem store at ``root``, holding ``document`` whole."""
    path = root / "jobs" / f"{JOB_ID}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def naive_read_fails(path: Path) -> bool:
    """Whether reading the file the naive way (open, json.load) fails."""
    try:
        with open(path) as file:
            json.load(file)
    except ValueError:
        return True
    return False


def poll_counting_opens(
    call: Client, path: Path, before_reread: Callable[[], None] | None = None
) -> tuple[Answer, int]:
    """Poll the job's status; return the answer and how often the poll opened ``path``.
    ``before_reread`` runs just before the poll opens ``path`` the second time."""
    opens = 0
    problems: list[BaseException] = []

    def on_open(opened: str) -> None:
        nonlocal opens
        if opened != str(path):
            return
        opens += 1
        if opens == 2 and before_reread is not None:
            try:
                before_reread()
            except BaseException as exc:  # raised here, it would surface inside the store
                problems.append(exc)

    with watching_opens(on_open):
        answer = call("POST", STATUS, BODY, {"x-api-key": KEY})
    if problems:
        raise problems[0]
    return answer, opens


#: Rewrites staged in the test below: as many as 5 s of an upstream writer at 20 Hz.
REWRITES = 100


def test_a_poll_during_an_upstream_rewrite_answers_the_new_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upstream writer truncates the job file, then writes it. A poll whose first read falls
    in between is answered the new document, not a 500: the store reads a file that does not
    parse again, and the writer has finished by then.

    Staged step by step, never timed: the writer leaves the file torn (empty, one character,
    half, all but the last) and waits; the poll reads it; the writer finishes just before the
    poll opens the file again (seen through an audit hook)."""
    size = len(json.dumps(upstream_document(0), indent=2))
    cuts = [0, 1, size // 2, size - 1]
    path = job_file(tmp_path, upstream_document(0))
    call = wsgi_client(StatusService(FileSystemStore(tmp_path), api_keys=[KEY]))
    naive_failures = 0
    with UpstreamWriter(path) as writer:
        for n in range(1, REWRITES + 1):
            writer.tear(upstream_document(n), cut=cuts[n % len(cuts)])
            naive_failures += naive_read_fails(path)
            answer, opens = poll_counting_opens(call, path, before_reread=writer.finish)
            assert answer.status == 200, (n, answer)
            assert answer.json()["response"] == upstream_document(n)
            assert opens >= 2  # the torn file, then the finished one
    report(
        capsys,
        "upstream writer, polls landing mid-rewrite",
        rewrites=REWRITES,
        failed_polls=0,
        naive_reads_failed=naive_failures,
    )
    assert naive_failures == REWRITES  # every poll did find the file torn


def test_a_job_file_left_torn_is_the_spec_500_after_reading_it_again(tmp_path: Path) -> None:
    """The other side of the test above: a file that stays torn through the whole poll is
    read more than once, then answered with the spec's 500; once written whole it is served."""
    path = job_file(tmp_path, upstream_document(0))
    call = wsgi_client(StatusService(FileSystemStore(tmp_path), api_keys=[KEY]))
    with UpstreamWriter(path) as writer:
        writer.tear(upstream_document(1), cut=100)
        answer, opens = poll_counting_opens(call, path)
        writer.finish()
    assert is_spec_500(answer), answer
    assert opens > 2
    answer, opens = poll_counting_opens(call, path)
    assert (answer.status, opens) == (200, 1)
    assert answer.json()["response"] == upstream_document(1)


#: The full-speed run below stops after this many polls (and 10 versions seen), or fails at
#: the cap, which a machine that runs at all never reaches.
FULL_SPEED_POLLS = 1000
FULL_SPEED_CAP_SECONDS = 120.0


@pytest.mark.slow
def test_an_upstream_writer_at_full_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer rewriting the file without pause holds it torn for as long as the scheduler
    leaves it there, longer than the store reads again: the share of failed polls is a figure
    for the docs, not a promise. What is asserted: every answer is one of the documents the
    writer wrote, whole, or the spec's 500; never another status, never a mixed document."""
    documents = [upstream_document(n) for n in range(64)]
    path = job_file(tmp_path, documents[0])
    call = wsgi_client(StatusService(FileSystemStore(tmp_path), api_keys=[KEY]))
    polls = failures = naive_failures = 0
    versions: set[int] = set()
    with UpstreamWriter(path) as writer:
        writer.loop(documents)
        cap = time.monotonic() + FULL_SPEED_CAP_SECONDS
        while (polls < FULL_SPEED_POLLS or len(versions) < 10) and time.monotonic() < cap:
            answer = call("POST", STATUS, BODY, {"x-api-key": KEY})
            polls += 1
            if answer.status == 200:
                served = answer.json()["response"]
                versions.add(served["response"]["n"])
                assert served == documents[served["response"]["n"]]
            else:
                assert is_spec_500(answer), answer
                failures += 1
            naive_failures += naive_read_fails(path)
        writes = writer.stop_loop()
    report(
        capsys,
        "upstream writer full speed",
        writes=writes,
        polls=polls,
        failures=failures,
        failure_rate=f"{failures / polls:.4%}",
        naive_reads=polls,
        naive_failures=naive_failures,
        naive_failure_rate=f"{naive_failures / polls:.4%}",
    )
    assert len(versions) >= 10  # the polls saw the file change all along
    assert writes >= len(versions)
