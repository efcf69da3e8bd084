"""What ``FileSystemStore.repair`` looks for, and how it tells a leftover from work under way.

A write is a temp file (``.tmp-<pid>-<ns>.json.part`` in ``jobs/``), fsynced, then renamed
over the record; a writer killed before the rename leaves the temp file, which no reader ever
sees (listing and reading look at ``*.json`` only). Every writer of this library holds the
job's lock stripe from before it creates its temp file until after the rename, so once
``repair`` holds *every* stripe no writer is between the two, on this host or on any other
that shares the ``flock`` locks: every temp file there then is a leftover, and is removed.

A lock stripe is never left stale by a crash (the kernel releases a ``flock`` when its holder
dies); a stripe that cannot be taken within :data:`LOCK_WAIT` seconds is held by a live process
that stopped in the middle of a write, and is reported (``lock_held``) with its holder's pid
where ``/proc/locks`` tells it. Temp files are then kept: their writer may be that process.

A record file that does not parse cannot come from this library's writes (they rename whole
files), but an upstream writer that rewrites a file in place and is killed halfway leaves one;
it is reported (``unreadable_record``), never removed: only its owner knows what it held.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress

from jobstatus.errors import JobNotFound, StorageError
from jobstatus.repair import RepairReport

__all__ = ["LOCK_WAIT", "TEMP_PREFIX", "TEMP_SUFFIX", "repair_folder"]

TEMP_PREFIX = ".tmp-"
TEMP_SUFFIX = ".json.part"
#: Seconds ``repair`` waits for each lock stripe before it reports the stripe held.
LOCK_WAIT = 5.0
_POLL = 0.01


def repair_folder(
    jobs_dir: str,
    lock_paths: Sequence[str],
    job_ids: Callable[[], Iterator[str]],
    read: Callable[[str], object],
    *,
    dry_run: bool,
) -> RepairReport:
    """Clear the temp files of killed writers under every lock stripe; report stripes held
    and record files that do not parse. ``read(job_id)`` raises
    :class:`~jobstatus.StorageError` for a record that does not parse."""
    report = RepairReport(dry_run=dry_run)
    if not os.path.isdir(jobs_dir):
        return report  # never written: nothing can be left
    with _every_stripe(lock_paths) as held_elsewhere:
        for path in _temp_files(jobs_dir):
            if held_elsewhere:
                note = "kept: a lock stripe is held, its writer may be writing this file"
                report.add("temp_file", path, repaired=False, note=note)
            elif dry_run:
                report.add("temp_file", path, repaired=False, note="would be removed (dry run)")
            else:
                with suppress(FileNotFoundError):
                    os.unlink(path)
                note = "removed: no writer held a lock stripe, so none was writing it"
                report.add("temp_file", path, repaired=True, note=note)
    for path in held_elsewhere:
        note = f"held by {_holder(path)} for more than {LOCK_WAIT:g} s: a writer stopped mid-write"
        report.add("lock_held", path, repaired=False, note=note)
    for job_id in job_ids():
        try:
            read(job_id)
        except JobNotFound:
            continue  # deleted meanwhile, or expired
        except StorageError as exc:
            note = f"kept: {exc} (restore it, or delete it: only its writer knows what it held)"
            path = os.path.join(jobs_dir, job_id + ".json")
            report.add("unreadable_record", path, repaired=False, note=note)
    return report


def _temp_files(jobs_dir: str) -> list[str]:
    with os.scandir(jobs_dir) as entries:
        return sorted(
            entry.path
            for entry in entries
            if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX)
        )


@contextmanager
def _every_stripe(lock_paths: Sequence[str]) -> Iterator[list[str]]:
    """Hold every lock stripe that can be taken within :data:`LOCK_WAIT` seconds each, in
    order (a writer holds one stripe at a time: no deadlock); yield those that could not."""
    not_taken: list[str] = []
    with ExitStack() as stack:
        for path in lock_paths:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # no lock folder: no writer of this library ever ran
                continue
            stack.callback(os.close, fd)  # closing releases the lock
            if not _take(fd):
                not_taken.append(path)
        yield not_taken


def _take(fd: int) -> bool:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)


def _holder(path: str) -> str:
    """``pid N`` of the process holding the ``flock`` on ``path`` (Linux), else a phrase."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks", encoding="ascii") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                    return f"pid {fields[4]}"
    except OSError:
        pass
    return "another process"
