"""What ``ObjectStore.repair`` looks for: the parts of writes that never completed.

- S3: a ``put`` is one PUT, which S3 applies whole or not at all, so a killed writer leaves
  nothing of it. A ``restore`` writes a one-part multipart upload (create, upload the part,
  complete); a writer killed before "complete" leaves an *incomplete upload*: invisible to
  every read and listing, but stored (and billed) until it is aborted. Uploads under the
  store's ``jobs/`` prefix initiated more than ``grace`` seconds ago are aborted: nothing
  tells whether their writer, on whatever host, is still at work, and no restore of one
  record takes that long.
- A local folder through fsspec: a write is a temp file (``.tmp-*``) renamed over the record;
  a writer killed before the rename leaves the temp file. There is no lock to tell whether
  its writer is alive, so temp files last changed more than ``grace`` seconds ago are removed
  (their change time, not their modification time, which a restore sets to the record's).
- Other filesystems write an object whole by themselves: nothing can be left.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from typing import Any

from jobstatus.backends.objectstore._fsspec import FsspecObjects, is_local
from jobstatus.backends.objectstore._objects import Objects
from jobstatus.backends.objectstore._s3 import S3Objects
from jobstatus.repair import RepairReport

__all__ = ["repair_objects"]

_TEMP_PREFIX = ".tmp-"


def repair_objects(objects: Objects, *, dry_run: bool, grace: float) -> RepairReport:
    """Clear what interrupted writes left under ``objects``' folder (see the module)."""
    report = RepairReport(dry_run=dry_run)
    if isinstance(objects, S3Objects):
        _incomplete_uploads(objects, report, grace)
    elif isinstance(objects, FsspecObjects) and is_local(objects.fs):
        _local_temp_files(objects.folder, report, grace)
    return report


def _verdict(report: RepairReport, age: float, grace: float) -> tuple[bool, str]:
    """Whether to clear a leftover of ``age`` seconds, and the note saying so."""
    if age < grace:
        return False, f"kept: {age:.0f} s old, younger than the grace of {grace:g} s"
    if report.dry_run:
        return False, "would be cleared (dry run)"
    return True, ""


def _incomplete_uploads(objects: S3Objects, report: RepairReport, grace: float) -> None:
    async def uploads() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        while True:
            page = await objects._call(
                "list_multipart_uploads", Bucket=objects.bucket, Prefix=objects.prefix, **markers
            )
            found += page.get("Uploads", ())
            if not page.get("IsTruncated"):
                return found
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    now = time.time()
    for upload in objects._run("list uploads of", None, uploads):
        key, upload_id = upload["Key"], upload["UploadId"]
        clear, note = _verdict(report, now - upload["Initiated"].timestamp(), grace)
        if clear:

            async def abort(key: str = key, upload_id: str = upload_id) -> None:
                await objects._call(
                    "abort_multipart_upload", Bucket=objects.bucket, Key=key, UploadId=upload_id
                )

            objects._run("abort an upload to", None, abort)
            note = "aborted: a restore was interrupted before it completed the upload"
        target = f"s3://{objects.bucket}/{key} (upload {upload_id})"
        report.add("incomplete_upload", target, repaired=clear, note=note)


def _local_temp_files(folder: str, report: RepairReport, grace: float) -> None:
    try:
        entries = sorted(
            entry.path for entry in os.scandir(folder) if entry.name.startswith(_TEMP_PREFIX)
        )
    except FileNotFoundError:
        return
    now = time.time()
    for path in entries:
        try:
            changed = os.stat(path).st_ctime
        except FileNotFoundError:
            continue  # renamed meanwhile: its write completed
        clear, note = _verdict(report, now - changed, grace)
        if clear:
            with suppress(FileNotFoundError):
                os.unlink(path)
            note = "removed: a write was interrupted before its rename"
        report.add("temp_file", path, repaired=clear, note=note)
