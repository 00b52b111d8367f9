"""``drill history`` without a lab: what it says with nothing to list, and a scenario file it cannot name."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.cli import main
from drills.cli.history import listing
from drills.history import IndexedRun, KeyMetric


def test_with_no_runs_it_says_so_and_where_it_looked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    assert main(["history", "us-outage", "--env", "staging", "--runs-dir", str(runs)]) == 0
    assert capsys.readouterr().out == f"no runs of us-outage on staging in {runs}\n"
    assert not runs.exists()  # listing creates nothing


def test_a_scenario_file_is_named_by_the_name_it_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "mine.yaml"
    scenario.write_text("apiVersion: drill/v1\nname: zone-loss\n", encoding="utf-8")
    assert main(["history", str(scenario), "--runs-dir", str(tmp_path / "runs")]) == 0
    assert capsys.readouterr().out.startswith("no runs of zone-loss in ")
    scenario.write_text("apiVersion: drill/v1\n", encoding="utf-8")
    assert main(["history", str(scenario), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "no scenario name in it (expected 'name: ...' at the top level)" in capsys.readouterr().err


def test_a_regression_is_rounded_to_its_metrics_error() -> None:
    run = IndexedRun(run_id="r2", scenario="us-outage", scenario_file="s.yaml", environment="lab", lab=True,
                     started_at="2026-11-22T03:18:00Z", ended_at="2026-11-22T03:20:00Z", verdict="passed",
                     exit_code=0, metrics=(KeyMetric("dns.failover_time", 74.21, "s", 0.5, "lower"),),
                     regressions=({"metric": "dns.failover_time", "unit": "s", "value": 74.21,
                                   "baseline": 44.03, "worse_by": 0.69},))
    lines = listing([run])
    assert lines[1].endswith("dns.failover_time 74.2 s ± 0.5 s")
    assert lines[2] == ("  REGRESSION dns.failover_time 74.2 s: +69% over the baseline 44.0 s (median of the "
                        "last passed runs)")


def test_a_runs_dir_that_is_a_file_is_a_mistake_not_an_empty_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_dir = tmp_path / "runs"
    not_a_dir.write_text("", encoding="utf-8")
    monkeypatch.setenv("DRILL_RUNS_DIR", str(not_a_dir))
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert f"{not_a_dir} is not a directory" in err
    assert "Traceback" not in err
