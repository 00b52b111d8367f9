"""Deleting an object as the API server does: its finalizers and the propagation policy for its dependents.

A DELETE states how the object's dependents (objects whose ``ownerReferences`` name it) go, in its
``DeleteOptions`` body or the ``propagationPolicy`` query parameter:

- ``Background`` (the default of every resource the lab serves): the object goes at once; the garbage
  collector then deletes the dependents that lost all their owners;
- ``Foreground``: the object gets the ``foregroundDeletion`` finalizer and a ``deletionTimestamp`` and
  stays, while the garbage collector deletes its dependents; it goes when no dependent that blocks its
  deletion (``blockOwnerDeletion``) is left;
- ``Orphan`` (also the legacy ``orphanDependents: true``): the ``orphan`` finalizer; the garbage collector
  removes the object from its dependents' ``ownerReferences``, so they stay, then lets the object go.

Generally, an object with finalizers is only marked (``deletionTimestamp``, ``deletionGracePeriodSeconds:
0``) and goes when an update removes its last finalizer (:func:`remove_if_finalized`). Pods keep their
graceful deletion (:mod:`drills.lab.kube.kubelet`); their own finalizers hold them after the kubelet is
done (:func:`remove`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.store import EVENTS, NAMESPACES, RESOURCES, Invalid, Obj, Resource, Store

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")


def propagation_policy(query: Mapping[str, str], options: Mapping[str, Any]) -> str | None:
    """The policy a DELETE states (None: the resource's default), from its query or DeleteOptions.

    Raises :class:`Invalid` for an unknown policy, or for both ``orphanDependents`` and a policy.
    """
    policy = query.get("propagationPolicy", options.get("propagationPolicy"))
    orphan: Any = query.get("orphanDependents", options.get("orphanDependents"))
    if isinstance(orphan, str):
        orphan = orphan.lower() == "true"
    if policy is not None and policy not in POLICIES:
        raise Invalid(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                      f'"Foreground", "Background", "Orphan"')
    if policy is not None and orphan is not None:
        raise Invalid(f'propagationPolicy: Invalid value: "{policy}": orphanDependents and '
                      f'deletionPropagation cannot be both set')
    if orphan is not None:
        return "Orphan" if orphan else "Background"
    return policy


def delete(store: Store, resource: Resource, obj: Obj, *, policy: str | None, clock: LabClock,
           dry_run: bool = False) -> Obj | None:
    """Delete ``obj`` (not a pod) under ``policy``: the object as it stays marked, or None when it is gone.
    A ``dry_run`` changes nothing and answers the same."""
    meta = obj["metadata"]
    current = list(meta.get("finalizers") or [])
    finalizers = _with_policy(current, policy)
    if not finalizers:
        store.delete(resource, meta.get("namespace"), meta["name"], dry_run=dry_run)
        return None
    if finalizers == current and meta.get("deletionTimestamp"):
        return obj

    def mark(o: Obj) -> None:
        o["metadata"]["finalizers"] = finalizers
        o["metadata"].setdefault("deletionTimestamp", rfc3339(clock.wall()))
        o["metadata"].setdefault("deletionGracePeriodSeconds", 0)

    return store.mutate(resource, meta.get("namespace"), meta["name"], mark, dry_run=dry_run)


def remove_if_finalized(store: Store, resource: Resource, obj: Obj) -> bool:
    """Remove an object marked for deletion whose last finalizer is gone and whose grace period is over
    (an update that removes the last finalizer deletes it); whether it went."""
    meta = obj["metadata"]
    if resource is NAMESPACES:  # held by spec.finalizers: the namespace controller removes it
        return False
    if not meta.get("deletionTimestamp") or meta.get("finalizers") or \
            int(meta.get("deletionGracePeriodSeconds") or 0) > 0:
        return False
    store.delete(resource, meta.get("namespace"), meta["name"])
    return True


def remove(store: Store, resource: Resource, obj: Obj) -> None:
    """The final removal of an object whose grace period is over (the kubelet's, for a pod): it goes
    unless finalizers hold it, which then keep it with ``deletionGracePeriodSeconds: 0``."""
    meta = obj["metadata"]
    if not meta.get("finalizers"):
        store.delete(resource, meta.get("namespace"), meta["name"])
        return
    store.mutate(resource, meta.get("namespace"), meta["name"],
                 lambda o: o["metadata"].update(deletionGracePeriodSeconds=0))


def dependents(store: Store, owner: Obj) -> list[tuple[Resource, Obj]]:
    """The objects in the owner's namespace whose ``ownerReferences`` name it (by uid)."""
    uid = owner["metadata"]["uid"]
    namespace = owner["metadata"].get("namespace")
    found = []
    for resource in RESOURCES:
        if not resource.namespaced or resource is EVENTS:
            continue
        for obj in store.iter(resource, namespace):
            if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                found.append((resource, obj))
    return found


def blocks(dependent: Obj, owner: Obj) -> bool:
    """Whether ``dependent`` holds up its owner's foreground deletion (``blockOwnerDeletion``)."""
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid and r.get("blockOwnerDeletion")
               for r in dependent["metadata"].get("ownerReferences") or [])


def _with_policy(finalizers: list[str], policy: str | None) -> list[str]:
    """The finalizers after a DELETE under ``policy``: a stated policy replaces the GC finalizers; none
    keeps what is there (the default, Background, adds none)."""
    if policy is None:
        return finalizers
    kept = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    if policy == "Orphan":
        kept.append(ORPHAN)
    elif policy == "Foreground":
        kept.append(FOREGROUND)
    return kept
