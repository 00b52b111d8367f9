"""The lab's clock: real-world settings, compressed time.

Every lab setting is written in real-world seconds (a 30 s Traffic Manager interval, a 5 min node
failure timeout). The lab's clock runs ``time_scale`` times faster than real time, so the lab
rehearses what those settings would do in production, in seconds. Lab time is counted from the
lab's start.

The lab's wall clock (every timestamp the lab writes: Kubernetes, ARM, Cosmos DB ``_ts``) advances in
lab time, so that the interval between two timestamps is the lab interval between the two moments.
Running faster than the real clock, it must start behind it so as never to be ahead of it (clients
compare timestamps with their own clock: kubectl prints a future instant's age as ``<invalid>``). Its
epoch (lab time 0) is therefore ``(time_scale - 1) x`` :data:`LAB_LIFETIME_S` before the real start, but
never before :data:`EARLIEST_EPOCH` (at high scales the lifetime is shorter instead). A lab that runs
longer than its lifetime has caught up with the real clock: from then on its wall clock is the real
clock, and intervals between new timestamps are real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

LAB_LIFETIME_S = 30 * 86_400.0
"""How long (real seconds) the wall clock keeps lab time before it reaches the real clock."""
EARLIEST_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
"""The wall clock never starts before this instant (no negative Unix times, no 20th-century objects)."""


class LabClock:
    """Converts between real and lab time and schedules work in lab seconds.

    ``real`` and ``monotonic`` are the real clocks it reads (the system's unless a test gives others).
    """

    def __init__(self, time_scale: float, *, real: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._real0 = real()
        self._mono0 = monotonic()
        lead = max(0.0, time_scale - 1.0) * LAB_LIFETIME_S
        self._epoch = self._real0 - min(lead, max(0.0, self._real0 - EARLIEST_EPOCH))

    @property
    def started_at(self) -> float:
        """The real Unix time at which lab time was 0."""
        return self._real0

    @property
    def epoch(self) -> float:
        """The wall clock's Unix time at lab time 0 (at or before :attr:`started_at`)."""
        return self._epoch

    def now(self) -> float:
        """Lab seconds since the lab started."""
        return (self._monotonic() - self._mono0) * self.time_scale

    def real(self) -> float:
        """Real Unix time, on the same monotonic base as :meth:`now` (no NTP steps between them)."""
        return self._real0 + (self._monotonic() - self._mono0)

    def wall(self) -> datetime:
        """The lab's wall clock, for timestamps inside the lab world (creationTimestamp ...): the epoch
        plus lab time, never ahead of the real clock."""
        return datetime.fromtimestamp(min(self._epoch + self.now(), self.real()), tz=UTC)

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
