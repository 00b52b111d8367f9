"""report.html of a us-outage lab run, as a person's browser shows it: headless Debian Chromium opens the
file offline, draws every chart without an error, and the charts show the failover where the run's
record puts it. The screenshot is kept in the test artifacts (``report-html.png``).
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, open_page
from drillrun import Finished

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=f"{CHROMIUM} is absent (scripts/setup installs it)")]


CHARTS = """Array.from(document.querySelectorAll(".chart")).map((div) => ({
  id: div.id, probe: div.dataset.probe || null, svg: div.querySelector("svg.main-svg") !== null,
  traces: (div.data || []).map((trace) => ({name: trace.name, x: trace.x, y: trace.y})),
}))"""
ZOOM = """(async () => {
  await Plotly.relayout("chart-dns", {"xaxis.range[0]": 100, "xaxis.range[1]": 200});
  const charts = Array.from(document.querySelectorAll(".chart.time"));
  const ranges = () => charts.map((div) => div.layout.xaxis.range);
  for (let frame = 0; frame < 100 && !ranges().every((r) => r[0] === 100 && r[1] === 200); frame++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return ranges();
})()"""
"""Zooming into one chart's time axis, as a drag does: the others follow."""


@dataclass(frozen=True)
class Shown:
    """What Chromium showed of one run's report.html."""

    run: Finished
    charts: dict[str, dict[str, Any]]
    """By the probe each chart is of (trend charts under their div's id)."""
    errors: list[str]
    requests: list[str]
    zoomed: list[list[float]]
    """Every time chart's x range after zooming the DNS chart to 100-200 s."""


@pytest.fixture(scope="module")
def shown(us_outage_once: Finished, artifacts: Path) -> Shown:
    run = us_outage_once
    assert run.code == 0, run.output

    async def look() -> Shown:
        async with open_page(run.run_dir / "report.html") as page:
            charts = await page.evaluate(CHARTS)
            (artifacts / "report-html.png").write_bytes(await page.screenshot())
            zoomed = await page.evaluate(ZOOM)
            by_probe = {c["probe"] or c["id"]: c for c in charts}
            return Shown(run, by_probe, list(page.errors), list(page.requests), zoomed)

    return asyncio.run(look())


def _event(run: Finished, event: str, step: str | None = None) -> float:
    return next(e["t"] for e in run.record["timeline"] if e["event"] == event and step in (None, e["step"]))


def test_the_report_opens_offline_without_an_error_and_is_kept_as_a_screenshot(
        shown: Shown, artifacts: Path) -> None:
    assert shown.errors == []
    assert shown.requests == [(shown.run.run_dir / "report.html").resolve().as_uri()]
    assert (artifacts / "report-html.png").read_bytes().startswith(b"\x89PNG")


def test_every_probe_has_a_chart_drawn(shown: Shown) -> None:
    for probe in shown.run.record["probes"]:
        assert shown.charts[probe]["svg"], f"no chart drawn for {probe}"
        assert any(len(trace["x"]) > 1 for trace in shown.charts[probe]["traces"]), probe


def test_the_dns_chart_switches_from_us_to_eu_when_the_record_says(shown: Shown) -> None:
    run = shown.run
    (answers,) = shown.charts["dns"]["traces"]
    points = list(zip(answers["x"], answers["y"], strict=True))
    applied = _event(run, "fault_applied", "kill-us-ingress")
    moved = _event(run, "wait_done", "step-2")  # dns.answer == eu
    undo = _event(run, "rollback_started")
    assert "us" in {answer for t, answer in points if t < applied}
    switch = next(t for t, answer in points if answer == "eu")
    assert applied < switch <= moved
    assert "us" not in {answer for t, answer in points if switch <= t < undo}
    failover = run.metric("dns.failover_time")
    at = run.record["incident_start_t"] + failover["value"]
    assert abs(switch - at) <= 2 * failover["error"], f"the chart switches at {switch}, the metric says {at}"


def test_the_users_success_rate_dips_after_the_fault_and_recovers_before_the_undo(shown: Shown) -> None:
    run = shown.run
    success = next(t for t in shown.charts["users"]["traces"] if t["name"].startswith("success rate"))
    points = [(t, v) for t, v in zip(success["x"], success["y"], strict=True) if v is not None]
    applied, undo = _event(run, "fault_applied", "kill-us-ingress"), _event(run, "rollback_started")
    before = [v for t, v in points if t < applied]
    during = [(t, v) for t, v in points if applied <= t < undo]
    assert statistics.median(before) == 100
    assert min(v for _, v in during) == 0, "nobody went unserved while the US ingress was dead"
    # Users fail while DNS still sends them to the dead US ingress, before it moves them to Europe.
    assert next(t for t, v in during if v == 0) < _event(run, "wait_done", "step-2")
    # Once every resolver's cached US answer expired and a request to the US timed out, all are served.
    moved_all = run.record["incident_start_t"] + run.metric("dns.client_failover_time")["value"] + 10
    assert statistics.median(v for t, v in during if t > moved_all) == 100, "users failing before the undo"


def test_zooming_into_one_chart_zooms_them_all(shown: Shown) -> None:
    assert shown.zoomed == [[100, 200]] * len(shown.run.record["probes"])
