"""Ownership: what every workload controller writes into what it creates, and how it finds it again.

A controller marks each object it creates with a controller owner reference (:func:`owner_reference`)
and finds what it owns by that reference's uid (:func:`controller_of`, :func:`by_controller`). The
objects it creates carry generated names: a ReplicaSet is ``<deployment>-<template hash>``
(:func:`template_hash`), a pod ``<owner>-<5 random chars>`` as ``generateName`` gives
(:func:`create_named`). Pods are stamped from the owner's template with what the API server's
defaulting would add (:func:`pod_from_template`). A controller adopts the objects its selector matches
that have no controller (:func:`adopt`): a ReplicaSet left by a Deployment deleted with
``--cascade=orphan`` belongs to the next Deployment that selects it. Also here: which pods a controller counts
(:func:`is_active`), the ``omitempty`` of workload status counts, and the timestamps the controllers
compare.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from drills.lab.kube.kubelet import DEFAULT_GRACE_S
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import PODS, AlreadyExists, Obj, Resource, Store

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generated-name alphabet: no vowels, no look-alikes


def controller_of(obj: Obj) -> Obj | None:
    """The owner reference marked ``controller: true``, if any."""
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def owner_reference(owner: Obj) -> Obj:
    """A controller reference to ``owner``, as its controller writes it into what it creates."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def by_controller(objects: Iterable[Obj]) -> dict[str, list[Obj]]:
    """The objects that have a controller, grouped by that controller's uid."""
    owned: dict[str, list[Obj]] = defaultdict(list)
    for obj in objects:
        ref = controller_of(obj)
        if ref is not None:
            owned[ref["uid"]].append(obj)
    return owned


def adopt(store: Store, owners: Iterable[Obj], resource: Resource) -> None:
    """Give each object of ``resource`` that has no controller, and is not being deleted, to the first
    owner (not being deleted, same namespace) whose selector matches its labels, as the controllers'
    ref managers adopt orphans."""
    orphans = [o for o in store.iter(resource) if controller_of(o) is None
               and not o["metadata"].get("deletionTimestamp")]
    if not orphans:
        return
    for owner in owners:
        if owner["metadata"].get("deletionTimestamp"):
            continue
        selector = LabelSelector.from_object((owner.get("spec") or {}).get("selector"))
        for orphan in [o for o in orphans if o["metadata"]["namespace"] == owner["metadata"]["namespace"]
                       and selector.matches(o["metadata"].get("labels") or {})]:
            orphans.remove(orphan)
            ref = owner_reference(owner)
            store.mutate(resource, orphan["metadata"]["namespace"], orphan["metadata"]["name"],
                         lambda o, ref=ref: o["metadata"].update(
                             ownerReferences=[*(o["metadata"].get("ownerReferences") or []), ref]))


def template_hash(template: Obj) -> str:
    """A stable short hash of a pod template, the suffix of its ReplicaSet's name."""
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8], "big")
    return "".join(_ALPHABET[(digest >> (5 * i)) % len(_ALPHABET)] for i in range(10))


def pod_from_template(owner: Obj) -> Obj:
    """A new pod (not yet named) from ``owner``'s template, owned by it, with the API server's defaults."""
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


def create_named(store: Store, pod: Obj, base: str) -> Obj:
    """Create with a ``<base>-<5 random chars>`` name, as generateName does."""
    while True:
        pod["metadata"]["name"] = f"{base}-{''.join(random.choices(_ALPHABET, k=5))}"
        try:
            return store.create(PODS, pod)
        except AlreadyExists:
            continue


def is_active(pod: Obj) -> bool:
    """Counted by its controller: not being deleted, not finished."""
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def without_zeros(fields: dict[str, int]) -> dict[str, int]:
    """Kubernetes leaves zero counts out of workload status (``omitempty``)."""
    return {k: v for k, v in fields.items() if v}


def created_at(pod: Obj) -> float:
    """The object's ``creationTimestamp`` in seconds since the epoch (0 when it has none)."""
    return epoch_seconds(pod["metadata"].get("creationTimestamp"))


def epoch_seconds(stamp: str | None) -> float:
    """An RFC 3339 timestamp in seconds since the epoch (0 for none)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0
