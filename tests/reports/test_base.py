"""The shared number formatting: values rounded to their error, units a person reads, no float noise."""

from __future__ import annotations

import pytest

from reports.base import describe_baseline, expectation_result, format_threshold, format_value


@pytest.mark.parametrize(("value", "unit", "error", "shown"), [
    # The issue's own example: three decimals against a half-second error.
    (67.929, "s", 0.541, "67.9 s ± 0.5 s"),
    # Two significant digits when the error starts with 1.
    (67.929, "s", 0.141, "67.93 s ± 0.14 s"),
    (187.6, "s", 1.2, "187.6 s ± 1.2 s"),
    (187.6, "s", 0.9, "187.6 s ± 0.9 s"),
    (188.3, "s", 3.2, "188 s ± 3 s"),
    (1234.5, "s", 27.0, "1230 s ± 30 s"),
    # A half rounds up, as a person rounds.
    (262.5, "s", 0.25, "262.5 s ± 0.3 s"),
    (74.2, "s", 0.5, "74.2 s ± 0.5 s"),
    (41.25, "%", 0.1, "41.25% ± 0.10%"),
    (99.5, "%", 0.04, "99.50% ± 0.04%"),
])
def test_a_value_is_rounded_to_the_place_of_its_error(value: float, unit: str, error: float,
                                                      shown: str) -> None:
    assert format_value(value, unit, error) == shown


@pytest.mark.parametrize(("value", "unit", "error", "shown"), [
    (3, "count", 0, "3"),
    (3, "count", None, "3"),
    (3.0, "count", 0.0, "3"),
    (41.0, "%", 0.0, "41%"),
    (12.0, "s", 0.0, "12 s"),
])
def test_a_count_or_an_exact_value_never_shows_plus_minus_zero(
        value: float, unit: str, error: float | None, shown: str) -> None:
    assert format_value(value, unit, error) == shown


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (45.45454545454545, "%", "45.45%"),
    (100.0 / 3.0, "s", "33.33 s"),
    (217.75, "s", "217.8 s"),
    (0.1 + 0.2, None, "0.3"),
    (30.0, "s", "30 s"),
])
def test_without_an_error_there_is_no_float_noise(value: float, unit: str | None, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(("value", "error", "shown"), [
    # A lab request's round trip: 1.7 ms, not 0.0017 s.
    (0.0017, None, "1.7 ms"),
    (0.001734, 0.00021, "1.7 ms ± 0.2 ms"),
    (0.0523, 0.0041, "52 ms ± 4 ms"),
])
def test_a_duration_under_a_second_is_shown_in_milliseconds(value: float, error: float | None,
                                                            shown: str) -> None:
    assert format_value(value, "s", error) == shown


def test_zero_seconds_and_words_and_nothing_read_plainly() -> None:
    assert format_value(0.0, "s", 0.5) == "0.0 s ± 0.5 s"
    assert format_value(0.0, "s") == "0 s"
    assert format_value("eu", "region") == "eu"
    assert (format_value(True, None), format_value(False, None)) == ("yes", "no")
    assert format_value(1e30, "count", 0.5) == "1000000000000000000000000000000.0 ± 0.5"
    assert format_value(None, "s", 0.5) == "unmeasured"
    assert format_value(-0.004, "s", 0.5) == "0 ms ± 500 ms"


def test_an_odd_error_reads_as_a_person_expects() -> None:
    # A negative error is a spread all the same; a non-finite one is no error.
    assert format_value(74.2, "s", -0.3) == "74.2 s ± 0.3 s"
    assert format_value(74.2, "s", float("nan")) == "74.2 s"
    assert format_value(74.2, "s", float("inf")) == "74.2 s"
    # An error far below the value's digits: at most 6 significant digits, and no '± 0'.
    assert format_value(74.2, "s", 1e-12) == "74.2000 s"


def test_a_value_that_is_not_a_number_is_unmeasured_and_infinity_reads_as_such() -> None:
    assert format_value(float("nan"), "s", 0.5) == "unmeasured"
    assert format_value(float("inf"), "s") == "∞ s"
    assert format_value(float("-inf"), "%") == "-∞%"


def test_the_unit_is_chosen_after_rounding() -> None:
    assert format_value(0.99996, "s") == "1 s"
    assert format_value(0.99996, "s", 0.0005) == "1.0000 s ± 0.0005 s"
    assert format_value(0.9994, "s") == "999.4 ms"


@pytest.mark.parametrize(("passed", "outcome", "shown"), [
    (True, None, "pass"), (False, None, "FAIL"), (True, "passed", "pass"), (False, "failed", "FAIL"),
    # Measured within its bound, but the design can break it: it did not hold.
    (False, "passed", "FAIL (design)"),
    (True, "inconclusive", "inconclusive (pass)"), (False, "inconclusive", "INCONCLUSIVE"),
])
def test_an_expectations_result_is_named_one_way(passed: bool, outcome: str | None, shown: str) -> None:
    expectation: dict[str, object] = {"expect": "x < 1", "metric": "x", "value": 0.5, "unit": "s",
                                      "passed": passed, "note": ""}
    if outcome is not None:
        expectation["outcome"] = outcome
    assert expectation_result(expectation) == shown  # type: ignore[arg-type]


def test_a_threshold_and_a_baseline_read_one_way() -> None:
    assert [format_threshold(t) for t in (0.2, 0.125, 0.05, 1.0)] == ["20%", "12.5%", "5%", "100%"]
    assert [describe_baseline(n) for n in (0, 1, 5)] == [
        "no earlier passed run", "the last passed run", "the last 5 passed runs"]
