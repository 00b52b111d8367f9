"""The lab's clock: real-world settings, compressed time.

Every lab setting is written in real-world seconds (a 30 s Traffic Manager interval, a 5 min node
failure timeout). The lab's clock runs ``time_scale`` times faster than real time, so the lab
rehearses what those settings would do in production, in seconds. Lab time is counted from the
lab's start; the lab's wall clock (Kubernetes timestamps) is the real start instant plus lab time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime


class LabClock:
    """Converts between real and lab time and schedules work in lab seconds."""

    def __init__(self, time_scale: float) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._real0 = time.time()
        self._mono0 = time.monotonic()

    @property
    def started_at(self) -> float:
        """The real Unix time at which lab time was 0."""
        return self._real0

    def now(self) -> float:
        """Lab seconds since the lab started."""
        return (time.monotonic() - self._mono0) * self.time_scale

    def real(self) -> float:
        """Real Unix time, on the same monotonic base as :meth:`now` (no NTP steps between them)."""
        return self._real0 + (time.monotonic() - self._mono0)

    def wall(self) -> datetime:
        """The lab's wall clock, for timestamps inside the lab world (creationTimestamp ...)."""
        return datetime.fromtimestamp(self._real0 + self.now(), tz=UTC)

    def to_real(self, lab_seconds: float) -> float:
        """A lab duration in real seconds."""
        return lab_seconds / self.time_scale

    async def sleep(self, lab_seconds: float) -> None:
        """Sleep for a lab duration."""
        await asyncio.sleep(max(0.0, lab_seconds) / self.time_scale)

    def call_later(self, lab_seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Run ``callback`` on the running loop after a lab duration."""
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, lab_seconds) / self.time_scale, callback)


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp format (seconds precision, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
