"""The shared metric arithmetic: exact numbers on hand-made points."""

from __future__ import annotations

import pytest

from probes.timeline import (
    FailureRun,
    Interval,
    Point,
    changes,
    failed_values,
    failure_runs,
    first_seen,
    gone,
    last_known,
    latest,
    longest_failure,
    percentile,
    percentile_error,
    seen,
    settled,
    share,
    share_error,
)


def points(*values: object, period: float = 1.0, duration: float = 0.0) -> list[Point]:
    return [Point(t=i * period, value=v, duration=duration) for i, v in enumerate(values)]


def test_interval_since_reports_the_middle_and_half_the_width() -> None:
    metric = Interval(12.0, 13.5).since(10.0)
    assert (metric.value, metric.error, metric.unit) == (2.75, 0.75, "s")


def test_last_known_skips_points_without_a_value() -> None:
    seen = points("us", "us", None, "eu")
    assert last_known(seen, 3.0) == Point(1.0, "us")
    assert last_known(seen, 0.0) is None


def test_settled_lies_between_the_last_refused_point_and_the_end_of_the_first_accepted() -> None:
    seen = points("us", "us", "us", "eu", "eu", "eu", duration=0.1)
    found = settled(seen, lambda v: v != "us", start=1.5, end=10.0)
    assert found == Interval(2.0, 3.1)


def test_settled_ignores_a_change_that_did_not_stay() -> None:
    seen = points("us", "eu", "us", "us", "eu", "eu")
    assert settled(seen, lambda v: v != "us", start=0.5, end=10.0) == Interval(3.0, 4.0)


def test_settled_is_none_when_the_value_came_back_before_the_end() -> None:
    seen = points("us", "eu", "eu", "us")
    assert settled(seen, lambda v: v != "us", start=0.5, end=10.0) is None


def test_settled_only_looks_before_the_end_of_the_window() -> None:
    seen = points("us", "eu", "eu", "us", "us")
    assert settled(seen, lambda v: v != "us", start=0.5, end=3.0) == Interval(0.5, 1.0)


def test_settled_is_the_start_itself_when_already_accepted() -> None:
    seen = points("us", "us", "us")
    assert settled(seen, lambda v: v == "us", start=1.5, end=10.0) == Interval(1.5, 1.5)


def test_settled_skips_points_that_saw_nothing() -> None:
    seen = points("us", "us", None, None, "eu", "eu")
    assert settled(seen, lambda v: v != "us", start=1.5, end=10.0) == Interval(1.5, 4.0)


def test_settled_counts_silent_points_as_not_yet_when_told() -> None:
    seen = points("us", "us", None, None, "eu", None, "eu")
    found = settled(seen, lambda v: v != "us", start=1.5, end=10.0, silent_is_unknown=False)
    assert found == Interval(3.0, 4.0)


def test_settled_is_none_without_points_in_the_window() -> None:
    assert settled(points("us", None, None), lambda v: v != "us", start=0.5, end=10.0) is None


def test_changes_count_from_the_value_before_the_window() -> None:
    seen = points("us", "us", "eu", None, "eu", "us", "eu")
    assert changes(seen, start=1.0, end=100.0) == 3
    assert changes(seen, start=1.0, end=5.0) == 1
    assert changes(seen, start=1.0, end=6.0) == 2
    assert changes(seen, start=3.0, end=100.0) == 2


def test_failure_runs_with_their_neighbours() -> None:
    seen = points(False, True, False, False, True, False)
    assert failure_runs(seen, lambda v: v is not True) == [
        FailureRun(first=0.0, last=0.0, before=None, after=1.0, samples=1),
        FailureRun(first=2.0, last=3.0, before=1.0, after=4.0, samples=2),
        FailureRun(first=5.0, last=5.0, before=4.0, after=None, samples=1),
    ]


def test_a_run_lasts_from_the_first_failure_to_the_next_success_with_a_period_of_slack() -> None:
    run = FailureRun(first=10.0, last=12.0, before=9.0, after=13.0, samples=3)
    assert run.length(end=100.0) == 3.0
    assert run.error() == 1.0


def test_a_run_still_failing_lasts_until_the_end() -> None:
    run = FailureRun(first=10.0, last=12.0, before=8.5, after=None, samples=3)
    assert run.length(end=20.0) == 10.0
    assert run.error() == 1.5


def test_longest_failure_prefers_the_longer_then_the_earlier() -> None:
    seen = points(True, False, False, True, False, False, True, False, False, False, True)
    worst = longest_failure(seen, lambda v: v is not True, end=20.0)
    assert worst is not None
    assert (worst.first, worst.after) == (7.0, 10.0)
    assert longest_failure(points(True, True), lambda v: v is not True, end=2.0) is None


def test_share_and_its_error_from_the_changes() -> None:
    seen = points(True, True, False, False, True, True, True, True, True, True)
    assert share(seen, lambda v: v is True) == 80.0
    assert share_error(seen, lambda v: v is True) == pytest.approx(100 * 2 / 20)
    assert share_error(points(True, True), lambda v: v is True) == 0.0
    assert share([], lambda v: v is True) is None


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_percentile_error_is_a_distribution_free_interval() -> None:
    values = [float(v) for v in range(1, 101)]
    # n=100, q=0.5: ranks 50 -+ 1.96*5 -> 40 and 61 (1-based), around 50.5.
    assert percentile_error(values, 50) == pytest.approx(10.5)
    # q=0.99: ranks floor(99 - 1.95) = 97 and min(100, ceil(1 + 99 + 1.95)) = 100.
    assert percentile_error(values, 99) == pytest.approx(99.01 - 97)
    assert percentile_error([], 50) is None


def test_first_seen_lies_between_the_point_before_and_the_end_of_the_first_accepted() -> None:
    answers = points("eu", "eu", "eu", None, "us", "eu", "us", duration=0.1)
    assert first_seen(answers, lambda v: v == "us", start=1.5, end=10.0) == Interval(2.0, 4.1)
    assert first_seen(answers, lambda v: v == "eu", start=1.5, end=10.0) == Interval(1.5, 1.5)
    assert first_seen(answers, lambda v: v == "asia", start=1.5, end=10.0) is None


def test_latest_of_several_events() -> None:
    assert latest([Interval(1.0, 2.0), Interval(1.5, 1.8)]) == Interval(1.5, 2.0)


def test_seen_and_gone_with_answers_that_alternate() -> None:
    # Weighted routing: us and eu alternate until us stops at t=5; the final stretch (a quarter of the
    # 12 points in [2, 14), three) holds only eu.
    answers = points("us", "eu", "us", "us", "eu", "us", "eu", "eu", "eu", "eu", "eu", "eu", "eu", "eu")
    before = seen(answers, start=float("-inf"), end=2.0)
    assert before == frozenset({"us", "eu"})
    assert gone(answers, before, start=2.0, end=14.0) == frozenset({"us"})
    assert gone(answers, before, start=2.0, end=6.0) == frozenset()
    assert failed_values(answers, frozenset(), incident=2.0, end=14.0) == frozenset({"us"})
    # Told which region failed, that is what counts, even one never answered.
    assert failed_values(answers, frozenset({"asia"}), incident=2.0, end=14.0) == frozenset({"asia"})
