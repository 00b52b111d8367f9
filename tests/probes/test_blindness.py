"""Blind intervals from samples, metric windows, and metrics left unmeasured by a blind window."""

from __future__ import annotations

from typing import get_args

import pytest

from probes.base import BLIND, SKIPPED, Marks, Metric, Sample
from probes.blindness import (
    GAP_REASON,
    BlindInterval,
    MetricWindow,
    blind_intervals,
    metric_window,
    unmeasured_if_blind,
    window_kind,
)
from probes.dns import DnsProbe
from probes.http import HttpProbe
from probes.replicas import ReplicasProbe
from probes.replication import ReplicationProbe
from probes.trafficmanager import TrafficManagerProbe

PERIOD = 1.0


def series(pattern: str, *, start: float = 0.0) -> list[Sample]:
    """One sample per period: ``o`` measured, ``x`` failed (blind), ``_`` none taken."""
    return [Sample("p", start + i * PERIOD, 0.0, {BLIND: "timed out"} if c == "x" else {"ready": 3})
            for i, c in enumerate(pattern) if c != "_"]


def test_a_sample_says_whether_it_measured() -> None:
    assert Sample("p", 0.0, 0.0, {"ready": 3}).blind is None
    assert Sample("p", 0.0, 0.0, {BLIND: "connection refused"}).blind == "connection refused"


def test_a_run_of_failed_samples_lasts_until_the_next_one_that_measured() -> None:
    found = blind_intervals(series("ooxxxoo"), PERIOD, start=0.0, end=6.0)
    assert found == [BlindInterval(2.0, 5.0, 3, "timed out")]
    assert found[0].describe("web_eu") == ("probe web_eu was blind from 00:02.0 to 00:05.0 "
                                           "(3 samples failed: timed out)")


def test_failing_until_the_end_is_blind_until_the_end() -> None:
    assert blind_intervals(series("ooxx"), PERIOD, start=0.0, end=10.0) == [
        BlindInterval(2.0, 10.0, 2, "timed out")]


def test_samples_due_but_not_taken_are_a_blind_gap() -> None:
    assert blind_intervals(series("oo___oo"), PERIOD, start=0.0, end=6.0) == [
        BlindInterval(2.0, 5.0, 0, GAP_REASON)]
    # No sample after the last one up to the end: blind from when the next was due.
    assert blind_intervals(series("oo"), PERIOD, start=0.0, end=9.0) == [
        BlindInterval(2.0, 9.0, 0, GAP_REASON)]
    # No sample at all: blind from a period after the start.
    assert blind_intervals([], PERIOD, start=0.0, end=9.0) == [BlindInterval(1.0, 9.0, 0, GAP_REASON)]


def test_a_gap_next_to_failed_samples_merges_with_them() -> None:
    assert blind_intervals(series("ox__xo"), PERIOD, start=0.0, end=5.0) == [
        BlindInterval(1.0, 5.0, 2, "timed out")]


def test_a_tick_skipped_while_a_measurement_was_in_flight_neither_measures_nor_is_blind() -> None:
    samples = series("ox_xo")
    samples.insert(2, Sample("p", 2.0, 0.0, {SKIPPED: True}))
    assert blind_intervals(samples, PERIOD, start=0.0, end=4.0) == [BlindInterval(1.0, 4.0, 2, "timed out")]


def test_a_probe_that_always_measured_was_never_blind() -> None:
    assert blind_intervals(series("oooooo"), PERIOD, start=0.0, end=5.5) == []


def test_windows_by_kind() -> None:
    marks = Marks(incident_start=10.0, recovery_start=50.0, ended=90.0)
    measured = Metric(12.0, "s", error=1.0)
    unmeasured = Metric(None, "s")
    assert metric_window("incident", measured, marks, trial_start=0.0) == (10.0, 90.0)
    assert metric_window("failover", measured, marks, trial_start=0.0) == (10.0, 23.0)
    assert metric_window("failover", unmeasured, marks, trial_start=0.0) == (10.0, 50.0)
    assert metric_window("failback", measured, marks, trial_start=0.0) == (50.0, 63.0)
    assert metric_window("failback", unmeasured, marks, trial_start=0.0) == (50.0, 90.0)
    assert metric_window("steady", measured, marks, trial_start=2.0) == (2.0, 10.0)
    calm = Marks(incident_start=None, recovery_start=None, ended=90.0)
    assert metric_window("incident", measured, calm, trial_start=5.0) == (5.0, 90.0)
    assert metric_window("failback", measured, calm, trial_start=5.0) is None


def test_a_breakdown_takes_its_metrics_window() -> None:
    windows = {"failover_time": "failover", "failover_time.paris": "incident"}
    assert window_kind(windows, "failover_time.berlin") == "failover"  # type: ignore[arg-type]
    assert window_kind(windows, "failover_time.paris") == "incident"  # type: ignore[arg-type]
    assert window_kind(windows, "flaps") == "incident"  # type: ignore[arg-type]


def test_a_blind_interval_inside_the_window_leaves_the_metric_unmeasured_with_the_reason() -> None:
    intervals = blind_intervals(series("oooxxxxxoo"), PERIOD, start=0.0, end=9.0)
    floor = Metric(3.0, "count", error=0.0, note="every change seen by the watch counts")
    found = unmeasured_if_blind(floor, (2.0, 9.0), intervals, probe="web_eu", period=PERIOD)
    assert not found.measured
    assert found.note.startswith("probe web_eu was blind from 00:03.0 to 00:08.0 (5 samples failed: "
                                 "timed out)")
    assert found.note.endswith("from the samples left: every change seen by the watch counts")


@pytest.mark.parametrize(("pattern", "window", "measured"), [
    ("oooxoooooo", (0.0, 9.0), True),   # one lost sample is within a period: tolerated
    ("ooooooxxxo", (0.0, 5.0), True),   # blind only after the window ended
    ("oxxxxooooo", (6.0, 9.0), True),   # blind only before it began
    ("oooooxxooo", (0.0, 9.0), False),  # two in a row are not
])
def test_only_blindness_inside_the_window_beyond_the_tolerance_counts(
        pattern: str, window: tuple[float, float], measured: bool) -> None:
    intervals = blind_intervals(series(pattern), PERIOD, start=0.0, end=9.0)
    metric = Metric(3.0, "count")
    assert unmeasured_if_blind(metric, window, intervals, probe="p", period=PERIOD).measured is measured


@pytest.mark.parametrize("probe", [DnsProbe, HttpProbe, ReplicasProbe, ReplicationProbe, TrafficManagerProbe])
def test_every_window_a_probe_declares_is_of_a_metric_it_has(probe: type) -> None:
    metrics = {name.removesuffix(".*") for name in probe.METRICS}
    assert set(probe.WINDOWS) <= metrics
    assert set(probe.WINDOWS.values()) <= set(get_args(MetricWindow))
