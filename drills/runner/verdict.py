"""The verdict: expectations against metrics, and how the run ended, as a word and an exit code.

Exit codes, highest wins (design.md): 0 passed; 1 the design failed an expectation, a condition
wait, or refused a fault (a budget blocking a drain); 2 the drill could not run or was aborted
(refused pre-flight, a guard, an interruption, an error); 3 rollback incomplete, manual action needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from drills.scenario import Comparison
from probes.base import Metric
from reports.record import Verdict

EndingKind = Literal["completed", "wait_timed_out", "fault_refused", "guard", "interrupted", "refused",
                     "error"]

_EXIT: dict[EndingKind, tuple[Verdict, int]] = {
    "completed": ("passed", 0),
    "wait_timed_out": ("failed", 1),
    "fault_refused": ("failed", 1),
    "guard": ("aborted", 2),
    "interrupted": ("aborted", 2),
    "refused": ("aborted", 2),
    "error": ("error", 2),
}


@dataclass(frozen=True)
class Ending:
    """Why the steps stopped: ``kind`` and a sentence naming the step, guard or error."""

    kind: EndingKind
    reason: str = ""


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation judged against the run's metrics."""

    comparison: Comparison
    metric: Metric | None
    passed: bool
    note: str
    trial: str = ""
    """Which trial decided it, in words (``trial 3 of 4 (phase 0.81 of the 30s probe cycle)``), when
    the run had several: the worst one, a failing one if any failed."""


def judge(expect: Sequence[Comparison], metrics: Mapping[str, Metric]) -> list[ExpectationResult]:
    """Each expectation against its metric; a metric missing or unmeasured fails, never passes."""
    results = []
    for comparison in expect:
        metric = metrics.get(comparison.subject)
        if metric is None or not metric.measured:
            note = "unmeasured" + (f": {metric.note}" if metric is not None and metric.note else "")
            results.append(ExpectationResult(comparison, metric, passed=False, note=note))
            continue
        assert metric.value is not None
        results.append(ExpectationResult(comparison, metric, passed=comparison.holds(metric.value),
                                         note=metric.note))
    return results


def decide(ending: Ending, expectations: Sequence[ExpectationResult], *, revert_failed: Sequence[str],
           manual: Sequence[str]) -> tuple[Verdict, int, str]:
    """The verdict, the exit code and the reason (empty when passed).

    ``revert_failed`` and ``manual`` name the faults left in place (by step id), because drill could
    not undo them or because the scenario leaves that to a person.
    """
    verdict, code = _EXIT[ending.kind]
    reasons = [ending.reason] if ending.reason else []
    failed = [e for e in expectations if not e.passed]
    if failed:
        if verdict == "passed":
            verdict = "failed"
        code = max(code, 1)
        if code == 1:
            # A drill stopped early (aborted, refused, an error) fails most expectations for want of
            # measurements; its reason is why it stopped, and run.json still lists each expectation.
            reasons.extend(f"expectation {e.comparison.text!r} failed "
                           + (f"in {e.trial}: {_shown(e)}" if e.trial else f"({_shown(e)})") for e in failed)
    if revert_failed:
        verdict = "error"
        reasons.append(f"rollback incomplete: could not undo {', '.join(revert_failed)}")
    if manual:
        reasons.append(f"rollback is manual: {', '.join(manual)} still in place")
    if revert_failed or manual:
        code = 3
    return verdict, code, "; ".join(reasons)


def _shown(result: ExpectationResult) -> str:
    metric = result.metric
    if metric is None or not metric.measured:
        return result.note
    unit = "" if metric.unit in ("count", "") else metric.unit
    value = f"{metric.value:g}" if isinstance(metric.value, float | int) else str(metric.value)
    return f"measured {value}{unit}"
