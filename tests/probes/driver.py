"""A ticker that samples a probe as the runner does, for tests that drive probes against a lab.

Not a ``conftest.py`` (see probeservers.py): test modules import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from drills.clock import ScenarioClock
from probes.base import Probe, Sample

DEADLINE_S = 20.0
"""Real seconds a test waits for the lab to do something that takes it well under one."""


class Driver:
    """Samples a probe every period as the runner does (launched on absolute ticks, never awaited by the
    ticker) and lets a test await a condition on what was sampled."""

    def __init__(self, probe: Probe, clock: ScenarioClock, *, period: float = 1.0) -> None:
        self.probe = probe
        self.clock = clock
        self.period = period
        self.samples: list[Sample] = []
        self._changed = asyncio.Condition()
        self._ticker: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Driver:
        self._ticker = asyncio.create_task(self._tick(), name="test ticker")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._ticker is not None
        self._ticker.cancel()
        await asyncio.gather(self._ticker, *self._pending, return_exceptions=True)
        close = getattr(self.probe, "aclose", None)
        if close is not None:
            await close()

    async def until(self, condition: Callable[[list[Sample]], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: condition(self.samples)), DEADLINE_S)

    async def _tick(self) -> None:
        start = self.clock.now()
        tick = 0
        while True:
            await self.clock.sleep_until(start + tick * self.period)
            task = asyncio.create_task(self._take())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            tick += 1

    async def _take(self) -> None:
        t = self.clock.now()
        values = await self.probe.sample()
        sample = Sample("probe", t, self.clock.real(t), values, duration=self.clock.now() - t)
        async with self._changed:
            self.samples.append(sample)
            self.samples.sort(key=lambda s: s.t)
            self._changed.notify_all()
