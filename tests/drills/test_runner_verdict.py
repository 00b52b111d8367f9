"""Expectations against metrics: an unmeasured metric fails with the probe's reason, never passes."""

from __future__ import annotations

import pytest

from drills.runner.verdict import Ending, decide, judge
from drills.scenario.expressions import parse_comparison
from probes.base import Metric


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
