"""Expectations against metrics: an unmeasured metric fails with the probe's reason, never passes."""

from __future__ import annotations

import pytest

from drills.design import ExpectationReview, Window
from drills.runner.verdict import Ending, decide, judge
from drills.scenario.expressions import parse_comparison
from probes.base import BLIND, Marks, Metric, Sample
from probes.blindness import blind_metrics


@pytest.mark.parametrize("text", ["dns.failover_time < 3m", "dns.failover_time > 0s",
                                  "dns.failover_time != 1s", "dns.failover_time >= 0s"])
def test_an_unmeasured_metric_fails_whatever_the_comparison(text: str) -> None:
    metrics = {"dns.failover_time": Metric(None, "s", note="the answer stayed us")}
    (result,) = judge([parse_comparison(text)], metrics)
    assert not result.passed
    assert result.note == "unmeasured: the answer stayed us"


def test_a_metric_no_probe_produced_fails_as_unmeasured() -> None:
    (result,) = judge([parse_comparison("users.failover_time < 4m")], {})
    assert (result.passed, result.metric, result.note) == (False, None, "unmeasured")


def test_a_measured_metric_is_compared_on_its_value_and_keeps_its_note() -> None:
    metrics = {"users.failover_time": Metric(297.009, "s", error=0.369, note="from us")}
    held, broke = judge([parse_comparison("users.failover_time < 5m"),
                         parse_comparison("users.failover_time < 4m")], metrics)
    assert (held.passed, held.note) == (True, "from us")
    assert (broke.passed, broke.note) == (False, "from us")


def test_an_unmeasured_expectation_fails_the_run_and_the_reason_says_why() -> None:
    metrics = {"web.time_to_restore": Metric(None, "s", note="ready stayed below desired (2/3 when "
                                                             "sampling stopped)")}
    expectations = judge([parse_comparison("web.time_to_restore < 10m")], metrics)
    verdict, code, reason = decide(Ending("completed"), expectations, revert_failed=[], manual=[])
    assert (verdict, code) == ("failed", 1)
    assert reason == ("expectation 'web.time_to_restore < 10m' failed (unmeasured: ready stayed below "
                      "desired (2/3 when sampling stopped))")


@pytest.mark.parametrize(("text", "value", "error", "outcome"), [
    ("dns.failover_time < 3m", 179.4, 0.5, "passed"),       # 179.9 < 180
    ("dns.failover_time < 3m", 179.5, 0.5, "inconclusive"),  # 180.0 is not < 180, 179.0 is
    ("dns.failover_time < 3m", 179.8, 0.5, "inconclusive"),
    ("dns.failover_time < 3m", 180.5, 0.5, "failed"),       # 180.0 >= 180
    ("dns.failover_time < 3m", 180.4, 0.5, "inconclusive"),
    ("dns.failover_time <= 3m", 179.5, 0.5, "passed"),      # 180.0 <= 180
    ("dns.failover_time <= 3m", 180.5, 0.5, "inconclusive"),  # 180.0 is still <= 180
    ("dns.failover_time <= 3m", 180.6, 0.5, "failed"),
    ("web.min_ready >= 3", 3.0, 0.0, "passed"),
    ("web.min_ready > 2", 2.6, 0.5, "passed"),              # 2.1 > 2
    ("web.min_ready > 2", 2.5, 0.5, "inconclusive"),
    ("web.min_ready > 2", 1.5, 0.5, "failed"),              # 2.0 is not > 2
    ("web.min_ready >= 2", 1.5, 0.5, "inconclusive"),       # 2.0 >= 2
    ("web.min_ready >= 2", 1.4, 0.5, "failed"),
    ("web.min_ready == 3", 3.0, 0.0, "passed"),
    ("web.min_ready == 3", 3.0, 0.5, "inconclusive"),
    ("web.min_ready == 3", 2.4, 0.5, "failed"),
    ("web.min_ready != 3", 2.4, 0.5, "passed"),
    ("web.min_ready != 3", 2.6, 0.5, "inconclusive"),
    ("web.min_ready != 3", 3.0, 0.0, "failed"),
    ("dns.failover_time < 3m", 179.9, None, "passed"),      # no error stated: the value alone
])
def test_an_expectation_holds_only_across_the_whole_error(text: str, value: float, error: float | None,
                                                          outcome: str) -> None:
    subject = parse_comparison(text).subject
    (result,) = judge([parse_comparison(text)], {subject: Metric(value, "s", error=error)})
    assert result.outcome == outcome
    assert result.passed == (outcome == "passed")


def test_names_are_unaffected_by_an_error() -> None:
    metrics = {"dns.last_answer": Metric("eu", "name", error=0.5)}
    (same,) = judge([parse_comparison("dns.last_answer == eu")], metrics)
    (other,) = judge([parse_comparison("dns.last_answer != eu")], metrics)
    assert (same.outcome, same.passed, other.outcome, other.passed) == ("passed", True, "failed", False)


def test_an_inconclusive_expectation_fails_the_drill_by_default_and_says_so() -> None:
    metrics = {"dns.failover_time": Metric(179.8, "s", error=0.5)}
    expectations = judge([parse_comparison("dns.failover_time < 3m")], metrics)
    (result,) = expectations
    assert result.note == "inconclusive: 179.8 s ± 0.5 s straddles < 3m"
    verdict, code, reason = decide(Ending("completed"), expectations, revert_failed=[], manual=[])
    assert (verdict, code) == ("failed", 1)
    assert reason == ("expectation 'dns.failover_time < 3m' inconclusive (measured 179.8 s ± 0.5 s): "
                      "counted as failed")


def test_a_scenario_may_count_inconclusive_as_passed() -> None:
    metrics = {"dns.failover_time": Metric(179.8, "s", error=0.5)}
    expectations = judge([parse_comparison("dns.failover_time < 3m")], metrics, inconclusive="pass")
    assert [(e.outcome, e.passed) for e in expectations] == [("inconclusive", True)]
    assert decide(Ending("completed"), expectations, revert_failed=[], manual=[])[:2] == ("passed", 0)


def test_an_expectation_the_design_can_break_fails_even_when_measured_inside() -> None:
    review = ExpectationReview(expect="dns.failover_time < 3m", metric="dns.failover_time",
                               window=Window(160.0, 190.0, True, "s"), reasoning="...", breaks=True,
                               verdict="the design allows up to 190 s")
    metrics = {"dns.failover_time": Metric(170.2, "s", error=0.5)}
    expectations = judge([parse_comparison("dns.failover_time < 3m")], metrics,
                         reviews={"dns.failover_time < 3m": review})
    (result,) = expectations
    assert (result.outcome, result.passed, result.note) == ("passed", False, "the design allows up to 190 s")
    verdict, code, reason = decide(Ending("completed"), expectations, revert_failed=[], manual=[])
    assert (verdict, code) == ("failed", 1)
    assert reason == ("expectation 'dns.failover_time < 3m' failed: the design allows up to 190 s, "
                      "measured 170.2 s ± 0.5 s")


def test_a_measurement_outside_the_prediction_is_reported_without_failing_a_passing_expectation() -> None:
    review = ExpectationReview(expect="dns.failover_time < 3m", metric="dns.failover_time",
                               window=Window(35.0, 45.0, True, "s"), reasoning="...")
    metrics = {"dns.failover_time": Metric(50.0, "s", error=0.5)}
    (result,) = judge([parse_comparison("dns.failover_time < 3m")], metrics,
                      reviews={"dns.failover_time < 3m": review})
    assert result.passed
    assert result.note == ("measured 50.0 s ± 0.5 s is outside the predicted window [35 s, 45 s): one of "
                           "them is wrong (the measurement, or the settings the prediction read)")


def test_a_failed_expectation_shows_its_value_rounded_to_its_error_and_a_count_without_plus_minus() -> None:
    metrics = {"dns.failover_time": Metric(67.929, "s", error=0.541),
               "web.min_ready": Metric(2.0, "count", error=0.0)}
    expectations = judge([parse_comparison("dns.failover_time < 1m"), parse_comparison("web.min_ready >= 3")],
                         metrics)
    reason = decide(Ending("completed"), expectations, revert_failed=[], manual=[])[2]
    assert reason == ("expectation 'dns.failover_time < 1m' failed (measured 67.9 s ± 0.5 s); "
                      "expectation 'web.min_ready >= 3' failed (measured 2)")


def _replicas(pattern: str) -> list[Sample]:
    """A replicas probe's samples, one a second: ``o`` saw 3 ready, ``x`` failed (its watch was down)."""
    return [Sample("web_eu", float(t), 0.0, {"ready": 3} if c == "o" else {BLIND: "pods watch: refused"})
            for t, c in enumerate(pattern)]


@pytest.mark.parametrize(("pattern", "passed"), [
    ("oooooooooooooooooooo", True),
    ("oooooooooxxxxxxxxxxx", False),  # blind from t=9 to the end: the floor may have dipped then
    ("oooxxxxxoooooooooooo", True),   # blind before the incident only: nothing of the window was missed
])
def test_a_blind_interval_inside_the_window_makes_the_expectation_unmeasured_and_failed(
        pattern: str, passed: bool) -> None:
    samples = _replicas(pattern)
    marks = Marks(incident_start=8.5, recovery_start=15.0, ended=20.0)
    computed = {"min_ready": Metric(3.0, "count", error=0.0, note="every change seen by the watch counts")}
    found, _ = blind_metrics(computed, samples, marks, windows={}, probe="web_eu", period=1.0, start=0.0)
    metrics = {f"web_eu.{name}": metric for name, metric in found.items()}
    (result,) = judge([parse_comparison("web_eu.min_ready >= 3")], metrics)
    assert result.passed is passed
    if not passed:
        assert result.note.startswith("unmeasured: probe web_eu was blind from 00:09.0 to 00:20.0 "
                                      "(11 samples failed: pods watch: refused)")
        verdict, code, reason = decide(Ending("completed"), [result], revert_failed=[], manual=[])
        assert (verdict, code) == ("failed", 1)
        assert "probe web_eu was blind from 00:09.0" in reason
