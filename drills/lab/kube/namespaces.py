"""Namespace termination, as kube-apiserver and the namespace controller carry it out.

A DELETE of a namespace does not remove it: the API server sets ``metadata.deletionTimestamp`` and
``status.phase: Terminating`` and answers 200 with the namespace (:func:`delete`). From then on nothing
new may be created in it (403 ``unable to create new content in namespace ... because it is being
terminated``, :func:`refuse_create`). The namespace controller (:class:`NamespaceController`) deletes
every object in it (pods gracefully, so that they terminate on their nodes as with any pod deletion),
keeps the namespace's deletion conditions up to date (``NamespaceContentRemaining``,
``NamespaceFinalizersRemaining`` ...), and when nothing is left removes its ``kubernetes`` finalizer
from ``spec.finalizers`` and then the namespace. ``default``, ``kube-system`` and ``kube-public`` may
not be deleted (403), as the NamespaceLifecycle admission plugin refuses it; a second DELETE while the
content is being removed answers 409. ``kube-node-lease`` may be deleted; it is created again within a
minute, as the control plane does.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube import deletion
from drills.lab.kube.kubelet import delete_pod
from drills.lab.kube.store import (
    EVENTS,
    NAMESPACES,
    PODS,
    RESOURCES,
    Change,
    Conflict,
    NotFound,
    Obj,
    Resource,
    Store,
)
from drills.lab.kube.workqueue import Retries, earliest

FINALIZER = "kubernetes"
"""The namespace controller's token in a namespace's ``spec.finalizers``."""
TERMINATING = "Terminating"
IMMORTAL = ("default", "kube-system", "kube-public")
"""Namespaces the NamespaceLifecycle admission plugin never lets go."""
SYSTEM = ("kube-system", "kube-public", "kube-node-lease")
"""Namespaces the control plane creates again when they are missing."""
SYSTEM_PERIOD_S = 60.0
"""How often the system namespaces controller looks for them (lab seconds)."""
COMPONENT = "namespace-controller"

_OK = {  # the deleter's conditions when all is well: (reason, message)
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


def is_terminating(namespace: Obj | None) -> bool:
    """The namespace is being terminated."""
    return namespace is not None and (namespace.get("status") or {}).get("phase") == TERMINATING


def refuse_create(store: Store, resource: Resource, obj: Obj) -> Obj | None:
    """The 403 Status refusing to create ``obj`` in a terminating namespace; None when it may be created."""
    namespace = obj["metadata"].get("namespace")
    if not resource.namespaced or not is_terminating(store.find(NAMESPACES, None, namespace or "")):
        return None
    meta = obj["metadata"]
    name = meta.get("name") or meta.get("generateName") or "Unknown"
    cause = {"reason": "NamespaceTerminating", "message": f"namespace {namespace} is being terminated",
             "field": "metadata.namespace"}
    return _forbidden(resource, name, f"unable to create new content in namespace {namespace} because it "
                                      f"is being terminated", causes=[cause])


def delete(store: Store, namespace: Obj, *, clock: LabClock, dry_run: bool = False) -> tuple[Obj, int]:
    """A DELETE of ``namespace``: the body and code of the answer (a ``dry_run`` changes nothing). Raises
    :class:`Conflict` while its content is being removed."""
    meta = namespace["metadata"]
    name = meta["name"]
    if name in IMMORTAL:
        return _forbidden(NAMESPACES, name, "this namespace may not be deleted"), 403
    if not meta.get("deletionTimestamp"):
        def terminate(ns: Obj) -> None:
            ns["metadata"]["deletionTimestamp"] = rfc3339(clock.wall())
            ns.setdefault("status", {})["phase"] = TERMINATING

        return store.mutate(NAMESPACES, None, name, terminate, dry_run=dry_run), 200
    if (namespace.get("spec") or {}).get("finalizers"):
        raise Conflict(f'Operation cannot be fulfilled on namespaces "{name}": The system is ensuring all '
                       f'content is removed from this namespace.  Upon completion, this namespace will '
                       f'automatically be purged by the system.')
    store.delete(NAMESPACES, None, name, dry_run=dry_run)
    return namespace, 200


def _forbidden(resource: Resource, name: str, why: str, *, causes: list[Obj] | None = None) -> Obj:
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    details: dict[str, Any] = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    if causes:
        details["causes"] = causes
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'{qualified} "{name}" is forbidden: {why}', "reason": "Forbidden",
            "details": details, "code": 403}


@dataclass(frozen=True)
class _Content:
    """What a namespace still holds after a round of deletions."""

    remaining: Counter[str]
    """Objects left, by qualified resource (``pods.``, ``poddisruptionbudgets.policy``)."""
    finalizers: Counter[str]
    """Finalizers holding them, with how many objects each holds."""
    failures: list[str]
    """Deletions that failed."""


class NamespaceController:
    """Empties terminating namespaces, then finalizes and removes them; brings back the system
    namespaces that may be deleted (``kube-node-lease``), as the control plane's system namespaces
    controller does every minute."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component=COMPONENT)
        self._terminating: set[str] = set()
        """Namespaces marked for deletion (seen as the changes commit)."""
        self._recreate: dict[str, float] = {}
        """System namespaces gone, and when the system namespaces controller creates them again."""
        store.on_change(self._observe)

    def reconcile(self, now: float) -> float | None:
        """One step for every namespace marked for deletion."""
        for name in sorted(self._terminating):
            namespace = self._store.find(NAMESPACES, None, name)
            if namespace is not None:
                self._retries.sync(namespace, lambda ns=namespace: self._sync(ns))
        for name, at in list(self._recreate.items()):
            if now >= at:
                del self._recreate[name]
                if self._store.find(NAMESPACES, None, name) is None:
                    created: Obj = {"metadata": {"name": name}, "status": {"phase": "Active"}}
                    defaults(created)
                    self._store.create(NAMESPACES, created)
        return earliest(min(self._recreate.values(), default=None), self._retries.due())

    def _observe(self, change: Change) -> None:
        if change.resource is not NAMESPACES:
            return
        name = change.object["metadata"]["name"]
        if change.type != "DELETED" and change.object["metadata"].get("deletionTimestamp"):
            self._terminating.add(name)
            return
        self._terminating.discard(name)
        if change.type == "DELETED" and name in SYSTEM:
            self._recreate[name] = self._clock.now() + SYSTEM_PERIOD_S

    def _sync(self, namespace: Obj) -> None:
        name = namespace["metadata"]["name"]
        if FINALIZER in ((namespace.get("spec") or {}).get("finalizers") or []):
            content = self._delete_content(name)
            self._set_conditions(name, content)
            if content.remaining:
                return  # the kubelet and the other finalizers' owners are at work; their changes wake us
            namespace = self._store.mutate(NAMESPACES, None, name, _drop_finalizer)
        held = (namespace.get("spec") or {}).get("finalizers") or namespace["metadata"].get("finalizers")
        if not held:
            with contextlib.suppress(NotFound):
                self._store.delete(NAMESPACES, None, name)

    def _delete_content(self, namespace: str) -> _Content:
        """Delete what is in the namespace; what remains, by resource, the finalizers holding it, and
        the resources whose deletion failed (the controller goes on with the others)."""
        content = _Content(Counter(), Counter(), [])
        for resource in RESOURCES:
            if not resource.namespaced:
                continue
            qualified = f"{resource.plural}.{resource.group}"
            for obj in list(self._store.iter(resource, namespace)):
                if not obj["metadata"].get("deletionTimestamp"):
                    try:
                        self._delete(resource, obj)
                    except Exception as exc:
                        name = obj["metadata"]["name"]
                        content.failures.append(f"failed to delete {qualified} {name}: {exc}")
                left = self._store.find(resource, namespace, obj["metadata"]["name"])
                if left is None:
                    continue
                content.remaining[qualified] += 1
                for finalizer in left["metadata"].get("finalizers") or []:
                    content.finalizers[finalizer] += 1
        return content

    def _delete(self, resource: Resource, obj: Obj) -> None:
        if resource is PODS:
            delete_pod(self._store, obj, clock=self._clock)
        elif resource is EVENTS:
            self._store.delete(EVENTS, obj["metadata"]["namespace"], obj["metadata"]["name"])
        else:
            # As the namespace controller asks: dependents in the background, never orphaned.
            deletion.delete(self._store, resource, obj, policy="Background", clock=self._clock)

    def _set_conditions(self, name: str, content: _Content) -> None:
        stamp = rfc3339(self._clock.wall())
        wanted = {type_: ("False", reason, message) for type_, (reason, message) in _OK.items()}
        remaining, finalizers, failures = content.remaining, content.finalizers, content.failures
        if failures:
            listed = ", ".join(sorted(failures))
            wanted["NamespaceDeletionContentFailure"] = (
                "True", "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(failures)} remaining: {listed}")
        if remaining:
            listed = ", ".join(sorted(f"{r} has {n} resource instances" for r, n in remaining.items()))
            wanted["NamespaceContentRemaining"] = ("True", "SomeResourcesRemain",
                                                   f"Some resources are remaining: {listed}")
        if finalizers:
            listed = ", ".join(sorted(f"{f} in {n} resource instances" for f, n in finalizers.items()))
            wanted["NamespaceFinalizersRemaining"] = ("True", "SomeFinalizerRemain",
                                                      f"Some finalizers are remaining: {listed}")

        def change(ns: Obj) -> None:
            conditions = ns.setdefault("status", {}).setdefault("conditions", [])
            for type_, (status, reason, message) in wanted.items():
                old = next((c for c in conditions if c.get("type") == type_), None)
                new = {"type": type_, "status": status, "lastTransitionTime": stamp, "reason": reason,
                       "message": message}
                if old is None:
                    conditions.append(new)
                elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
                    if old.get("status") == status:
                        new["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
                    conditions[conditions.index(old)] = new

        self._store.mutate(NAMESPACES, None, name, change)


def _drop_finalizer(namespace: Obj) -> None:
    spec = namespace.setdefault("spec", {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    if not spec["finalizers"]:
        del spec["finalizers"]


def defaults(namespace: Obj) -> None:
    """What the API fills in on a new namespace: the controller's finalizer, the name label."""
    name = namespace["metadata"].get("name")
    namespace.setdefault("spec", {})["finalizers"] = [FINALIZER]
    if name:
        namespace["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name



def keep_finalizers(current: Obj, new: Obj) -> None:
    """An update of a namespace keeps its ``spec.finalizers``: only its finalization may change them."""
    finalizers = (current.get("spec") or {}).get("finalizers")
    spec = new.setdefault("spec", {})
    if finalizers:
        spec["finalizers"] = list(finalizers)
    else:
        spec.pop("finalizers", None)
