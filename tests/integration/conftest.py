"""Fixtures of the whole-drill tests (the helpers are in :mod:`drillrun`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import SCENARIOS, Finished, drill_run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs dir of the test's own."""
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def us_outage_once(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """One us-outage run on a private lab (60x, one trial), shared by the modules that read what it left
    (report.md's numbers, report.html in a browser) when they land on the same worker. 60x as in
    test_us_outage: at 200 a loaded machine's stalls break the http probe's steady state."""
    return drill_run(tmp_path_factory.mktemp("runs"), str(SCENARIOS / "us-outage.yaml"),
                     "--time-scale", "60", "--trials", "1")
