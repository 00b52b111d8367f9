"""``drill run`` in a CI job: ``--junit PATH`` and the summary appended to ``$GITHUB_STEP_SUMMARY``,
on a real drill against the lab (a fault-free scenario, one trial: only what surrounds the run is
under test)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from drillrun import TEST_SCENARIOS, drill_run

from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab


def test_junit_copy_and_the_step_summary_appended(
        lab: LabProcess, runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("## Tests\n\nan earlier step's summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "results" / "drill.xml"
    run = drill_run(runs, str(TEST_SCENARIOS / "quiet.yaml"), "--env", str(lab.environment_file),
                    "--trials", "1", "--junit", str(junit))
    # The copy CI publishes is the run directory's junit.xml, in a folder drill made for it.
    assert junit.read_bytes() == (run.run_dir / "junit.xml").read_bytes()
    suite = ET.fromstring(junit.read_text().split("\n", 1)[1]).find("testsuite")
    assert suite is not None
    assert suite.get("name") == "quiet"
    text = summary.read_text()
    assert text.startswith("## Tests\n\nan earlier step's summary\n")
    assert f"### drill: quiet {run.record['verdict'].upper()}" in text
    assert f"Exit code {run.code}" in text
    assert "`users.error_rate < 5%`" in text
    assert "Rollback: no fault needed undoing." in text
    assert f"Run directory: `{run.run_dir}`" in text


def test_a_summary_that_cannot_be_written_is_a_warning(
        lab: LabProcess, runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a directory: not appendable
    run = drill_run(runs, str(TEST_SCENARIOS / "quiet.yaml"), "--env", str(lab.environment_file),
                    "--trials", "1")
    # drill_run checks the exit code is the run's own; the warning names the variable.
    assert "drill: warning: no summary appended to $GITHUB_STEP_SUMMARY" in run.output
    assert "Traceback" not in run.output
