"""A probe of the replicas a deployment is asked to run (its scale), healthy at ``expected`` or more."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from probes.base import BLIND, JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue

if TYPE_CHECKING:
    from drills.targets import Targets


class DesiredReplicas(ProbeBase):
    """Reads a deployment's scale; ``steady`` while it asks for at least ``expected`` replicas."""

    class Spec(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        cluster: str
        namespace: str
        deployment: str
        expected: int

    SIGNALS: ClassVar[tuple[str, ...]] = ("desired", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("min_desired",)

    def __init__(self, name: str, spec: Spec, targets: Targets, *, every: float) -> None:
        self.name, self.period = name, every
        self.spec = spec
        self._targets = targets

    async def sample(self) -> Mapping[str, JSONValue]:
        kube = self._targets.kube(self.spec.cluster)
        try:
            scale = await kube.call(kube.apps.read_namespaced_deployment_scale, self.spec.deployment,
                                    self.spec.namespace)
        except Exception as exc:  # a failed measurement is a value, never an exception
            return {BLIND: f"cannot read the scale: {type(exc).__name__}: {exc}"}
        return {"desired": scale.spec.replicas}

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        seen = [s for s in recent if s.blind is None]
        if not seen:
            return {"desired": None, "steady": False}
        desired = _desired(seen[-1])
        return {"desired": desired, "steady": desired >= self.spec.expected}

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        seen = [_desired(s) for s in samples if s.blind is None and not s.skipped]
        return {"min_desired": Metric(min(seen) if seen else None, "count")}


def _desired(sample: Sample) -> float:
    value: Any = sample.values["desired"]
    return float(value)
