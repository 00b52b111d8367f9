"""The Deployment controller: a deployment's ReplicaSets, its rollouts and its status.

It keeps one ReplicaSet ``<deployment>-<template hash>`` per pod template, owned by the deployment; a
template change rolls out as Kubernetes' RollingUpdate does (maxSurge and maxUnavailable, 25 % each by
default) or as Recreate. Its status counts the ReplicaSets' pods. The ReplicaSets' own controller
(:mod:`drills.lab.kube.replicasets`) makes their pods.

While ``spec.paused`` is set no new ReplicaSet is created for a changed template and the ``Progressing``
condition is ``Unknown`` (``DeploymentPaused``), but a new size still applies to the existing sets. Each
resize is a ``ScalingReplicaSet`` event on the deployment, as the deployment controller records it. A
deployment being deleted only reports its status.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import set_condition
from drills.lab.kube.ownership import (
    adopt,
    by_controller,
    controller_of,
    epoch_seconds,
    owner_reference,
    template_hash,
    without_zeros,
)
from drills.lab.kube.store import DEPLOYMENTS, PODS, REPLICASETS, Obj, Store
from drills.lab.kube.workqueue import Retries

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
COMPONENT = "deployment-controller"
SCALING = "ScalingReplicaSet"
PAUSED = "DeploymentPaused"


class DeploymentController:
    """Deployments: their ReplicaSets, rollouts and status."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component=COMPONENT)
        self._events = self._retries.recorder

    def reconcile(self, now: float) -> float | None:
        """Roll each deployment one step toward its template and size, then report its status."""
        adopt(self._store, list(self._store.iter(DEPLOYMENTS)), REPLICASETS)
        sets = by_controller(self._store.iter(REPLICASETS))
        pods = Counter(ref["uid"] for p in self._store.iter(PODS) if (ref := controller_of(p)))
        synced = []
        for deployment in list(self._store.iter(DEPLOYMENTS)):
            # A deployment being deleted only reports its status, as the deployment controller does.
            if deployment["metadata"].get("deletionTimestamp") or self._retries.sync(
                    deployment, lambda d=deployment: self._sync(d, sets.get(d["metadata"]["uid"], []), pods)):
                synced.append(deployment)
        sets = by_controller(self._store.iter(REPLICASETS))
        for deployment in synced:
            self._retries.sync(deployment, lambda d=deployment: self._status(
                d, sets.get(d["metadata"]["uid"], [])))
        return self._retries.due()

    def _sync(self, deployment: Obj, owned: list[Obj], pods: Counter[str]) -> bool:
        """One rollout step; True (a failure raises)."""
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        new = _newest(owned, template)
        old = sorted((rs for rs in owned if rs is not new), key=lambda rs: (
            rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        counts = {rs["metadata"]["name"]: int(rs["spec"].get("replicas", 0)) for rs in owned}
        strategy = spec.get("strategy") or {}
        surge, unavailable = _rolling_limits(strategy, desired)
        if strategy.get("type") == "Recreate":
            surge = 0
        if spec.get("paused"):
            # Paused: no new ReplicaSet for a changed template, but a new size still applies.
            _scale_paused(counts, new, old, desired, surge=surge)
            for rs in owned:
                self._scale(deployment, rs, counts[rs["metadata"]["name"]], desired, desired + surge)
            return True
        created = new is None
        if new is None:
            new = _replica_set(deployment, template, old)
            counts[new["metadata"]["name"]] = 0
        available = {rs["metadata"]["name"]: int((rs.get("status") or {}).get("availableReplicas", 0))
                     for rs in [*old, new]}
        if strategy.get("type") == "Recreate":
            _recreate(counts, new, old, desired, pods)
        else:
            _roll(counts, new, old, desired, available, surge=surge, unavailable=unavailable)
        if created:
            # Born at its first size, as the deployment controller creates it.
            size = new["spec"]["replicas"] = counts[new["metadata"]["name"]]
            new["metadata"]["annotations"].update(_size_annotations(desired, desired + surge))
            self._store.create(REPLICASETS, new)
            if size:
                self._events.event(deployment, "Normal", SCALING,
                                   f"Scaled up replica set {new['metadata']['name']} from 0 to {size}")
        for rs in old if created else [*old, new]:
            self._scale(deployment, rs, counts[rs["metadata"]["name"]], desired, desired + surge)
        return True

    def _scale(self, deployment: Obj, rs: Obj, replicas: int, desired: int, most: int) -> None:
        wanted = _size_annotations(desired, most)
        annotations = rs["metadata"].get("annotations") or {}
        was = int(rs["spec"].get("replicas", 0))
        if was == replicas and all(annotations.get(k) == v for k, v in wanted.items()):
            return

        def change(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"].setdefault("annotations", {}).update(wanted)

        self._store.mutate(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], change)
        if was != replicas:
            self._events.event(deployment, "Normal", SCALING,
                               f"Scaled {'up' if replicas > was else 'down'} replica set "
                               f"{rs['metadata']['name']} to {replicas} from {was}")

    def _status(self, deployment: Obj, owned: list[Obj]) -> None:
        spec = deployment.get("spec") or {}
        new = _newest(owned, spec.get("template") or {})
        if new is None and not spec.get("paused"):
            return
        desired = int(spec.get("replicas", 1))

        def total(field: str, sets: Iterable[Obj] = owned) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in sets)

        available, updated = total("availableReplicas"), total("replicas", [new] if new else [])
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
        if spec.get("paused"):
            # As the deployment controller's paused check: progress is not estimated while paused.
            set_condition(conditions, "Progressing", "Unknown", reason=PAUSED, message="Deployment is paused",
                          now=stamp, updated="lastUpdateTime")
        elif new is not None:
            complete = updated == desired and total("replicas") == desired and available >= desired
            reason, verb = ("NewReplicaSetAvailable", "has successfully progressed") if complete else \
                ("ReplicaSetUpdated", "is progressing")
            set_condition(conditions, "Progressing", "True", reason=reason,
                          message=f'ReplicaSet "{new["metadata"]["name"]}" {verb}.', now=stamp,
                          updated="lastUpdateTime")
        status["conditions"] = conditions
        shown = (deployment["metadata"].get("annotations") or {}).get(REVISION)
        revision = (new["metadata"].get("annotations") or {}).get(REVISION) if new else shown
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


def _scale_paused(counts: dict[str, int], new: Obj | None, old: list[Obj], desired: int, *,
                  surge: int) -> None:
    """Scale a paused deployment's ReplicaSets to its size, as the deployment controller's proportional
    scaling does: the one active set (or the newest) takes it all; several share the change by size."""
    sets = [*old, new] if new is not None else list(old)
    active = [rs for rs in sets if counts[rs["metadata"]["name"]] > 0]
    if len(active) <= 1:
        chosen = active[0] if active else (sets[-1] if sets else None)
        if chosen is not None:
            counts[chosen["metadata"]["name"]] = desired
        return
    if new is not None and counts[new["metadata"]["name"]] == desired:
        for rs in old:
            counts[rs["metadata"]["name"]] = 0
        return
    total = sum(counts[rs["metadata"]["name"]] for rs in active)
    to_add = (desired + surge if desired > 0 else 0) - total
    if to_add == 0:
        return
    # Larger sets first; on a tie, newer ones first when scaling up, older ones when scaling down.
    newer = -1 if to_add > 0 else 1
    order = sorted(active, key=lambda rs: (-counts[rs["metadata"]["name"]],
                                           newer * epoch_seconds(rs["metadata"]["creationTimestamp"])))
    added = 0
    for rs in order:
        name = rs["metadata"]["name"]
        share = int(counts[name] * to_add / total)
        counts[name] += share
        added += share
    first = order[0]["metadata"]["name"]
    counts[first] = max(0, counts[first] + to_add - added)


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
