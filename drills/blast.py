"""The blast radius of a whole scenario: what its faults affect together at the worst moment.

Limits per fault miss what a scenario adds up to: six steps that each cordon a zone of two nodes stay
within ``maxNodes: 2`` one at a time and cordon twelve together. So the whole scenario is judged, from
its step structure and every fault's prepared undo record, before anything is touched (``drill plan``
prints it; ``drill run`` refuses the drill on a breach, right after the pre-flight has prepared every
fault and before the first is applied).

**Moments.** A fault is in effect from its step until an ``undo:`` step reverts it, or until the final
rollback (which only ends faults). Steps run in order; a ``parallel:`` group's branches run together in
an order nobody knows, so while it runs every fault in it counts as in effect at once with every fault
before it, and an undo inside it counts as not yet done (it may finish after its siblings' injections);
once the group is over, its undos are done. Each step that injects makes a moment: the set of faults in
effect together then. Trials repeat the steps after a full rollback, so they add no moment.

**What a fault affects** (from its undo record's ``objects`` and ``data``): a cordoned, drained or
powered-off node is a node (``region/Node//name``; ``zone-down``'s ``data.nodes``); an evicted or deleted
pod is a pod (``region/Pod/ns/name``); ``kill-ingress`` scales its deployment's recorded replicas away,
counted as that many pods, the same pods as any named pod of that deployment (named
``<deployment>-...``, as a Deployment's ReplicaSet names them); ``isolate`` cuts off the pods its
selector picked when prepared (``data.pods``). An object several faults touch counts once. The numbers
are estimates where the record cannot know better, and say so: a scaled deployment's pods are its
replica count, an isolated selector's pods those present when prepared, and the pods on powered-off
nodes are not counted (which they are is known only once they are lost).

**Rules**, each PASS or REFUSED (the environment's ``limits``, :class:`drills.environment.Limits`):
``maxNodes`` and ``maxPods`` (distinct nodes and pods over every region at the moment with the most),
``protectedNamespaces`` (no fault changes an object in one), ``allowedFaults`` (every step's fault is
one of them) and ``allowAllRegionsDown`` (no moment takes every region's front door away: its ingress
killed or isolated, its Traffic Manager endpoint disabled, or every zone of it powered off; see
:data:`drills.design.FRONT_DOOR_FAULTS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from drills.design import FRONT_DOOR_FAULTS
from drills.environment import Environment, Limits
from drills.faults.base import Undo
from drills.faults.kube import ZONE_LABEL, call
from drills.scenario import FaultStep, ParallelStep, Scenario, Step, UndoStep
from drills.targets import Targets
from reports.record import BlastRecord

ZONE_DOWN = "zone-down"
ISOLATE = "isolate"


@dataclass(frozen=True)
class Footprint:
    """What one prepared fault affects while it is in effect."""

    step: str
    fault: str
    region: str
    nodes: frozenset[str] = frozenset()
    """``region/name``."""
    pods: frozenset[str] = frozenset()
    """``region/namespace/name``."""
    scaled: Mapping[str, int] = field(default_factory=dict)
    """``region/namespace/deployment`` -> the replicas scaled away (pods counted, not named)."""
    namespaced: tuple[str, ...] = ()
    """Every Kubernetes object it changes that lives in a namespace, as ``namespace/kind/name``."""
    front_door: bool = False
    """Whether it takes its region's front door away by itself."""
    zone: str | None = None
    """The zone a ``zone-down`` powers off."""


def footprint(step: FaultStep, undo: Undo, env: Environment) -> Footprint:
    """What ``step``'s fault, prepared as ``undo``, affects (see the module docstring)."""
    nodes: set[str] = set()
    pods: set[str] = set()
    namespaced: list[str] = []
    for name in undo.objects:
        parts = name.split("/", 3)
        if name.startswith("/") or len(parts) != 4:
            continue  # an Azure resource: neither a node nor a pod
        region, kind, namespace, obj = parts
        if kind == "Node":
            nodes.add(f"{region}/{obj}")
        if kind == "Pod":
            pods.add(f"{region}/{namespace}/{obj}")
        if namespace:
            namespaced.append(f"{namespace}/{kind}/{obj}")
    region = undo.region
    scaled: dict[str, int] = {}
    if step.fault == "kill-ingress" and "replicas" in undo.data:
        scaled[f"{region}/{undo.data['namespace']}/{undo.data['deployment']}"] = int(undo.data["replicas"])
    if step.fault == ISOLATE:
        pods.update(f"{region}/{pod}" for pod in undo.data.get("pods", []))
    if step.fault == ZONE_DOWN:
        nodes.update(f"{region}/{node}" for node in undo.data.get("nodes", []))
    ingress = env.regions[region].ingress if region in env.regions else None
    front_door = step.fault in FRONT_DOOR_FAULTS or (
        step.fault == ISOLATE and ingress is not None and undo.data.get("namespace") == ingress.namespace)
    return Footprint(step=step.id, fault=step.fault, region=region, nodes=frozenset(nodes),
                     pods=frozenset(pods), scaled=scaled, namespaced=tuple(namespaced),
                     front_door=front_door and bool(region),
                     zone=getattr(step.params, "zone", None) if step.fault == ZONE_DOWN else None)


def moments(steps: Sequence[Step]) -> list[tuple[str, ...]]:
    """The sets of fault step ids in effect together, one per step that injects (see the module
    docstring), in order; each in the order the faults began."""
    found: list[tuple[str, ...]] = []
    active: list[str] = []
    for step in steps:
        if isinstance(step, FaultStep):
            active.append(step.id)
            found.append(tuple(active))
        elif isinstance(step, UndoStep):
            if step.target in active:
                active.remove(step.target)
        elif isinstance(step, ParallelStep):
            faults, undone = _inside(step)
            if faults:
                active.extend(faults)
                found.append(tuple(active))
            active = [s for s in active if s not in undone]
    return list(dict.fromkeys(found))


def _inside(group: ParallelStep) -> tuple[list[str], set[str]]:
    """The fault step ids and the undo targets anywhere inside ``group``."""
    faults: list[str] = []
    undone: set[str] = set()
    for step in group.steps:
        if isinstance(step, FaultStep):
            faults.append(step.id)
        elif isinstance(step, UndoStep):
            undone.add(step.target)
        elif isinstance(step, ParallelStep):
            more, also = _inside(step)
            faults.extend(more)
            undone |= also
    return faults, undone


@dataclass(frozen=True)
class Impact:
    """What one moment affects, per region."""

    steps: tuple[str, ...]
    nodes: Mapping[str, int]
    pods: Mapping[str, int]
    dark: tuple[str, ...]
    """The regions whose front door is away, in the environment's order."""
    dark_by: tuple[str, ...]
    """The steps that take them away."""

    @property
    def total_nodes(self) -> int:
        return sum(self.nodes.values())

    @property
    def total_pods(self) -> int:
        return sum(self.pods.values())


def impact(steps: tuple[str, ...], prints: Mapping[str, Footprint], env: Environment,
           zones: Mapping[str, frozenset[str]]) -> Impact:
    """What the faults ``steps`` affect together (an object several touch counts once)."""
    active = [prints[s] for s in steps if s in prints]
    nodes = {n for f in active for n in f.nodes}
    named = {p for f in active for p in f.pods}
    scaled: dict[str, int] = {}
    for f in active:
        for deployment, replicas in f.scaled.items():
            scaled[deployment] = max(replicas, scaled.get(deployment, 0))
    pods = {region: 0 for region in env.regions}
    for pod in named:
        region = pod.split("/", 1)[0]
        pods[region] = pods.get(region, 0) + 1
    for deployment, replicas in scaled.items():
        region, namespace, name = deployment.split("/", 2)
        # A Deployment's pods are named <deployment>-<template hash>-<suffix>: the same pods.
        same = sum(1 for p in named if p.startswith(f"{region}/{namespace}/{name}-"))
        pods[region] = pods.get(region, 0) + max(0, replicas - same)
    node_counts = {region: 0 for region in env.regions}
    for node in nodes:
        region = node.split("/", 1)[0]
        node_counts[region] = node_counts.get(region, 0) + 1
    dark_by: dict[str, list[str]] = {}
    for f in active:
        if f.front_door:
            dark_by.setdefault(f.region, []).append(f.step)
    for region, known in zones.items():
        down = [f for f in active if f.region == region and f.zone is not None]
        if known and {f.zone for f in down} >= known:
            dark_by.setdefault(region, []).extend(f.step for f in down)
    dark = tuple(r for r in env.regions if r in dark_by)
    return Impact(steps=steps, nodes=node_counts, pods=pods, dark=dark,
                  dark_by=tuple(dict.fromkeys(s for r in dark for s in dark_by[r])))


@dataclass(frozen=True)
class Rule:
    """One rule of the blast radius and how the scenario fares against it."""

    name: str
    """The environment's key (``maxNodes``)."""
    passed: bool
    detail: str
    """The numbers or the offending steps, for the plan's line."""
    refusal: str = ""
    """Why a run is refused, for the run's reason (empty when it passes)."""
    moment: tuple[str, ...] | None = None
    """For a count (``maxNodes``, ``maxPods``): the moment it was judged at."""


@dataclass(frozen=True)
class BlastRadius:
    """The whole scenario's blast radius: the worst moment, and every rule's outcome."""

    worst: Impact
    rules: tuple[Rule, ...]
    limits: Limits
    estimated: tuple[str, ...]
    """What the numbers estimate rather than know."""

    @property
    def refused(self) -> bool:
        return not all(rule.passed for rule in self.rules)

    @property
    def reason(self) -> str:
        """Why a run is refused: every broken rule, with its numbers and limit."""
        broken = [r for r in self.rules if not r.passed]
        counts = [r for r in broken if r.moment is not None]
        parts = []
        for moment in dict.fromkeys(r.moment for r in counts):
            which = "the worst moment" if moment == self.worst.steps else "another moment"
            parts.append(f"at {which} ({_moment(moment or ())}) the drill would affect "
                         + " and ".join(r.refusal for r in counts if r.moment == moment))
        parts.extend(r.refusal for r in broken if r.moment is None)
        return f"blast radius: refused: {'; '.join(parts)}; nothing was touched"

    def lines(self) -> list[str]:
        """The plan's section: the worst moment, then each rule PASS or REFUSED."""
        lines = [f"blast radius at the worst moment ({_moment(self.worst.steps)}):"]
        lines.extend(f"  {'PASS   ' if r.passed else 'REFUSED'} limits.{r.name}: {r.detail}"
                     for r in self.rules)
        lines.extend(f"  estimated: {e}" for e in self.estimated)
        return lines

    def record(self) -> BlastRecord:
        """The ``blast_radius`` object of ``run.json``."""
        limits = self.limits
        allowed = None if limits.allowed_faults is None else list(limits.allowed_faults)
        return {
            "refused": self.refused,
            "worst_moment": list(self.worst.steps),
            "nodes": dict(self.worst.nodes),
            "pods": dict(self.worst.pods),
            "limits": {"maxNodes": limits.max_nodes, "maxPods": limits.max_pods,
                       "protectedNamespaces": list(limits.protected_namespaces),
                       "allowedFaults": allowed,
                       "allowAllRegionsDown": limits.allow_all_regions_down},
            "rules": [{"rule": r.name, "passed": r.passed, "detail": r.detail} for r in self.rules],
            "estimated": list(self.estimated),
        }


def assess(scenario: Scenario, undos: Mapping[str, Undo], env: Environment, *,
           zones: Mapping[str, frozenset[str]] | None = None) -> BlastRadius:
    """The blast radius of ``scenario`` whose faults were prepared as ``undos`` (by step id) in ``env``;
    ``zones``: each region's zones, which tell when ``zone-down`` steps power a whole region off."""
    steps = {s.id: s for s in scenario.fault_steps()}
    prints = {sid: footprint(steps[sid], undo, env) for sid, undo in undos.items() if sid in steps}
    impacts = [impact(m, prints, env, zones or {}) for m in moments(scenario.steps)]
    empty = Impact(steps=(), nodes={r: 0 for r in env.regions}, pods={r: 0 for r in env.regions},
                   dark=(), dark_by=())
    worst = max(impacts, key=lambda i: (i.total_nodes + i.total_pods, len(i.steps)), default=empty)
    # The moment with the most nodes (pods), the worst moment itself when it has as many.
    most_nodes = max(impacts, key=lambda i: (i.total_nodes, i is worst), default=empty)
    most_pods = max(impacts, key=lambda i: (i.total_pods, i is worst), default=empty)
    limits = env.limits
    rules = (
        _limit("maxNodes", "nodes", most_nodes, most_nodes.nodes, limits.max_nodes, worst),
        _limit("maxPods", "pods", most_pods, most_pods.pods, limits.max_pods, worst),
        _protected(prints.values(), limits.protected_namespaces),
        _allowed(steps.values(), limits.allowed_faults),
        _front_doors(impacts, env, allowed=limits.allow_all_regions_down),
    )
    return BlastRadius(worst=worst, rules=rules, limits=limits, estimated=_estimates(prints.values()))


async def assess_drill(scenario: Scenario, undos: Mapping[str, Undo], targets: Targets) -> BlastRadius:
    """:func:`assess`, reading the zones of the regions ``zone-down`` steps strike (reads only)."""
    regions = sorted({s.region for s in scenario.fault_steps() if s.fault == ZONE_DOWN and s.region})
    found = await asyncio.gather(*(read_zones(targets, r) for r in regions))
    return assess(scenario, undos, targets.env, zones=dict(zip(regions, found, strict=True)))


async def read_zones(targets: Targets, region: str) -> frozenset[str]:
    """The zones ``region``'s nodes are in (``topology.kubernetes.io/zone``)."""
    kube = targets.kube(region)
    listed = await call(kube, kube.core.list_node, what=f"list the nodes in {region}")
    return frozenset(z for n in listed.items if (z := (n.metadata.labels or {}).get(ZONE_LABEL)))


def _limit(name: str, noun: str, at: Impact, counts: Mapping[str, int], limit: int, worst: Impact) -> Rule:
    total = sum(counts.values())
    numbers = f"{total} {noun} ({_per_region(counts)})"
    elsewhere = "" if at.steps == worst.steps else f" at the moment of the most ({_moment(at.steps)})"
    detail = f"{numbers}, limit {limit}{elsewhere}"
    if total <= limit:
        return Rule(name, True, detail, moment=at.steps)
    return Rule(name, False, detail, f"{numbers}, more than limits.{name} of {limit}", moment=at.steps)


def _protected(prints: Iterable[Footprint], protected: Sequence[str]) -> Rule:
    shown = ", ".join(protected) or "none"
    if not protected:
        return Rule("protectedNamespaces", True, "none listed")
    hits = [(f.step, obj) for f in prints for obj in f.namespaced if obj.split("/", 1)[0] in protected]
    if not hits:
        return Rule("protectedNamespaces", True, f"no fault changes an object in {shown}")
    steps = list(dict.fromkeys(step for step, _ in hits))
    objects = ", ".join(obj for _, obj in hits[:5]) + (f" and {len(hits) - 5} more" if len(hits) > 5 else "")
    who = f"steps {', '.join(steps)}" if len(steps) > 1 else f"step {steps[0]}"
    detail = (f"{who} would change {objects} in a protected namespace ({shown}); narrow the step (a "
              "namespace, a selector) or take the namespace out of limits.protectedNamespaces")
    return Rule("protectedNamespaces", False, detail, f"limits.protectedNamespaces: {detail}")


def _allowed(steps: Iterable[FaultStep], allowed: Sequence[str] | None) -> Rule:
    if allowed is None:
        return Rule("allowedFaults", True, "every fault kind is allowed")
    shown = ", ".join(allowed) or "none"
    wrong: dict[str, list[str]] = {}
    for step in steps:
        if step.fault not in allowed:
            wrong.setdefault(step.fault, []).append(step.id)
    if not wrong:
        return Rule("allowedFaults", True, f"every step's fault is allowed ({shown})")
    detail = "; ".join((f"steps {', '.join(ids)} are" if len(ids) > 1 else f"step {ids[0]} is") + f" {kind}"
                       for kind, ids in wrong.items())
    detail += f", which the environment does not allow (allowed: {shown})"
    return Rule("allowedFaults", False, detail, f"limits.allowedFaults: {detail}")


def _front_doors(impacts: Sequence[Impact], env: Environment, *, allowed: bool) -> Rule:
    regions = ", ".join(env.regions)
    every = next((i for i in impacts if len(i.dark) == len(env.regions)), None)
    if every is None:
        most = max(impacts, key=lambda i: len(i.dark), default=None)
        if most is None or not most.dark:
            return Rule("allowAllRegionsDown", True, "no fault takes a region's front door away")
        return Rule("allowAllRegionsDown", True,
                    f"at most {', '.join(most.dark)} of {regions} without a front door at once")
    detail = (f"steps {', '.join(every.dark_by)} take the front door of every region ({regions}) at once "
              "(ingress or Traffic Manager endpoint): the whole service is down")
    if allowed:
        return Rule("allowAllRegionsDown", True, f"{detail}; the environment allows it")
    return Rule("allowAllRegionsDown", False, detail + " (allowAllRegionsDown: true allows it)",
                f"{detail}, which limits.allowAllRegionsDown does not allow")


def _estimates(prints: Iterable[Footprint]) -> tuple[str, ...]:
    kinds = {f.fault for f in prints}
    notes = []
    if any(f.scaled for f in prints):
        notes.append("a scaled-away deployment's pods are its replica count when prepared")
    if ISOLATE in kinds:
        notes.append("an isolated selector's pods are those it picked when prepared")
    if ZONE_DOWN in kinds:
        notes.append("the pods on powered-off nodes are not counted (known only once they are lost)")
    return tuple(notes)


def _per_region(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{region} {count}" for region, count in counts.items())


def _moment(steps: tuple[str, ...]) -> str:
    if not steps:
        return "no fault"
    if len(steps) == 1:
        return f"step {steps[0]}"
    return f"steps {', '.join(steps)} in effect together"
