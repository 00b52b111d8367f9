"""Assembling ``run.json`` (:class:`reports.record.RunRecord`) from what a run measured and did.

Numbers are rounded to the millisecond (scenario seconds) so that the record reads well and diffs
stay quiet; a metric's value that is a name (a region) is kept as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drills.clock import ScenarioClock
from drills.design import DesignReview
from drills.environment import Environment
from drills.runner.faultrun import FaultRun
from drills.runner.guards import GuardState
from drills.runner.rundir import iso, versions
from drills.runner.sampling import ProbeState
from drills.runner.verdict import ExpectationResult
from drills.scenario import Scenario
from probes.base import Metric
from reports.record import (
    DesignRecord,
    ExpectationRecord,
    MetricRecord,
    RollbackOutcome,
    RollbackRecord,
    RunRecord,
    TimelineRecord,
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


def build(run_dir: Path, scenario: Scenario, env: Environment, clock: ScenarioClock, *, outcome: Outcome,
          timeline: Sequence[TimelineRecord], metrics: Mapping[str, Metric],
          expectations: Sequence[ExpectationResult], guards: Sequence[GuardState], faults: Sequence[FaultRun],
          probes: Mapping[str, ProbeState], design: DesignReview | None = None) -> RunRecord:
    """The whole record of a finished run."""
    incident = outcome.incident_start
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
        "metrics": {name: _metric(m) for name, m in sorted(metrics.items())},
        "expectations": [_expectation(e) for e in expectations],
        "design": _design(design, expectations),
        "guards": [{"guard": g.guard.text, "tripped": g.tripped, "t": _round(g.tripped_t)}
                   for g in guards],
        "rollback": [_rollback(run) for run in faults],
        "steady_state": {"before": outcome.steady_before, "returned": outcome.returned_t is not None,
                         "returned_t": _round(outcome.returned_t)},
        "probes": {name: {"kind": s.kind, "every": s.period, "samples": s.samples}
                   for name, s in probes.items()},
        "versions": versions(),
    }


def _metric(metric: Metric) -> MetricRecord:
    return {"value": _value(metric.value), "unit": metric.unit, "error": _round(metric.error),
            "note": metric.note}


def _expectation(result: ExpectationResult) -> ExpectationRecord:
    metric = result.metric
    return {"expect": result.comparison.text, "metric": result.comparison.subject,
            "value": None if metric is None else _value(metric.value),
            "unit": None if metric is None else metric.unit, "passed": result.passed, "note": result.note,
            "outcome": result.outcome}


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


def _rollback(run: FaultRun) -> RollbackRecord:
    undo = run.undo
    return {"step": run.step.id, "fault": run.step.fault, "region": run.step.region,
            "summary": undo.summary if undo else "", "objects": list(undo.objects) if undo else [],
            "outcome": _OUTCOMES.get(run.phase, "failed"), "attempts": run.attempts, "error": run.error,
            "t": _round(run.reverted_t)}


def _value(value: float | str | None) -> float | str | None:
    return value if isinstance(value, str) else _round(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
