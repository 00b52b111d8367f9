"""The API's verbs on objects: list (or watch; paged: :mod:`drills.lab.kube.paging`), get, create,
replace, patch (server-side apply too: :mod:`drills.lab.kube.apply`), delete and deletecollection, and
the ``status``, ``scale`` and ``eviction`` subresources, over one region's
:class:`~drills.lab.kube.store.Store`. Every write may be a dry run (``dryRun=All``): validated and
answered in full, stored nowhere. Every write records its field manager in ``managedFields``.

Writes keep what clients may not change: a stated ``resourceVersion`` must be current (409 otherwise),
the deletion marks stay, and where a resource has a ``status`` subresource its status changes only
through it. Creation fills in what the API defaults (replicas, a pod's grace period, the initial
status). ``scale`` serves an ``autoscaling/v1`` Scale of deployments and replica sets; an eviction
(``policy/v1``) honours PodDisruptionBudgets with the 429 answer kubectl drain retries on.

As in Kubernetes, deleting a pod bound to a node is graceful: the pod gets ``deletionTimestamp`` (the
lab's wall clock plus the grace period) and ``deletionGracePeriodSeconds``, and the kubelet removes it
later; an unbound pod, or a grace period of 0, removes it at once (unless finalizers hold it). Any
other object goes as :mod:`drills.lab.kube.deletion` says (its finalizers, the propagation policy for
its dependents); a namespace terminates (:mod:`drills.lab.kube.namespaces`), and nothing new may be
created in a terminating one. An update that removes the last finalizer of an object marked for
deletion removes it.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from drills.lab.clock import rfc3339
from drills.lab.kube import (
    apply,
    configdata,
    deletion,
    discovery,
    namespaces,
    paging,
    services,
    tables,
    validation,
    wire,
)
from drills.lab.kube.disruption import budget, check_eviction
from drills.lab.kube.kubelet import DEFAULT_GRACE_S
from drills.lab.kube.patch import PATCH_TYPES, PatchError, apply_patch
from drills.lab.kube.selectors import FieldSelector, LabelSelector
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
    Gone,
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
            if method == "DELETE" and (target.namespace is not None or not target.resource.namespaced) \
                    and "deletecollection" in discovery.verbs(target.resource):
                return await self._delete_collection(request, target)
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
        try:
            listed, version = self._page(request, target, labels, fields)
        except paging.ContinueExpired as exc:
            status = wire.status(exc.code, exc.reason, exc.message)
            status["metadata"] = {"continue": exc.token}
            return wire.json_response(status, exc.code)
        items, metadata = listed.items, listed.metadata(version)
        view = wire.view(request)
        if view is not None and view[0] == "Table":
            doc = tables.table(resource, items, now=self.store.clock.wall(), resource_version=version,
                               include_object=request.query.get("includeObject", "Metadata"),
                               api_version=view[1])
            return wire.json_response({**doc, "metadata": metadata})
        if view is not None:
            return wire.json_response({"kind": "PartialObjectMetadataList", "apiVersion": view[1],
                                       "metadata": metadata,
                                       "items": [tables.partial_metadata(i) for i in items]})
        return wire.json_response({"kind": resource.list_kind, "apiVersion": resource.api_version,
                                   "metadata": metadata,
                                   "items": [wire.as_served(resource, i) for i in items]})

    def _page(self, request: web.Request, target: Target, labels: LabelSelector,
              fields: FieldSelector) -> tuple[paging.Page, str]:
        """The page of the list ``request`` asks for (:mod:`drills.lab.kube.paging`) and its version."""
        limit = paging.parse_limit(request.query.get("limit"))
        token = request.query.get("continue")
        within = target.namespace is not None
        counted = not labels.requirements and not fields.terms
        if not token:
            version = self.store.resource_version
            items = self.store.list(target.resource, target.namespace, labels=labels, fields=fields)
            return paging.page(items, limit=limit, after=None, version=int(version), within_namespace=within,
                               counted=counted), version
        start = paging.Continue.decode(token)
        if start.version == paging.INCONSISTENT:
            version = self.store.resource_version
            items = self.store.list(target.resource, target.namespace, labels=labels, fields=fields)
        else:
            version = str(start.version)
            try:
                items = self.store.list_at(target.resource, target.namespace, start.version, labels=labels,
                                           fields=fields)
            except Gone as exc:
                raise paging.ContinueExpired(
                    paging.Continue(paging.INCONSISTENT, start.start).encode()) from exc
        listed = paging.page(items, limit=limit, after=start.start, version=int(version),
                             within_namespace=within, counted=counted)
        return listed, version

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
        dry = wire.dry_run(request.query.getall("dryRun", []), "CreateOptions")
        resource = target.resource
        obj = wire.expect_object(await wire.read_body(request, required=True), resource.kind,
                                 resource.api_version)
        return self._create_object(target, obj, dry, self._writer(request, target, "Update"),
                                   validation.Write.of(request))

    def _create_object(self, target: Target, obj: Obj, dry: bool, writer: apply.Writer,
                       write: validation.Write) -> web.Response:
        resource = target.resource
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
                raise NotFound.of(NAMESPACES, namespace)
            refusal = namespaces.refuse_create(self.store, resource, obj)
            if refusal is not None:
                return wire.json_response(refusal, 403)
        # Defaulting works on the decoded object, as the API server's does on its Go types: a value of the
        # wrong type is refused before any default is filled in beside it.
        obj = validation.admit(write, resource, obj, None)
        _apply_defaults(resource, obj)
        configdata.normalize(resource, obj)
        if resource == SERVICES:  # after the type checks, which defaulting relies on
            services.apply_defaults(self.store, obj)
        _track(None, obj, writer, target)
        created = self.store.create(resource, obj, dry_run=dry)
        return wire.json_response(wire.as_served(resource, created), 201)

    async def _replace(self, request: web.Request, target: Target) -> web.Response:
        dry = wire.dry_run(request.query.getall("dryRun", []), "UpdateOptions")
        if target.subresource == "scale":
            body = await wire.read_body(request, required=True)
            scale = wire.expect_object(body, "Scale", "autoscaling/v1")
            scaled = self._change(target, lambda old: _with_replicas(old, scale, target),
                                  validation.Write.of(request), dry_run=dry,
                                  writer=self._writer(request, target, "Update"))
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
        replaced = self._change(target, lambda _old: copy.deepcopy(obj), validation.Write.of(request),
                                dry_run=dry, writer=self._writer(request, target, "Update"))
        return wire.json_response(wire.as_served(resource, replaced))

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        dry = wire.dry_run(request.query.getall("dryRun", []), "PatchOptions")
        content_type = wire.content_type(request)
        if content_type == apply.APPLY_PATCH:
            return await self._apply(request, target, dry)
        if content_type not in PATCH_TYPES:
            raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media "
                                       f"types include: {', '.join((*PATCH_TYPES, apply.APPLY_PATCH))}")
        if "force" in request.query:
            raise Invalid('PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
                          'for non-apply patch')
        patch = wire.parse_json(await request.read())

        def build(old: Obj) -> Obj:
            try:
                if target.subresource == "scale":
                    return _with_replicas(old, _as_object(apply_patch(_scale(old), patch, content_type)),
                                          target)
                return _as_object(apply_patch(old, patch, content_type))
            except PatchError as exc:
                raise Invalid(f"{target.qualified} \"{target.name}\" is invalid: {exc}") from exc

        updated = self._change(target, build, validation.Write.of(request, patch), dry_run=dry,
                               writer=self._writer(request, target, "Update"))
        return wire.json_response(_scale(updated) if target.subresource == "scale"
                                  else wire.as_served(target.resource, updated))

    async def _apply(self, request: web.Request, target: Target, dry: bool) -> web.Response:
        """Server-side apply (:mod:`drills.lab.kube.apply`): create the object, or merge into it."""
        if not request.query.get("fieldManager"):
            raise Invalid('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
                          'for apply patch')
        if target.subresource == "scale":
            raise UnsupportedMediaType("apply is not supported on the scale subresource by the lab")
        config = apply.parse_configuration(await request.read(), target.resource, target.name)
        writer = self._writer(request, target, "Apply", applied=config)
        try:
            if target.subresource is None and self.store.find(target.resource, target.namespace,
                                                              target.name or "") is None:
                return self._create_object(target, apply.merged({}, writer), dry, writer,
                                           validation.Write.of(request, config))
            updated = self._change(target, lambda old: apply.merged(old, writer),
                                   validation.Write.of(request, config), dry_run=dry, writer=writer)
        except apply.ApplyConflict as exc:  # its details are the conflicting fields, not the object
            return wire.json_response(wire.status(exc.code, exc.reason, exc.message,
                                                  details={"causes": exc.causes}), exc.code)
        return wire.json_response(wire.as_served(target.resource, updated))

    def _writer(self, request: web.Request, target: Target, operation: str, *,
                applied: Obj | None = None) -> apply.Writer:
        """Who a write is by, as ``managedFields`` records it."""
        query = request.query
        manager = apply.manager_of(query.get("fieldManager"), request.headers.get("User-Agent", ""))
        return apply.Writer(manager, operation, target.resource.api_version, self.store.clock.wall(),
                            subresource=target.subresource or "", force=wire.flag(query.get("force")),
                            applied=applied)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        options = await _delete_options(request)
        obj = self.store.get(target.resource, target.namespace, target.name)
        _check_preconditions(obj, options.preconditions, target)
        if target.resource == NAMESPACES:
            return wire.json_response(*namespaces.delete(self.store, obj, clock=self.store.clock,
                                                         dry_run=options.dry_run))
        deleted = self._delete_object(target, obj, options)
        if target.resource == PODS or deleted["metadata"].get("deletionTimestamp"):
            # A pod, or an object finalizers hold: the API answers with the object as it stays.
            return wire.json_response(wire.as_served(target.resource, deleted))
        details = {**target.details(), "uid": obj["metadata"].get("uid")}
        return wire.json_response(wire.status(200, "", "", success=True, details=details))

    def _delete_object(self, target: Target, obj: Obj, options: _DeleteOptions) -> Obj:
        """Delete one object (gracefully for a bound pod); returns what the store keeps or last kept."""
        if target.resource == PODS:
            return self._delete_pod(obj, options.grace, dry_run=options.dry_run)
        marked = deletion.delete(self.store, target.resource, obj, policy=options.policy,
                                 clock=self.store.clock, dry_run=options.dry_run)
        return obj if marked is None else marked

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        """``deletecollection``: delete every object the selectors pick, each as a delete would; answers
        the list of what was deleted, as Kubernetes does."""
        options = await _delete_options(request)
        labels, fields = wire.selectors(request.query)
        resource = target.resource
        deleted = []
        for obj in self.store.list(resource, target.namespace, labels=labels, fields=fields):
            name = obj["metadata"]["name"]
            one = Target(resource, obj["metadata"].get("namespace"), name, None)
            _check_preconditions(obj, options.preconditions, one)
            deleted.append(wire.as_served(resource, self._delete_object(one, obj, options)))
        return wire.json_response({"kind": resource.list_kind, "apiVersion": resource.api_version,
                                   "metadata": {"resourceVersion": self.store.resource_version},
                                   "items": deleted})

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
        if not isinstance(options, dict):
            raise BadRequest("deleteOptions must be a DeleteOptions object")
        dry = wire.dry_run(list(options.get("dryRun") or []) + request.query.getall("dryRun", []),
                           "DeleteOptions")
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
        self._delete_pod(pod, wire.integer(options.get("gracePeriodSeconds"), "gracePeriodSeconds"),
                         evicted=True, dry_run=dry)
        return wire.json_response(wire.status(201, "", "", success=True), 201)

    def _delete_pod(self, pod: Obj, grace: int | None, *, evicted: bool = False,
                    dry_run: bool = False) -> Obj:
        """Delete a pod as the API does: gracefully when it is bound to a node and may still run."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if grace <= 0 and not meta.get("finalizers"):
            return self.store.delete(PODS, meta["namespace"], meta["name"], dry_run=dry_run)
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

        return self.store.mutate(PODS, meta["namespace"], meta["name"], mark, dry_run=dry_run)

    def _change(self, target: Target, build: Callable[[Obj], Obj], write: validation.Write, *,
                dry_run: bool = False, writer: apply.Writer | None = None) -> Obj:
        """Read-modify-write one object: ``build`` turns a copy of it into the whole new object, which
        ``write`` validates (:func:`~drills.lab.kube.validation.admit`).

        The server keeps what clients may not change: the version (a stated one must be current),
        the deletion marks, the status on the main resource and all but the status on ``/status``.
        """
        resource = target.resource
        assert target.name is not None

        def change(current: Obj) -> None:
            new = validation.admit(write, resource, build(copy.deepcopy(current)), current, target.name)
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
            if target.subresource is None:
                configdata.normalize(resource, new)
                configdata.check(resource, new, current)
            if resource == NAMESPACES:
                namespaces.keep_finalizers(current, new)
            if writer is not None:
                _track(current, new, writer, target)
            current.clear()
            current.update(new)

        updated = self.store.mutate(resource, target.namespace, target.name, change, dry_run=dry_run)
        if not dry_run:
            deletion.remove_if_finalized(self.store, resource, updated)
        return updated


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
            spec.setdefault("securityContext", {})  # kubectl debug reads it unguarded
        obj["status"] = {"phase": "Pending"}
    elif resource == NAMESPACES:
        namespaces.defaults(obj)
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


@dataclass(frozen=True)
class _DeleteOptions:
    """What a delete asks for, from its query and its DeleteOptions body."""

    grace: int | None
    policy: str | None
    preconditions: Mapping[str, Any] | None
    dry_run: bool


async def _delete_options(request: web.Request) -> _DeleteOptions:
    options = await wire.read_body(request, required=False) or {}
    if not isinstance(options, dict):
        raise BadRequest("the request body must be a DeleteOptions object")
    query = request.query
    dry = wire.dry_run(list(options.get("dryRun") or []) + query.getall("dryRun", []), "DeleteOptions")
    grace = wire.integer(query["gracePeriodSeconds"] if "gracePeriodSeconds" in query
                         else options.get("gracePeriodSeconds"), "gracePeriodSeconds")
    policy = deletion.propagation_policy(query, options)
    return _DeleteOptions(grace, policy, options.get("preconditions"), dry)


def _track(old: Obj | None, new: Obj, writer: apply.Writer, target: Target) -> None:
    """Record ``writer``'s write of ``new`` in its ``managedFields`` (:func:`apply.track`)."""
    scope = target.subresource or (None if "status" in target.resource.subresources else "")
    managed = apply.track(old, new, writer, scope)
    if managed:
        new["metadata"]["managedFields"] = managed
    else:
        new["metadata"].pop("managedFields", None)
