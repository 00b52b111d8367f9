"""What the design review reads from the clusters before the first fault: reads only.

Per deployment a review needs (:class:`DeploymentFacts`): its replicas, how many of its pods each zone
holds (the pods' nodes' ``topology.kubernetes.io/zone`` labels), the start delay its pod template
states (the largest ``readinessProbe.initialDelaySeconds`` of its containers: a replacement pod is
not Ready before it), the node failure timeout (the shortest ``tolerationSeconds`` of its NoExecute
tolerations for ``node.kubernetes.io/unreachable`` or ``not-ready``; Kubernetes' default 300 s when
none is stated) and the floor its PodDisruptionBudget keeps. :func:`read_facts` reads them for the
deployments a scenario looks at (its replicas probes' and every region's ingress controller) and, per
fault step, how many pods of each the fault takes away.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import V1Deployment, V1Pod, V1PodDisruptionBudget, V1PodSpec

from drills.faults.compute import ZoneDown
from drills.faults.kube import ZONE_LABEL, parse_selector, selector_matches
from drills.faults.nodes import DrainNodes
from drills.faults.workloads import DeletePods, KillIngress
from drills.scenario import FaultStep, Scenario
from drills.targets import Kube, Targets
from probes.replicas import ReplicasProbe

DEFAULT_NODE_FAILURE_TIMEOUT_S = 300.0
"""Kubernetes adds tolerations of 300 s for unreachable and not-ready nodes to pods stating none."""
_NODE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")

DeploymentKey = tuple[str, str, str]
"""(region, namespace, deployment)."""


@dataclass(frozen=True)
class DeploymentFacts:
    """One deployment as its cluster states it now."""

    region: str
    namespace: str
    name: str
    replicas: int
    ready: int
    by_zone: Mapping[str, int]
    """Scheduled pods per zone."""
    start_delay: float | None
    """The pod template's readiness initial delay; None: it states none."""
    node_failure_timeout: float
    floor: int | None
    """The fewest ready pods its PodDisruptionBudget lets evictions leave; None: no budget."""
    allowed_zones: tuple[str, ...] | None = None
    """The zones its required node affinity lets pods run in; None: any zone."""

    @property
    def key(self) -> DeploymentKey:
        return self.region, self.namespace, self.name

    @property
    def text(self) -> str:
        return f"{self.region}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DesignFacts:
    """The deployments a scenario looks at and what each fault step takes away from them."""

    deployments: Mapping[DeploymentKey, DeploymentFacts] = field(default_factory=dict)
    removed: Mapping[str, Mapping[DeploymentKey, int]] = field(default_factory=dict)
    """Per fault step id: pods of each deployment the fault removes (evicts, deletes, scales away)."""
    zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per region, the zones its nodes are in."""
    problems: tuple[str, ...] = ()
    """What could not be read (the predictions that needed it say unknown)."""


def deployment_facts(region: str, deployment: V1Deployment, pods: list[V1Pod], zone_of: Mapping[str, str],
                     pdbs: list[V1PodDisruptionBudget]) -> DeploymentFacts:
    """The facts of ``deployment`` from its pods, the nodes' zones and the namespace's budgets."""
    spec = deployment.spec
    replicas = spec.replicas if spec.replicas is not None else 1
    by_zone: dict[str, int] = {}
    for pod in pods:
        zone = zone_of.get(pod.spec.node_name or "") if pod.spec else None
        if zone is not None:
            by_zone[zone] = by_zone.get(zone, 0) + 1
    template = spec.template.spec
    delays = [c.readiness_probe.initial_delay_seconds or 0 for c in template.containers or []
              if c.readiness_probe is not None]
    timeouts = [t.toleration_seconds for t in template.tolerations or []
                if t.key in _NODE_TAINTS and t.effect == "NoExecute" and t.toleration_seconds is not None]
    labels = spec.template.metadata.labels if spec.template.metadata else None
    floor = None
    for pdb in pdbs:
        if pdb.spec is not None and selector_matches(pdb.spec.selector, labels):
            floor = _floor(pdb, replicas)
    return DeploymentFacts(
        allowed_zones=_allowed_zones(template),
        region=region, namespace=deployment.metadata.namespace, name=deployment.metadata.name,
        replicas=replicas, ready=(deployment.status.ready_replicas or 0) if deployment.status else 0,
        by_zone=by_zone, start_delay=float(max(delays)) if delays else None,
        node_failure_timeout=float(min(timeouts)) if timeouts else DEFAULT_NODE_FAILURE_TIMEOUT_S,
        floor=floor)


def _allowed_zones(template: V1PodSpec) -> tuple[str, ...] | None:
    """The zones of the first required node selector term that names them (``In``), or None."""
    affinity = template.affinity.node_affinity if template.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    for term in (required.node_selector_terms or []) if required else []:
        for expression in term.match_expressions or []:
            if expression.key == ZONE_LABEL and expression.operator == "In":
                return tuple(expression.values or [])
    return None


def _floor(pdb: V1PodDisruptionBudget, replicas: int) -> int:
    """The budget's minimum of ready pods for ``replicas`` (percentages round up, as Kubernetes does
    for minAvailable, and maxUnavailable rounds up too, leaving fewer)."""
    spec = pdb.spec
    if spec.min_available is not None:
        return _count(spec.min_available, replicas)
    if spec.max_unavailable is not None:
        return max(replicas - _count(spec.max_unavailable, replicas), 0)
    return 0


def _count(value: int | str, replicas: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * float(value[:-1]) / 100)
    return int(value)


async def read_facts(scenario: Scenario, targets: Targets) -> DesignFacts:
    """Read what the review needs for ``scenario``; never raises: what cannot be read is a problem."""
    env = targets.env
    wanted: set[DeploymentKey] = {(r, reg.ingress.namespace, reg.ingress.deployment)
                                  for r, reg in env.regions.items()}
    for probe in scenario.probes.values():
        if isinstance(probe.params, ReplicasProbe.Spec):
            p = probe.params
            wanted.add((p.cluster, p.namespace, p.deployment))
    regions = sorted({key[0] for key in wanted} | {s.region for s in scenario.fault_steps()})
    found: dict[DeploymentKey, DeploymentFacts] = {}
    pods: dict[DeploymentKey, list[V1Pod]] = {}
    zones: dict[str, dict[str, str]] = {}
    problems: list[str] = []

    async def region(name: str) -> None:
        try:
            kube = targets.kube(name)
            nodes = await kube.call(kube.core.list_node)
            zone_of = {n.metadata.name: (n.metadata.labels or {}).get(ZONE_LABEL, "") for n in nodes.items}
            zones[name] = zone_of
            for key in sorted(k for k in wanted if k[0] == name):
                facts, own = await _deployment(kube, key, zone_of)
                if facts is None:
                    problems.append(f"no deployment {name}/{key[1]}/{key[2]}")
                    continue
                found[key], pods[key] = facts, own
        except Exception as exc:  # any failure to read leaves the predictions unknown, not the run broken
            problems.append(f"region {name}: cannot read the cluster: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(region(r) for r in regions if r in env.regions))
    removed: dict[str, dict[DeploymentKey, int]] = {}
    for step in scenario.fault_steps():
        try:
            removed[step.id] = await _removed(step, targets, pods, zones.get(step.region, {}))
        except Exception as exc:  # as above
            problems.append(f"step {step.id}: cannot tell what it removes: {type(exc).__name__}: {exc}")
    region_zones = {r: tuple(sorted({z for z in zone_of.values() if z})) for r, zone_of in zones.items()}
    return DesignFacts(deployments=found, removed=removed, zones=region_zones, problems=tuple(problems))


async def _deployment(kube: Kube, key: DeploymentKey,
                      zone_of: Mapping[str, str]) -> tuple[DeploymentFacts | None, list[V1Pod]]:
    region, namespace, name = key
    try:
        deployment = await kube.call(kube.apps.read_namespaced_deployment, name, namespace)
    except Exception as exc:  # a 404 is a deployment the review cannot speak for
        if getattr(exc, "status", None) == 404:
            return None, []
        raise
    labels = (deployment.spec.selector.match_labels or {}) if deployment.spec.selector else {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    listed = await kube.call(kube.core.list_namespaced_pod, namespace, label_selector=selector)
    own = [p for p in listed.items if p.metadata.deletion_timestamp is None]
    pdbs = await kube.call(kube.policy.list_namespaced_pod_disruption_budget, namespace)
    return deployment_facts(region, deployment, own, zone_of, list(pdbs.items)), own


async def _removed(step: FaultStep, targets: Targets, pods: Mapping[DeploymentKey, list[V1Pod]],
                   zone_of: Mapping[str, str]) -> dict[DeploymentKey, int]:
    """How many pods of each known deployment of the step's region the fault takes away."""
    params: Any = step.params
    mine = {k: v for k, v in pods.items() if k[0] == step.region}
    if isinstance(params, KillIngress.Params):
        ingress = targets.env.regions[step.region].ingress
        key = (step.region, ingress.namespace, ingress.deployment)
        return {key: len(mine.get(key, []))}
    if isinstance(params, DrainNodes.Params | ZoneDown.Params):
        # A zone powered off takes its pods out of service as a drain does (without asking any budget).
        drained = set(getattr(params, "nodes", None) or [])
        if params.zone is not None:
            drained = {n for n, z in zone_of.items() if z == params.zone}
        return {k: sum(1 for p in v if p.spec and p.spec.node_name in drained) for k, v in mine.items()}
    if isinstance(params, DeletePods.Params):
        selector = parse_selector(params.selector)
        hits = {key: [p for p in own if key[1] == params.namespace
                      and selector_matches(selector, p.metadata.labels)
                      and (params.zone is None or zone_of.get(p.spec.node_name or "") == params.zone)]
                for key, own in mine.items()}
        # A share picks at random among every matching pod: at worst all picks are one deployment's.
        picked = math.ceil(sum(len(h) for h in hits.values()) * params.share / 100)
        return {key: min(len(hit), picked) for key, hit in hits.items()}
    # cordon-zone removes nothing (it only stops new pods landing); other faults are not predicted.
    return {}
