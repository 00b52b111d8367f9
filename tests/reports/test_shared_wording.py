"""What every report says the same way (reports.base): an expectation's result, a regression's values
rounded to its metric's error, the threshold, and the past runs a baseline is the median of."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.html import HtmlReporter
from reports.markdown import MarkdownReporter
from reports.record import RunRecord
from reports.stepsummary import render_step_summary

Render = Callable[[dict[str, Any], Path], str]


def _markdown(data: dict[str, Any], run_dir: Path) -> str:
    return MarkdownReporter().render(RunRecord(**data), run_dir)  # type: ignore[typeddict-item]


def _html(data: dict[str, Any], run_dir: Path) -> str:
    page = HtmlReporter().render(RunRecord(**data), run_dir)  # type: ignore[typeddict-item]
    # What a person reads: the page's text, not the charts' data.
    return page[page.index("<body>"):page.index("const FIGURES")]


def _step(data: dict[str, Any], run_dir: Path) -> str:
    return render_step_summary(RunRecord(**data), run_dir)  # type: ignore[typeddict-item]


REPORTS = pytest.mark.parametrize("render", [_markdown, _html, _step], ids=["markdown", "html", "step"])


@REPORTS
def test_an_expectation_the_design_breaks_is_a_failure_everywhere(
        render: Render, run_data: dict[str, Any], tmp_path: Path) -> None:
    run_data["expectations"][0].update(outcome="passed", passed=False)
    text = render(run_data, tmp_path)
    assert "FAIL** (design)" in text or ">FAIL (design)<" in text
    assert "passed |" not in text.replace("passed runs", "")
    assert ">passed<" not in text


@REPORTS
def test_a_regression_is_rounded_to_its_metrics_error_with_one_threshold(
        render: Render, run_data: dict[str, Any], tmp_path: Path) -> None:
    # dns.failover_time's error is 0.5 s: 74.21 s reads as 74.2 s, beside the expectation's 74.2 s ± 0.5 s.
    trend = [{"run_id": run_id, "started_at": "2026-11-22T03:00:00Z", "verdict": "passed",
              "metrics": {"dns.failover_time": value}} for run_id, value in (("a", 44.03), ("b", 74.21))]
    run_data["history"] = {"threshold": 0.125, "baseline_runs": ["a"], "trend": trend, "regressions": [
        {"metric": "dns.failover_time", "unit": "s", "value": 74.21, "baseline": 44.03, "worse_by": 0.69}]}
    text = render(run_data, tmp_path)
    assert "74.21" not in text
    assert "44.03" not in text
    assert "74.2 s" in text
    assert "44.0 s" in text
    assert "12.5%" in text
    assert "12%" not in text
    assert "the last passed run" in text
    assert "1 passed runs" not in text


@REPORTS
def test_without_a_baseline_no_count_of_zero_runs(render: Render, run_data: dict[str, Any],
                                                  tmp_path: Path) -> None:
    run_data["history"] = {"threshold": 0.2, "baseline_runs": [], "trend": [], "regressions": []}
    text = render(run_data, tmp_path)
    assert "0 passed runs" not in text
