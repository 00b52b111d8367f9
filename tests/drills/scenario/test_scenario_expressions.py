"""The expression language: parsing values into seconds and percentages, and judging actual values."""

from __future__ import annotations

import pytest

from drills.scenario import Comparison
from drills.scenario.expressions import ExpressionError, matches, parse_comparison, parse_guard, resolve


@pytest.mark.parametrize(("text", "value", "unit"), [
    ("dns.failover_time < 3m", 180.0, "s"),
    ("dns.failover_time < 500ms", 0.5, "s"),
    ("dns.failover_time<1.5h", 5400.0, "s"),
    ("users.availability >= 99.5%", 99.5, "%"),
    ("web.min_ready >= 3", 3.0, None),
    ("orders.lag_p99.eu <= -0.25", -0.25, None),
    ("dns.answer == eu", "eu", None),
    ("web.ready.zone-2 != zone-1", "zone-1", None),
])
def test_values_are_normalised(text: str, value: float | str, unit: str | None) -> None:
    comparison = parse_comparison(text)
    assert (comparison.value, comparison.unit) == (value, unit)


def test_a_key_stays_part_of_the_name() -> None:
    comparison = parse_comparison("  web_eu.ready.zone-2 >= 1 ")
    assert (comparison.subject, comparison.probe, comparison.name, comparison.op, comparison.text) == (
        "web_eu.ready.zone-2", "web_eu", "ready.zone-2", ">=", "web_eu.ready.zone-2 >= 1")


def test_a_guard_without_for_trips_at_once() -> None:
    assert parse_guard("users.ok == false").for_seconds == 0.0
    assert parse_guard("users.error_rate > 80% for 90s").for_seconds == 90.0


@pytest.mark.parametrize(("text", "message", "offset"), [
    ("dns.failover_time", "expected a comparison like 'dns.failover_time < 3m'", 0),
    ("< 3m", "expected <probe>.<name> before '<' (like 'dns.failover_time < 3m')", 0),
    ("Dns.x < 3m", "'Dns' is not a probe name (lower-case letters, digits and '_')", 0),
    ("dns.x <", "expected a value after '<'", 7),
    ("dns.x < 3 mins", "expected a duration (3m), a percentage (80%), a number or a name after '<', "
     "not '3 mins'", 8),
    ("dns.x < 101%", "expected a percentage between 0% and 100%, not '101%'", 8),
    ("dns.x > eu", "'>' compares numbers; a name like 'eu' takes == or !=", 8),
])
def test_malformed_expressions_say_what_is_wrong_and_where(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_comparison(text)
    assert (info.value.message, info.value.offset) == (message, offset)


def test_keyed_names_need_a_key() -> None:
    names = ("ready", "ready.*", "min_ready")
    assert matches("ready", names)
    assert matches("ready.zone-1", names)
    assert not matches("min_ready.zone-1", names)
    assert not matches("ready.", ("ready.*",))
    with pytest.raises(ExpressionError) as info:
        resolve(parse_comparison("web.lag_p99 < 1s"), {"web": ("lag_p99.*",)}, what="metric")
    assert info.value.hint == "'lag_p99' takes a key: 'lag_p99.<key>'"


def _c(op: str, value: float | str) -> Comparison:
    return Comparison(subject="p.m", probe="p", name="m", op=op, value=value, unit=None, text="")


@pytest.mark.parametrize(("comparison", "actual", "holds"), [
    (_c("<", 180.0), 74.2, True),
    (_c("<", 180.0), 180.0, False),
    (_c("<=", 180.0), 180.0, True),
    (_c(">=", 3.0), 2, False),
    (_c("==", 3.0), 3, True),
    (_c("!=", 3.0), 4.0, True),
    (_c("==", "eu"), "eu", True),
    (_c("==", "eu"), "EU", True),
    (_c("!=", "eu"), "us", True),
    (_c("==", "true"), True, True),
    (_c("==", "false"), True, False),
    (_c("==", 1.0), True, True),
    (_c("<", 5.0), "3", True),
    (_c("<", 5.0), "us", False),
    (_c("==", "3"), 3.0, True),
    (_c("<", 180.0), None, False),
    (_c("!=", "eu"), None, False),
    (_c("!=", 1.0), None, False),
])
def test_holds(comparison: Comparison, actual: float | str | bool | None, holds: bool) -> None:
    assert comparison.holds(actual) is holds
