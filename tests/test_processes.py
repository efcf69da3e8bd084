"""Several processes on one filesystem store."""

from __future__ import annotations

from pathlib import Path

from jobstatus.testing.processes import rewrite_while_reading


def test_a_reader_never_sees_a_torn_record(tmp_path: Path) -> None:
    report = rewrite_while_reading(
        f"file://{tmp_path}", min_reads=101, min_versions=11, size=20_000
    )
    assert report.reads > 100
    assert report.versions_seen > 10  # the writer was rewriting all along
    assert report.failed == 0
