"""The figures a test measures, printed on the terminal for the docs to quote."""

from __future__ import annotations

from typing import Any

import pytest


def report(capsys: pytest.CaptureFixture[str], name: str, **figures: Any) -> None:
    """Print one ``FIGURES name: key=value, ...`` line on the terminal, captured or not."""
    with capsys.disabled():
        print(f"\nFIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
