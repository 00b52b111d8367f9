"""The scenario clock: scenario seconds on the environment's clock.

Scenario durations, probe periods and metrics are in real-world units. A lab's clock runs
``time_scale`` times faster than real time, so drill runs the lab's drills on that clock: a
``wait: 5m`` lasts 10 real seconds at scale 30, and a failover that took 2 real seconds is reported
as 60 s.
"""

from __future__ import annotations

import asyncio
import time


class ScenarioClock:
    """Scenario seconds since the run started."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._mono0 = time.monotonic()
        self._real0 = time.time()

    def now(self) -> float:
        """Scenario seconds since the clock started."""
        return (time.monotonic() - self._mono0) * self.time_scale

    def real(self, t: float | None = None) -> float:
        """Real Unix time of scenario instant ``t`` (now if None)."""
        if t is None:
            return self._real0 + (time.monotonic() - self._mono0)
        return self._real0 + t / self.time_scale

    def to_real(self, seconds: float) -> float:
        """A scenario duration in real seconds."""
        return seconds / self.time_scale

    async def sleep(self, seconds: float) -> None:
        """Sleep a scenario duration."""
        await asyncio.sleep(max(0.0, seconds) / self.time_scale)

    async def sleep_until(self, t: float) -> None:
        """Sleep until scenario instant ``t`` (at once if it has passed)."""
        await self.sleep(t - self.now())
