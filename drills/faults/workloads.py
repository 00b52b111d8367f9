"""Workload faults: ``kill-ingress`` (scale the region's ingress controller to 0, undo restores the
recorded count) and ``delete-pods`` (delete the pods a selector picks; their controller recreates
them, so there is nothing to undo, but the record lists what was deleted).
"""

from __future__ import annotations

import math
import random
from typing import ClassVar

from kubernetes.client import V1Pod
from pydantic import ConfigDict, Field

from drills.errors import FaultError
from drills.faults.base import Undo
from drills.faults.kube import (
    ZONE_LABEL,
    FaultParams,
    Selector,
    call,
    call_unless_gone,
    each,
    object_name,
    region,
)
from drills.targets import Targets
from drills.units import Duration, Percent


class KillIngress:
    """Scale the region's ingress controller (the environment names it) to zero replicas."""

    name: ClassVar[str] = "kill-ingress"

    class Params(FaultParams):
        model_config = ConfigDict(title="kill-ingress")

        cluster: str
        """The region whose ingress controller is scaled to zero."""

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        cluster = self.params.cluster
        kube = region(targets, cluster)
        ingress = targets.env.regions[cluster].ingress
        scale = await call(kube, kube.apps.read_namespaced_deployment_scale, ingress.deployment,
                           ingress.namespace, what=f"read the scale of {cluster}/{ingress.namespace}/"
                                                   f"{ingress.deployment}")
        replicas = (scale.spec.replicas if scale.spec else None) or 0
        return Undo(fault=self.name, region=cluster,
                    summary=f"scale the ingress controller {ingress.namespace}/{ingress.deployment} in "
                            f"{cluster} from {replicas} replicas to 0",
                    objects=[object_name(cluster, "Deployment", ingress.namespace, ingress.deployment)],
                    data={"namespace": ingress.namespace, "deployment": ingress.deployment,
                          "replicas": replicas})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await _scale(targets, undo, 0)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        await _scale(targets, undo, undo.data["replicas"])

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The kubectl arguments that undo it, for a person when drill could not."""
        d = undo.data
        return f"-n {d['namespace']} scale deployment/{d['deployment']} --replicas={d['replicas']}"


class DeletePods:
    """Delete the pods a label selector picks (optionally in one zone, optionally a share of them)."""

    name: ClassVar[str] = "delete-pods"

    class Params(FaultParams):
        model_config = ConfigDict(title="delete-pods")

        cluster: str
        """The region whose pods are deleted."""
        namespace: str
        """The namespace of the pods."""
        selector: Selector
        """A label selector, as kubectl takes it (``app=web``, ``tier in (a,b)``)."""
        zone: str | None = None
        """Only pods on nodes of this zone (``topology.kubernetes.io/zone``)."""
        share: Percent = Field(default=100.0, gt=0)
        """The share of the matching pods to delete, picked at random (rounded up: never none)."""
        grace_period: Duration | None = None
        """Termination grace period; None keeps each pod's own."""

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        kube = region(targets, p.cluster)
        found = await call(kube, kube.core.list_namespaced_pod, p.namespace, label_selector=p.selector,
                           what=f"list the pods {p.selector} in {p.cluster}/{p.namespace}")
        pods: list[V1Pod] = [pod for pod in found.items if pod.metadata.deletion_timestamp is None]
        where = f"{p.cluster}/{p.namespace}"
        if p.zone is not None:
            nodes = await call(kube, kube.core.list_node, label_selector=f"{ZONE_LABEL}={p.zone}",
                               what=f"list the nodes of zone {p.zone} in {p.cluster}")
            names = {n.metadata.name for n in nodes.items}
            pods = [pod for pod in pods if pod.spec and pod.spec.node_name in names]
            where += f" in zone {p.zone}"
        if not pods:
            raise FaultError(f"delete-pods: no running pod matches {p.selector!r} in {where}")
        count = math.ceil(len(pods) * p.share / 100)
        chosen = sorted(random.sample(pods, count), key=lambda pod: pod.metadata.name)
        limit = targets.env.limits.max_pods
        if count > limit:
            raise FaultError(f"delete-pods would delete {count} pods in {where}, more than the environment's "
                             f"limit of {limit} (limits.maxPods)")
        names = [pod.metadata.name for pod in chosen]
        return Undo(fault=self.name, region=p.cluster,
                    summary=f"delete {count} of the {len(pods)} pods {p.selector} in {where} "
                            "(their controller recreates them)",
                    objects=[object_name(p.cluster, "Pod", p.namespace, n) for n in names],
                    data={"namespace": p.namespace, "pods": names})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        kube = targets.kube(undo.region)
        namespace = undo.data["namespace"]
        grace = self.params.grace_period
        extra = {"grace_period_seconds": round(grace)} if grace is not None else {}

        async def delete(name: str) -> None:
            await call_unless_gone(kube, kube.core.delete_namespaced_pod, name, namespace, **extra,
                                   what=f"delete pod {undo.region}/{namespace}/{name}")

        await each(undo.data["pods"], delete)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        """Nothing to restore: the pods' controllers recreate them."""

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """Nothing: the pods' controllers recreate them."""
        return None


async def _scale(targets: Targets, undo: Undo, replicas: int) -> None:
    kube = targets.kube(undo.region)
    namespace, deployment = undo.data["namespace"], undo.data["deployment"]
    await call(kube, kube.apps.patch_namespaced_deployment_scale, deployment, namespace,
               {"spec": {"replicas": replicas}}, _content_type="application/merge-patch+json",
               what=f"scale {undo.region}/{namespace}/{deployment} to {replicas}")
