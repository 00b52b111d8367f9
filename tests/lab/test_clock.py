"""The lab's clock: its wall clock never runs ahead of the real one, while lab intervals stay lab time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drills.lab.clock import LAB_LIFETIME_S, LabClock


class FakeTime:
    """A real and a monotonic clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.elapsed = 0.0
        self._start = start

    def real(self) -> float:
        return self._start + self.elapsed

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed


@pytest.mark.parametrize("scale", [1.0, 30.0, 60.0, 1000.0])
def test_the_wall_clock_is_never_ahead_of_the_real_one(scale: float) -> None:
    fake = FakeTime(datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp())
    clock = LabClock(scale, real=fake.real, monotonic=fake.monotonic)
    for elapsed in (0.0, 8 * 60.0, 30 * 60.0, 3600.0, 86_400.0, LAB_LIFETIME_S - 1, LAB_LIFETIME_S + 1,
                    10 * LAB_LIFETIME_S):
        fake.elapsed = elapsed
        assert clock.wall().timestamp() <= fake.real(), (scale, elapsed)
        assert clock.now() == pytest.approx(elapsed * scale)


def test_intervals_between_wall_stamps_are_lab_time_until_the_lifetime() -> None:
    fake = FakeTime(datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp())
    clock = LabClock(60.0, real=fake.real, monotonic=fake.monotonic)
    first = clock.wall()
    fake.elapsed = 8 * 60.0  # 8 real minutes: 8 lab hours
    assert clock.wall() - first == timedelta(hours=8)
    assert clock.wall() < datetime.fromtimestamp(fake.real(), tz=UTC)
    fake.elapsed = 2 * LAB_LIFETIME_S  # past the lifetime the wall clock is the real one: never ahead
    assert clock.wall() == datetime.fromtimestamp(fake.real(), tz=UTC)


def test_at_real_speed_the_wall_clock_is_the_real_one() -> None:
    fake = FakeTime(1_800_000_000.0)
    clock = LabClock(1.0, real=fake.real, monotonic=fake.monotonic)
    fake.elapsed = 5.0
    assert clock.wall().timestamp() == 1_800_000_005.0
    assert clock.started_at == 1_800_000_000.0
