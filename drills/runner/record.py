"""Assembling ``run.json`` (:class:`reports.record.RunRecord`) from what a run measured and did.

Numbers are rounded to the millisecond (scenario seconds) so that the record reads well and diffs
stay quiet; a metric's value that is a name (a region) is kept as it is. A run of several trials
records each trial (its phase, marks and metrics), every metric's spread over them, and for each
expectation the trial that decided it (:mod:`drills.runner.sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drills.blast import BlastRadius
from drills.clock import ScenarioClock
from drills.design import DesignReview
from drills.environment import Environment
from drills.runner.faultrun import FaultRun
from drills.runner.guards import GuardState
from drills.runner.rundir import iso, versions
from drills.runner.sampling import ProbeState
from drills.runner.sweep import Spread, Sweep
from drills.runner.verdict import ExpectationResult
from drills.scenario import Scenario
from probes.base import Metric
from probes.blindness import BlindInterval
from reports.record import (
    BlindRecord,
    DesignRecord,
    ExpectationRecord,
    MetricRecord,
    RollbackOutcome,
    RollbackRecord,
    RunRecord,
    SpreadRecord,
    SweepRecord,
    TimelineRecord,
    TrialMetricRecord,
    TrialRecord,
    Verdict,
)

_OUTCOMES: dict[str, RollbackOutcome] = {"reverted": "reverted", "manual": "manual"}
"""Rollback outcomes by fault phase; any other phase after the rollback means it was not undone."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended and what it leaves behind."""

    verdict: Verdict
    exit_code: int
    reason: str
    steady_before: bool
    returned_t: float | None
    incident_start: float | None


@dataclass(frozen=True)
class TrialOutcome:
    """One trial: where in the probe cycle its incident started (``phase``, measured; ``target_phase``
    chosen), its marks, its metrics, its faults and each probe's blind intervals in it."""

    index: int
    phase: float | None
    target_phase: float | None
    incident_start: float | None
    recovery_start: float | None
    ended: float
    returned_t: float | None
    metrics: Mapping[str, Metric]
    faults: Sequence[FaultRun]
    blind: Mapping[str, Sequence[BlindInterval]] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepPlan:
    """How the trials were planned: how many, the seed of their phases, the probe cycle followed."""

    trials: int
    seed: int
    probe_interval: float | None
    endpoint: str | None


def build(run_dir: Path, scenario: Scenario, env: Environment, clock: ScenarioClock, *, outcome: Outcome,
          timeline: Sequence[TimelineRecord], sweep: Sweep, plan: SweepPlan, trials: Sequence[TrialOutcome],
          guards: Sequence[GuardState], probes: Mapping[str, ProbeState],
          design: DesignReview | None = None, blast: BlastRadius | None = None) -> RunRecord:
    """The whole record of a finished run."""
    incident = outcome.incident_start
    expectations = sweep.expectations
    return {
        "run_id": run_dir.name,
        "scenario": {"name": scenario.name, "file": str(Path(scenario.file).resolve()),
                     "description": scenario.description},
        "environment": {"name": env.name, "file": env.path, "lab": env.is_lab},
        "time_scale": env.time_scale,
        "started_at": iso(clock.real(0.0)),
        "incident_start": iso(clock.real(incident)) if incident is not None else None,
        "incident_start_t": _round(incident),
        "ended_at": iso(clock.real()),
        "verdict": outcome.verdict,
        "exit_code": outcome.exit_code,
        "reason": outcome.reason,
        "timeline": list(timeline),
        "metrics": {name: _metric_over_trials(m, sweep.spreads[name])
                    for name, m in sorted(sweep.metrics.items())},
        "expectations": [_expectation(e, worst) for e, worst in zip(expectations, sweep.worst, strict=True)],
        "design": _design(design, expectations),
        "guards": [{"guard": g.guard.text, "tripped": g.tripped, "t": _round(g.tripped_t)}
                   for g in guards],
        "rollback": [_rollback(run, t.index) for t in trials for run in t.faults],
        "steady_state": {"before": outcome.steady_before, "returned": outcome.returned_t is not None,
                         "returned_t": _round(outcome.returned_t)},
        "probes": {name: {"kind": s.kind, "every": s.period, "samples": s.samples,
                          "blind": [_blind(b, t.index) for t in trials for b in t.blind.get(name, ())]}
                   for name, s in probes.items()},
        "versions": versions(),
        "sweep": _sweep(plan, len(trials)),
        "trials": [_trial(t) for t in trials],
        "blast_radius": blast.record() if blast is not None else None,
    }


def _sweep(plan: SweepPlan, run: int) -> SweepRecord:
    return {"trials": plan.trials, "run": run, "seed": plan.seed, "probe_interval": plan.probe_interval,
            "endpoint": plan.endpoint}


def _trial(trial: TrialOutcome) -> TrialRecord:
    return {"index": trial.index, "phase": trial.phase,
            "target_phase": None if trial.target_phase is None else round(trial.target_phase, 4),
            "incident_start": _round(trial.incident_start), "recovery_start": _round(trial.recovery_start),
            "ended": _round(trial.ended), "returned_t": _round(trial.returned_t),
            "metrics": {name: _metric(m) for name, m in sorted(trial.metrics.items())},
            "blind": {name: [_blind(b, trial.index) for b in found] for name, found in trial.blind.items()
                      if found}}


def _blind(interval: BlindInterval, trial: int) -> BlindRecord:
    return {"start": round(interval.start, 3), "end": round(interval.end, 3), "samples": interval.samples,
            "reason": interval.reason, "trial": trial}


def _metric(metric: Metric) -> TrialMetricRecord:
    return {"value": _value(metric.value), "unit": metric.unit, "error": _significant(metric.error),
            "note": metric.note}


def _metric_over_trials(metric: Metric, spread: Spread) -> MetricRecord:
    return {"value": _value(metric.value), "unit": metric.unit, "error": _significant(metric.error),
            "note": metric.note, "trials": _spread(spread)}


def _spread(spread: Spread) -> SpreadRecord:
    return {"min": _significant(spread.min), "median": _significant(spread.median),
            "max": _significant(spread.max),
            "values": [_value(v) for v in spread.values], "worst_trial": spread.worst_trial,
            "worst_phase": spread.worst_phase}


def _expectation(result: ExpectationResult, worst: tuple[int, float | None] | None) -> ExpectationRecord:
    metric = result.metric
    return {"expect": result.comparison.text, "metric": result.comparison.subject,
            "value": None if metric is None else _value(metric.value),
            "unit": None if metric is None else metric.unit, "passed": result.passed, "note": result.note,
            "outcome": result.outcome,
            "worst_trial": worst[0] if worst else None, "worst_phase": worst[1] if worst else None}


def _design(design: DesignReview | None, expectations: Sequence[ExpectationResult]) -> DesignRecord | None:
    if design is None:
        return None
    metrics = {e.comparison.text: e.metric for e in expectations}
    return {
        "settings": design.settings,
        "problems": list(design.problems),
        "expectations": [
            {"expect": r.expect, "metric": r.metric, "reasoning": r.reasoning, "breaks": r.breaks,
             "verdict": r.verdict, "disagreement": r.disagreement(metrics.get(r.expect)),
             "window": None if r.window is None else {
                 "low": None if math.isinf(r.window.low) else _round(r.window.low) or 0.0,
                 "high": _round(r.window.high),
                 "high_open": r.window.high_open, "unit": r.window.unit, "text": r.window.text}}
            for r in design.expectations],
    }


def _rollback(run: FaultRun, trial: int) -> RollbackRecord:
    undo = run.undo
    return {"step": run.step.id, "fault": run.step.fault, "region": run.step.region,
            "summary": undo.summary if undo else "", "objects": list(undo.objects) if undo else [],
            "outcome": _OUTCOMES.get(run.phase, "failed"), "attempts": run.attempts, "error": run.error,
            "t": _round(run.reverted_t), "trial": trial}


def _value(value: float | str | None) -> float | str | None:
    return value if isinstance(value, str) else _significant(value)


def _significant(value: float | None) -> float | None:
    # Like ``_round`` (the t of the record's marks, which metrics such as recovery_start repeat), but a
    # value under 1 keeps six significant digits: a 1.734 ms latency stays 0.001734 s, not 0.002.
    if value is None or not math.isfinite(value) or abs(value) >= 1 or value == 0:
        return _round(value)
    return round(float(value), 5 - math.floor(math.log10(abs(value))))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
