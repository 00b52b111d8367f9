"""The replicas probe: how many of a deployment's pods are ready, per zone, from Kubernetes watches.

The counts come from a :class:`probes.kubewatch.DeploymentWatch` (the deployment, its pods and the
nodes, kept current by watches rather than polled; see that module for how and what counts as ready).
Because the watches see every change, each sample also carries the lowest counts since the previous
sample (``low``, ``low_by_zone``): a dip shorter than the period is still seen, so ``min_ready`` is
exact. Sample values::

    {"ready": 3, "desired": 3, "by_zone": {"zone-1": 1, "zone-2": 1, "zone-3": 1},
     "low": 2, "low_by_zone": {"zone-1": 0, "zone-2": 1, "zone-3": 1}, "error": null}

Counts are exact (error 0): the watch sees every state. Times lie between the last sample that did not
see the event and the first that did; the error is half that gap, to which the watch's delivery delay
adds a few milliseconds on a healthy API server (not included: the probe cannot measure it).

Metrics, counted from incident start (over the whole run if no fault was applied): ``min_ready``, the
fewest ready pods; ``time_to_restore``, to the first instant ready >= desired again after having
dropped below it (0 if it never dropped; unmeasured if it dropped without a fault, which leaves no
instant to count from, or never came back); ``ready_by_zone.<zone>``, the fewest ready pods in each zone
(the capacity floor each zone fell to, which is what a zone-loss expectation is about; every zone with
nodes is listed, so a zone the deployment never used shows 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from drills.errors import DrillError
from drills.targets import Targets
from probes.base import JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue
from probes.blindness import MetricWindow
from probes.kubewatch import DeploymentWatch, pod_selector
from probes.timeline import Interval
from reports.base import format_t

__all__ = ["ReplicasProbe", "pod_selector"]
"""``pod_selector`` lives in :mod:`probes.kubewatch`; it is named here too for the callers that know it
from this module."""


class ReplicasProbe(ProbeBase):
    """Ready replicas of one deployment per zone, from watches (see the module docstring)."""

    class Spec(BaseModel):
        """The replicas probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

        cluster: str
        """The region whose cluster runs the deployment."""
        namespace: str
        """The deployment's namespace."""
        deployment: str
        """The deployment whose ready replicas are counted, per zone of their nodes."""

    SIGNALS: ClassVar[tuple[str, ...]] = ("ready", "ready.*", "desired", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("min_ready", "time_to_restore", "ready_by_zone.*")
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = {"time_to_restore": "failover"}
    """The part of a trial each metric depends on (:mod:`probes.blindness`): the floors, from the
    incident to the end; the time to restore, until ready again."""
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset({"time_to_restore"})

    def __init__(self, name: str, spec: ReplicasProbe.Spec, targets: Targets, *, every: float) -> None:
        if spec.cluster not in targets.env.regions:
            raise DrillError(f"probe {name}: cluster {spec.cluster!r} is not a region of this environment "
                             f"(its regions: {', '.join(sorted(targets.env.regions))})")
        self.name = name
        self.period = every
        self.spec = spec
        self._watch = DeploymentWatch(targets.kube(spec.cluster), f"replicas {name}",
                                      namespace=spec.namespace, deployment=spec.deployment)

    async def sample(self) -> Mapping[str, JSONValue]:
        """The counts now and their lows since the previous sample; never raises."""
        self._watch.start()
        return self._watch.take()

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``ready``, ``desired`` and ``ready.<zone>`` of the latest sample; ``steady`` when it had
        every desired replica ready."""
        if not recent:
            return {"ready": None, "desired": None, "steady": False}
        latest = recent[-1].values
        ready, desired = _count(latest.get("ready")), _count(latest.get("desired"))
        steady = ready is not None and desired is not None and ready >= desired
        out: dict[str, SignalValue] = {"ready": ready, "desired": desired, "steady": steady}
        by_zone = latest.get("by_zone")
        if isinstance(by_zone, dict):
            for zone, count in by_zone.items():
                out[f"ready.{zone}"] = _count(count)
        return out

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """``min_ready``, ``time_to_restore`` and ``ready_by_zone.<zone>`` (module docstring)."""
        every = sorted(samples, key=lambda s: s.t)
        ordered = [s for s in every if _count(s.values.get("ready")) is not None]
        start = marks.incident_start if marks.incident_start is not None else float("-inf")
        scope = "" if marks.incident_start is not None else "no fault was applied: over the whole run"
        after = [s for s in ordered if s.t >= start]
        out: dict[str, Metric] = {}
        if not after:
            out["min_ready"] = Metric(None, "count", note="no sample saw the deployment")
            out["time_to_restore"] = Metric(None, "s", note="no sample saw the deployment")
            return out
        # A broken watch sees nothing until it lists again: a dip while it was down is missed, so the
        # floors are then only upper bounds.
        blind = sum(1 for s in every if s.t >= start and _count(s.values.get("ready")) is None)
        missed = (f"{blind} blind samples: a dip while the watch was down is not seen, so the true "
                  "floor may be lower") if blind else ""
        lows = [_low(s.values) for s in after]
        out["min_ready"] = Metric(float(min(lows)), "count", error=0.0,
                                  note=_notes(scope or "every change seen by the watch counts", missed))
        restore = _time_to_restore(ordered, marks)
        out["time_to_restore"] = (Metric(restore.value, restore.unit, error=restore.error,
                                         note=_notes(restore.note, missed)) if restore.measured else restore)
        zones = sorted({z for s in after for z in _zones(s.values, "by_zone")})
        for zone in zones:
            floor = min(_zones(s.values, "low_by_zone").get(zone, 0) for s in after)
            note = _notes(scope or "fewest ready in this zone after the incident", missed)
            out[f"ready_by_zone.{zone}"] = Metric(float(floor), "count", error=0.0, note=note)
        return out

    async def aclose(self) -> None:
        """Stop the watches and their threads."""
        await self._watch.aclose()


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _low(values: Mapping[str, JSONValue]) -> int:
    low, ready = _count(values.get("low")), _count(values.get("ready"))
    return low if low is not None else ready or 0


def _zones(values: Mapping[str, JSONValue], key: str) -> dict[str, int]:
    found = values.get(key)
    if not isinstance(found, dict):
        return {}
    return {str(z): c for z, c in found.items() if isinstance(c, int)}


def _notes(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _time_to_restore(samples: Sequence[Sample], marks: Marks) -> Metric:
    origin = marks.incident_start
    start = origin if origin is not None else float("-inf")
    previous: Sample | None = None
    dropped = False
    for sample in samples:
        if sample.t < start:
            previous = sample
            continue
        ready, desired = _count(sample.values.get("ready")), _count(sample.values.get("desired"))
        if ready is None or desired is None:
            continue
        dropped = dropped or _low(sample.values) < desired
        if dropped and origin is None:
            # Without a fault there is no instant to count from: the run's first sample is not one.
            return Metric(None, "s", note=f"no fault was applied, so no incident to restore from (ready "
                                          f"dropped to {_low(sample.values)}/{desired} at "
                                          f"{format_t(sample.t)})")
        if dropped and ready >= desired and origin is not None:
            lo = previous.t if previous is not None else sample.t
            return Interval(max(lo, origin), sample.t).since(origin)
        previous = sample
    if not dropped:
        return Metric(0.0, "s", error=0.0, note="ready never dropped below desired"
                      + ("" if origin is not None else " (no fault was applied)"))
    last = samples[-1].values
    return Metric(None, "s", note=f"ready stayed below desired ({last.get('ready')}/{last.get('desired')} "
                                  "when sampling stopped)")
