"""report.html from a run directory alone: self-contained, verdict first, charts from samples.jsonl with the
timeline's spans, small for a long drill, and the trend when run.json has one. (How Chromium shows it:
tests/integration/test_html_report.py.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs

from reports.base import format_value
from reports.charts import MAX_BUCKETS, timeline_spans
from reports.html import HtmlReporter
from reports.record import RunRecord, load_run
from tests.reports.test_markdown import DESIGN

FIXTURE = Path(__file__).parent / "runs" / "us-outage-failed"
DIP = (72.0, 300.0)
"""When the fixture's users all fail (scenario seconds)."""
MOVED = 145.0
"""When the fixture's DNS answer moves from us to eu."""
REPLICA_DIP = 100.0
"""The sample of web_eu that saw zone-2 lose its pod and get it back since the sample before."""


def _samples(run_dir: Path) -> None:
    """An hour of samples, as the fixture's probes record says: DNS every second (us, then eu), users
    every half second (all served but during :data:`DIP`), the replicas steady in three zones."""
    lines = []
    for k in range(7201):
        t = k * 0.5
        ok = 0 if DIP[0] <= t < DIP[1] else 100
        outcome = {"ok": ok > 0, "status": 200 if ok else None, "latency": 0.002 if ok else None,
                   "region": "eu", "resolved": "eu", "address": "127.0.0.1", "error": None}
        lines.append({"probe": "users", "t": t + 0.01, "real": 0.0, "duration": 0.01,
                      "values": {"ok": ok, "failed": 100 - ok, "outcomes": [outcome], "by_user": "0" * 100}})
        if k % 2 == 0:
            lines.append({"probe": "dns", "t": t, "real": 0.0, "duration": 0.01,
                          "values": {"answer": "us" if t < MOVED else "eu", "ttl": 30}})
            zones = {"zone-1": 1, "zone-2": 1, "zone-3": 1}
            values: dict[str, Any] = {"ready": 3, "desired": 3, "by_zone": zones}
            if t == REPLICA_DIP:
                values.update(low=2, low_by_zone={**zones, "zone-2": 0})
            lines.append({"probe": "web_eu", "t": t, "real": 0.0, "duration": 0.01, "values": values})
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines)
                                           + '{"probe": "users", "t": 3')  # a crash cut the last line


def _render(run_dir: Path) -> str:
    return HtmlReporter().render(load_run(run_dir), run_dir)


def _figures(page: str) -> dict[str, Any]:
    match = re.search(r"^const FIGURES = (.*);$", page, re.M)
    assert match, "no figures in the page"
    figures: dict[str, Any] = json.loads(match[1])
    return figures


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fixture's report.html, rendered once for the module."""
    run_dir = tmp_path_factory.mktemp("run")
    shutil.copy(FIXTURE / "run.json", run_dir / "run.json")
    _samples(run_dir)
    return _render(run_dir)


def test_the_file_embeds_plotly_and_loads_nothing_from_elsewhere(page: str) -> None:
    assert get_plotlyjs() in page
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page.replace(get_plotlyjs(), ""))
    assert tags == ["<script>", "<script>"]
    assert not re.search(r"""<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)


def test_the_verdict_and_expectations_come_first_with_the_shared_formatting(page: str) -> None:
    head = page[page.index("<body>"):page.index("<h2>Probes</h2>")]
    assert re.search(r"<h1>us-outage <span class=\"verdict failed\">FAILED</span></h1>", head)
    # One time base, as report.md's head: the start an instant in UTC, the rest scenario time.
    assert "<td>time</td><td>lab time (30x): every time and duration in this report is real-world" in head
    assert head.count("30x") == 1
    assert "<td>started</td><td>2026-11-22 03:18:00 UTC</td>" in head
    assert "<td>duration</td><td>60:01.2 (wall clock: 120 s)</td>" in head
    assert "<td>incident start</td><td>t = 01:11.3</td>" in head
    assert "<td>environment</td><td>lab, /tmp/drill-lab-1/environment.yaml</td>" in head
    assert f"<td>{format_value(74.2, 's', 0.5)}</td>" in head
    assert f"<td>{format_value(262.5, 's', 0.25)}</td>" in head
    assert f"<td>{format_value(None, 's')}</td>" in head


def test_each_chart_shows_its_probe_with_the_timelines_spans_behind(page: str) -> None:
    figures = _figures(page)
    assert set(figures) == {"chart-dns", "chart-users", "chart-web_eu"}
    (answers,) = figures["chart-dns"]["data"]
    assert list(zip(answers["x"], answers["y"], strict=True)) == [(0.0, "us"), (MOVED, "eu"), (3600.0, "eu")]
    shapes = {(s["name"], s["x0"], s["x1"]) for s in figures["chart-users"]["layout"]["shapes"]}
    # s2's revert failed: the fault is still in place at the end.
    assert {("fault s1", 71.3, 447.1), ("fault s2 (not undone)", 71.9, 3601.25), ("undo", 445.5, 447.1),
            ("incident", 71.3, 71.3)} <= shapes
    assert figures["chart-web_eu"]["layout"]["xaxis"]["range"] == [0.0, 3601.25]
    replicas = {t["name"]: list(zip(t["x"], t["y"], strict=True)) for t in figures["chart-web_eu"]["data"]}
    assert list(replicas)[:3] == ["zone-1", "zone-2", "zone-3"]
    assert replicas["zone-2"] == [(0.0, 1), (REPLICA_DIP, 0), (REPLICA_DIP, 1), (3600.0, 1)]
    assert replicas["ready, all zones"] == [(0.0, 3), (REPLICA_DIP, 2), (REPLICA_DIP, 3), (3600.0, 3)]
    assert replicas["zone-1"] == [(0.0, 1), (3600.0, 1)]


def test_an_hour_of_samples_stays_small_and_keeps_the_dip(page: str) -> None:
    assert len(page.encode()) - len(get_plotlyjs().encode()) < 120_000
    success = _figures(page)["chart-users"]["data"][0]
    assert len(success["x"]) <= 2 * MAX_BUCKETS
    dipped = [t for t, v in zip(success["x"], success["y"], strict=True) if v == 0]
    assert dipped
    assert DIP[0] <= min(dipped)
    assert max(dipped) < DIP[1]


def test_without_history_the_trend_says_there_are_no_past_runs(page: str) -> None:
    assert "No past runs of this scenario on this environment yet." in page


def test_the_trend_shows_the_key_metrics_of_past_runs_and_the_regressions(
        run_data: dict[str, Any], write_run: Any) -> None:
    trend = [{"run_id": f"r{k}", "started_at": f"2026-11-2{k}T03:18:00Z", "verdict": "passed",
              "metrics": {"dns.failover_time": 44.0 + k, "users.availability": 99.0}} for k in range(3)]
    trend[-1]["metrics"]["dns.failover_time"] = 61.2
    run_data["history"] = {"threshold": 0.2, "baseline_runs": ["r0", "r1"], "trend": trend, "regressions": [
        {"metric": "dns.failover_time", "unit": "s", "value": 61.2, "baseline": 44.5, "worse_by": 0.375}]}
    page = _render(write_run(run_data))
    figures = _figures(page)
    seconds = figures["trend-s"]["data"]
    assert [(t["name"], t["y"]) for t in seconds] == [("dns.failover_time", [44.0, 45.0, 61.2])]
    assert seconds[0]["x"][-1].endswith("this run")
    assert [t["name"] for t in figures["trend-percent"]["data"]] == ["users.availability"]
    assert (f"<td>dns.failover_time</td><td>{format_value(61.2, 's')}</td><td>{format_value(44.5, 's')}</td>"
            "<td>+38%</td>") in page
    assert "No past runs" not in page


def test_a_plugins_probe_gets_its_numeric_values_charted_and_nan_is_a_gap(
        run_data: dict[str, Any], write_run: Any) -> None:
    run_data["probes"] = {"temp": {"kind": "thermometer", "every": 1.0, "samples": 3}}
    run_dir = write_run(run_data)
    rows = [{"celsius": 21.5, "room": "a"}, {"celsius": float("nan"), "room": "a"},
            {"celsius": 22, "room": "a"}]
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({"probe": "temp", "t": float(k), "real": 0.0, "duration": 0.1, "values": values}) + "\n"
        for k, values in enumerate(rows)))
    (trace,) = _figures(_render(run_dir))["chart-temp"]["data"]
    assert (trace["name"], trace["x"], trace["y"]) == ("celsius", [0.0, 1.0, 2.0], [21.5, None, 22])


def test_each_trial_of_a_sweep_has_its_own_fault_and_undo(run_data: dict[str, Any]) -> None:
    events = [(10.0, "fault_applied"), (50.0, "rollback_started"), (52.0, "fault_reverted"),
              (110.0, "fault_applied"), (150.0, "rollback_started"), (153.0, "fault_reverted"),
              (200.0, "run_ended")]
    run_data["timeline"] = [{"t": t, "at": "2026-11-22T03:18:00Z", "event": event,
                             "step": None if event in ("rollback_started", "run_ended") else "kill",
                             "detail": ""} for t, event in events]
    run_data["incident_start_t"] = 10.0
    spans = {(s.kind, s.start, s.end) for s in timeline_spans(RunRecord(**run_data))}  # type: ignore[typeddict-item]
    assert spans == {("fault", 10.0, 52.0), ("undo", 50.0, 52.0), ("fault", 110.0, 153.0),
                     ("undo", 150.0, 153.0), ("incident", 10.0, None)}


def test_the_replication_chart_shows_each_regions_lag(run_data: dict[str, Any], write_run: Any) -> None:
    run_data["probes"] = {"data": {"kind": "replication", "every": 1.0, "samples": 3}}
    run_dir = write_run(run_data)
    rows = [{"write_region": "us", "seen": {"eu": [[1, 0.4, 0.5]]}, "behind": {}},
            {"write_region": "us", "seen": {"eu": [[2, 0.3, 0.5], [3, 0.6, 0.5]]}, "behind": {"eu": 2.0}},
            {"blind": "the account read failed"}]
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({"probe": "data", "t": float(k), "real": 0.0, "duration": 0.1, "values": values}) + "\n"
        for k, values in enumerate(rows)))
    (eu,) = _figures(_render(run_dir))["chart-data"]["data"]
    # The latest canary's lag, or the oldest unseen one's wait when longer; nothing while blind.
    assert (eu["name"], eu["x"], eu["y"]) == ("eu", [0.0, 1.0, 2.0], [0.4, 2.0, None])


def test_text_that_would_end_or_nest_the_script_is_escaped_in_the_charts_json(
        run_data: dict[str, Any], write_run: Any) -> None:
    odd = "</script><!--<script> & >"
    run_data["timeline"].append({"t": 100.0, "at": "2026-11-22T03:18:03Z", "event": "guard_tripped",
                                 "step": None, "detail": odd})
    run_data["probes"]["dns"]["blind"] = [{"start": 1.0, "end": 2.0, "samples": 1, "reason": odd,
                                          "trial": 1}]
    page = _render(write_run(run_data))
    script = page[page.index("const FIGURES"):page.index("const CONFIG")]
    assert "<" not in script
    assert ">" not in script
    assert "&" not in script
    names = {s["name"] for s in _figures(page)["chart-dns"]["layout"]["shapes"]}
    assert f"guard tripped: {odd}" in names
    assert f"dns blind: {odd}" in names


def test_a_fault_whose_revert_failed_stays_shaded_to_the_end(run_data: dict[str, Any]) -> None:
    events = [(10.0, "fault_applied"), (50.0, "rollback_started"), (52.0, "revert_failed"),
              (200.0, "run_ended")]
    run_data["timeline"] = [{"t": t, "at": "2026-11-22T03:18:00Z", "event": event,
                             "step": None if event in ("rollback_started", "run_ended") else "kill",
                             "detail": ""} for t, event in events]
    run_data["incident_start_t"] = 10.0
    spans = {(s.kind, s.start, s.end, s.label) for s in timeline_spans(RunRecord(**run_data))}  # type: ignore[typeddict-item]
    assert ("fault", 10.0, 200.0, "fault kill (not undone)") in spans
    assert ("undo", 50.0, 52.0, "undo") in spans


def test_metrics_without_a_unit_share_the_count_chart(run_data: dict[str, Any], write_run: Any) -> None:
    run_data["metrics"]["users.retries"] = {"value": 2.0, "unit": "", "error": 0, "note": ""}
    trend = [{"run_id": f"r{k}", "started_at": f"2026-11-2{k}T03:18:00Z", "verdict": "passed",
              "metrics": {"web_eu.min_ready": 3, "users.retries": float(k)}} for k in range(2)]
    run_data["history"] = {"threshold": 0.2, "baseline_runs": ["r0"], "trend": trend, "regressions": []}
    page = _render(write_run(run_data))
    assert page.count('id="trend-count"') == 1
    names = [t["name"] for t in _figures(page)["trend-count"]["data"]]
    assert sorted(names) == ["users.retries", "web_eu.min_ready"]


def test_a_sample_naming_an_outcome_it_does_not_have_is_skipped(run_data: dict[str, Any],
                                                                write_run: Any) -> None:
    run_dir = write_run(run_data)
    outcome = {"ok": True, "status": 200, "latency": 0.002, "region": "eu"}
    rows = [{"ok": 2, "failed": 0, "outcomes": [outcome], "by_user": "00"},
            {"ok": 2, "failed": 0, "outcomes": [outcome], "by_user": "01"},  # no outcome 1
            {"ok": 2, "failed": 0, "outcomes": [outcome], "by_user": "0!"},  # not an outcome digit
            {"ok": 2, "failed": 0, "outcomes": [outcome], "by_user": "00"}]
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({"probe": "users", "t": float(k), "real": 0.0, "duration": 0.1, "values": values}) + "\n"
        for k, values in enumerate(rows)))
    latency = _figures(_render(run_dir))["chart-users"]["data"][1]
    assert latency["y"] == [2.0, None, None, 2.0]


def test_the_design_table_says_holds_only_where_there_is_a_prediction(run_data: dict[str, Any],
                                                                      write_run: Any) -> None:
    run_data["design"] = DESIGN
    page = _render(write_run(run_data))
    design = page[page.index("<h2>Design</h2>"):page.index("<h2>Rollback</h2>")]
    assert ("<td>dns.failover_time &lt; 3m</td><td>[160 s, 190 s)</td><td>Degraded on the 6th failed "
            "probe</td><td>breaks: the design allows up to 190 s</td>") in design
    assert ("<td>[3, 3]</td><td>no fault takes pods of eu/shop/web away: 3 stay ready</td><td>holds</td>"
            in design)
    assert ("<td>users.downtime &lt; 4m</td><td>no prediction</td><td>unknown: the environment does not "
            "state the Traffic Manager TTL</td><td>—</td>") in design
