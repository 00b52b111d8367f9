"""What every probe is: the extension point, its samples and its metrics.

A probe is a continuous measurement. The runner calls :meth:`Probe.sample` every ``period``
(scenario seconds, on the environment's clock) without waiting for the previous call to return, so a
hanging endpoint never stretches the period; each result becomes a :class:`Sample` streamed to
``samples.jsonl``. While the drill runs, :meth:`Probe.signals` turns the recent samples into live
values for waits and guards; at the end, :meth:`Probe.metrics` turns all samples into metrics.

Probes register under the entry point group ``drill.probes``; the registered name is the ``kind``
used in scenario files. A probe class also declares its parameters (``Spec``, a pydantic model that
forbids unknown keys) and the names of its signals and metrics, so that a scenario naming an
unknown one is refused before anything is touched. A probe class may set ``DEFAULT_EVERY`` (scenario
seconds), its period when a scenario gives no ``every`` (a probe polling a throttled API sets a
longer one than the usual 1 s). A probe holding resources (sockets, a watch's
thread) also has ``async def aclose()``, which the runner calls once sampling has stopped.
:class:`ProbeBase` gives these optional members their defaults; a probe class inherits it or
declares them itself (the registry refuses a class lacking one, saying which).

A sample that measured nothing (a timeout, a refused connection, a dead server, an API error) says
so: its values hold :data:`BLIND`, the reason, and none of the probe's signal values, so that no
signal or metric is ever read from it (:mod:`probes.blindness` turns runs of them into blind
intervals, and the metrics whose window they overlap into unmeasured ones). A probe may declare
``WINDOWS``, the part of a trial each of its metrics depends on (:data:`probes.blindness.MetricWindow`
by metric name; by default from incident start to the end of the trial), and ``SINCE_INCIDENT``, the
metrics counted from the incident's start (an RTO-like time the live view counts down to).

Units: every duration in a sample's values, a signal or a metric is in scenario seconds (what the
scenario's durations mean), so a lab's compressed clock and a real environment read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from reports.samples import BLIND as SAMPLE_BLIND

if TYPE_CHECKING:
    from drills.targets import Targets
    from probes.blindness import MetricWindow

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]
SignalValue = str | float | bool | None
"""A live value: a region name, a number (rates in %, counts), a truth. None: not known now."""

BLIND = SAMPLE_BLIND
"""The value key of a sample that measured nothing; its value says why (see the module docstring). One
constant with :mod:`reports.samples`, which reads ``samples.jsonl`` back for the reports."""

SKIPPED = "skipped"
"""The value key (True) of a tick that took no measurement because the previous one is still in
flight: neither measured nor blind, since the one in flight speaks for that time (and is blind if it
fails)."""



@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement at one instant.

    ``t`` is scenario seconds since the run started, on the environment's clock (real seconds times
    the time scale) and is the instant the measurement was started; ``real`` is the same instant as
    real Unix time, for judging against a lab's ground truth; ``duration`` is how long it took, in
    scenario seconds (it bounds the measurement error).
    """

    probe: str
    t: float
    real: float
    values: Mapping[str, JSONValue]
    duration: float = 0.0

    @property
    def blind(self) -> str | None:
        """Why this sample measured nothing (its :data:`BLIND` value); None when it measured."""
        reason = self.values.get(BLIND)
        if reason is None or reason is False:
            return None
        return str(reason) or "no reason given"

    @property
    def skipped(self) -> bool:
        """Whether this tick measured nothing because the previous measurement was still in flight."""
        return self.values.get(SKIPPED) is True


@dataclass(frozen=True, slots=True)
class Metric:
    """A number derived from a whole run. ``value`` None means unmeasured: the probe never saw the
    event, and any expectation on it fails. ``error`` is the measurement error in ``unit``."""

    value: float | str | None
    unit: str
    error: float | None = None
    note: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None


@dataclass(frozen=True, slots=True)
class Marks:
    """The instants of a run that metrics are counted from, in scenario seconds.

    ``incident_start``: the first fault was applied (None if none was). ``recovery_start``: the first
    undo began (a mid-run ``undo`` step or the final rollback); failback is counted from it.
    ``ended``: sampling stopped.
    """

    incident_start: float | None
    recovery_start: float | None
    ended: float
    undone: Mapping[str, float] = field(default_factory=dict)
    failed_regions: frozenset[str] = frozenset()
    """The regions the applied faults targeted (the incident's regions); empty when unknown."""


@runtime_checkable
class Probe(Protocol):
    """A continuous measurement (see the module docstring).

    Members the runner reads, and when: ``Spec``, ``SIGNALS``, ``METRICS`` and ``DEFAULT_EVERY`` when a
    scenario is validated; :meth:`sample` every ``period`` while the drill runs; :meth:`signals` after
    each sample; :meth:`metrics` and ``WINDOWS`` once sampling has stopped, per trial; :meth:`aclose`
    last of all. ``drill plan`` and ``drill doctor`` build no probe.
    """

    Spec: ClassVar[type[BaseModel]]
    """The parameters a scenario's probe entry takes besides ``kind`` and ``every`` (forbid unknown
    keys: a misspelt key is then refused with its place in the file)."""
    SIGNALS: ClassVar[tuple[str, ...]]
    """Signal names (``answer``); a name ending in ``.*`` takes a key (``ready.*`` -> ``ready.zone-1``)."""
    METRICS: ClassVar[tuple[str, ...]]
    """Metric names, with the same ``.*`` convention for breakdowns."""
    DEFAULT_EVERY: ClassVar[float | None]
    """Scenario seconds between samples when the scenario gives no ``every``; None: the usual 1 s."""
    WINDOWS: ClassVar[Mapping[str, MetricWindow]]
    """The part of a trial each metric depends on, by metric name (``"failover"``); a metric not named
    depends on the whole incident. A blind interval inside its window makes a metric unmeasured."""
    SINCE_INCIDENT: ClassVar[frozenset[str]]
    """The metrics (names without ``.*``) that are a time counted from the incident's start
    (``failover_time``), not a duration of something else (``downtime``): an upper bound on one is a
    deadline the live view times the incident against."""

    name: str
    """The probe's name in the scenario (``web_us``): samples, signals and metrics are keyed by it."""
    period: float
    """Scenario seconds between samples."""

    async def sample(self) -> Mapping[str, JSONValue]:
        """Take one measurement. Must not raise for a failed measurement: a failure is a value
        (``{BLIND: "why"}``). A call that raises, or outlives the sample timeout and is cancelled, is
        recorded as a blind sample; the next tick does not wait for it (a few calls may be in flight at
        once, so the probe must allow concurrent calls)."""
        ...

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """Live values from the recent samples (oldest first). The key ``steady`` (bool) says whether
        the probe sees the healthy steady state the drill must start from and return to. Called after
        every sample, on the event loop: keep it quick and free of I/O. An exception keeps the last
        signals, and the probe's line says why they are stale."""
        ...

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """Metrics from every sample of the run (sorted by ``t``), keyed by name without the probe. An
        exception costs only this probe's metrics, and is reported."""
        ...

    async def aclose(self) -> None:
        """Release what the probe holds (sockets, threads). Called once, after sampling has stopped;
        an exception is ignored."""
        ...


class ProbeBase:
    """Defaults for a probe's optional members; a probe class may inherit them.

    No ``DEFAULT_EVERY`` (the scenario's 1 s default), no ``WINDOWS`` (every metric depends on the
    whole incident), no ``SINCE_INCIDENT`` metric, and nothing to close.
    """

    DEFAULT_EVERY: ClassVar[float | None] = None
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = MappingProxyType({})
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset()

    async def aclose(self) -> None:
        """Nothing to release."""


class ProbeFactory(Protocol):
    """What the ``drill.probes`` entry point names: a class built from its parsed spec.

    It is called once per probe of a scenario, when the run starts (not by ``drill plan`` or ``drill
    validate``), with the probe's ``name``, its ``Spec`` instance, the run's :class:`Targets` and its
    period in scenario seconds; it must not do I/O (the first :meth:`Probe.sample` does).
    """

    Spec: ClassVar[type[BaseModel]]
    SIGNALS: ClassVar[tuple[str, ...]]
    METRICS: ClassVar[tuple[str, ...]]
    DEFAULT_EVERY: ClassVar[float | None]
    WINDOWS: ClassVar[Mapping[str, MetricWindow]]
    SINCE_INCIDENT: ClassVar[frozenset[str]]

    def __call__(self, name: str, spec: Any, targets: Targets, *, every: float) -> Probe: ...
