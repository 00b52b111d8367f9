"""The Deployment controller: a deployment's ReplicaSets, its rollouts and its status.

It keeps one ReplicaSet ``<deployment>-<template hash>`` per pod template, owned by the deployment; a
template change rolls out as Kubernetes' RollingUpdate does (maxSurge and maxUnavailable, 25 % each by
default) or as Recreate. Its status counts the ReplicaSets' pods. The ReplicaSets' own controller
(:mod:`drills.lab.kube.replicasets`) makes their pods.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import set_condition
from drills.lab.kube.ownership import (
    by_controller,
    controller_of,
    owner_reference,
    template_hash,
    without_zeros,
)
from drills.lab.kube.store import DEPLOYMENTS, PODS, REPLICASETS, Obj, Store

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


class DeploymentController:
    """Deployments: their ReplicaSets, rollouts and status."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock

    def reconcile(self, now: float) -> float | None:
        """Roll each deployment one step toward its template and size, then report its status."""
        sets = by_controller(self._store.iter(REPLICASETS))
        pods = Counter(ref["uid"] for p in self._store.iter(PODS) if (ref := controller_of(p)))
        deployments = list(self._store.iter(DEPLOYMENTS))
        for deployment in deployments:
            self._sync(deployment, sets.get(deployment["metadata"]["uid"], []), pods)
        sets = by_controller(self._store.iter(REPLICASETS))
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
        status = without_zeros({
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
