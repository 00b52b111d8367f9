"""The garbage collector: what lost all its owners, pods on vanished nodes, expired events.

It deletes objects whose owners are all gone (by uid; owners of kinds the lab does not run are never
judged gone), pods bound to nodes that no longer exist, and events older than the API server's
``--event-ttl``.
"""

from __future__ import annotations

from drills.lab.clock import LabClock
from drills.lab.kube.kubelet import delete_pod
from drills.lab.kube.ownership import epoch_seconds
from drills.lab.kube.store import DAEMONSETS, DEPLOYMENTS, EVENTS, NODES, PODS, REPLICASETS, Obj, Store

EVENT_TTL_S = 3600.0
"""How long events are kept (kube-apiserver's ``--event-ttl`` default)."""
_OWNERS = {"Deployment": DEPLOYMENTS, "ReplicaSet": REPLICASETS, "DaemonSet": DAEMONSETS}


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
            age = wall - epoch_seconds(event.get("lastTimestamp") or event.get("eventTime")
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
