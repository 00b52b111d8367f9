"""Workload faults: ``kill-ingress`` (scale the region's ingress controller to 0, undo restores the
recorded count) and ``delete-pods`` (delete the pods a selector picks, or every pod of a zone; their
controller recreates them, so there is nothing to undo, but the record lists what was deleted).
"""

from __future__ import annotations

import math
import random
from typing import ClassVar

from kubernetes.client import V1Pod
from pydantic import ConfigDict, Field, model_validator

from drills.errors import FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import (
    FaultParams,
    Selector,
    call,
    call_unless_gone,
    each,
    object_name,
    region,
    zone_nodes,
)
from drills.targets import Targets
from drills.units import Duration, Percent


class KillIngress:
    """Scale the region's ingress controller (the environment names it) to zero replicas."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("get", "deployments", "apps", "scale"),
        Permission("patch", "deployments", "apps", "scale"),
        Permission("patch", "deployments", "apps"),
    )

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
    """Delete the pods a label selector picks, or every pod of a zone (optionally a share of them).

    A selector that matches no pod anywhere is refused as a likely typo, as is a zone with no node.
    A selector that matches pods, none of them in the zone, is not: the design keeps that workload
    out of the zone, the fault applies to nothing there, and its summary (the run's timeline) says so.
    """

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("list", "nodes"),
        Permission("list", "pods"),
        Permission("delete", "pods"),
    )

    name: ClassVar[str] = "delete-pods"

    class Params(FaultParams):
        model_config = ConfigDict(title="delete-pods")

        cluster: str
        """The region whose pods are deleted."""
        namespace: str | None = None
        """The namespace of the pods; none: every namespace."""
        selector: Selector | None = None
        """A label selector, as kubectl takes it (``app=web``, ``tier in (a,b)``); none: every pod
        (a zone is then required), as when the zone is lost."""
        zone: str | None = None
        """Only pods on nodes of this zone (``topology.kubernetes.io/zone``)."""
        share: Percent = Field(default=100.0, gt=0)
        """The share of the matching pods to delete, picked at random (rounded up: never none)."""
        grace_period: Duration | None = None
        """Termination grace period; None keeps each pod's own."""

        @model_validator(mode="after")
        def _bounded(self) -> DeletePods.Params:
            if self.selector is None and self.zone is None:
                raise ValueError("give a selector, a zone or both: without either, every pod of the "
                                 "region would be deleted")
            return self

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        kube = region(targets, p.cluster)
        where = f"{p.cluster}/{p.namespace}" if p.namespace is not None else f"{p.cluster} (every namespace)"
        picked = f" {p.selector}" if p.selector is not None else ""
        what = f"list the pods{picked} in {where}"
        selector = {"label_selector": p.selector} if p.selector is not None else {}
        found = await (call(kube, kube.core.list_namespaced_pod, p.namespace, **selector, what=what)
                       if p.namespace is not None
                       else call(kube, kube.core.list_pod_for_all_namespaces, **selector, what=what))
        pods: list[V1Pod] = [pod for pod in found.items if pod.metadata.deletion_timestamp is None]
        if not pods and p.selector is not None:
            raise FaultError(f"delete-pods: no running pod matches {p.selector!r} in {where}")
        if p.zone is not None:
            names = {n.metadata.name for n in await zone_nodes(kube, p.cluster, p.zone)}
            anywhere = len(pods)
            pods = [pod for pod in pods if pod.spec and pod.spec.node_name in names]
            if not pods:
                return Undo(fault=self.name, region=p.cluster,
                            summary=f"applies to nothing: none of the {anywhere} pods{picked} in {where} "
                                    f"is in zone {p.zone}",
                            data={"pods": []})
            where += f" in zone {p.zone}"
        count = math.ceil(len(pods) * p.share / 100)
        chosen = sorted(random.sample(pods, count),
                        key=lambda pod: (pod.metadata.namespace, pod.metadata.name))
        limit = targets.env.limits.max_pods
        if count > limit:
            raise FaultError(f"delete-pods would delete {count} pods in {where}, more than the environment's "
                             f"limit of {limit} (limits.maxPods)")
        return Undo(fault=self.name, region=p.cluster,
                    summary=f"delete {count} of the {len(pods)} pods{picked} in {where} "
                            "(their controller recreates them)",
                    objects=[object_name(p.cluster, "Pod", pod.metadata.namespace, pod.metadata.name)
                             for pod in chosen],
                    data={"pods": [f"{pod.metadata.namespace}/{pod.metadata.name}" for pod in chosen]})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        kube = targets.kube(undo.region)
        grace = self.params.grace_period
        extra = {"grace_period_seconds": round(grace)} if grace is not None else {}

        async def delete(pod: str) -> None:
            namespace, name = pod.split("/", 1)
            await call_unless_gone(kube, kube.core.delete_namespaced_pod, name, namespace, **extra,
                                   what=f"delete pod {undo.region}/{pod}")

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
