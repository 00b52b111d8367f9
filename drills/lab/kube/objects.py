"""The API's verbs on objects: list (or watch), get, create, replace, patch and delete, and the
``status``, ``scale`` and ``eviction`` subresources, over one region's :class:`~drills.lab.kube.store.Store`.

Writes keep what clients may not change: a stated ``resourceVersion`` must be current (409 otherwise),
the deletion marks stay, and where a resource has a ``status`` subresource its status changes only
through it. Creation fills in what the API defaults (replicas, a pod's grace period, the initial
status). ``scale`` serves an ``autoscaling/v1`` Scale of deployments and replica sets; an eviction
(``policy/v1``) honours PodDisruptionBudgets with the 429 answer kubectl drain retries on.

As in Kubernetes, deleting a pod bound to a node is graceful: the pod gets ``deletionTimestamp`` (the
lab's wall clock plus the grace period) and ``deletionGracePeriodSeconds``, and the kubelet removes it
later; an unbound pod, or a grace period of 0, removes it at once. Everything else is removed at once:
garbage collection of dependents is the controllers' job.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from drills.lab.clock import rfc3339
from drills.lab.kube import services, tables, wire
from drills.lab.kube.disruption import budget, check_eviction
from drills.lab.kube.kubelet import DEFAULT_GRACE_S
from drills.lab.kube.patch import PATCH_TYPES, PatchError, apply_patch
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import (
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    SERVICES,
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    Obj,
    Resource,
    Store,
    TooManyRequests,
)
from drills.lab.kube.watch import serve_watch
from drills.lab.kube.wire import BadRequest, MethodNotAllowed, Target, UnsupportedMediaType


class Objects:
    """The object routes of one store; ``closing`` set ends its watches."""

    def __init__(self, store: Store, *, closing: asyncio.Event) -> None:
        self.store = store
        self._closing = closing

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Answer ``request`` on ``target``; raises :class:`~drills.lab.kube.store.ApiError` to refuse it."""
        method, sub = request.method, target.subresource
        if target.name is None:
            if method == "GET":
                return await self._list(request, target)
            if method == "POST" and (target.namespace is not None or not target.resource.namespaced):
                return await self._create(request, target)
        elif sub is None:
            if method == "GET":
                return self._get(request, target)
            if method == "PUT":
                return await self._replace(request, target)
            if method == "PATCH":
                return await self._patch(request, target)
            if method == "DELETE":
                return await self._delete(request, target)
        elif sub == "eviction":
            if method == "POST":
                return await self._evict(request, target)
        elif method == "GET":
            return self._get(request, target)
        elif method == "PUT":
            return await self._replace(request, target)
        elif method == "PATCH":
            return await self._patch(request, target)
        raise MethodNotAllowed(f"the server does not allow this method on the requested resource "
                               f"({method} {target.qualified})")

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        labels, fields = wire.selectors(request.query)
        if wire.flag(request.query.get("watch")):
            return await serve_watch(request, target, store=self.store, labels=labels, fields=fields,
                                     closing=self._closing)
        resource = target.resource
        items = self.store.list(resource, target.namespace, labels=labels, fields=fields)
        version = self.store.resource_version
        view = wire.view(request)
        if view is not None and view[0] == "Table":
            return wire.json_response(tables.table(
                resource, items, now=self.store.clock.wall(), resource_version=version,
                include_object=request.query.get("includeObject", "Metadata"), api_version=view[1]))
        if view is not None:
            return wire.json_response({"kind": "PartialObjectMetadataList", "apiVersion": view[1],
                                       "metadata": {"resourceVersion": version},
                                       "items": [tables.partial_metadata(i) for i in items]})
        return wire.json_response({"kind": resource.list_kind, "apiVersion": resource.api_version,
                                   "metadata": {"resourceVersion": version},
                                   "items": [wire.as_served(resource, i) for i in items]})

    def _get(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        obj = self.store.get(target.resource, target.namespace, target.name)
        if target.subresource == "scale":
            return wire.json_response(_scale(obj))
        view = wire.view(request)
        if view is not None and view[0] == "Table":
            return wire.json_response(tables.table(
                target.resource, [obj], now=self.store.clock.wall(),
                resource_version=obj["metadata"]["resourceVersion"],
                include_object=request.query.get("includeObject", "Metadata"), api_version=view[1]))
        if view is not None:
            return wire.json_response(tables.partial_metadata(obj))
        return wire.json_response(wire.as_served(target.resource, obj))

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        wire.refuse_dry_run(request.query)
        resource = target.resource
        obj = wire.expect_object(await wire.read_body(request, required=True), resource.kind,
                                 resource.api_version)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        if resource.namespaced:
            namespace = target.namespace or ""
            if meta.get("namespace") not in (None, "", namespace):
                raise BadRequest("the namespace of the provided object does not match the namespace sent "
                                 "on the request")
            meta["namespace"] = namespace
            if self.store.find(NAMESPACES, None, namespace) is None:
                raise NotFound(f'namespaces "{namespace}" not found')
        _apply_defaults(resource, obj)
        if resource == SERVICES:
            services.apply_defaults(self.store, obj)
        return wire.json_response(wire.as_served(resource, self.store.create(resource, obj)), 201)

    async def _replace(self, request: web.Request, target: Target) -> web.Response:
        wire.refuse_dry_run(request.query)
        if target.subresource == "scale":
            body = await wire.read_body(request, required=True)
            scale = wire.expect_object(body, "Scale", "autoscaling/v1")
            scaled = self._change(target, lambda old: _with_replicas(old, scale, target))
            return wire.json_response(_scale(scaled))
        resource = target.resource
        obj = wire.expect_object(await wire.read_body(request, required=True), resource.kind,
                                 resource.api_version)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, target.name):
            raise BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL "
                             f"({target.name})")
        if resource.namespaced and meta.get("namespace") not in (None, "", target.namespace):
            raise BadRequest("the namespace of the provided object does not match the namespace sent on "
                             "the request")
        replaced = self._change(target, lambda _old: copy.deepcopy(obj))
        return wire.json_response(wire.as_served(resource, replaced))

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        wire.refuse_dry_run(request.query)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in PATCH_TYPES:
            raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media "
                                       f"types include: {', '.join(PATCH_TYPES)}")
        patch = wire.parse_json(await request.read())

        def build(old: Obj) -> Obj:
            try:
                if target.subresource == "scale":
                    return _with_replicas(old, _as_object(apply_patch(_scale(old), patch, content_type)),
                                          target)
                return _as_object(apply_patch(old, patch, content_type))
            except PatchError as exc:
                raise Invalid(f"{target.qualified} \"{target.name}\" is invalid: {exc}") from exc

        updated = self._change(target, build)
        return wire.json_response(_scale(updated) if target.subresource == "scale"
                                  else wire.as_served(target.resource, updated))

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        wire.refuse_dry_run(request.query)
        assert target.name is not None
        options = await wire.read_body(request, required=False) or {}
        if not isinstance(options, dict):
            raise BadRequest("the request body must be a DeleteOptions object")
        wire.refuse_dry_run(options)
        query = request.query
        grace = wire.integer(query["gracePeriodSeconds"] if "gracePeriodSeconds" in query
                             else options.get("gracePeriodSeconds"), "gracePeriodSeconds")
        policy = query.get("propagationPolicy", options.get("propagationPolicy"))
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise Invalid(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                          f'"Foreground", "Background", "Orphan"')
        obj = self.store.get(target.resource, target.namespace, target.name)
        _check_preconditions(obj, options.get("preconditions"), target)
        if target.resource == PODS:
            return wire.json_response(self._delete_pod(obj, grace))
        self.store.delete(target.resource, target.namespace, target.name)
        details = {**target.details(), "uid": obj["metadata"].get("uid")}
        return wire.json_response(wire.status(200, "", "", success=True, details=details))

    async def _evict(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        # Some clients post the Eviction with no Content-Type at all (older Python clients): read it as JSON.
        eviction = await wire.read_body(request, required=False, any_type=True) or {}
        if not isinstance(eviction, dict) or eviction.get("kind") not in (None, "Eviction"):
            raise BadRequest("the request body must be a policy/v1 Eviction")
        if (eviction.get("metadata") or {}).get("name") not in (None, "", target.name):
            raise BadRequest("name in URL does not match name in Eviction object")
        pod = self.store.get(PODS, target.namespace, target.name)
        options = eviction.get("deleteOptions") or {}
        _check_preconditions(pod, options.get("preconditions"), target)
        if not _budgets_ignored(pod):
            labels = pod["metadata"].get("labels") or {}
            budgets = [p for p in self.store.iter(PDBS, target.namespace)
                       if LabelSelector.from_object((p.get("spec") or {}).get("selector")).matches(labels)]
            if len(budgets) > 1:
                raise ApiError("This pod has more than one PodDisruptionBudget, which the eviction "
                               "subresource does not support.")
            try:
                check_eviction(self.store, pod)
            except TooManyRequests as exc:
                causes = [{"reason": "DisruptionBudget", "message": _budget_message(self.store, p)}
                          for p in budgets]
                return wire.json_response(wire.status(exc.code, exc.reason, exc.message,
                                                      details={"causes": causes}), exc.code)
        if "All" not in (options.get("dryRun") or []) and not request.query.get("dryRun"):
            self._delete_pod(pod, wire.integer(options.get("gracePeriodSeconds"), "gracePeriodSeconds"),
                             evicted=True)
        return wire.json_response(wire.status(201, "", "", success=True), 201)

    def _delete_pod(self, pod: Obj, grace: int | None, *, evicted: bool = False) -> Obj:
        """Delete a pod as the API does: gracefully when it is bound to a node and may still run."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if grace <= 0:
            return self.store.delete(PODS, meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp") and int(meta.get("deletionGracePeriodSeconds", grace)) <= grace:
            return pod
        now = self.store.clock.wall()

        def mark(current: Obj) -> None:
            current["metadata"]["deletionTimestamp"] = rfc3339(now + timedelta(seconds=grace))
            current["metadata"]["deletionGracePeriodSeconds"] = grace
            if evicted:
                conditions = current.setdefault("status", {}).setdefault("conditions", [])
                if not any(c.get("type") == "DisruptionTarget" for c in conditions):
                    conditions.append({"type": "DisruptionTarget", "status": "True",
                                       "lastTransitionTime": rfc3339(now), "reason": "EvictionByEvictionAPI",
                                       "message": "Eviction API: evicting"})

        return self.store.mutate(PODS, meta["namespace"], meta["name"], mark)

    def _change(self, target: Target, build: Callable[[Obj], Obj]) -> Obj:
        """Read-modify-write one object: ``build`` turns a copy of it into the whole new object.

        The server keeps what clients may not change: the version (a stated one must be current),
        the deletion marks, the status on the main resource and all but the status on ``/status``.
        """
        resource = target.resource
        assert target.name is not None

        def change(current: Obj) -> None:
            new = build(copy.deepcopy(current))
            meta, current_meta = new.setdefault("metadata", {}), current["metadata"]
            stated = meta.get("resourceVersion")
            if stated and stated != current_meta["resourceVersion"]:
                raise Conflict(f'Operation cannot be fulfilled on {target.qualified} "{target.name}": the '
                               f'object has been modified; please apply your changes to the latest version '
                               f'and try again')
            meta["resourceVersion"] = current_meta["resourceVersion"]
            if resource == SERVICES:
                services.keep_allocated(current, new)
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                if key in current_meta:
                    meta[key] = current_meta[key]
                else:
                    meta.pop(key, None)
            if target.subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(current)
                new["status"] = status if status is not None else {}
            elif target.subresource is None and "status" in resource.subresources:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
            current.clear()
            current.update(new)

        return self.store.mutate(resource, target.namespace, target.name, change)


_SCALE_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def _scale(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in _SCALE_METADATA if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": tables.format_label_selector(spec.get("selector"))}}


def _with_replicas(obj: Obj, scale: Obj, target: Target) -> Obj:
    stated = (scale.get("metadata") or {}).get("resourceVersion")
    if stated and stated != obj["metadata"]["resourceVersion"]:
        raise Conflict(f'Operation cannot be fulfilled on {target.qualified} "{target.name}": the object has '
                       f'been modified; please apply your changes to the latest version and try again')
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise Invalid(f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: Invalid value: '
                      f'{json.dumps(replicas)}: must be greater than or equal to 0')
    obj.setdefault("spec", {})["replicas"] = replicas
    return obj


def _apply_defaults(resource: Resource, obj: Obj) -> None:
    """What the API fills in on create: replica counts, a pod's grace period, the initial status."""
    spec = obj.get("spec")
    if resource in (DEPLOYMENTS, REPLICASETS) and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
    if resource == PODS:
        if isinstance(spec, dict):
            spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        obj["status"] = {"phase": "Pending"}
    elif resource == NAMESPACES:
        obj["status"] = {"phase": "Active"}
    elif "status" in resource.subresources and resource != NODES:
        obj["status"] = {}


def _budgets_ignored(pod: Obj) -> bool:
    """An eviction skips the budgets for a pod that is done, not yet running, or already leaving."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _budget_message(store: Store, pdb: Obj) -> str:
    status = budget(store, pdb)
    return (f"The disruption budget {pdb['metadata']['name']} needs {status.desired_healthy} healthy pods "
            f"and has {status.current_healthy} currently")


def _check_preconditions(obj: Obj, preconditions: Mapping[str, Any] | None, target: Target) -> None:
    for key in ("uid", "resourceVersion"):
        wanted = (preconditions or {}).get(key)
        actual = obj["metadata"].get(key)
        if wanted and wanted != actual:
            label = "UID" if key == "uid" else "ResourceVersion"
            raise Conflict(f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: "
                           f"{actual}")


def _as_object(value: Any) -> Obj:
    if not isinstance(value, dict):
        raise PatchError("the patched document is not an object")
    return value
