"""The scenario as the runner sees it: a validated, immutable plan.

Everything here is already checked against the file, the installed plugins and the environment
(:func:`drills.scenario.load_scenario` builds it); times are real-world seconds, percentages are
0-100. The runner walks :attr:`Scenario.steps`, evaluates :attr:`Scenario.guards` on signals while
it runs and :attr:`Scenario.expect` on metrics at the end.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

Outcome = Literal["passed", "failed", "inconclusive"]
"""How an expectation came out: it held across the measurement error, it was broken across it, or
the error interval straddles the bound."""
Inconclusive = Literal["fail", "pass"]
"""What an inconclusive expectation counts as (the scenario's ``inconclusive:``; fail by default)."""

MAX_TIMING_S = 24 * 3600.0
"""The longest wait, wait timeout, probe period or guard window a scenario may give: a drill lasts
minutes to hours, so a step of more than a day is a mistake (and would keep a fault applied that long)."""
MAX_NAME_LENGTH = 64
"""The longest scenario name, probe name or step id: they become parts of run ids, file names and
metric names."""
MAX_STEPS = 1000
"""The most steps a scenario may have, those inside ``parallel`` included."""
MAX_PARALLEL_DEPTH = 8
"""How deep ``parallel`` steps may nest (a parallel in a parallel is depth 2)."""

OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
"""The comparison operators of the expression language, longest first so that parsing is greedy."""


@dataclass(frozen=True)
class Comparison:
    """``<probe>.<name>[.<key>] <op> <value>``: an expectation, a wait condition or a guard's condition.

    ``value`` is normalised: durations in seconds (``unit`` ``"s"``), percentages 0-100 (``"%"``),
    other numbers as floats (``None``), names as strings (``None``; only ``==`` and ``!=``).
    """

    subject: str
    probe: str
    name: str
    op: str
    value: float | str
    unit: str | None
    text: str

    def holds(self, actual: float | str | bool | None) -> bool:
        """Whether ``actual`` (a metric's or a signal's value) satisfies the comparison.

        None is an unmeasured metric or an unknown signal: it satisfies nothing, not even ``!=``,
        so that a blind probe never makes a drill pass. Names compare case-insensitively (region
        and host names are); a truth compares as the name ``true``/``false`` or as 1/0.
        """
        if actual is None:
            return False
        compare = OPERATORS[self.op]
        if isinstance(self.value, str):
            if isinstance(actual, bool):
                got = "true" if actual else "false"
            elif isinstance(actual, str):
                got = actual
            else:
                got = f"{actual:g}"
            return compare(got.casefold(), self.value.casefold())
        if isinstance(actual, str):
            try:
                number = float(actual)
            except ValueError:
                return False
        else:
            number = float(actual)
        return compare(number, self.value)

    def across(self, actual: float | str | bool | None, error: float | None) -> Outcome:
        """Whether ``actual``, known within ``error`` (in the metric's unit; None is 0), satisfies the
        comparison at every value of ``[actual - error, actual + error]`` ("passed"), at none
        ("failed"), or at some only ("inconclusive").

        ``v < b`` passes iff ``v + e < b`` and fails iff ``v - e >= b``; the other orderings alike.
        A number is never known exactly equal with an error, so a numeric ``==`` with ``e > 0`` is
        at best inconclusive. Names, truths and unmeasured values have no error: see :meth:`holds`.
        """
        if actual is None or isinstance(actual, bool) or isinstance(self.value, str):
            return "passed" if self.holds(actual) else "failed"
        if isinstance(actual, str):
            try:
                number = float(actual)
            except ValueError:
                return "failed"
        else:
            number = float(actual)
        e = abs(error or 0.0)
        low, high, bound = number - e, number + e, self.value
        if self.op in ("<", "<="):
            worst, best = high, low
        elif self.op in (">", ">="):
            worst, best = low, high
        elif self.op == "==":
            if e == 0:
                return "passed" if number == bound else "failed"
            return "inconclusive" if low <= bound <= high else "failed"
        else:  # "!="
            if low <= bound <= high:
                return "failed" if e == 0 else "inconclusive"
            return "passed"
        compare = OPERATORS[self.op]
        if compare(worst, bound):
            return "passed"
        if not compare(best, bound):
            return "failed"
        return "inconclusive"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Guard:
    """A condition on a signal that aborts the drill once it has held at every sample for ``for_seconds``."""

    condition: Comparison
    for_seconds: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of the scenario: its name, its registered kind, its period and its parsed ``Spec``."""

    name: str
    kind: str
    every: float
    params: BaseModel


REGION_KEYS = ("cluster", "region")
"""Parameters that name one of the environment's regions (checked against it when the scenario loads);
a fault step strikes the region its ``cluster`` or else its ``region`` names."""


def struck_region(params: BaseModel) -> str:
    """The region a fault's parameters name (``cluster``, else ``region``); empty if none."""
    for key in REGION_KEYS:
        named = getattr(params, key, None)
        if isinstance(named, str) and named:
            return named
    return ""


@dataclass(frozen=True)
class FaultStep:
    """Inject the registered fault ``fault`` with ``params`` (its class's ``Params``) into ``region``."""

    id: str
    fault: str
    region: str
    params: BaseModel


@dataclass(frozen=True)
class WaitStep:
    """Wait ``duration`` seconds, or until ``condition`` holds (failing the run after ``timeout``).

    Exactly one of ``duration`` and ``condition`` is set. A duration wait's ``timeout`` is its duration.
    """

    id: str
    duration: float | None
    condition: Comparison | None
    timeout: float


@dataclass(frozen=True)
class ParallelStep:
    """Run ``steps`` concurrently; done when all are."""

    id: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class UndoStep:
    """Revert the fault injected by the earlier step ``target`` (failback drills)."""

    id: str
    target: str


Step = FaultStep | WaitStep | ParallelStep | UndoStep


DEFAULT_REGRESSION_THRESHOLD = 0.2
"""How much worse than its baseline (the median of recent passed runs) a key metric may get before it is
flagged as a regression, as a fraction of the baseline: 20%."""


@dataclass(frozen=True)
class RegressionPolicy:
    """The scenario's ``regression:``: how much worse than its baseline a key metric may get before it is
    flagged, as a fraction (0.2 is 20%), for every key metric (``threshold``) or one (``metrics``)."""

    threshold: float = DEFAULT_REGRESSION_THRESHOLD
    metrics: Mapping[str, float] = field(default_factory=dict)

    def for_metric(self, name: str) -> float:
        """The threshold of the metric ``name``."""
        return self.metrics.get(name, self.threshold)


@dataclass(frozen=True)
class Scenario:
    """A whole validated scenario file."""

    name: str
    description: str
    file: str
    probes: dict[str, ProbeSpec]
    steps: tuple[Step, ...]
    expect: tuple[Comparison, ...]
    guards: tuple[Guard, ...]
    rollback: Literal["auto", "manual"]
    inconclusive: Inconclusive = "fail"
    """What an expectation whose error interval straddles its bound counts as."""
    regression: RegressionPolicy = RegressionPolicy()
    """When a key metric counts as a regression against the scenario's past runs (:mod:`drills.history`)."""

    def fault_steps(self) -> list[FaultStep]:
        """Every fault step, depth-first in file order (a parallel's faults in their listed order)."""
        found: list[FaultStep] = []

        def walk(steps: tuple[Step, ...]) -> None:
            for step in steps:
                if isinstance(step, FaultStep):
                    found.append(step)
                elif isinstance(step, ParallelStep):
                    walk(step.steps)

        walk(self.steps)
        return found
