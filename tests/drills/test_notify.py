"""What a scheduled drill's result says to people: the key metrics of its run, each marked as its
expectation came out, an inconclusive one shown as such (not as a plain "ok")."""

from __future__ import annotations

import json
from pathlib import Path

from drills.notify import Outcome, json_body, metric_summaries, slack_body
from reports.record import RunRecord

RUN = Path(__file__).resolve().parents[1] / "reports" / "runs" / "us-outage-failed" / "run.json"


def _outcome(record: RunRecord) -> Outcome:
    return Outcome(drill="nightly", scenario="us-outage", environment="lab",
                   scheduled_at="2026-12-02T01:30:00", verdict=record["verdict"],
                   exit_code=record["exit_code"], metrics=metric_summaries(record))


def test_each_key_metric_is_shown_once_marked_as_its_expectation_came_out() -> None:
    record: RunRecord = json.loads(RUN.read_text(encoding="utf-8"))
    record["expectations"][0]["outcome"] = "inconclusive"  # counted as kept: the scenario says so
    record["expectations"][1]["outcome"] = "failed"
    outcome = _outcome(record)
    assert list(outcome.metrics) == ["dns.failover_time", "users.downtime", "dns.failback_time",
                                     "web_eu.min_ready"]
    assert json_body(outcome)["metrics"]["dns.failover_time"] == {
        "value": 74.2, "unit": "s", "error": record["metrics"]["dns.failover_time"]["error"], "passed": True,
        "outcome": "inconclusive"}
    shown = slack_body(outcome)["blocks"][1]["text"]["text"].splitlines()
    assert shown[0].startswith("inconclusive (counted as passed)  `dns.failover_time` ")
    assert shown[1].startswith("FAIL  `users.downtime` ")
    assert shown[3].startswith("ok  `web_eu.min_ready` ")
