"""``run.json``: the record of one finished run, as reporters read it.

The runner writes it at the end of a run; every reporter renders from it alone, so a report can be
re-rendered (``drill report RUN``) long after the run. Times are scenario seconds since the run
started (``t``; real-world seconds even on a lab whose clock runs faster) or ISO-8601 UTC (``at``).
The keys are stable: tools outside drill read them too. This module is the JSON edge, hence
``TypedDict`` rather than models; :func:`load_run` checks a file against them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, NotRequired

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict

from drills.errors import SourceError, SourceErrors, SourceLocation

RUN_FILE = "run.json"

Verdict = Literal["passed", "failed", "aborted", "error"]
TimelineEvent = Literal[
    "probes_started", "steady_state", "step_started", "step_done", "fault_applied", "fault_failed",
    "wait_done", "wait_timed_out", "guard_tripped", "rollback_started", "fault_reverted", "revert_failed",
    "steady_state_returned", "run_ended", "trial_started", "lock_held", "object_restored", "object_drift",
    "restore_failed", "objects_verified",
]
RollbackOutcome = Literal["reverted", "failed", "skipped", "manual"]
Outcome = Literal["passed", "failed", "inconclusive"]


class ScenarioRecord(TypedDict):
    name: str
    file: str
    description: str


class EnvironmentRecord(TypedDict):
    name: str
    file: str
    lab: bool


class TimelineRecord(TypedDict):
    """One thing that happened: ``t`` scenario seconds, ``step`` the step id or None."""

    t: float
    at: str
    event: TimelineEvent
    step: str | None
    detail: str


class TrialMetricRecord(TypedDict):
    """A metric of one trial: ``value`` None when unmeasured; ``unit`` ``s``, ``%`` (0-100), ``count``
    or a name; ``error`` the measurement error in ``unit``."""

    value: float | str | None
    unit: str
    error: float | None
    note: str


class SpreadRecord(TypedDict):
    """A metric over the trials: ``values`` by trial (None: unmeasured in it), min, median and max of
    the numbers among them (None when there are none), and the trial (from 1) that decided the
    metric's value with its phase of the probe cycle (None: unknown)."""

    min: float | None
    median: float | None
    max: float | None
    values: list[float | str | None]
    worst_trial: int | None
    worst_phase: float | None


class MetricRecord(TrialMetricRecord):
    """A metric of the run. Over several trials ``value`` (and ``error``, ``note``) is the worst
    trial's for the first expectation on it (unmeasured if any trial left it unmeasured), or the
    median trial's when no expectation names it; ``trials`` is its spread (absent in runs recorded
    before trials existed)."""

    trials: NotRequired[SpreadRecord]


class ExpectationRecord(TypedDict):
    """One expectation as written, the value of its metric (None: unmeasured) and whether it held."""

    expect: str
    metric: str
    value: float | str | None
    unit: str | None
    passed: bool
    note: str
    outcome: NotRequired[Outcome]
    """What the measurement says across its error; ``passed`` is whether the expectation counts as
    kept (an inconclusive one as the scenario says; one the design can break never)."""
    worst_trial: NotRequired[int | None]
    """The trial (from 1) that decided it: a failing one when it failed, else the closest to failing."""
    worst_phase: NotRequired[float | None]


class WindowRecord(TypedDict):
    """Values a metric can take: ``low`` to ``high`` (None: unbounded), ``high`` excluded if ``high_open``;
    ``low`` None: never, while the faults last (replacements have nowhere to run)."""

    low: float | None
    high: float | None
    high_open: bool
    unit: str
    text: str


class DesignExpectationRecord(TypedDict):
    """The design review of one expectation: the window its metric can fall in (None: no prediction,
    ``reasoning`` says why), and whether the settings can break it (``verdict`` says how)."""

    expect: str
    metric: str
    window: WindowRecord | None
    reasoning: str
    breaks: bool
    verdict: str
    disagreement: str
    """Non-empty when the measurement fell outside the window beyond its error."""


class DesignRecord(TypedDict):
    """The design review: the settings it read, per expectation, and what it could not read."""

    settings: str
    expectations: list[DesignExpectationRecord]
    problems: list[str]


class GuardRecord(TypedDict):
    """A guard as written; ``t`` when it tripped (None if it did not)."""

    guard: str
    tripped: bool
    t: float | None


class RollbackRecord(TypedDict):
    """The undo of one fault and how it went; ``t`` when it finished (None if it was not attempted)."""

    step: str
    fault: str
    region: str
    summary: str
    objects: list[str]
    outcome: RollbackOutcome
    attempts: int
    error: str | None
    t: float | None
    trial: NotRequired[int]
    """The trial (from 1) that applied the fault."""


class RestoredRecord(TypedDict):
    """One object the run touched, after its rollback: ``outcome`` ``unchanged`` (as before the drill),
    ``restored`` (put back from its snapshot), ``drift`` (changed by someone else during the drill: left
    as it is), ``gone`` or ``failed`` (not verified: the rollback is incomplete)."""

    object: str
    outcome: str
    detail: str
    trial: int


class SteadyStateRecord(TypedDict):
    """Whether the probes saw the steady state before the first fault and again after rollback."""

    before: bool
    returned: bool
    returned_t: float | None


class BlindRecord(TypedDict):
    """A stretch in which a probe measured nothing (:mod:`probes.blindness`): from ``start`` to ``end``
    (scenario seconds), ``samples`` failed samples in it (0: none was taken though some were due), the
    first one's ``reason``, and the ``trial`` (from 1) it lies in."""

    start: float
    end: float
    samples: int
    reason: str
    trial: int


class ProbeRecord(TypedDict):
    """A probe: its kind, period (``every``), samples taken, and when it was blind (absent in runs
    recorded before blind intervals existed)."""

    kind: str
    every: float
    samples: int
    blind: NotRequired[list[BlindRecord]]


class SweepRecord(TypedDict):
    """The trials planned (``trials``) and run (``run``, fewer when one ended early), the ``seed`` that
    rotated their phases, and the probe cycle followed (its ``probe_interval`` in seconds and Traffic
    Manager ``endpoint``; None when phases were not placed: not a lab, or no fault names a region)."""

    trials: int
    run: int
    seed: int
    probe_interval: float | None
    endpoint: str | None


class TrialRecord(TypedDict):
    """One trial: ``index`` from 1; ``phase`` where in the probe cycle its incident started as measured
    (0 just at a probe deadline; None unknown), ``target_phase`` as chosen; its marks in scenario
    seconds (``ended``: when its failback ended, ``returned_t``: when the steady state returned, None
    if it did not) and its metrics, each computed over the trial's samples alone."""

    index: int
    phase: float | None
    target_phase: float | None
    incident_start: float | None
    recovery_start: float | None
    ended: float | None
    returned_t: float | None
    metrics: dict[str, TrialMetricRecord]
    blind: NotRequired[dict[str, list[BlindRecord]]]
    """Per probe that was blind in this trial, its blind intervals there."""


class BlastRuleRecord(TypedDict):
    """One rule of the blast radius: the environment's limit (``maxNodes``), whether it held, the numbers."""

    rule: str
    passed: bool
    detail: str


class BlastRecord(TypedDict):
    """The scenario's blast radius, computed before the first fault: the steps in effect together at
    its worst moment, the distinct nodes and pods affected then per region, the environment's limits,
    each rule's outcome, and what the numbers estimate; ``refused``: a rule broke, so nothing ran."""

    refused: bool
    worst_moment: list[str]
    nodes: dict[str, int]
    pods: dict[str, int]
    limits: dict[str, Any]
    rules: list[BlastRuleRecord]
    estimated: list[str]


class RegressionRecord(TypedDict):
    """A key metric worse than its baseline (the median of recent passed runs) by more than the threshold:
    ``worse_by`` as a fraction of the baseline (0.39 is 39% worse; None when the baseline is 0, where
    any worsening beyond the measurement error counts)."""

    metric: str
    unit: str
    value: float
    baseline: float
    worse_by: float | None


class TrendRecord(TypedDict):
    """One run in a scenario's trend: its key metrics' values (None: unmeasured)."""

    run_id: str
    started_at: str
    verdict: Verdict
    metrics: dict[str, float | None]


class HistoryRecord(TypedDict):
    """This run against the past runs of its scenario on its environment (``drills.history``):
    ``baseline_runs`` the last passed ones (at most 5, newest first) whose median each key metric is
    compared with, ``threshold`` the scenario's (a fraction; a metric may have its own), the
    ``regressions`` found (they do not change the verdict) and the ``trend`` of up to 20 past runs,
    oldest first, with this run last."""

    threshold: float
    baseline_runs: list[str]
    regressions: list[RegressionRecord]
    trend: list[TrendRecord]
    thresholds: NotRequired[dict[str, float]]
    """The threshold applied to each key metric (its own, else the scenario's): what a rebuilt index
    compares with again."""


class RunRecord(TypedDict):
    """The whole of ``run.json``."""

    run_id: str
    scenario: ScenarioRecord
    environment: EnvironmentRecord
    time_scale: float
    started_at: str
    incident_start: str | None
    incident_start_t: float | None
    ended_at: str
    verdict: Verdict
    exit_code: int
    reason: str
    timeline: list[TimelineRecord]
    metrics: dict[str, MetricRecord]
    expectations: list[ExpectationRecord]
    design: NotRequired[DesignRecord | None]
    guards: list[GuardRecord]
    rollback: list[RollbackRecord]
    restored: NotRequired[list[RestoredRecord]]
    steady_state: SteadyStateRecord
    probes: dict[str, ProbeRecord]
    versions: dict[str, str]
    sweep: NotRequired[SweepRecord]
    trials: NotRequired[list[TrialRecord]]
    blast_radius: NotRequired[BlastRecord | None]
    history: NotRequired[HistoryRecord]
    """Absent in runs recorded before the history existed, or when the index could not be used."""


_ADAPTER: TypeAdapter[RunRecord] = TypeAdapter(RunRecord)


def load_run(run_dir: Path) -> RunRecord:
    """Read and check ``run_dir/run.json``. Raises :class:`~drills.errors.SourceErrors` naming every
    key that is missing or of the wrong type."""
    path = Path(run_dir) / RUN_FILE
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceErrors([SourceError(SourceLocation(file, 1, 1), f"cannot read the run record: "
                                        f"{exc.strerror}", hint="is this a run directory?")]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceErrors([SourceError(SourceLocation(file, exc.lineno, exc.colno),
                                        f"not valid JSON: {exc.msg}")]) from exc
    try:
        return _ADAPTER.validate_python(data, strict=False)
    except ValidationError as exc:
        raise SourceErrors([
            SourceError(SourceLocation(file, 1, 1), f"{'.'.join(str(p) for p in err['loc']) or 'run'}: "
                        f"{err['msg'].lower()}")
            for err in exc.errors()
        ]) from exc
