"""report.md's ``## Regressions``: the regressions against past runs and the trend of the key metrics
when run.json has a history; nothing when it has none (a run recorded before the history existed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.markdown import MarkdownReporter
from reports.record import RunRecord


def _render(data: dict[str, Any]) -> str:
    run: RunRecord = data  # type: ignore[assignment]
    return MarkdownReporter().render(run, Path("unread"))


def _regressions(text: str) -> str:
    return text.split("## Regressions\n\n", 1)[1].split("\n## ", 1)[0]


def _trend(run_id: str, verdict: str, failover: float | None) -> dict[str, Any]:
    return {"run_id": run_id, "started_at": "2026-11-22T03:00:00.000Z", "verdict": verdict,
            "metrics": {"dns.failover_time": failover, "web_eu.min_ready": 3}}


def test_a_run_without_history_has_no_regressions_section(run_data: dict[str, Any]) -> None:
    assert "## Regressions" not in _render(run_data)


def test_regressions_name_the_metric_its_baseline_and_how_much_worse_then_the_trend(
        run_data: dict[str, Any]) -> None:
    run_data["history"] = {
        "threshold": 0.2, "baseline_runs": ["a", "b"],
        "regressions": [{"metric": "dns.failover_time", "unit": "s", "value": 74.2, "baseline": 44.0,
                         "worse_by": 0.6864}],
        "trend": [_trend("a", "passed", 44.0), _trend("b", "passed", 44.0), _trend("x", "failed", None),
                  _trend(run_data["run_id"], "failed", 74.2)]}
    section = _regressions(_render(run_data))
    assert "median over the last 2 passed runs of us-outage on lab by more than the threshold (20%" in section
    assert "it does not change the verdict" in section
    assert "| dns.failover_time | 74.2 s | 44.0 s | +69% |" in section
    assert "### Trend" in section
    assert f"| `{run_data['run_id']}` | failed | 74.2 s | 3 |" in section
    assert "| `x` | failed | unmeasured | 3 |" in section


def test_without_a_passed_run_before_it_says_there_is_no_baseline(run_data: dict[str, Any]) -> None:
    run_data["history"] = {"threshold": 0.2, "baseline_runs": [], "regressions": [],
                           "trend": [_trend(run_data["run_id"], "failed", 74.2)]}
    section = _regressions(_render(run_data))
    assert section.startswith("No baseline: no earlier passed run of us-outage on lab")
    assert "### Trend" not in section


def test_a_regression_from_a_zero_baseline_has_no_ratio_and_says_so(run_data: dict[str, Any]) -> None:
    run_data["history"] = {"threshold": 0.2, "baseline_runs": ["a"], "trend": [],
                           "regressions": [{"metric": "users.downtime", "unit": "s", "value": 3.0,
                                            "baseline": 0.0, "worse_by": None}]}
    section = _regressions(_render(run_data))
    assert "| users.downtime | 3.0 s | 0.0 s | worse than 0 beyond its error |" in section
