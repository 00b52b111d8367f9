"""Driving the probes: each on its own period, samples streamed to ``samples.jsonl``, live signals.

Every probe has its own ticker on the scenario clock. Ticks fall on absolute deadlines (start +
k * period), so lateness never accumulates into drift; each tick launches ``sample()`` as a task of
its own and does not wait for it, so a measurement hanging on a dead endpoint never delays the next
one. In-flight samples per probe are bounded, and one that outlives :attr:`SamplingSettings.sample_timeout_s`
is cancelled and counted as lost.

A completed sample is appended to ``samples.jsonl`` at once (flushed at least twice a real second)
and to a short window of recent samples from which the probe computes its live signals; listeners
(guards, condition waits, the live view) are told after each one. A sample that raised or ran past
its timeout is written as a blind one (:data:`probes.base.BLIND`, saying why) and given to nobody
else: no signal comes from it. Memory stays bounded however long the drill: the full history lives
only in the file, which :func:`read_samples` reads back for the metrics.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from drills.clock import ScenarioClock
from probes.base import BLIND, Probe, Sample, SignalValue


@dataclass(frozen=True)
class SamplingSettings:
    """How probes are driven. Durations in scenario seconds unless the name says real."""

    window_s: float = 30.0
    """Recent samples kept per probe for its signals: a rate such as ``error_rate`` is computed over
    this window. It stays short and fixed so that a live rate follows what users see now; how long a
    condition must last is the guard's ``for``, which counts held samples and needs no history."""
    min_window_samples: int = 5
    """Samples kept whatever their age, so that a slow probe still has a history to compute from."""
    sample_timeout_s: float = 30.0
    """A sample still running after this long is cancelled and counted as lost. Longer than any
    probe's own request timeout, so that a probe which honours its timeout is never cut short."""
    sample_timeout_min_real_s: float = 2.0
    """The sample timeout in real seconds is never shorter than this: on a fast lab clock 30 s is a
    quarter of a real second, less than a busy machine may stall a process for."""
    max_in_flight: int = 64
    """Samples of one probe running at once; past it a tick is skipped (and counted) rather than
    piling up requests against an endpoint that hangs."""
    stall_real_s: float = 0.5
    """Real seconds a busy machine may stall a lab unremarked: a blind stretch inside a metric's window
    no longer than this (or than one and a half periods) leaves the metric measured
    (:func:`probes.blindness.tolerance`). On a lab's clock at scale 60 it is 30 s."""
    gap_real_s: float = 2.0
    """Real seconds drill's own process may stall its probes (no sample taken, none failed) before the
    gap counts as blind; as long as the sample timeout's floor. A probe stuck on its target is no gap:
    its samples fail, each recorded when it times out."""
    flush_real_s: float = 0.5
    """Real seconds between flushes of ``samples.jsonl``: a crash loses at most this much."""


@dataclass(eq=False)
class ProbeState:
    """One probe being driven, as the runner and the live view see it."""

    name: str
    kind: str
    probe: Probe
    period: float
    window_s: float
    recent: list[Sample] = field(default_factory=list)
    """Recent completed samples, sorted by ``t``."""
    signals: dict[str, SignalValue] = field(default_factory=dict)
    """The probe's live signals after its latest completed sample."""
    samples: int = 0
    lost: int = 0
    """Samples that raised or ran past the sample timeout."""
    skipped: int = 0
    """Ticks that launched nothing, because too many samples were in flight or the loop fell behind."""
    last_completed: float | None = None
    """Scenario time at which the latest sample completed."""
    last_measured: float | None = None
    """Scenario time at which the latest sample that measured (was not blind) completed."""
    error: str | None = None
    """The latest sample's or signals' failure, for the live view (a probe should never raise)."""
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def steady(self) -> bool:
        """Whether the probe reports the healthy steady state."""
        return self.signals.get("steady") is True


Listener = Callable[[ProbeState, Sample], None]
"""Called after each completed sample, with the probe's state already updated."""


class Sampler:
    """Drives a set of probes and streams their samples to ``<run dir>/samples.jsonl``."""

    def __init__(self, probes: Mapping[str, tuple[Probe, str]], clock: ScenarioClock, path: Path, *,
                 settings: SamplingSettings = SamplingSettings()) -> None:
        """``probes`` maps each probe name to the built probe and its kind."""
        self.clock = clock
        self.path = path
        self.settings = settings
        self.states = {
            name: ProbeState(name=name, kind=kind, probe=probe, period=probe.period,
                             window_s=settings.window_s)
            for name, (probe, kind) in probes.items()
        }
        self.started_t: float | None = None
        self.stopped_t: float | None = None
        self._listeners: list[Listener] = []
        self._tickers: list[asyncio.Task[None]] = []
        self._file: IO[str] | None = None
        self._flushed = 0.0

    async def start(self) -> None:
        """Open the samples file and start every probe's ticker."""
        self._file = self.path.open("a", encoding="utf-8")
        self.started_t = self.clock.now()
        for state in self.states.values():
            self._tickers.append(asyncio.create_task(self._tick(state), name=f"probe {state.name}"))

    async def stop(self) -> None:
        """Stop the tickers, cancel samples in flight, close the file and the probes."""
        if self.stopped_t is not None:
            return
        self.stopped_t = self.clock.now()
        for task in self._tickers:
            task.cancel()
        pending = [t for s in self.states.values() for t in s.in_flight]
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tickers, *pending, return_exceptions=True)
        if self._file is not None:
            self._file.close()
        for state in self.states.values():
            with contextlib.suppress(Exception):
                # A probe that fails to close must not cost the run its record.
                await state.probe.aclose()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every completed sample; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def signal(self, probe: str, name: str) -> SignalValue:
        """The live value of ``probe.name`` (None while unknown)."""
        return self.states[probe].signals.get(name)

    def all_steady(self) -> bool:
        """Whether every probe reports its steady state."""
        return all(state.steady for state in self.states.values())

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """Return True as soon as ``predicate`` holds (checked now and after each sample), False once
        ``timeout_s`` scenario seconds have passed without it (None: wait for ever)."""
        if predicate():
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def check(_state: ProbeState, _sample: Sample) -> None:
            if not done.done() and predicate():
                done.set_result(True)

        unlisten = self.listen(check)
        try:
            timeout = None if timeout_s is None else self.clock.to_real(timeout_s)
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            return False
        finally:
            unlisten()

    @property
    def sample_timeout_s(self) -> float:
        """The sample timeout in effect, in scenario seconds (the real-time floor applied)."""
        floor = self.settings.sample_timeout_min_real_s * self.clock.time_scale
        return max(self.settings.sample_timeout_s, floor)

    def blind(self, probe: str, now: float) -> bool:
        """Whether ``probe`` has stopped measuring: no sample that measured (one that failed is blind)
        completed for three periods beyond the sample timeout (a sample may legitimately take up to
        that long to complete)."""
        state = self.states[probe]
        last = state.last_measured if state.last_measured is not None else self.started_t
        if last is None:
            return False
        return now - last > 3 * state.period + self.sample_timeout_s

    async def _tick(self, state: ProbeState) -> None:
        start = self.clock.now()
        tick = 0
        while True:
            await self.clock.sleep_until(start + tick * state.period)
            if len(state.in_flight) < self.settings.max_in_flight:
                task = asyncio.create_task(self._take(state), name=f"sample {state.name}")
                state.in_flight.add(task)
                task.add_done_callback(state.in_flight.discard)
            else:
                state.skipped += 1
            tick += 1
            # Absolute deadlines: a loop that fell more than a period behind skips the missed ticks
            # instead of firing them in a burst.
            behind = self.clock.now() - (start + tick * state.period)
            if behind > state.period:
                missed = math.floor(behind / state.period)
                tick += missed
                state.skipped += missed

    async def _take(self, state: ProbeState) -> None:
        t = self.clock.now()
        try:
            values = await asyncio.wait_for(state.probe.sample(), self.clock.to_real(self.sample_timeout_s))
        except TimeoutError:
            self._lose(state, t, f"a sample ran past {self.sample_timeout_s:g}s and was cancelled")
            return
        except Exception as exc:  # a probe's bug must not stop the drill: the sample is lost
            self._lose(state, t, f"sample failed: {type(exc).__name__}: {exc}")
            return
        end = self.clock.now()
        self._record(state, Sample(probe=state.name, t=t, real=self.clock.real(t), values=dict(values),
                                   duration=end - t), end)

    def _lose(self, state: ProbeState, t: float, why: str) -> None:
        """A sample that gave nothing: counted, and recorded as blind (no signal comes from it)."""
        state.lost += 1
        state.error = why
        end = self.clock.now()
        self._write(Sample(probe=state.name, t=t, real=self.clock.real(t), values={BLIND: why},
                           duration=end - t))

    def _record(self, state: ProbeState, sample: Sample, end: float) -> None:
        self._write(sample)
        state.samples += 1
        state.last_completed = end
        if sample.blind is None:
            state.last_measured = end
        bisect.insort(state.recent, sample, key=lambda s: s.t)
        horizon = sample.t - state.window_s
        excess = len(state.recent) - self.settings.min_window_samples
        drop = 0
        while drop < excess and state.recent[drop].t < horizon:
            drop += 1
        if drop:
            del state.recent[:drop]
        try:
            state.signals = dict(state.probe.signals(state.recent))
        except Exception as exc:  # as above: keep the last good signals and say why they are stale
            state.error = f"signals failed: {type(exc).__name__}: {exc}"
        for listener in list(self._listeners):
            listener(state, sample)

    def _write(self, sample: Sample) -> None:
        if self._file is None or self._file.closed:
            return
        self._file.write(json.dumps(
            {"probe": sample.probe, "t": round(sample.t, 4), "real": round(sample.real, 6),
             "duration": round(sample.duration, 4), "values": sample.values},
            separators=(",", ":"), default=str) + "\n")
        now = time.monotonic()
        if now - self._flushed >= self.settings.flush_real_s:
            self._file.flush()
            self._flushed = now


def read_samples(path: Path, probe: str) -> list[Sample]:
    """Every sample of ``probe`` in a samples file, sorted by ``t`` (they complete out of order)."""
    return sorted(_iter_samples(path, probe), key=lambda s: s.t)


def _iter_samples(path: Path, probe: str) -> Iterator[Sample]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("probe") != probe:
                continue
            yield Sample(probe=probe, t=float(data["t"]), real=float(data["real"]),
                         values=data.get("values") or {}, duration=float(data.get("duration", 0.0)))
