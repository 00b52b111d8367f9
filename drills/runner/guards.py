"""Guards: conditions on live signals that abort a drill before it does real harm.

A guard trips when its condition has held at every sample of its probe for the last ``for``
seconds (at the first holding sample when ``for`` is 0), or when its probe has gone blind (no sample
that measured completed for three periods beyond the sample timeout; a failed sample measures
nothing): a drill that cannot see what it is doing stops. Guards are watched only while the steps
run; rollback is never interrupted by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drills.runner.readouts import format_signal
from drills.runner.sampling import ProbeState, Sampler
from drills.scenario import Guard
from probes.base import Sample, SignalValue
from reports.base import format_value


@dataclass(eq=False)
class GuardState:
    """One guard's progress towards tripping."""

    guard: Guard
    held_since: float | None = None
    """``t`` of the first sample of the current unbroken run of samples where the condition held."""
    value: SignalValue = None
    """The signal's value at the latest sample."""
    tripped_t: float | None = None
    reason: str = ""

    @property
    def tripped(self) -> bool:
        return self.tripped_t is not None


class GuardWatch:
    """Checks every guard after each sample of its probe and, on demand, for blind probes."""

    def __init__(self, guards: Sequence[Guard], sampler: Sampler, *,
                 on_trip: Callable[[GuardState], None]) -> None:
        self.states = [GuardState(guard) for guard in guards]
        self.active = False
        """Guards act only while this is set (while the steps run)."""
        self._sampler = sampler
        self._on_trip = on_trip
        sampler.listen(self._on_sample)

    def check_blind(self, now: float) -> None:
        """Trip every active guard whose probe stopped producing samples."""
        if not self.active:
            return
        for state in self.states:
            probe = state.guard.condition.probe
            if not state.tripped and self._sampler.blind(probe, now):
                self._trip(state, now, f"probe {probe!r} stopped measuring (no sample measured "
                                       "anything): the drill is blind")

    def _on_sample(self, probe: ProbeState, sample: Sample) -> None:
        for state in self.states:
            condition = state.guard.condition
            if condition.probe != probe.name or state.tripped:
                continue
            state.value = probe.signals.get(condition.name)
            if not condition.holds(state.value):
                state.held_since = None
                continue
            if state.held_since is None or sample.t < state.held_since:
                state.held_since = sample.t
            if self.active and sample.t - state.held_since >= state.guard.for_seconds:
                shown = format_signal(state.value, condition.unit)
                held = format_value(sample.t - state.held_since, "s")
                self._trip(state, sample.t, f"{condition.subject} was {shown} at every sample for {held}")

    def _trip(self, state: GuardState, t: float, reason: str) -> None:
        state.tripped_t = t
        state.reason = reason
        self._on_trip(state)
