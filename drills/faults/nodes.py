"""Node faults: ``cordon-zone`` and ``drain-nodes``, each undone by uncordoning the nodes it cordoned.

Only nodes that are schedulable when the fault is prepared are recorded: a node someone else had
already cordoned is not ours to uncordon. ``drain-nodes`` drains as ``kubectl drain`` does
(docs/protocol-facts.md): cordon every node, then node after node evict its pods in parallel through the
Eviction API, so that PodDisruptionBudgets are respected; a 429 (a budget forbids it now) is retried
every 5 scenario seconds until the timeout, and each evicted pod's deletion is awaited by a watch.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import urllib3
from kubernetes.client import (
    ApiException,
    V1DeleteOptions,
    V1Eviction,
    V1Node,
    V1ObjectMeta,
    V1Pod,
    V1PodDisruptionBudget,
    V1PodList,
)
from pydantic import ConfigDict, Field, model_validator

from drills.clock import ScenarioClock
from drills.errors import FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import (
    REQUEST_TIMEOUT_S,
    FaultParams,
    PodsGone,
    api_error,
    call,
    call_unless_gone,
    check_node_limit,
    each,
    object_name,
    region,
    selector_matches,
    status_message,
    zone_nodes,
)
from drills.targets import Kube, Targets
from drills.units import Duration, format_duration

EVICTION_RETRY_S = 5.0
"""Scenario seconds between eviction attempts that a budget refused: what kubectl drain waits."""

_STRATEGIC = "application/strategic-merge-patch+json"
_MIRROR = "kubernetes.io/config.mirror"


class CordonZone:
    """Mark every schedulable node of one zone unschedulable; undo uncordons exactly those."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("list", "nodes"),
        Permission("patch", "nodes"),
    )

    name: ClassVar[str] = "cordon-zone"

    class Params(FaultParams):
        model_config = ConfigDict(title="cordon-zone")

        cluster: str
        """The region whose nodes are cordoned."""
        zone: str
        """The value of the nodes' ``topology.kubernetes.io/zone`` label."""

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        nodes = await zone_nodes(region(targets, p.cluster), p.cluster, p.zone)
        ours, theirs = _schedulable(nodes)
        check_node_limit(targets, p.cluster, ours)
        summary = f"cordon the {len(ours)} schedulable nodes of zone {p.zone} in {p.cluster}"
        if theirs:
            summary += f" ({len(theirs)} already cordoned stay as they are: {', '.join(theirs)})"
        return Undo(fault=self.name, region=p.cluster, summary=summary,
                    objects=[object_name(p.cluster, "Node", "", n) for n in ours], data={"nodes": ours})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await set_unschedulable(targets.kube(undo.region), undo.region, undo.data["nodes"], cordon=True)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        await set_unschedulable(targets.kube(undo.region), undo.region, undo.data["nodes"], cordon=False)

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The kubectl arguments that undo it, for a person when drill could not."""
        return f"uncordon {' '.join(undo.data['nodes'])}" if undo.data["nodes"] else None


class DrainNodes:
    """Cordon nodes and evict their pods as ``kubectl drain`` does; undo uncordons them."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("list", "nodes"),
        Permission("patch", "nodes"),
        Permission("list", "pods"),
        Permission("watch", "pods"),
        Permission("create", "pods", "", "eviction"),
        Permission("list", "poddisruptionbudgets", "policy"),
    )

    name: ClassVar[str] = "drain-nodes"

    class Params(FaultParams):
        model_config = ConfigDict(title="drain-nodes")

        cluster: str
        """The region whose nodes are drained."""
        zone: str | None = None
        """Drain every node of this zone (``topology.kubernetes.io/zone``); or name them in ``nodes``."""
        nodes: list[str] | None = Field(default=None, min_length=1)
        """The nodes to drain, by name, one after another in this order."""
        timeout: Duration = 300.0
        """How long the whole drain may take before it fails, naming the pods still blocked and the
        budgets blocking them (kubectl applies its timeout per node; a drill step is judged whole)."""
        grace_period: Duration | None = None
        """Termination grace period given to evicted pods; None keeps each pod's own."""
        ignore_daemonsets: bool = True
        """Leave DaemonSet pods (their controller would put them right back); false refuses to drain them."""
        delete_emptydir_data: bool = False
        """Evict pods with emptyDir volumes, losing that data; otherwise refuse to drain."""
        force: bool = False
        """Delete pods no controller manages (they do not come back); otherwise refuse to drain."""

        @model_validator(mode="after")
        def _zone_or_nodes(self) -> DrainNodes.Params:
            if (self.zone is None) == (self.nodes is None):
                raise ValueError("give either zone or nodes")
            return self

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        kube = region(targets, p.cluster)
        nodes = await (zone_nodes(kube, p.cluster, p.zone) if p.zone is not None
                       else _named_nodes(kube, p.cluster, p.nodes or []))
        names = [n.metadata.name for n in nodes]
        check_node_limit(targets, p.cluster, names)
        ours, theirs = _schedulable(nodes)
        pods: list[V1Pod] = []
        for found in await each(names, lambda n: _pods_on(kube, p.cluster, n)):
            pods.extend(found.items)
        evict = self._evictable(pods, p.cluster)
        what = f"{len(names)} node{'' if len(names) == 1 else 's'}"
        where = f" of zone {p.zone}" if p.zone is not None else ""
        summary = (f"drain {what}{where} in {p.cluster} ({', '.join(names)}), "
                   f"evicting {len(evict)} pod{'' if len(evict) == 1 else 's'}")
        if theirs:
            summary += f"; {len(theirs)} already cordoned stay cordoned after the undo"
        return Undo(fault=self.name, region=p.cluster, summary=summary,
                    objects=[object_name(p.cluster, "Node", "", n) for n in names]
                    + [object_name(p.cluster, "Pod", pod.metadata.namespace, pod.metadata.name)
                       for pod in evict],
                    data={"nodes": ours, "drain": names})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        kube = targets.kube(undo.region)
        await set_unschedulable(kube, undo.region, undo.data["nodes"], cordon=True)
        deadline = targets.clock.now() + self.params.timeout
        order: list[str] = undo.data["drain"]
        for i, node in enumerate(order):
            stuck = await self._drain(kube, targets.clock, undo.region, node, deadline=deadline)
            if stuck:
                progress = f"drained: {', '.join(order[:i]) or 'none'}; stuck on {node}"
                if order[i + 1:]:
                    progress += f"; not started: {', '.join(order[i + 1:])}"
                raise await _timed_out(kube, undo.region, stuck, after_s=self.params.timeout,
                                       progress=progress)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        await set_unschedulable(targets.kube(undo.region), undo.region, undo.data["nodes"], cordon=False)

    by_hand = staticmethod(CordonZone.by_hand)

    def _evictable(self, pods: list[V1Pod], cluster: str) -> list[V1Pod]:
        """The pods a drain evicts; a FaultError listing every pod it must refuse, as kubectl does."""
        p = self.params
        evict: list[V1Pod] = []
        refused: dict[str, list[str]] = {}
        for pod in pods:
            verdict = _classify(pod, ignore_daemonsets=p.ignore_daemonsets,
                                delete_emptydir_data=p.delete_emptydir_data, force=p.force)
            if verdict == "evict":
                evict.append(pod)
            elif verdict != "skip":
                refused.setdefault(verdict, []).append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        if refused:
            raise FaultError(f"drain-nodes in {cluster}: cannot drain; " + "; ".join(
                f"{_REFUSALS[reason]}: {', '.join(names)}" for reason, names in refused.items()))
        return evict

    async def _drain(self, kube: Kube, clock: ScenarioClock, cluster: str, node: str, *,
                     deadline: float) -> list[_Stuck]:
        """Evict one node's pods in parallel and wait, by watch, until they are gone; the pods left."""
        listed = await _pods_on(kube, cluster, node)
        evict = self._evictable(listed.items, cluster)
        if not evict:
            return []
        grace = self.params.grace_period
        options = V1DeleteOptions(grace_period_seconds=round(grace)) if grace is not None else None
        async with PodsGone(kube, cluster, node, listed) as gone:
            results = await asyncio.gather(
                *(_evict(kube, clock, pod, gone, options=options, deadline=deadline) for pod in evict),
                return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _Stuck):
                raise result
        return [r for r in results if isinstance(r, _Stuck)]


async def set_unschedulable(kube: Kube, cluster: str, names: list[str], *, cordon: bool) -> None:
    """Cordon or uncordon ``names`` concurrently; a node that is gone is left alone."""
    body: dict[str, Any] = {"spec": {"unschedulable": True if cordon else None}}
    verb = "cordon" if cordon else "uncordon"

    async def one(name: str) -> None:
        await call_unless_gone(kube, kube.core.patch_node, name, body, _content_type=_STRATEGIC,
                               what=f"{verb} node {cluster}/{name}")

    await each(names, one)


_REFUSALS = {
    "unmanaged": "pods no controller manages would not come back (force: true deletes them)",
    "emptydir": "pods with emptyDir data would lose it (delete_emptydir_data: true evicts them)",
    "daemonset": "DaemonSet pods cannot be drained (ignore_daemonsets: true leaves them)",
}


class _Stuck(Exception):
    """A pod the drain could not get rid of before its deadline."""

    def __init__(self, pod: V1Pod, *, blocked: bool, reason: str = "") -> None:
        super().__init__(f"{_pod_name(pod)} still there")
        self.pod = pod
        self.blocked = blocked
        """True: every eviction was refused (429); False: evicted, but not yet deleted."""
        self.reason = reason


async def _evict(kube: Kube, clock: ScenarioClock, pod: V1Pod, gone: PodsGone, *,
                 options: V1DeleteOptions | None, deadline: float) -> None:
    """Evict one pod, retrying while a budget forbids it, then wait until it is gone."""
    meta = pod.metadata
    body = V1Eviction(metadata=V1ObjectMeta(name=meta.name, namespace=meta.namespace), delete_options=options)
    what = f"evict pod {_pod_name(pod)}"
    while True:
        try:
            await kube.call(kube.core.create_namespaced_pod_eviction, meta.name, meta.namespace, body,
                            _request_timeout=REQUEST_TIMEOUT_S)
            break
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status != 429:
                raise api_error(exc, what) from exc
            if clock.now() >= deadline:
                raise _Stuck(pod, blocked=True, reason=status_message(exc)) from exc
            await clock.sleep(min(EVICTION_RETRY_S, deadline - clock.now()))
        except urllib3.exceptions.HTTPError as exc:
            raise FaultError(f"{what}: cannot reach the API server: {exc}", transient=True) from exc
    try:
        await asyncio.wait_for(gone.wait(meta.uid), timeout=clock.to_real(max(0.0, deadline - clock.now())))
    except TimeoutError:
        raise _Stuck(pod, blocked=False) from None


async def _timed_out(kube: Kube, cluster: str, stuck: list[_Stuck], *, after_s: float,
                     progress: str) -> FaultError:
    """The error of a drain that ran out of time: which pods, and which budgets block them."""
    blocked = [s for s in stuck if s.blocked]
    slow = [s for s in stuck if not s.blocked]
    parts = []
    if blocked:
        budgets: dict[str, list[V1PodDisruptionBudget]] = {}
        for namespace in sorted({s.pod.metadata.namespace for s in blocked}):
            found = await call(kube, kube.policy.list_namespaced_pod_disruption_budget, namespace,
                               what=f"list PodDisruptionBudgets in {cluster}/{namespace}")
            budgets[namespace] = found.items
        described = []
        for s in blocked:
            pdbs = [b for b in budgets[s.pod.metadata.namespace]
                    if selector_matches(b.spec.selector if b.spec else None, s.pod.metadata.labels)]
            # Name the budgets that allow no disruption, when their status says so: those block.
            pdbs = [b for b in pdbs if b.status and b.status.disruptions_allowed == 0] or pdbs
            why = "; ".join(_describe_budget(b) for b in pdbs) or s.reason
            described.append(f"{_pod_name(s.pod)} (blocked by {why})")
        parts.append(f"{_count(blocked, 'pod')} could not be evicted because a PodDisruptionBudget "
                     "forbids it: " + ", ".join(described))
    if slow:
        names = ", ".join(_pod_name(s.pod) for s in slow)
        parts.append(f"{_count(slow, 'evicted pod')} still terminating: {names}")
    return FaultError(f"drain-nodes in {cluster}: timed out after {format_duration(after_s)}; "
                      + "; ".join(parts) + f"; {progress}")


def _classify(pod: V1Pod, *, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool) -> str:
    """``evict``, ``skip``, or why the drain must refuse it (a key of ``_REFUSALS``), as kubectl decides."""
    meta = pod.metadata
    if _MIRROR in (meta.annotations or {}):
        return "skip"
    owner = next((o for o in meta.owner_references or [] if o.controller), None)
    if owner is not None and owner.kind == "DaemonSet":
        return "skip" if ignore_daemonsets else "daemonset"
    finished = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
    if finished:
        return "evict"
    if owner is None and not force:
        return "unmanaged"
    volumes = (pod.spec.volumes if pod.spec else None) or []
    if any(v.empty_dir is not None for v in volumes) and not delete_emptydir_data:
        return "emptydir"
    return "evict"


def _describe_budget(pdb: V1PodDisruptionBudget) -> str:
    spec, status = pdb.spec, pdb.status
    need = (f"minAvailable {spec.min_available}" if spec and spec.min_available is not None
            else f"maxUnavailable {spec.max_unavailable}" if spec else "")
    text = f"PodDisruptionBudget {pdb.metadata.namespace}/{pdb.metadata.name}: {need}"
    if status is not None and status.current_healthy is not None:
        text += (f", {status.current_healthy} of {status.expected_pods} pods healthy, "
                 f"{status.disruptions_allowed} disruptions allowed")
    return text


async def _named_nodes(kube: Kube, cluster: str, names: list[str]) -> list[V1Node]:
    every = await call(kube, kube.core.list_node, what=f"list the nodes in {cluster}")
    by_name = {n.metadata.name: n for n in every.items}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FaultError(f"{cluster} has no node {', '.join(missing)} (nodes: {', '.join(sorted(by_name))})")
    return [by_name[n] for n in dict.fromkeys(names)]


async def _pods_on(kube: Kube, cluster: str, node: str) -> V1PodList:
    return await call(kube, kube.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}",
                      what=f"list the pods on node {cluster}/{node}")


def _schedulable(nodes: list[V1Node]) -> tuple[list[str], list[str]]:
    """The names of the nodes schedulable now, and of those someone already cordoned."""
    ours = [n.metadata.name for n in nodes if not (n.spec and n.spec.unschedulable)]
    theirs = [n.metadata.name for n in nodes if n.spec and n.spec.unschedulable]
    return ours, theirs


def _pod_name(pod: V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _count(items: list[_Stuck], noun: str) -> str:
    """``1 pod`` or ``2 pods``."""
    return f"{len(items)} {noun}" + ("s" if len(items) != 1 else "")
