"""Driving probes: periods kept on absolute deadlines, hanging samples never delaying the next,
samples streamed to samples.jsonl and read back in order, a bounded window, blind probes seen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from drills.clock import ScenarioClock
from drills.runner.sampling import Sampler, SamplingSettings, read_samples
from probes.base import Marks, Metric, Sample, SignalValue

SCALE = 100.0
"""A 1 s period is 10 ms of real time: fast, yet far above the event loop's jitter."""


class Counter:
    """A probe whose n-th sample returns n; some samples hang for ever, some raise."""

    def __init__(self, *, every: float = 1.0, hang_every: int = 0, raise_every: int = 0) -> None:
        self.name, self.period = "c", every
        self.calls = 0
        self.hang_every, self.raise_every = hang_every, raise_every

    async def sample(self) -> dict[str, Any]:
        self.calls += 1
        n = self.calls
        if self.hang_every and n % self.hang_every == 0:
            await asyncio.Event().wait()
        if self.raise_every and n % self.raise_every == 0:
            raise RuntimeError(f"sample {n} broke")
        return {"n": n}

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        return {"n": float(recent[-1].values["n"]), "seen": float(len(recent))}  # type: ignore[arg-type]

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        return {}


async def drive(tmp_path: Path, probe: Counter, seconds: float, **settings: Any) -> Sampler:
    clock = ScenarioClock(SCALE)
    sampler = Sampler({"c": (probe, "counter")}, clock, tmp_path / "samples.jsonl",  # type: ignore[dict-item]
                      settings=SamplingSettings(**settings))
    await sampler.start()
    await clock.sleep(seconds)
    await sampler.stop()
    return sampler


async def test_ticks_fall_on_absolute_deadlines_and_a_hanging_sample_delays_nothing(tmp_path: Path) -> None:
    probe = Counter(hang_every=3)
    sampler = await drive(tmp_path, probe, 30.0, sample_timeout_s=1000.0, sample_timeout_min_real_s=0)
    samples = read_samples(tmp_path / "samples.jsonl", "c")
    start = sampler.started_t
    assert start is not None
    # Every third sample hangs; the others complete, each started on its own tick: no drift, and
    # no tick waited for a hanging sample (a busy machine may make one or two late, never most).
    assert 27 <= probe.calls <= 32
    assert len(samples) == probe.calls - probe.calls // 3
    on_tick = [s for s in samples if abs(s.t - (start + round(s.t - start))) < 0.5]
    assert len(on_tick) >= 0.8 * len(samples)
    assert samples[-1].t - start >= 28.0


async def test_samples_are_streamed_as_lines_and_read_back_in_order(tmp_path: Path) -> None:
    sampler = await drive(tmp_path, Counter(), 10.0)
    lines = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"probe", "t", "real", "duration", "values"}
    assert len(lines) == sampler.states["c"].samples
    samples = read_samples(tmp_path / "samples.jsonl", "c")
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    clock_real = [s.real for s in samples]
    assert clock_real == sorted(clock_real)
    assert read_samples(tmp_path / "samples.jsonl", "other") == []


async def test_only_a_recent_window_is_kept_in_memory(tmp_path: Path) -> None:
    sampler = await drive(tmp_path, Counter(), 60.0, window_s=10.0, min_window_samples=3)
    state = sampler.states["c"]
    assert state.samples >= 40
    assert 3 <= len(state.recent) <= 12
    assert state.signals["seen"] == len(state.recent)
    assert state.recent[-1].t - state.recent[0].t <= 10.0


async def test_a_sample_that_raises_is_lost_not_fatal(tmp_path: Path) -> None:
    sampler = await drive(tmp_path, Counter(raise_every=2), 10.0)
    state = sampler.states["c"]
    assert state.lost >= 4
    assert state.samples >= 4
    assert state.error is not None
    assert "RuntimeError: sample" in state.error


async def test_a_probe_that_hangs_for_ever_goes_blind(tmp_path: Path) -> None:
    clock = ScenarioClock(SCALE)
    probe = Counter(hang_every=1)
    sampler = Sampler({"c": (probe, "counter")}, clock, tmp_path / "samples.jsonl",  # type: ignore[dict-item]
                      settings=SamplingSettings(sample_timeout_s=5.0, sample_timeout_min_real_s=0))
    await sampler.start()
    try:
        await clock.sleep(4.0)
        assert not sampler.blind("c", clock.now())
        await clock.sleep(6.0)
        assert sampler.blind("c", clock.now())
    finally:
        await sampler.stop()
    assert sampler.states["c"].lost >= 1
    assert "ran past 5s" in (sampler.states["c"].error or "")


async def test_wait_until_returns_when_the_predicate_holds_or_false_at_the_timeout(tmp_path: Path) -> None:
    clock = ScenarioClock(SCALE)
    sampler = Sampler({"c": (Counter(), "counter")}, clock, tmp_path / "samples.jsonl")  # type: ignore[dict-item]
    await sampler.start()
    try:
        assert await sampler.wait_until(lambda: (sampler.signal("c", "n") or 0) >= 3, 30.0)
        before = clock.now()
        assert not await sampler.wait_until(lambda: False, 5.0)
        assert 5.0 <= clock.now() - before < 30.0
    finally:
        await sampler.stop()


async def test_live_signals_are_computed_over_the_last_30_seconds_only(tmp_path: Path) -> None:
    # A rate such as users.error_rate must follow what users see now: a guard's "for 8m" asks that
    # the rate stay high for 8 minutes, so a rate averaged over those same 8 minutes would trip it
    # only after about twice that.
    probe = Counter()
    sampler = await drive(tmp_path, probe, 90.0)
    seen = sampler.states["c"].signals["seen"]
    assert isinstance(seen, float)
    assert 29 <= seen <= 32, f"{seen} samples of a 1 s probe in the live window"
