"""Placing a trial's first fault at a phase of the probe cycle: the arithmetic, exactly."""

from __future__ import annotations

import itertools

import pytest

from drills.runner.probecycle import CycleSchedule, trial_phases

# A 30 s interval at time scale 30: one real second per cycle.
CYCLE = CycleSchedule(endpoint="us", interval=30.0, time_scale=30.0, next_probe_real=1000.0)


def test_phases_are_evenly_spread_and_rotated_by_the_seed() -> None:
    phases = trial_phases(4, seed=12)
    assert phases == trial_phases(4, seed=12)
    assert phases != trial_phases(4, seed=13)
    ordered = sorted(phases)
    gaps = [b - a for a, b in itertools.pairwise(ordered)] + [ordered[0] + 1 - ordered[-1]]
    assert gaps == pytest.approx([0.25] * 4)
    assert all(0 <= p < 1 for p in phases)
    assert trial_phases(1, seed=12) == phases[:1]


@pytest.mark.parametrize(("now", "phase", "start"), [
    (999.5, 0.0, 1000.0),    # the next deadline
    (999.5, 0.75, 999.75),   # the previous deadline's cycle is still ahead at phase 0.75
    (999.5, 0.25, 1000.25),  # phase 0.25 of this cycle has passed: the next cycle's
    (1003.1, 0.5, 1003.5),   # deadlines continue a whole number of intervals on
    (999.99, 0.0, 1000.0),   # 10 ms is enough lead
    (999.995, 0.0, 1001.0),  # 5 ms is not: the next cycle's
])
def test_the_start_is_the_soonest_instant_at_the_phase(now: float, phase: float, start: float) -> None:
    assert CYCLE.start_for(phase, now_real=now, lead_real_s=0.01) == pytest.approx(start)
    assert CYCLE.phase_at(start) == pytest.approx(phase, abs=1e-9)


def test_the_phase_of_an_instant() -> None:
    assert CYCLE.phase_at(997.0) == pytest.approx(0.0)
    assert CYCLE.phase_at(1000.81) == pytest.approx(0.81)
    assert CYCLE.phase_at(998.4) == pytest.approx(0.4)


def test_how_late_an_instant_is_past_a_phase() -> None:
    assert CYCLE.late_by(0.25, 1000.3) == pytest.approx(0.05)
    assert CYCLE.late_by(0.95, 1001.02) == pytest.approx(0.07)
    # Early is late by almost a whole cycle: never mistaken for on time.
    assert CYCLE.late_by(0.5, 1000.49) == pytest.approx(0.99)
