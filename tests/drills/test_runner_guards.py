"""A guard's progress as the live view and the run's reason show it: its signal with the unit of the
guard's bound, without float noise."""

from __future__ import annotations

from drills.runner.guards import GuardState
from drills.scenario.expressions import parse_guard


def test_a_holding_guard_shows_its_signal_rounded_with_the_unit_of_its_bound() -> None:
    state = GuardState(parse_guard("users.error_rate > 80% for 8m"), held_since=10.0, value=45.45454545454545)
    assert state.describe(now=70.0) == "holding for 60.0s of 480s (now 45.45%)"
    assert GuardState(parse_guard("users.error_rate > 80% for 8m"), value=12.5).describe(now=0.0) == (
        "ok (now 12.5%)")
    assert GuardState(parse_guard("dns.answer == eu"), value="us").describe(now=0.0) == "ok (now us)"
