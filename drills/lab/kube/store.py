"""One region's Kubernetes object store: the lab's etcd.

Objects are kept as the JSON the API serves (a Kubernetes object is its wire form). Every change
takes the next resourceVersion, is kept in a bounded history so that watches can resume from a
version, is pushed to open watches, and is announced to the controllers' listeners. All of it
runs on one event loop, so a read-modify-write through :meth:`Store.mutate` is atomic.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]
"""A Kubernetes object, as JSON."""


@dataclass(frozen=True)
class Resource:
    """A kind of object the API serves."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


NODES = Resource("", "v1", "Node", "nodes", False, ("no",), ("status",))
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",))
PODS = Resource("", "v1", "Pod", "pods", True, ("po",), ("status", "eviction"))
EVENTS = Resource("", "v1", "Event", "events", True, ("ev",))
DEPLOYMENTS = Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"))
REPLICASETS = Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"))
DAEMONSETS = Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",))
PDBS = Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("status",))
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True,
                            ("netpol",))
LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
"""Leases: what a holder renews to keep a lock (drill's one drill per environment, leader election)."""

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",))
SECRETS = Resource("", "v1", "Secret", "secrets", True)
SERVICES = Resource("", "v1", "Service", "services", True, ("svc",), ("status",))
ENDPOINTS = Resource("", "v1", "Endpoints", "endpoints", True, ("ep",))
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True)
INGRESSES = Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",))
INGRESS_CLASSES = Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False)
"""Services, what their controllers derive from them, and Ingresses: how a request reaches a pod
(:mod:`drills.lab.kube.services`, :mod:`drills.lab.ingress`)."""

RESOURCES: tuple[Resource, ...] = (NODES, NAMESPACES, PODS, EVENTS, DEPLOYMENTS, REPLICASETS, DAEMONSETS,
                                   PDBS, NETWORK_POLICIES, LEASES, CONFIGMAPS, SECRETS,
                                   SERVICES, ENDPOINTS, ENDPOINT_SLICES, INGRESSES, INGRESS_CLASSES)


class ApiError(Exception):
    """A failed request, as the API reports it in a ``Status`` object."""

    code = 500
    reason = "InternalError"
    details: Obj | None = None
    """The Status ``details`` the error carries of its own (the causes of an ``Invalid``), if any."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotFound(ApiError):
    """An object, or a path, that is not there. Its Status always carries ``details`` (empty for a path),
    as a real API server's does: clients tell a missing object from a missing resource by them."""

    code, reason = 404, "NotFound"

    def __init__(self, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.details: Obj = details or {}

    @classmethod
    def of(cls, resource: Resource, name: str | None) -> NotFound:
        """The NotFound of one object, named and qualified as the API names it."""
        details: Obj = {"name": name, "kind": resource.plural}
        if resource.group:
            details["group"] = resource.group
        return cls(f'{resource.plural}{_qualifier(resource)} "{name}" not found', details)


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    """An eviction that a PodDisruptionBudget forbids now; the client retries later."""

    code, reason = 429, "TooManyRequests"


class Gone(ApiError):
    """A watch asked to resume from a version older than the kept history."""

    code, reason = 410, "Expired"


@dataclass(frozen=True)
class Change:
    """One change of one object: what a watch streams and a controller hears."""

    type: str  # ADDED, MODIFIED or DELETED
    resource: Resource
    object: Obj
    resource_version: int
    previous: Obj | None = None
    """The object before a MODIFIED or DELETED change (read-only): lets a watch with a selector tell an
    object entering or leaving the selection (ADDED/DELETED) from one changing within it, and a paged
    list rebuild the objects as they were at an earlier version (:meth:`Store.list_at`)."""


class Watch:
    """An open watch: changes of one resource (optionally one namespace) from a version on."""

    def __init__(self, store: Store, resource: Resource, namespace: str | None) -> None:
        self._store = store
        self.resource = resource
        self.namespace = namespace
        self.queue: asyncio.Queue[Change] = asyncio.Queue()

    def wants(self, change: Change) -> bool:
        if change.resource != self.resource:
            return False
        return self.namespace is None or change.object["metadata"].get("namespace") == self.namespace

    def close(self) -> None:
        self._store._watches.discard(self)


class Store:
    """Objects of one cluster, their versions, and who is told of changes."""

    def __init__(self, clock: LabClock, *, history: int = 20_000) -> None:
        self.clock = clock
        self._rv = 1
        self._objects: dict[tuple[Resource, str, str], Obj] = {}
        self._history: deque[Change] = deque(maxlen=history)
        self._watches: set[Watch] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._admission: dict[Resource, list[Callable[[Obj], None]]] = {}

    @property
    def resource_version(self) -> str:
        """The version of the latest change, as the API reports it in lists."""
        return str(self._rv)

    def on_change(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener`` synchronously after every change (controllers use it to wake up)."""
        self._listeners.append(listener)

    def admit(self, resource: Resource, plugin: Callable[[Obj], None]) -> None:
        """Let ``plugin`` change every new object of ``resource`` before it is stored, as the API server's
        mutating admission does (whoever creates it: a client or a controller)."""
        self._admission.setdefault(resource, []).append(plugin)

    def get(self, resource: Resource, namespace: str | None, name: str) -> Obj:
        """A copy of one object; :class:`NotFound` if absent."""
        obj = self._objects.get((resource, namespace or "", name))
        if obj is None:
            raise NotFound.of(resource, name)
        return copy.deepcopy(obj)

    def find(self, resource: Resource, namespace: str | None, name: str) -> Obj | None:
        """A copy of one object, or None."""
        obj = self._objects.get((resource, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: Resource, namespace: str | None = None, *,
             labels: LabelSelector | None = None, fields: FieldSelector | None = None) -> list[Obj]:
        """Copies of the matching objects, sorted by namespace and name as the API sorts them."""
        return [copy.deepcopy(o) for o in self.iter(resource, namespace, labels=labels, fields=fields)]

    def list_at(self, resource: Resource, namespace: str | None, version: int, *,
                labels: LabelSelector | None = None, fields: FieldSelector | None = None) -> list[Obj]:
        """Copies of the matching objects as they were at ``version``, sorted as :meth:`list` sorts them:
        what the next page of a paged list shows, consistent with its first page.

        Rebuilt from the kept history; raises :class:`Gone` when ``version`` is older than it.
        """
        oldest = self._history[0].resource_version if self._history else self._rv + 1
        if version > self._rv or (version < oldest - 1 and version < self._rv):
            raise Gone(f"too old resource version: {version} ({oldest - 1})")
        objects = {k: o for k, o in self._objects.items()
                   if k[0] == resource and (namespace is None or k[1] == namespace)}
        for change in reversed(self._history):
            if change.resource_version <= version:
                break
            meta = change.object["metadata"]
            key = (change.resource, meta.get("namespace") or "", meta["name"])
            if change.resource != resource or (namespace is not None and key[1] != namespace):
                continue
            if change.type == "ADDED":
                objects.pop(key, None)
            elif change.previous is not None:
                objects[key] = change.previous
        return [copy.deepcopy(objects[k]) for k in sorted(objects)
                if (labels is None or labels.matches(objects[k]["metadata"].get("labels") or {}))
                and (fields is None or fields.matches(objects[k]))]

    def iter(self, resource: Resource, namespace: str | None = None, *,
             labels: LabelSelector | None = None, fields: FieldSelector | None = None) -> Iterator[Obj]:
        """The matching objects themselves, read-only, for controllers that only look."""
        keys = sorted(k for k in self._objects
                      if k[0] == resource and (namespace is None or k[1] == namespace))
        for key in keys:
            obj = self._objects[key]
            if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
                continue
            if fields is not None and not fields.matches(obj):
                continue
            yield obj

    def create(self, resource: Resource, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object, filling the metadata the server owns; returns a copy.

        A ``dry_run`` stores nothing and takes no version: it answers what would be stored, with no
        ``resourceVersion``, as Kubernetes answers a dry-run create.
        """
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise Invalid(f"{resource.kind}: metadata.name or metadata.generateName is required")
            meta["name"] = prefix + uuid.uuid4().hex[:5]
        namespace = meta.get("namespace") or ("default" if resource.namespaced else "")
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = (resource, namespace, meta["name"])
        if key in self._objects:
            raise AlreadyExists(f'{resource.plural}{_qualifier(resource)} "{meta["name"]}" already exists')
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock.wall())
        meta.setdefault("labels", {})
        for plugin in self._admission.get(resource, ()):
            plugin(obj)
        if "spec" in obj:
            meta["generation"] = 1
        if dry_run:
            return obj
        self._commit("ADDED", resource, key, obj)
        return copy.deepcopy(obj)

    def replace(self, resource: Resource, obj: Obj) -> Obj:
        """Replace an object whole (PUT). A stated resourceVersion must be current (optimistic lock)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ("default" if resource.namespaced else "")
        key = (resource, namespace if resource.namespaced else "", meta.get("name", ""))
        old = self._objects.get(key)
        if old is None:
            raise NotFound.of(resource, meta.get("name"))
        stated = meta.get("resourceVersion")
        if stated and stated != old["metadata"]["resourceVersion"]:
            raise Conflict(f'Operation cannot be fulfilled on {resource.plural}{_qualifier(resource)} '
                           f'"{meta["name"]}": the object has been modified; please apply your changes '
                           f'to the latest version and try again')
        new = copy.deepcopy(obj)
        self._keep_server_fields(resource, old, new)
        self._commit("MODIFIED", resource, key, new, previous=old)
        return copy.deepcopy(new)

    def mutate(self, resource: Resource, namespace: str | None, name: str,
               change: Callable[[Obj], None], *, dry_run: bool = False) -> Obj:
        """Apply ``change`` to a copy of the object and store it, atomically; returns a copy.

        A change that leaves the object as it was is not a change: no version, no event. A ``dry_run``
        answers the changed object, at the current version, and stores nothing.
        """
        key = (resource, namespace or "", name)
        old = self._objects.get(key)
        if old is None:
            raise NotFound.of(resource, name)
        new = copy.deepcopy(old)
        change(new)
        if new == old:
            return copy.deepcopy(old)
        self._keep_server_fields(resource, old, new)
        if dry_run:
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return new
        self._commit("MODIFIED", resource, key, new, previous=old)
        return copy.deepcopy(new)

    def delete(self, resource: Resource, namespace: str | None, name: str, *, dry_run: bool = False) -> Obj:
        """Remove an object at once (graceful pod deletion is the API's and the kubelet's job).

        A ``dry_run`` answers the object as it is and removes nothing.
        """
        key = (resource, namespace or "", name)
        old = self._objects.get(key)
        if old is None:
            raise NotFound.of(resource, name)
        if dry_run:
            return copy.deepcopy(old)
        del self._objects[key]
        before = copy.deepcopy(old)
        self._commit("DELETED", resource, key, old, store=False, previous=before)
        return copy.deepcopy(old)

    def watch(self, resource: Resource, namespace: str | None, since: str | None) -> Watch:
        """Open a watch that first replays the changes after version ``since`` (if given).

        Raises :class:`Gone` when ``since`` is older than the kept history: the client lists again.
        """
        watch = Watch(self, resource, namespace)
        if since not in (None, "", "0"):
            try:
                start = int(since)
            except ValueError as exc:
                raise Invalid(f"invalid resourceVersion {since!r}") from exc
            oldest = self._history[0].resource_version if self._history else self._rv + 1
            if start < oldest - 1 and start < self._rv:
                raise Gone(f"too old resource version: {start} ({oldest - 1})")
            for change in self._history:
                if change.resource_version > start and watch.wants(change):
                    watch.queue.put_nowait(change)
        self._watches.add(watch)
        return watch

    def _keep_server_fields(self, resource: Resource, old: Obj, new: Obj) -> None:
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for field in ("uid", "creationTimestamp", "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        if "generation" in old_meta:
            bump = new.get("spec") != old.get("spec")
            meta["generation"] = old_meta["generation"] + (1 if bump else 0)

    def _commit(self, kind: str, resource: Resource, key: tuple[Resource, str, str], obj: Obj, *,
                store: bool = True, previous: Obj | None = None) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if store:
            self._objects[key] = obj
        change = Change(kind, resource, copy.deepcopy(obj), self._rv, previous)
        self._history.append(change)
        for watch in list(self._watches):
            if watch.wants(change):
                watch.queue.put_nowait(change)
        for listener in self._listeners:
            listener(change)


def _qualifier(resource: Resource) -> str:
    return f".{resource.group}" if resource.group else ""
