"""What the runner hands the views of a running drill: a snapshot of it, taken a few times a second.

:class:`LiveState` holds plain data only (no runner objects), so that a view reads it without locks
and a test builds one by hand. :class:`SignalHistory` keeps each probe's recent signals for the trends
(sparklines and state strips) the terminal view draws.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from drills.runner.sampling import ProbeState, Sampler
from drills.scenario.model import Comparison
from probes.base import Probe, Sample, SignalValue

HISTORY_SAMPLES = 24
"""Signal snapshots kept per probe: as many as a trend in the live view is wide."""


@dataclass(frozen=True)
class ProbeLine:
    """One probe as the views show it."""

    name: str
    kind: str
    signals: Mapping[str, SignalValue]
    samples: int
    error: str | None
    lost: int = 0
    """Samples that failed or timed out in the runner (the probe itself should never let one)."""
    skipped: int = 0
    """Ticks that started no sample (too many in flight, or the process fell behind)."""
    history: Sequence[Mapping[str, SignalValue]] = ()
    """The probe's signals after each of its recent samples, oldest first."""


@dataclass(frozen=True)
class GuardLine:
    """One guard and how close it is to tripping."""

    text: str
    """The guard as written: ``users.error_rate > 80% for 8m``."""
    unit: str | None
    """The unit of the guarded signal (``%``, ``s``; None for counts and names)."""
    for_seconds: float
    value: SignalValue = None
    """The guarded signal at its probe's latest sample."""
    held_s: float | None = None
    """How long the condition has held at every sample so far (None: it does not hold now)."""
    tripped_t: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Deadline:
    """An RTO-like expectation: a time metric with an upper bound, counted from the incident."""

    metric: str
    seconds: float
    text: str
    """The expectation as written: ``dns.failover_time < 3m``."""


def incident_deadlines(expect: Sequence[Comparison],
                       probes: Mapping[str, Probe | type[Probe]]) -> list[Deadline]:
    """The expectations that bound a time counted from the incident's start (a metric its probe lists in
    ``SINCE_INCIDENT``) from above: the live view times the incident against them. ``probes``: each
    probe (or its class) by name."""
    found = []
    for e in expect:
        probe = probes.get(e.probe)
        since = probe.SINCE_INCIDENT if probe is not None else frozenset()
        if (e.unit == "s" and e.op in ("<", "<=") and isinstance(e.value, int | float)
                and e.name.split(".", 1)[0] in since):
            found.append(Deadline(metric=e.subject, seconds=float(e.value), text=e.text))
    return found


@dataclass(frozen=True)
class LiveState:
    """A snapshot of the running drill. Every time is in scenario seconds (the timeline's ``t``)."""

    scenario: str
    t: float
    step: str
    probes: Sequence[ProbeLine]
    guards: Sequence[GuardLine] = ()
    phase: str = ""
    """``steady state``, ``incident``, ``recovery``, ``rollback`` (or what the runner is doing
    between them)."""
    trial: str | None = None
    """``trial 2 of 4 (phase 0.38)``, when the run makes more than one (with the planned phase of the
    probe cycle its first fault falls on)."""
    incident_t: float | None = None
    """When this trial's incident began (its first fault), None before."""
    incident_end_t: float | None = None
    """When its recovery began (the first undo): the incident timer stops there."""
    deadlines: Sequence[Deadline] = ()


@dataclass
class SignalHistory:
    """Each probe's signals after each of its recent samples (listens to a :class:`Sampler`)."""

    size: int = HISTORY_SAMPLES
    _kept: dict[str, deque[dict[str, SignalValue]]] = field(default_factory=dict)

    def follow(self, sampler: Sampler) -> None:
        """Record the signals after every sample of ``sampler``'s probes."""
        sampler.listen(self._on_sample)

    def of(self, probe: str) -> list[Mapping[str, SignalValue]]:
        """``probe``'s recent signals, oldest first."""
        return list(self._kept.get(probe, ()))

    def _on_sample(self, probe: ProbeState, sample: Sample) -> None:
        kept = self._kept.setdefault(probe.name, deque(maxlen=self.size))
        kept.append(dict(probe.signals))
