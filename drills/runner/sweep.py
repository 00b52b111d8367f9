"""A sweep of trials: every metric's distribution over them, and expectations that must hold in all.

One outage is one sample: how long Traffic Manager takes to notice depends on where in its probe
cycle the outage lands, so a run repeats its steps in several trials, each starting its incident at
another phase (:mod:`drills.runner.probecycle`). Each trial's probes compute their metrics over that
trial's samples alone; this module combines them.

An expectation holds only if it holds in EVERY trial; its outcome is the worst of the trials' (failed,
then inconclusive, then passed); its worst trial is a failing one (an unmeasured value first, then the
value farthest past the bound), or, when all pass, the one closest to failing.
A metric's ``value`` is that of the worst trial of the first expectation on it, so the value shown
beside an expectation is the one that decided it; a metric no expectation names takes the median
over trials (the upper middle one of an even count; no direction says which end is worse), with the
largest error of any trial; a metric unmeasured in any trial is unmeasured.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from drills.runner.verdict import ExpectationResult
from drills.scenario import Comparison
from probes.base import Metric
from probes.blindness import BlindInterval
from reports.base import describe_trial

DEFAULT_LAB_TRIALS = 4
"""Trials of a lab run unless ``--trials`` says otherwise. Four phases a quarter of the cycle apart,
each started at most :data:`~drills.runner.probecycle.PLACEMENT_TOLERANCE` (0.05) late, leave no gap
wider than 0.3 of the probe cycle: a range of phases that breaks a promise and spans a third of the
cycle or more (monitor settings one interval too slow for the RTO break it for ``interval - slack``
of every ``interval``; the issue's 30 s / 10 s / 5 design for a third) holds at least one trial. More
trials cost a trial's time each; four of us-outage fit in a minute of real time at the lab's default
scale."""

_OUTCOME_RANK = {"passed": 0, "inconclusive": 1, "failed": 2}
"""How bad a trial's outcome is: a failing trial decides an expectation before an inconclusive one."""

Judge = Callable[[Sequence[Comparison], Mapping[str, Metric]], list[ExpectationResult]]


@dataclass(frozen=True)
class TrialMetrics:
    """One trial as the sweep combines it: its number (from 1), phase and metrics, and each probe's
    blind intervals in it (:mod:`probes.blindness`)."""

    index: int
    phase: float | None
    metrics: Mapping[str, Metric]
    blind: Mapping[str, Sequence[BlindInterval]] = field(default_factory=dict)


@dataclass(frozen=True)
class Spread:
    """A metric over the trials: ``values`` by trial (None: unmeasured there); min, median and max of
    the numbers among them; the trial that decided the metric's value and its phase."""

    values: list[float | str | None]
    min: float | None
    median: float | None
    max: float | None
    worst_trial: int | None
    worst_phase: float | None


@dataclass(frozen=True)
class Sweep:
    """The combined result: a metric per name (its decided value), its spread, the expectations."""

    metrics: dict[str, Metric]
    spreads: dict[str, Spread]
    expectations: list[ExpectationResult]
    worst: list[tuple[int, float | None] | None]
    """Per expectation, its worst trial and that trial's phase (None: no trial ran)."""


def combine(expect: Sequence[Comparison], trials: Sequence[TrialMetrics], *, judge: Judge,
            interval: float | None) -> Sweep:
    """Judge every expectation in every trial and combine (see the module docstring). ``interval``
    is the probe cycle's length, for the words that name a worst trial's phase."""
    judged = [judge(expect, t.metrics) for t in trials]
    expectations: list[ExpectationResult] = []
    worst: list[tuple[int, float | None] | None] = []
    decided: dict[str, int] = {}
    for i, comparison in enumerate(expect):
        if not trials:
            expectations.extend(judge([comparison], {}))
            worst.append(None)
            continue
        results = [j[i] for j in judged]
        k = _worst_index(comparison, results)
        decided.setdefault(comparison.subject, k)
        result = results[k]
        trial = trials[k]
        worst.append((trial.index, trial.phase))
        passed = all(r.passed for r in results)
        outcome = max((r.outcome for r in results), key=_OUTCOME_RANK.__getitem__)
        where = (describe_trial(trial.index, len(trials), trial.phase, interval) if len(trials) > 1
                 else "")
        expectations.append(dataclasses.replace(result, passed=passed, outcome=outcome, trial=where))
    names = sorted({name for t in trials for name in t.metrics})
    metrics: dict[str, Metric] = {}
    spreads: dict[str, Spread] = {}
    for name in names:
        per_trial = [t.metrics.get(name) for t in trials]
        values = [m.value if m is not None else None for m in per_trial]
        numbers = [float(v) for v in values if isinstance(v, int | float)]
        k = decided.get(name)
        if k is None:
            k = _median_index(values)
        chosen = per_trial[k] if k is not None else None
        unit = next((m.unit for m in per_trial if m is not None), "")
        metric = chosen if chosen is not None else Metric(None, unit, note="not computed in this trial")
        missing = [trials[j].index for j, v in enumerate(values) if v is None]
        if missing and metric.measured:
            notes = [m.note for m in per_trial if m is not None and not m.measured and m.note]
            metric = Metric(None, metric.unit, error=metric.error,
                            note=f"unmeasured in trial {', '.join(map(str, missing))}"
                                 + (f": {notes[0]}" if notes else ""))
        elif name not in decided and numbers and len(trials) > 1:
            errors = [m.error for m in per_trial if m is not None and m.error is not None]
            metric = dataclasses.replace(metric, error=max(errors) if errors else None)
        metrics[name] = metric
        spreads[name] = Spread(values=values, min=min(numbers) if numbers else None,
                               median=statistics.median(numbers) if numbers else None,
                               max=max(numbers) if numbers else None,
                               worst_trial=trials[k].index if k is not None else None,
                               worst_phase=trials[k].phase if k is not None else None)
    return Sweep(metrics=metrics, spreads=spreads, expectations=expectations, worst=worst)


def _worst_index(comparison: Comparison, results: Sequence[ExpectationResult]) -> int:
    """The trial that decides an expectation: an unmeasured one, else the value farthest in the
    direction that breaks the bound, failing trials before passing ones."""
    def badness(j: int) -> tuple[int, int, float]:
        result = results[j]
        metric = result.metric
        value = None if metric is None else metric.value
        if value is None:
            return (1, 3, 0.0)
        rank = _OUTCOME_RANK[result.outcome]
        number = _number(value)
        if number is None or comparison.op not in ("<", "<=", ">", ">="):
            return (0 if result.passed else 1, rank, 0.0)
        return (0 if result.passed else 1, rank, number if comparison.op.startswith("<") else -number)

    return max(range(len(results)), key=lambda j: (badness(j), -j))


def _median_index(values: Sequence[float | str | None]) -> int | None:
    """The trial holding the median of the numeric values (the upper middle one of an even count:
    the value shown is always one a trial measured); the first trial when the values are names."""
    numbered = sorted((float(v), j) for j, v in enumerate(values) if isinstance(v, int | float))
    if numbered:
        return numbered[len(numbered) // 2][1]
    return 0 if values else None


def _number(value: float | str) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return None
