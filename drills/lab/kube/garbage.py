"""The garbage collector: deletion of dependents, what lost all its owners, pods on vanished nodes,
expired events.

It carries out the propagation policies of :mod:`drills.lab.kube.deletion`: for an object marked with
the ``orphan`` finalizer it removes the object from its dependents' ``ownerReferences`` and then the
finalizer; for one marked ``foregroundDeletion`` it deletes the dependents (in the foreground too where
they have dependents of their own, pods gracefully) and removes the finalizer once no dependent that
blocks the owner's deletion is left. It deletes objects whose owners are all gone (by uid; owners of
kinds the lab does not run are never judged gone: a node's heartbeat Lease goes with its Node), pods bound
to nodes that no longer exist, and events
written longer ago than the API server's ``--event-ttl``: as there, where the TTL is an etcd lease
taken at each write of the event, an event's age counts from when the store last received it, whatever
timestamps it states (a client's, from the real clock, would be ahead of the lab's wall clock, which runs
in the past; :mod:`drills.lab.clock`). Events already in the store when the collector starts count from
then.
"""

from __future__ import annotations

from drills.lab.clock import LabClock
from drills.lab.kube import deletion
from drills.lab.kube.deletion import FOREGROUND, ORPHAN
from drills.lab.kube.kubelet import delete_pod
from drills.lab.kube.store import (
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NODES,
    PODS,
    REPLICASETS,
    Change,
    NotFound,
    Obj,
    Resource,
    Store,
)
from drills.lab.kube.workqueue import Retries, earliest

EVENT_TTL_S = 3600.0
"""How long events are kept (kube-apiserver's ``--event-ttl`` default)."""
_OWNERS = {"Deployment": DEPLOYMENTS, "ReplicaSet": REPLICASETS, "DaemonSet": DAEMONSETS, "Node": NODES}
COMPONENT = "garbage-collector-controller"


class GarbageCollector:
    """Deletes dependents as their owners' deletion asks, what lost all its owners, pods bound to nodes
    that are gone, and events past their TTL."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component=COMPONENT)
        self._finalizing: set[tuple[Resource, str, str]] = set()
        """Objects marked for deletion with a finalizer the collector handles (seen as they commit)."""
        self._written: dict[tuple[str, str], float] = {
            (e["metadata"]["namespace"], e["metadata"]["name"]): clock.now() for e in store.iter(EVENTS)}
        """Each event's last write, in lab seconds: where its TTL starts."""
        store.on_change(self._observe)

    def reconcile(self, now: float) -> float | None:
        """Process deletion finalizers, collect orphans; returns when the oldest event expires."""
        for key in sorted(self._finalizing, key=lambda k: (k[0].plural, k[1], k[2])):
            owner = self._store.find(*key)
            if owner is not None:
                self._retries.sync(owner, lambda o=owner, r=key[0]: self._finalize(r, o))
        alive = self._alive()
        for rs in list(self._store.iter(REPLICASETS)):
            if _orphaned(rs, alive) and not rs["metadata"].get("deletionTimestamp"):
                self._retries.sync(rs, lambda rs=rs: deletion.delete(
                    self._store, REPLICASETS, rs, policy=None, clock=self._clock))
        alive = self._alive()
        nodes = {n["metadata"]["name"] for n in self._store.iter(NODES)}
        for pod in list(self._store.iter(PODS)):
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in nodes:
                self._retries.sync(pod, lambda pod=pod: deletion.remove(self._store, PODS, pod))
            elif not pod["metadata"].get("deletionTimestamp") and _orphaned(pod, alive):
                self._retries.sync(pod, lambda pod=pod: delete_pod(self._store, pod, clock=self._clock))
        for lease in list(self._store.iter(LEASES)):  # a node's heartbeat Lease goes with its Node
            if _orphaned(lease, alive):
                self._retries.sync(lease, lambda lease=lease: deletion.delete(
                    self._store, LEASES, lease, policy=None, clock=self._clock))
        return earliest(self._expire_events(now), self._retries.due())

    def _observe(self, change: Change) -> None:
        meta = change.object["metadata"]
        if change.resource == EVENTS:
            event = (meta.get("namespace") or "", meta["name"])
            if change.type == "DELETED":
                self._written.pop(event, None)
            else:
                self._written[event] = self._clock.now()
        key = (change.resource, meta.get("namespace") or "", meta["name"])
        if change.type != "DELETED" and meta.get("deletionTimestamp") and \
                {ORPHAN, FOREGROUND} & set(meta.get("finalizers") or []):
            self._finalizing.add(key)
        else:
            self._finalizing.discard(key)

    def _finalize(self, resource: Resource, owner: Obj) -> None:
        finalizers = owner["metadata"].get("finalizers") or []
        if ORPHAN in finalizers:
            self._orphan(owner)
            self._drop_finalizer(resource, owner, ORPHAN)
        elif FOREGROUND in finalizers and self._delete_dependents(owner):
            self._drop_finalizer(resource, owner, FOREGROUND)

    def _orphan(self, owner: Obj) -> None:
        """Remove ``owner`` from its dependents' owner references: they stay, owned by the rest or none."""
        uid = owner["metadata"]["uid"]

        def release(obj: Obj) -> None:
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)

        for resource, dependent in deletion.dependents(self._store, owner):
            meta = dependent["metadata"]
            self._store.mutate(resource, meta.get("namespace"), meta["name"], release)

    def _delete_dependents(self, owner: Obj) -> bool:
        """Delete the owner's dependents; whether none that blocks its deletion is left."""
        left = False
        for resource, dependent in deletion.dependents(self._store, owner):
            left = left or deletion.blocks(dependent, owner)
            if dependent["metadata"].get("deletionTimestamp"):
                continue
            if resource is PODS:
                delete_pod(self._store, dependent, clock=self._clock)
            else:
                # As the collector does: a dependent with dependents of its own goes in the foreground too.
                policy = "Foreground" if deletion.dependents(self._store, dependent) else "Background"
                deletion.delete(self._store, resource, dependent, policy=policy, clock=self._clock)
        return not left

    def _drop_finalizer(self, resource: Resource, owner: Obj, finalizer: str) -> None:
        meta = owner["metadata"]

        def drop(obj: Obj) -> None:
            kept = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if kept:
                obj["metadata"]["finalizers"] = kept
            else:
                obj["metadata"].pop("finalizers", None)

        try:
            updated = self._store.mutate(resource, meta.get("namespace"), meta["name"], drop)
        except NotFound:
            return
        deletion.remove_if_finalized(self._store, resource, updated)

    def _expire_events(self, now: float) -> float | None:
        """Drop events written longer ago than the API server's ``--event-ttl`` (1 h), so that a long lab
        stays small; when the next one expires."""
        due: list[float] = []
        for event in list(self._store.iter(EVENTS)):
            key = (event["metadata"]["namespace"], event["metadata"]["name"])
            expires = self._written.setdefault(key, now) + EVENT_TTL_S
            if expires <= now:
                self._store.delete(EVENTS, *key)
            else:
                due.append(expires)
        return min(due, default=None)

    def _alive(self) -> set[str]:
        return {o["metadata"]["uid"] for resource in _OWNERS.values() for o in self._store.iter(resource)}


def _orphaned(obj: Obj, alive: set[str]) -> bool:
    """Every owner is gone (owners of kinds the lab does not run are never judged gone)."""
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs or any(r.get("kind") not in _OWNERS for r in refs):
        return False
    return not any(r.get("uid") in alive for r in refs)
