"""Workload controllers: Deployments own ReplicaSets own Pods; DaemonSets; garbage collection.

- The Deployment controller keeps one ReplicaSet ``<deployment>-<template hash>`` per pod template,
  owned by the deployment; a template change rolls out as Kubernetes' RollingUpdate does (maxSurge and
  maxUnavailable, 25 % each by default) or as Recreate. Its status counts the ReplicaSets' pods.
- The ReplicaSet controller keeps ``replicas`` live pods: a pod being deleted does not count, exactly as
  in Kubernetes, so a pod stuck Terminating on a lost node is replaced. Scaling down deletes unscheduled
  pods first, then pending ones, then not Ready ones, then those sharing a node with more siblings, then
  the newest.
- The DaemonSet controller keeps one pod on every node the template accepts, bound directly to it, with
  the tolerations Kubernetes gives daemon pods (they stay on cordoned and unreachable nodes).
- The garbage collector deletes objects whose owners are all gone (by uid), and pods bound to nodes
  that no longer exist.

Every pod they create gets what admission would add: the default ``not-ready``/``unreachable``
tolerations with the topology's node failure timeout.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import DEFAULT_GRACE_S, condition_status, delete_pod, put_status, set_condition
from drills.lab.kube.nodes import NOT_READY, UNREACHABLE, UNSCHEDULABLE, effective_tolerations, tolerates
from drills.lab.kube.scheduler import affinity_matches
from drills.lab.kube.store import (
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    NODES,
    PODS,
    REPLICASETS,
    AlreadyExists,
    Obj,
    Store,
)

HASH_LABEL = "pod-template-hash"
EVENT_TTL_S = 3600.0
"""How long events are kept (kube-apiserver's ``--event-ttl`` default)."""
REVISION = "deployment.kubernetes.io/revision"

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generated-name alphabet: no vowels, no look-alikes
_OWNERS = {"Deployment": DEPLOYMENTS, "ReplicaSet": REPLICASETS, "DaemonSet": DAEMONSETS}
_DAEMON_TOLERATIONS = (
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
)


def controller_of(obj: Obj) -> Obj | None:
    """The owner reference marked ``controller: true``, if any."""
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def owner_reference(owner: Obj) -> Obj:
    """A controller reference to ``owner``, as its controller writes it into what it creates."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def template_hash(template: Obj) -> str:
    """A stable short hash of a pod template, the suffix of its ReplicaSet's name."""
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big")
    return "".join(_ALPHABET[(digest >> (5 * i)) % len(_ALPHABET)] for i in range(10))


class DeploymentController:
    """Deployments: their ReplicaSets, rollouts and status."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, now: float) -> float | None:
        """Roll each deployment one step toward its template and size, then report its status."""
        sets = _by_controller(self._store.iter(REPLICASETS))
        pods = Counter(ref["uid"] for p in self._store.iter(PODS) if (ref := controller_of(p)))
        deployments = list(self._store.iter(DEPLOYMENTS))
        for deployment in deployments:
            self._sync(deployment, sets.get(deployment["metadata"]["uid"], []), pods)
        sets = _by_controller(self._store.iter(REPLICASETS))
        for deployment in deployments:
            self._status(deployment, sets.get(deployment["metadata"]["uid"], []))
        return None

    def _sync(self, deployment: Obj, owned: list[Obj], pods: Counter[str]) -> None:
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        new = _newest(owned, template)
        old = sorted((rs for rs in owned if rs is not new), key=lambda rs: (
            rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        counts = {rs["metadata"]["name"]: int(rs["spec"].get("replicas", 0)) for rs in owned}
        created = new is None
        if new is None:
            new = _replica_set(deployment, template, old)
            counts[new["metadata"]["name"]] = 0
        available = {rs["metadata"]["name"]: int((rs.get("status") or {}).get("availableReplicas", 0))
                     for rs in [*old, new]}
        strategy = spec.get("strategy") or {}
        surge, unavailable = _rolling_limits(strategy, desired)
        if strategy.get("type") == "Recreate":
            surge = 0
            _recreate(counts, new, old, desired, pods)
        else:
            _roll(counts, new, old, desired, available, surge=surge, unavailable=unavailable)
        if created:
            # Born at its first size, as the deployment controller creates it.
            new["spec"]["replicas"] = counts[new["metadata"]["name"]]
            new["metadata"]["annotations"].update(_size_annotations(desired, desired + surge))
            self._store.create(REPLICASETS, new)
        for rs in old if created else [*old, new]:
            self._scale(rs, counts[rs["metadata"]["name"]], desired, desired + surge)

    def _scale(self, rs: Obj, replicas: int, desired: int, most: int) -> None:
        wanted = _size_annotations(desired, most)
        annotations = rs["metadata"].get("annotations") or {}
        if rs["spec"].get("replicas") == replicas and all(annotations.get(k) == v for k, v in wanted.items()):
            return

        def change(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"].setdefault("annotations", {}).update(wanted)

        self._store.mutate(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], change)

    def _status(self, deployment: Obj, owned: list[Obj]) -> None:
        spec = deployment.get("spec") or {}
        new = _newest(owned, spec.get("template") or {})
        if new is None:
            return
        desired = int(spec.get("replicas", 1))

        def total(field: str, sets: Iterable[Obj] = owned) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in sets)

        available, updated = total("availableReplicas"), total("replicas", [new])
        planned = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        strategy = spec.get("strategy") or {}
        unavailable_ok = 0 if strategy.get("type") == "Recreate" else _rolling_limits(strategy, desired)[1]
        stamp = rfc3339(self._clock.wall())
        old_status = deployment.get("status") or {}
        status = _without_zeros({
            "observedGeneration": deployment["metadata"].get("generation", 1), "replicas": total("replicas"),
            "updatedReplicas": updated, "readyReplicas": total("readyReplicas"),
            "availableReplicas": available, "unavailableReplicas": max(0, planned - available)})
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        if available >= desired - unavailable_ok:
            set_condition(conditions, "Available", "True", reason="MinimumReplicasAvailable",
                          message="Deployment has minimum availability.", now=stamp, updated="lastUpdateTime")
        else:
            set_condition(conditions, "Available", "False", reason="MinimumReplicasUnavailable",
                          message="Deployment does not have minimum availability.", now=stamp,
                          updated="lastUpdateTime")
        complete = updated == desired and total("replicas") == desired and available >= desired
        reason, verb = ("NewReplicaSetAvailable", "has successfully progressed") if complete else \
            ("ReplicaSetUpdated", "is progressing")
        set_condition(conditions, "Progressing", "True", reason=reason,
                      message=f'ReplicaSet "{new["metadata"]["name"]}" {verb}.', now=stamp,
                      updated="lastUpdateTime")
        status["conditions"] = conditions
        revision = (new["metadata"].get("annotations") or {}).get(REVISION)
        shown = (deployment["metadata"].get("annotations") or {}).get(REVISION)
        if status == old_status and shown == revision:
            return

        def change(obj: Obj) -> None:
            if revision:
                obj["metadata"].setdefault("annotations", {})[REVISION] = revision
            obj["status"] = status

        meta = deployment["metadata"]
        self._store.mutate(DEPLOYMENTS, meta["namespace"], meta["name"], change)


class ReplicaSetController:
    """ReplicaSets: their pods and status."""

    def __init__(self, store: Store, *, clock: LabClock, failure_timeout_s: float) -> None:
        self._store = store
        self._clock = clock
        self._failure_timeout_s = failure_timeout_s

    def reconcile(self, now: float) -> float | None:
        """Create or delete pods until each ReplicaSet has its size, then report its status."""
        pods = _by_controller(self._store.iter(PODS))
        for rs in list(self._store.iter(REPLICASETS)):
            self._sync(rs, pods.get(rs["metadata"]["uid"], []))
        return None

    def _sync(self, rs: Obj, owned: list[Obj]) -> None:
        active = [p for p in owned if _active(p)]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        if len(active) < want:
            active += [self._create_pod(rs) for _ in range(want - len(active))]
        elif len(active) > want:
            doomed = _deletion_order(active)[:len(active) - want]
            for pod in doomed:
                delete_pod(self._store, pod, clock=self._clock)
            gone = {p["metadata"]["uid"] for p in doomed}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        ready = sum(1 for p in active if condition_status(p, "Ready") == "True")
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        labeled = sum(1 for p in active
                      if template_labels.items() <= (p["metadata"].get("labels") or {}).items())

        put_status(self._store, REPLICASETS, rs, {"replicas": len(active), **_without_zeros({
            "fullyLabeledReplicas": labeled, "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1)})})

    def _create_pod(self, rs: Obj) -> Obj:
        pod = _pod_from_template(rs)
        pod["spec"]["tolerations"] = effective_tolerations(pod, self._failure_timeout_s)
        return _create_named(self._store, pod, rs["metadata"]["name"])


class DaemonSetController:
    """DaemonSets: one pod per node the template accepts."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, now: float) -> float | None:
        """Place a pod on every node that lacks one, remove the extra and misplaced ones."""
        nodes = list(self._store.iter(NODES))
        pods = _by_controller(self._store.iter(PODS))
        for ds in list(self._store.iter(DAEMONSETS)):
            self._sync(ds, nodes, pods.get(ds["metadata"]["uid"], []))
        return None

    def _sync(self, ds: Obj, nodes: list[Obj], owned: list[Obj]) -> None:
        probe = _pod_from_template(ds)
        probe["spec"]["tolerations"] = _daemon_tolerations(probe)
        wanted = {n["metadata"]["name"] for n in nodes if _daemon_fits(probe, n)}
        on_node: dict[str, list[Obj]] = defaultdict(list)
        for pod in owned:
            if _active(pod):
                on_node[pod["spec"].get("nodeName") or ""].append(pod)
        misscheduled = 0
        for node, pods in on_node.items():
            surplus = pods if node not in wanted else sorted(pods, key=_created)[1:]
            misscheduled += len(pods) if node not in wanted else 0
            for pod in surplus:
                delete_pod(self._store, pod, clock=self._clock)
        for node in sorted(wanted - on_node.keys()):
            pod = copy.deepcopy(probe)
            pod["spec"]["nodeName"] = node
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                            "lastTransitionTime": rfc3339(self._clock.wall())}]
            on_node[node].append(_create_named(self._store, pod, ds["metadata"]["name"]))
        scheduled = [pods[0] for node, pods in on_node.items() if node in wanted and pods]
        ready = sum(1 for p in scheduled if condition_status(p, "Ready") == "True")

        put_status(self._store, DAEMONSETS, ds, {
            "currentNumberScheduled": len(scheduled), "desiredNumberScheduled": len(wanted),
            "numberMisscheduled": misscheduled, "numberReady": ready,
            **_without_zeros({"numberAvailable": ready, "numberUnavailable": len(wanted) - ready,
                              "updatedNumberScheduled": len(scheduled),
                              "observedGeneration": ds["metadata"].get("generation", 1)})})


class GarbageCollector:
    """Deletes what lost all its owners, pods bound to nodes that are gone, and events past their TTL."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, now: float) -> float | None:
        """Collect orphans; returns when the oldest event expires."""
        alive = self._alive()
        for rs in list(self._store.iter(REPLICASETS)):
            if _orphaned(rs, alive):
                self._store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        alive = self._alive()
        nodes = {n["metadata"]["name"] for n in self._store.iter(NODES)}
        for pod in list(self._store.iter(PODS)):
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in nodes:
                self._store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            elif not pod["metadata"].get("deletionTimestamp") and _orphaned(pod, alive):
                delete_pod(self._store, pod, clock=self._clock)
        return self._expire_events(now)

    def _expire_events(self, now: float) -> float | None:
        """Drop events older than the API server's ``--event-ttl`` (1 h), so that a long lab stays small."""
        wall = self._clock.wall().timestamp()
        due: list[float] = []
        for event in list(self._store.iter(EVENTS)):
            age = wall - _seconds(event.get("lastTimestamp") or event.get("eventTime")
                                  or event["metadata"]["creationTimestamp"])
            if age >= EVENT_TTL_S:
                self._store.delete(EVENTS, event["metadata"]["namespace"], event["metadata"]["name"])
            else:
                due.append(now + EVENT_TTL_S - age)
        return min(due, default=None)

    def _alive(self) -> set[str]:
        return {o["metadata"]["uid"] for resource in _OWNERS.values() for o in self._store.iter(resource)}


def _orphaned(obj: Obj, alive: set[str]) -> bool:
    """Every owner is gone (owners of kinds the lab does not run are never judged gone)."""
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs or any(r.get("kind") not in _OWNERS for r in refs):
        return False
    return not any(r.get("uid") in alive for r in refs)


def _replica_set(deployment: Obj, template: Obj, old: list[Obj]) -> Obj:
    """A new ReplicaSet for the deployment's current template, its revision after the old ones'."""
    meta = deployment["metadata"]
    pod_hash = template_hash(template)
    revision = 1 + max((int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)) for rs in old),
                       default=0)
    labeled = copy.deepcopy(template)
    labeled.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
    selector = copy.deepcopy((deployment.get("spec") or {}).get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    return {
        "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                     "labels": dict(labeled["metadata"]["labels"]), "annotations": {REVISION: str(revision)},
                     "ownerReferences": [owner_reference(deployment)]},
        "spec": {"replicas": 0, "selector": selector, "template": labeled},
    }


def _size_annotations(desired: int, most: int) -> dict[str, str]:
    return {"deployment.kubernetes.io/desired-replicas": str(desired),
            "deployment.kubernetes.io/max-replicas": str(most)}


def _recreate(counts: dict[str, int], new: Obj, old: list[Obj], desired: int, pods: Counter[str]) -> None:
    """Recreate: every old pod gone (terminating ones too) before the new ReplicaSet scales up."""
    for rs in old:
        counts[rs["metadata"]["name"]] = 0
    if all(pods[rs["metadata"]["uid"]] == 0 for rs in old):
        counts[new["metadata"]["name"]] = desired


def _roll(counts: dict[str, int], new: Obj, old: list[Obj], desired: int, available: dict[str, int], *,
          surge: int, unavailable: int) -> None:
    """One step of a RollingUpdate, as the deployment controller computes it (counts change in place)."""
    new_name = new["metadata"]["name"]
    if not any(counts[rs["metadata"]["name"]] for rs in old):
        counts[new_name] = desired
        return
    room = desired + surge - sum(counts.values())
    counts[new_name] = min(desired, counts[new_name] + max(0, room))
    least = desired - unavailable
    budget = sum(counts.values()) - least - (counts[new_name] - available[new_name])
    for rs in old:  # first the old pods that do not serve anyway
        name = rs["metadata"]["name"]
        cut = min(max(0, budget), max(0, counts[name] - available[name]))
        counts[name] -= cut
        budget -= cut
    spare = sum(available.values()) - least
    for rs in old:
        name = rs["metadata"]["name"]
        cut = min(max(0, spare), counts[name])
        counts[name] -= cut
        spare -= cut


def _rolling_limits(strategy: Obj, desired: int) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down); never both zero."""
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge", "25%"), desired, up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, up=False)
    return surge, unavailable if surge or unavailable else 1


def _resolve(value: int | str, total: int, *, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = int(value[:-1]) * total
        return -(-share // 100) if up else share // 100
    return int(value)


def _newest(owned: list[Obj], template: Obj) -> Obj | None:
    """The ReplicaSet whose template is the deployment's (ignoring the hash label), if there is one."""
    return next((rs for rs in owned if _same_template(rs["spec"].get("template") or {}, template)), None)


def _same_template(labeled: Obj, template: Obj) -> bool:
    """Equal but for the hash label the ReplicaSet's copy carries (compared without copying)."""
    if labeled.get("spec") != template.get("spec"):
        return False
    ours, theirs = labeled.get("metadata") or {}, template.get("metadata") or {}
    if {k: v for k, v in ours.items() if k != "labels"} != {k: v for k, v in theirs.items() if k != "labels"}:
        return False
    labels = {k: v for k, v in (ours.get("labels") or {}).items() if k != HASH_LABEL}
    return labels == (theirs.get("labels") or {})


def _by_controller(objects: Iterable[Obj]) -> dict[str, list[Obj]]:
    owned: dict[str, list[Obj]] = defaultdict(list)
    for obj in objects:
        ref = controller_of(obj)
        if ref is not None:
            owned[ref["uid"]].append(obj)
    return owned


def _active(pod: Obj) -> bool:
    """Counted by its controller: not being deleted, not finished."""
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a ReplicaSet gives them up (Kubernetes' ActivePods ranking, most of it)."""
    per_node = Counter(p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName"))
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def rank(pod: Obj) -> tuple[bool, int, bool, int, float, int, float]:
        status = pod.get("status") or {}
        node = pod["spec"].get("nodeName")
        ready = condition_status(pod, "Ready") == "True"
        ready_since = next((c.get("lastTransitionTime") for c in status.get("conditions") or []
                            if c.get("type") == "Ready"), None)
        restarts = sum(int(cs.get("restartCount", 0)) for cs in status.get("containerStatuses") or [])
        return (bool(node), phase_rank.get(status.get("phase", "Pending"), 0), ready,
                -per_node[node] if node else 0, -_seconds(ready_since) if ready else 0.0, -restarts,
                -_created(pod))

    return sorted(pods, key=rank)


def _pod_from_template(owner: Obj) -> Obj:
    template = (owner.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta = owner["metadata"]
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("enableServiceLinks", True)
    pod: Obj = {"metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                             "labels": dict(tmeta.get("labels") or {}),
                             "ownerReferences": [owner_reference(owner)]},
                "spec": spec, "status": {"phase": "Pending", "qosClass": "Burstable"}}
    if tmeta.get("annotations"):
        pod["metadata"]["annotations"] = dict(tmeta["annotations"])
    return pod


def _create_named(store: Store, pod: Obj, base: str) -> Obj:
    """Create with a ``<base>-<5 random chars>`` name, as generateName does."""
    while True:
        pod["metadata"]["name"] = f"{base}-{''.join(random.choices(_ALPHABET, k=5))}"
        try:
            return store.create(PODS, pod)
        except AlreadyExists:
            continue


def _daemon_tolerations(pod: Obj) -> list[Obj]:
    tolerations = list(pod["spec"].get("tolerations") or [])
    for extra in _DAEMON_TOLERATIONS:
        if not tolerates(tolerations, extra):
            tolerations.append(dict(extra))
    return tolerations


def _daemon_fits(pod: Obj, node: Obj) -> bool:
    if not affinity_matches(pod, node):
        return False
    return all(tolerates(pod["spec"]["tolerations"], t) for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") in ("NoSchedule", "NoExecute"))


def _without_zeros(fields: dict[str, int]) -> dict[str, int]:
    """Kubernetes leaves zero counts out of workload status (``omitempty``)."""
    return {k: v for k, v in fields.items() if v}


def _created(pod: Obj) -> float:
    return _seconds(pod["metadata"].get("creationTimestamp"))


def _seconds(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0
