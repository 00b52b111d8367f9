"""Blind intervals: when a probe saw nothing, and which metrics that leaves unmeasured.

A probe is blind while its samples measure nothing: a sample that failed (a timeout, a refused
connection, a dead server, an API error) says so with the reserved value ``blind`` (the reason,
:data:`probes.base.BLIND`) and carries no signal values; a sample the runner lost (it ran past the
sample timeout, or the probe raised) is recorded the same way; and a stretch where samples were due
but none was taken (the probe was stuck, the machine stalled) is a gap. :func:`blind_intervals` finds
the maximal runs of those in scenario time: from the first blind (or missing) sample to the next one
that measured.

A metric depends on a part of the run, its **window** (:func:`metric_window`, from the kind a probe
declares per metric in ``WINDOWS``; by default from incident start to the end of the trial). When a
blind interval overlaps the window by more than :func:`tolerance` (one and a half of the probe's
periods, or a busy machine's stall on a lab's fast clock), the metric is **unmeasured**, whatever
the probe computed from the samples left, with the reason (:func:`unmeasured_if_blind`): a value
read around a hole could miss exactly what the expectation is about (a dip of replicas, an answer
that flipped back), and an unmeasured expectation fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from probes.base import Marks, Metric, Sample
from reports.base import format_t

TOLERANCE_PERIODS = 1.5
"""How much of a metric's window may be blind, in the probe's periods: one lost sample between two
that measured (a blind stretch of one period) is tolerated, as every instant a metric derives is known
only to a period anyway; two in a row are not."""

MetricWindow = Literal["incident", "failover", "failback", "steady"]
"""The part of a trial a metric depends on (scenario seconds):

- ``incident`` (the default): from incident start to the end of the trial (the whole trial when no
  fault was applied): floors, rates, downtimes, lags;
- ``failover``: from incident start until the change was observed (the metric's value and error after
  incident start), or to recovery start (the end of the trial) when it was not;
- ``failback``: from recovery start until the change was observed, or to the end of the trial when it
  was not; none when nothing was undone;
- ``steady``: the steady state before the incident (the whole trial when no fault was applied).
"""


@dataclass(frozen=True, slots=True)
class BlindInterval:
    """A stretch of scenario time ``[start, end]`` in which a probe measured nothing: ``samples`` blind
    samples (0 for a gap where none was taken), ``reason`` the first one's (or why none was taken)."""

    start: float
    end: float
    samples: int
    reason: str

    @property
    def length(self) -> float:
        return self.end - self.start

    def overlap(self, lo: float, hi: float) -> float:
        """How long this interval lies inside ``[lo, hi]``."""
        return max(0.0, min(self.end, hi) - max(self.start, lo))

    def describe(self, probe: str) -> str:
        """``probe web_eu was blind from 00:12.0 to 00:40.5 (28 samples failed: <reason>)``."""
        what = (f"{self.samples} sample{'s' if self.samples != 1 else ''} failed: {self.reason}"
                if self.samples else self.reason)
        return f"probe {probe} was blind from {format_t(self.start)} to {format_t(self.end)} ({what})"


GAP_REASON = "no sample was taken though samples were due (the probe or the machine was stuck)"


def tolerance(period: float, stall: float = 0.0) -> float:
    """How long a blind stretch may overlap a window, and a gap between samples may last, unremarked:
    :data:`TOLERANCE_PERIODS` periods, or ``stall`` (scenario seconds) if longer: on a lab's fast clock
    a busy machine's stall of a few hundred real milliseconds is tens of scenario seconds, and the
    lab stalls with it."""
    return max(TOLERANCE_PERIODS * period, stall)


def blind_intervals(samples: Sequence[Sample], period: float, *, start: float, end: float,
                    stall: float = 0.0) -> list[BlindInterval]:
    """The maximal blind stretches of ``[start, end]`` in ``samples`` (sorted by ``t``; those outside
    are ignored). A run of blind samples lasts from the first one's ``t`` to the next measuring
    sample's (or ``end``); a tick skipped while a measurement was in flight counts for neither. A gap
    between two samples wider than :func:`tolerance` of ``stall`` is blind from when the next sample
    was due (a period after the previous) until the next one, and so is the stretch after the last
    sample up to ``end`` (a narrower one is a tick's jitter or drill's own process stalled: a probe
    stuck on its target leaves failed samples, each recorded when it times out). Touching stretches
    merge."""
    inside = [s for s in samples if start <= s.t <= end and not s.skipped]
    widest = tolerance(period, stall)
    """The widest gap that is no blindness (``stall``: how long the drill's own process may stall)."""
    found: list[BlindInterval] = []

    def add(lo: float, hi: float, count: int, reason: str) -> None:
        if hi <= lo:
            return
        if found and lo <= found[-1].end:
            last = found[-1]
            found[-1] = BlindInterval(min(last.start, lo), max(last.end, hi), last.samples + count,
                                      last.reason if last.samples or not count else reason)
            return
        found.append(BlindInterval(lo, hi, count, reason))

    # A first sample is due within a period of ``start``: a probe that took none is blind from then.
    previous: float = start
    run_start: float | None = None
    run_count = 0
    run_reason = ""
    for sample in inside:
        if run_start is None and sample.t - previous > widest:  # (an open run spans the gap)
            add(previous + period, sample.t, 0, GAP_REASON)
        previous = sample.t
        reason = sample.blind
        if reason is not None:
            if run_start is None:
                run_start, run_count, run_reason = sample.t, 0, reason
            run_count += 1
            continue
        if run_start is not None:
            add(run_start, sample.t, run_count, run_reason)
            run_start = None
    if run_start is not None:
        add(run_start, end, run_count, run_reason)
    elif end - previous > widest:
        add(previous + period, end, 0, GAP_REASON)
    return found


def metric_window(kind: MetricWindow, metric: Metric, marks: Marks, *, trial_start: float
                  ) -> tuple[float, float] | None:
    """The window ``[lo, hi]`` of a metric of ``kind`` (see :data:`MetricWindow`); None: none."""
    incident, recovery, ended = marks.incident_start, marks.recovery_start, marks.ended
    observed = (float(metric.value) + (metric.error or 0.0)
                if isinstance(metric.value, int | float) else None)
    if kind == "failback":
        if recovery is None:
            return None
        return (recovery, min(ended, recovery + observed) if observed is not None else ended)
    if incident is None:
        return (trial_start, ended)
    if kind == "steady":
        return (trial_start, incident)
    if kind == "failover":
        stop = recovery if recovery is not None else ended
        return (incident, min(ended, incident + observed) if observed is not None else stop)
    return (incident, ended)


def window_kind(windows: Mapping[str, MetricWindow], name: str) -> MetricWindow:
    """The window a probe declares for metric ``name`` (``failover_time.paris`` takes that of
    ``failover_time`` unless named itself); ``incident`` when it declares none."""
    return windows.get(name) or windows.get(name.split(".", 1)[0]) or "incident"


def unmeasured_if_blind(metric: Metric, window: tuple[float, float] | None,
                        intervals: Sequence[BlindInterval], *, probe: str, period: float,
                        stall: float = 0.0) -> Metric:
    """``metric``, or unmeasured saying why when a blind interval overlaps its window beyond
    :func:`tolerance`; the probe's own note, which may rest on the samples left, follows."""
    if window is None:
        return metric
    lo, hi = window
    blind = [i for i in intervals if i.overlap(lo, hi) > tolerance(period, stall)]
    if not blind:
        return metric
    reason = "; ".join(i.describe(probe) for i in blind)
    note = f"{reason}; from the samples left: {metric.note}" if metric.note else reason
    return Metric(None, metric.unit, note=note)


def blind_metrics(metrics: Mapping[str, Metric], samples: Sequence[Sample], marks: Marks, *,
                  windows: Mapping[str, MetricWindow], probe: str, period: float, start: float,
                  stall: float = 0.0, gap: float = 0.0) -> tuple[dict[str, Metric], list[BlindInterval]]:
    """One probe's metrics of one trial (its samples from ``start`` to ``marks.ended``) with those whose
    window its blind intervals overlap made unmeasured; and those intervals. Without an incident the
    windows start at the probe's first sample that measured: before it, the drill waited for the
    steady state and expected nothing. ``stall``: how long a blind stretch may overlap a window, and
    ``gap`` how long samples may be missing, unremarked (scenario seconds; see :func:`tolerance`)."""
    intervals = blind_intervals(samples, period, start=start, end=marks.ended, stall=max(stall, gap))
    first = next((s.t for s in samples if start <= s.t and s.blind is None), start)
    out = {name: unmeasured_if_blind(
               metric, metric_window(window_kind(windows, name), metric, marks, trial_start=first),
               intervals, probe=probe, period=period, stall=stall)
           for name, metric in metrics.items()}
    return out, intervals
