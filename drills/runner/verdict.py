"""The verdict: expectations against metrics, and how the run ended, as a word and an exit code.

Exit codes, highest wins: 0 passed; 1 the design failed an expectation, a condition
wait, or refused a fault (a budget blocking a drain); 2 the drill could not run or was aborted
(refused pre-flight, a guard, an interruption, an error); 3 rollback incomplete, manual action needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from drills.design import ExpectationReview
from drills.scenario import Comparison, Inconclusive, Outcome
from probes.base import Metric
from reports.base import format_value
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
    """One expectation judged against the run's metrics (and the design's settings).

    ``outcome`` is what the measurement says across its error; ``passed`` is whether the expectation
    counts as kept: an inconclusive one counts as the scenario's ``inconclusive:`` says, and one the
    design's settings can break (``review``) fails whatever was measured.
    """

    comparison: Comparison
    metric: Metric | None
    passed: bool
    note: str
    outcome: Outcome = "failed"
    review: ExpectationReview | None = None
    trial: str = ""
    """Which trial decided it, in words (``trial 3 of 4 (phase 0.81 of the 30s probe cycle)``), when
    the run had several: the worst one, a failing one if any failed."""


def judge(expect: Sequence[Comparison], metrics: Mapping[str, Metric], *, inconclusive: Inconclusive = "fail",
          reviews: Mapping[str, ExpectationReview] | None = None) -> list[ExpectationResult]:
    """Each expectation against its metric, across the metric's error; a metric missing or
    unmeasured fails, never passes. ``reviews`` (by expectation text) are the design review's
    verdicts: an expectation the settings can break fails with the review's reason."""
    results = []
    for comparison in expect:
        review = (reviews or {}).get(comparison.text)
        metric = metrics.get(comparison.subject)
        if metric is None or not metric.measured:
            note = "unmeasured" + (f": {metric.note}" if metric is not None and metric.note else "")
            results.append(ExpectationResult(comparison, metric, passed=False,
                                             note=_joined(note, _design_note(review, metric)),
                                             outcome="failed", review=review))
            continue
        assert metric.value is not None
        outcome = comparison.across(metric.value, metric.error)
        passed = outcome == "passed" or (outcome == "inconclusive" and inconclusive == "pass")
        note = metric.note
        if outcome == "inconclusive":
            note = _joined(f"inconclusive: {_interval(metric)} straddles {_bound(comparison)}", note)
        if review is not None and review.breaks:
            passed = False
        results.append(ExpectationResult(comparison, metric, passed=passed,
                                         note=_joined(note, _design_note(review, metric)), outcome=outcome,
                                         review=review))
    return results


def _design_note(review: ExpectationReview | None, metric: Metric | None) -> str:
    if review is None:
        return ""
    notes = [review.verdict] if review.breaks else []
    disagreement = review.disagreement(metric)
    if disagreement:
        notes.append(disagreement)
    return "; ".join(notes)


def _joined(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _interval(metric: Metric) -> str:
    return format_value(metric.value, metric.unit, metric.error)


def _bound(comparison: Comparison) -> str:
    return comparison.text[comparison.text.index(comparison.op):]


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
            reasons.extend(_failure(e) for e in failed)
    if revert_failed:
        verdict = "error"
        reasons.append(f"rollback incomplete: could not undo {', '.join(revert_failed)}")
    if manual:
        reasons.append(f"rollback is manual: {', '.join(manual)} still in place")
    if revert_failed or manual:
        code = 3
    return verdict, code, "; ".join(reasons)


def _failure(result: ExpectationResult) -> str:
    text = result.comparison.text
    shown = f"in {result.trial}: {_shown(result)}" if result.trial else _shown(result)
    if result.review is not None and result.review.breaks:
        measured = f", {shown}" if result.outcome == "passed" else f" ({shown})"
        return f"expectation {text!r} failed: {result.review.verdict}{measured}"
    if result.outcome == "inconclusive":
        return f"expectation {text!r} inconclusive ({shown}): counted as failed"
    if result.trial:
        return f"expectation {text!r} failed {shown}"
    return f"expectation {text!r} failed ({shown})"


def _shown(result: ExpectationResult) -> str:
    metric = result.metric
    if metric is None or not metric.measured:
        return result.note
    return f"measured {format_value(metric.value, metric.unit, metric.error)}"
