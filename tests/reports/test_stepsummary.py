"""The summary for a CI job's page: what a person reads there, and appending to the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.base import format_value
from reports.record import RunRecord
from reports.stepsummary import append_step_summary, render_step_summary

RUN_DIR = Path("/runs/20261122T031800Z-us-outage-3fa2")


def _summary(data: dict[str, Any]) -> str:
    return render_step_summary(RunRecord(**data), RUN_DIR)  # type: ignore[typeddict-item]


def test_verdict_expectations_with_units_rollback_left_and_run_dir(run_data: dict[str, Any]) -> None:
    text = _summary(run_data)
    assert text.splitlines()[0] == "### drill: us-outage FAILED"
    assert "Exit code 3" in text
    assert "users.downtime < 4m failed (measured 262.5 s)" in text
    # Values as every report shows them (reports.base.format_value), with their units and errors.
    assert f"| `dns.failover_time < 3m` | {format_value(74.2, 's', 0.5)} | pass |" in text
    assert f"| `users.downtime < 4m` | {format_value(262.5, 's', 0.25)} | **FAIL** |" in text
    assert "| `dns.failback_time < 5m` | unmeasured | **FAIL** |" in text
    # The rollback left a fault in place: which, and the command that finishes the undo.
    assert "Rollback **incomplete**: 1 of 2 faults still in place" in text
    assert "drill recover 20261122T031800Z-us-outage-3fa2" in text
    assert "- step `s2`, cordon-zone in us: cordon the 2 schedulable nodes of zone zone-1 in us" in text
    assert f"Run directory: `{RUN_DIR}`" in text
    # Without run.json's history key, nothing about history.
    assert "regression" not in text.lower()


def test_regressions_from_the_history_key(run_data: dict[str, Any]) -> None:
    run_data["history"] = {
        "threshold": 0.2, "baseline_runs": ["a", "b", "c"], "trend": [],
        "regressions": [{"metric": "dns.failover_time", "unit": "s", "value": 61.2, "baseline": 44.0,
                         "worse_by": 0.39}]}
    text = _summary(run_data)
    assert "**Regressions**: worse than the median of the last 3 passed runs by more than 20%" in text
    # Rounded to the metric's error (0.5 s), as the expectation's value is.
    assert "| `dns.failover_time` | 61.2 s | 44.0 s | +39% |" in text
    run_data["history"]["regressions"] = []
    assert "No regression against the median of the last 3 passed runs." in _summary(run_data)


def test_appends_and_does_nothing_without_the_variable(run_dir: Path, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("## an earlier step's summary\n")
    assert append_step_summary(run_dir, {}) is None
    assert append_step_summary(run_dir, {"GITHUB_STEP_SUMMARY": ""}) is None
    assert append_step_summary(run_dir, {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    assert append_step_summary(run_dir, {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    text = summary.read_text()
    assert text.startswith("## an earlier step's summary\n### drill: us-outage FAILED")
    assert text.count("### drill: us-outage FAILED") == 2


def test_a_regression_from_a_zero_baseline_has_no_ratio_and_says_so(run_data: dict[str, Any]) -> None:
    run_data["history"] = {
        "threshold": 0.2, "baseline_runs": ["a"], "trend": [],
        "regressions": [{"metric": "users.downtime", "unit": "s", "value": 3.0, "baseline": 0.0,
                         "worse_by": None}]}
    assert "| `users.downtime` | 3.0 s | 0.0 s | worse than 0 beyond its error |" in _summary(run_data)
