"""Fixtures of the whole-drill tests (the helpers are in :mod:`drillrun`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs dir of the test's own."""
    return tmp_path / "runs"
