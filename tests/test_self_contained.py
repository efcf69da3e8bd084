"""The repository stands alone: no file cites, reads or links a document kept outside it.

The endpoint's contract is stated in docs/endpoint.rst ("The contract"), and the upstream
document's examples are the tests' own data (``UPSTREAM_EXAMPLE``, ``SPEC_200_EXAMPLE``).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["jobstatus", "docs", "tests", "examples", "benchmarks"]
TOP_FILES = ["README.md", "pyproject.toml", "noxfile.py"]
SUFFIXES = {".py", ".rst", ".md", ".toml", ".txt", ".cfg", ".ini", ".inc"}
OUTSIDE = re.compile(r"DESIGN\.md|spec/job_status\.md|\.\./shared|/work/shared")


def repository_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES]
    for folder in SCANNED:
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.suffix in SUFFIXES and not {"_build", "__pycache__"} & set(path.parts)
        ]
    return [path for path in files if path.is_file() and path != Path(__file__).resolve()]


def test_no_file_cites_a_document_outside_the_repository() -> None:
    citing = {
        path.relative_to(ROOT).as_posix()
        for path in repository_files()
        if OUTSIDE.search(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert citing == set(), "cite the docs, or keep the data in the repository"
