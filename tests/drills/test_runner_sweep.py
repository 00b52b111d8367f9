"""Combining trials: each metric's spread, and expectations that must hold in every trial."""

from __future__ import annotations

from drills.runner.sweep import TrialMetrics, combine
from drills.runner.verdict import Ending, decide, judge
from drills.scenario.expressions import parse_comparison
from probes.base import Metric

RTO = parse_comparison("dns.failover_time < 3m")
CAPACITY = parse_comparison("web.min_ready >= 3")


def _trials(failover: list[float | None], ready: list[float] | None = None) -> list[TrialMetrics]:
    phases = [0.06, 0.31, 0.56, 0.81]
    return [TrialMetrics(index=k + 1, phase=phases[k], metrics={
        "dns.failover_time": Metric(value, "s", error=0.5 + k / 10,
                                    note="" if value is not None else "the answer never moved"),
        "dns.failback_time": Metric(20.0 + 10 * k, "s", error=1.0 + k),
        "web.min_ready": Metric((ready or [3.0] * 4)[k], "count"),
        "dns.answer_after": Metric("eu", ""),
    }) for k, value in enumerate(failover)]


def test_an_expectation_broken_in_one_trial_fails_naming_that_trial_and_its_phase() -> None:
    sweep = combine([RTO, CAPACITY], _trials([170.0, 165.0, 172.5, 187.2]), judge=judge, interval=30.0)
    rto, capacity = sweep.expectations
    assert (rto.passed, rto.metric, rto.trial) == (
        False, Metric(187.2, "s", error=0.8), "trial 4 of 4 (phase 0.81 of the 30s probe cycle)")
    assert sweep.worst == [(4, 0.81), (1, 0.06)]
    assert capacity.passed
    # The value shown for a metric is the one that decided its expectation.
    assert sweep.metrics["dns.failover_time"] == Metric(187.2, "s", error=0.8)
    spread = sweep.spreads["dns.failover_time"]
    assert (spread.values, spread.min, spread.median, spread.max) == ([170.0, 165.0, 172.5, 187.2], 165.0,
                                                                      171.25, 187.2)
    assert (spread.worst_trial, spread.worst_phase) == (4, 0.81)
    verdict, code, reason = decide(Ending("completed"), sweep.expectations, revert_failed=[], manual=[])
    assert (verdict, code) == ("failed", 1)
    assert reason == ("expectation 'dns.failover_time < 3m' failed in trial 4 of 4 (phase 0.81 of the 30s "
                      "probe cycle): measured 187.2 s ± 0.8 s")


def test_the_worst_of_a_lower_bound_is_its_smallest_value_and_passing_names_the_closest_trial() -> None:
    sweep = combine([RTO, CAPACITY], _trials([170.0, 171.0, 172.0, 173.0], ready=[3, 5, 4, 3]), judge=judge,
                    interval=10.0)
    rto, capacity = sweep.expectations
    assert (rto.passed, rto.metric, sweep.worst[0]) == (True, Metric(173.0, "s", error=0.8), (4, 0.81))
    assert (capacity.passed, capacity.metric, sweep.worst[1]) == (True, Metric(3.0, "count"), (1, 0.06))


def test_a_metric_unmeasured_in_any_trial_is_unmeasured_and_its_expectation_fails() -> None:
    sweep = combine([RTO], _trials([170.0, None, 190.0, 171.0]), judge=judge, interval=30.0)
    [rto] = sweep.expectations
    assert not rto.passed
    assert sweep.worst == [(2, 0.31)]
    assert sweep.metrics["dns.failover_time"].value is None
    spread = sweep.spreads["dns.failover_time"]
    assert (spread.values, spread.min, spread.median, spread.max) == ([170.0, None, 190.0, 171.0], 170.0,
                                                                      171.0, 190.0)


def test_a_metric_no_expectation_names_shows_its_median_trial_with_the_largest_error() -> None:
    sweep = combine([RTO], _trials([170.0, 165.0, 172.5, 187.2]), judge=judge, interval=30.0)
    # 20, 30, 40, 50: the upper of the two middle trials, so that the value is one a trial measured.
    assert sweep.metrics["dns.failback_time"] == Metric(40.0, "s", error=4.0)
    failback = sweep.spreads["dns.failback_time"]
    assert (failback.median, failback.worst_trial) == (35.0, 3)
    assert sweep.metrics["dns.answer_after"].value == "eu"
    assert sweep.spreads["dns.answer_after"].values == ["eu"] * 4


def test_one_trial_is_judged_as_before() -> None:
    [trial] = _trials([187.2])
    sweep = combine([RTO], [trial], judge=judge, interval=30.0)
    assert sweep.expectations == judge([RTO], trial.metrics)
    assert sweep.metrics == dict(trial.metrics)
