"""The Chaos Toolkit probes when the drill must stop (``drill abort``, its lock lost): the steady state
is reported not met rather than raised, so that the experiment deviates instead of failing and Chaos
Toolkit's rollbacks still run."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import pytest
from pydantic import BaseModel

from drills.chaostoolkit import probes
from drills.chaostoolkit.session import DrillStopped
from drills.clock import ScenarioClock
from probes.base import JSONValue, Sample, SignalValue

T = TypeVar("T")


class _NeverSteady:
    """A probe whose system never settles: the faults are still in place."""

    SIGNALS: ClassVar[tuple[str, ...]] = ("steady",)
    closed = False

    class Spec(BaseModel):
        pass

    def __init__(self, name: str, spec: Spec, targets: object, *, every: float) -> None:
        self.name, self.period = name, every

    async def sample(self) -> Mapping[str, JSONValue]:
        return {"steady": False}

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        return {"steady": False}

    async def aclose(self) -> None:
        type(self).closed = True


class _AbortedRun:
    """A run that ``drill abort`` has asked to stop: every sleep raises, as the session's does."""

    targets = None
    clock = ScenarioClock(1.0)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(work)

    async def sleep(self, seconds: float) -> None:
        raise DrillStopped("the drill must stop: drill abort")


def test_the_steady_state_is_not_met_rather_than_an_error_once_the_drill_must_stop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "current", lambda configuration: _AbortedRun())
    monkeypatch.setattr(probes, "probe_types", lambda: {"never": _NeverSteady})
    assert probes.signal("web", "never", {}, 5.0, "steady", {}) is False
    assert _NeverSteady.closed
