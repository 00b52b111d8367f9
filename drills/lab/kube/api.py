"""One region's Kubernetes API server: the lab's Store over HTTP, for the ``kubernetes`` client and kubectl.

Served by aiohttp over HTTPS (or plain HTTP when given no TLS context: kubectl needs TLS, since it sends
a kubeconfig's token only over TLS), with a bearer token required on every path. What is served:

- discovery (``/version``, ``/api``, ``/apis``, resource lists: :mod:`drills.lab.kube.discovery`);
- every resource of :data:`~drills.lab.kube.store.RESOURCES`: list (label and field selectors;
  ``limit``/``continue`` accepted, everything comes in one page), watch, get, create, replace (PUT,
  ``resourceVersion`` conflicts answer 409), patch (JSON, merge and strategic merge:
  :mod:`drills.lab.kube.patch`) and delete;
- the ``status`` subresources, ``scale`` of deployments and replica sets (``autoscaling/v1`` Scale),
  and the Eviction API (``pods/{p}/eviction``, ``policy/v1``), which honours PodDisruptionBudgets with
  the 429 answer kubectl drain retries on;
- Tables for ``kubectl get`` (:mod:`drills.lab.kube.tables`); JSON wherever protobuf is asked for;
- ``POST /lab/v1/nodes/{name}/stop|start``, the lab's own control of node VMs (:class:`LabActions`).

As in Kubernetes, deleting a pod bound to a node is graceful: the pod gets ``deletionTimestamp`` (the
lab's wall clock plus the grace period) and ``deletionGracePeriodSeconds``, and the kubelet removes it
later; an unbound pod, or a grace period of 0, removes it at once. Everything else is removed at once:
garbage collection of dependents is the controllers' job. Requests run on the store's event loop and
never wait between reading and writing an object, so every write is atomic.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from aiohttp import web

from drills.lab.clock import rfc3339
from drills.lab.kube import discovery, tables
from drills.lab.kube.disruption import budget, check_eviction
from drills.lab.kube.kubelet import DEFAULT_GRACE_S
from drills.lab.kube.patch import PATCH_TYPES, PatchError, apply_patch
from drills.lab.kube.selectors import FieldSelector, LabelSelector, SelectorError
from drills.lab.kube.store import (
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    RESOURCES,
    ApiError,
    Change,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Obj,
    Resource,
    Store,
    TooManyRequests,
)

_log = logging.getLogger(__name__)

BOOKMARK_INTERVAL_S = 1.0
"""Real seconds between BOOKMARK events on a quiet watch that allows them (the API sends them about
every minute; the lab's time runs faster, and clients resume cheaper from a fresh version)."""

DEFAULT_WATCH_TIMEOUT_S = 1800.0
"""Real seconds a watch without ``timeoutSeconds`` stays open (the API's minimum request timeout)."""

SHUTDOWN_TIMEOUT_S = 2.0
"""Real seconds :meth:`ApiServer.close` waits for requests in flight; watches end at once."""


class LabActions(Protocol):
    """The lab's own operations on a region's nodes (their VMs), which the Cluster implements."""

    def stop_node(self, name: str) -> None:
        """Power a node's VM off; raises :class:`~drills.lab.kube.store.NotFound` for an unknown node."""
        ...

    def start_node(self, name: str) -> None:
        """Power a node's VM on; raises :class:`~drills.lab.kube.store.NotFound` for an unknown node."""
        ...


@dataclass(frozen=True)
class ApiServer:
    """A running API server; :meth:`close` ends its watches and stops it."""

    host: str
    port: int
    url: str
    _runner: web.AppRunner = field(repr=False)
    _api: _Api = field(repr=False)

    async def close(self) -> None:
        """Stop accepting requests, end open watches cleanly and wait for requests in flight."""
        self._api.closing.set()
        await self._runner.cleanup()


async def start_api_server(store: Store, *, host: str, port: int = 0, token: str,
                           actions: LabActions | None = None,
                           ssl_context: ssl.SSLContext | None = None) -> ApiServer:
    """Serve ``store`` on ``host:port`` (0 picks a free port) to clients bearing ``token``.

    With ``ssl_context`` it serves HTTPS: kubectl (client-go) sends credentials only over TLS.

    Raises :class:`OSError` when the address cannot be bound.
    """
    api = _Api(store, token=token, actions=actions)
    runner = web.AppRunner(api.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    api.address = f"{host}:{bound}"
    scheme = "https" if ssl_context is not None else "http"
    return ApiServer(host, bound, f"{scheme}://{host}:{bound}", runner, api)


class _BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class _MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class _UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


@dataclass(frozen=True)
class _Target:
    """What a resource path names."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None

    def details(self) -> Obj:
        details: Obj = {"name": self.name, "kind": self.resource.plural}
        if self.resource.group:
            details["group"] = self.resource.group
        return details

    @property
    def qualified(self) -> str:
        group = self.resource.group
        return f"{self.resource.plural}.{group}" if group else self.resource.plural


class _Api:
    """Request handling for one store."""

    def __init__(self, store: Store, *, token: str, actions: LabActions | None) -> None:
        self.store = store
        self.closing = asyncio.Event()
        self.address = ""
        self._expected = f"Bearer {token}".encode()
        self._actions = actions
        self.app = web.Application(middlewares=[self._guard])
        router = self.app.router
        for slash in ("", "/"):  # the Python client asks for "/version/", "/apis/", "/api/v1/"...
            router.add_get("/version" + slash, self._version)
            router.add_get("/api" + slash, self._core_versions)
            router.add_get("/apis" + slash, self._groups)
            router.add_get("/api/{version}" + slash, self._group_version)
            router.add_get("/apis/{group}" + slash, self._group)
            router.add_get("/apis/{group}/{version}" + slash, self._group_version)
        router.add_route("*", "/api/{version}/{tail:.+}", self._resource)
        router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)
        router.add_post("/lab/v1/nodes/{name}/{action}", self._node_action)

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, self._expected):
            return _json(_status(401, "Unauthorized", "Unauthorized"), 401)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return _error(exc)
        except web.HTTPMethodNotAllowed:
            return _error(_MethodNotAllowed("the server does not allow this method on the requested "
                                            "resource"))
        except web.HTTPNotFound:
            return _error(NotFound("the server could not find the requested resource"))
        except Exception as exc:  # a bug of the lab: the client still gets a Status, the log the trace
            _log.exception("%s %s failed", request.method, request.path)
            return _error(ApiError(f"the lab's API server failed: {exc!r}"))

    async def _version(self, _request: web.Request) -> web.Response:
        return _json(discovery.version_info())

    async def _core_versions(self, _request: web.Request) -> web.Response:
        return _json(discovery.api_versions(self.address))

    async def _groups(self, _request: web.Request) -> web.Response:
        return _json(discovery.api_group_list())

    async def _group(self, request: web.Request) -> web.Response:
        doc = discovery.api_group(request.match_info["group"])
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return _json(doc)

    async def _group_version(self, request: web.Request) -> web.Response:
        doc = discovery.api_resource_list(request.match_info.get("group", ""), request.match_info["version"])
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return _json(doc)

    async def _node_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ("stop", "start"):
            raise NotFound("the server could not find the requested resource")
        if self._actions is None:
            raise NotFound(f'nodes "{name}" not found')
        (self._actions.stop_node if action == "stop" else self._actions.start_node)(name)
        return _json(_status(200, "", "", success=True, details={"name": name, "kind": "nodes"}))

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        target = _parse_target(match.get("group", ""), match["version"], match["tail"])
        try:
            return await self._dispatch(request, target)
        except ApiError as exc:
            return _error(exc, target.details() if target.name and exc.code in (404, 409) else None)

    async def _dispatch(self, request: web.Request, target: _Target) -> web.StreamResponse:
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
        raise _MethodNotAllowed(f"the server does not allow this method on the requested resource "
                                f"({method} {target.qualified})")

    async def _list(self, request: web.Request, target: _Target) -> web.StreamResponse:
        labels, fields = _selectors(request.query)
        if _flag(request.query.get("watch")):
            return await self._watch(request, target, labels, fields)
        resource = target.resource
        items = self.store.list(resource, target.namespace, labels=labels, fields=fields)
        version = self.store.resource_version
        view = _view(request)
        if view is not None and view[0] == "Table":
            return _json(tables.table(resource, items, now=self.store.clock.wall(), resource_version=version,
                                      include_object=request.query.get("includeObject", "Metadata"),
                                      api_version=view[1]))
        if view is not None:
            return _json({"kind": "PartialObjectMetadataList", "apiVersion": view[1],
                          "metadata": {"resourceVersion": version},
                          "items": [tables.partial_metadata(i) for i in items]})
        return _json({"kind": resource.list_kind, "apiVersion": resource.api_version,
                      "metadata": {"resourceVersion": version},
                      "items": [_wire(resource, i) for i in items]})

    def _get(self, request: web.Request, target: _Target) -> web.Response:
        assert target.name is not None
        obj = self.store.get(target.resource, target.namespace, target.name)
        if target.subresource == "scale":
            return _json(_scale(obj))
        view = _view(request)
        if view is not None and view[0] == "Table":
            return _json(tables.table(target.resource, [obj], now=self.store.clock.wall(),
                                      resource_version=obj["metadata"]["resourceVersion"],
                                      include_object=request.query.get("includeObject", "Metadata"),
                                      api_version=view[1]))
        if view is not None:
            return _json(tables.partial_metadata(obj))
        return _json(_wire(target.resource, obj))

    async def _create(self, request: web.Request, target: _Target) -> web.Response:
        _refuse_dry_run(request.query)
        resource = target.resource
        obj = _expect_object(await _body(request, required=True), resource.kind, resource.api_version)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise _BadRequest("resourceVersion should not be set on objects to be created")
        if resource.namespaced:
            namespace = target.namespace or ""
            if meta.get("namespace") not in (None, "", namespace):
                raise _BadRequest("the namespace of the provided object does not match the namespace sent "
                                  "on the request")
            meta["namespace"] = namespace
            if self.store.find(NAMESPACES, None, namespace) is None:
                raise NotFound(f'namespaces "{namespace}" not found')
        _apply_defaults(resource, obj)
        return _json(_wire(resource, self.store.create(resource, obj)), 201)

    async def _replace(self, request: web.Request, target: _Target) -> web.Response:
        _refuse_dry_run(request.query)
        if target.subresource == "scale":
            scale = _expect_object(await _body(request, required=True), "Scale", "autoscaling/v1")
            return _json(_scale(self._change(target, lambda old: _with_replicas(old, scale, target))))
        resource = target.resource
        obj = _expect_object(await _body(request, required=True), resource.kind, resource.api_version)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") not in (None, target.name):
            raise _BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL "
                              f"({target.name})")
        if resource.namespaced and meta.get("namespace") not in (None, "", target.namespace):
            raise _BadRequest("the namespace of the provided object does not match the namespace sent on "
                              "the request")
        return _json(_wire(resource, self._change(target, lambda _old: copy.deepcopy(obj))))

    async def _patch(self, request: web.Request, target: _Target) -> web.Response:
        _refuse_dry_run(request.query)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in PATCH_TYPES:
            raise _UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media "
                                        f"types include: {', '.join(PATCH_TYPES)}")
        patch = _parse_json(await request.read())

        def build(old: Obj) -> Obj:
            try:
                if target.subresource == "scale":
                    return _with_replicas(old, _as_object(apply_patch(_scale(old), patch, content_type)),
                                          target)
                return _as_object(apply_patch(old, patch, content_type))
            except PatchError as exc:
                raise Invalid(f"{target.qualified} \"{target.name}\" is invalid: {exc}") from exc

        updated = self._change(target, build)
        return _json(_scale(updated) if target.subresource == "scale" else _wire(target.resource, updated))

    async def _delete(self, request: web.Request, target: _Target) -> web.Response:
        _refuse_dry_run(request.query)
        assert target.name is not None
        options = await _body(request, required=False) or {}
        if not isinstance(options, dict):
            raise _BadRequest("the request body must be a DeleteOptions object")
        _refuse_dry_run(options)
        query = request.query
        grace = _integer(query["gracePeriodSeconds"] if "gracePeriodSeconds" in query
                         else options.get("gracePeriodSeconds"), "gracePeriodSeconds")
        policy = query.get("propagationPolicy", options.get("propagationPolicy"))
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise Invalid(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                          f'"Foreground", "Background", "Orphan"')
        obj = self.store.get(target.resource, target.namespace, target.name)
        _check_preconditions(obj, options.get("preconditions"), target)
        if target.resource == PODS:
            return _json(self._delete_pod(obj, grace))
        self.store.delete(target.resource, target.namespace, target.name)
        return _json(_status(200, "", "", success=True,
                             details={**target.details(), "uid": obj["metadata"].get("uid")}))

    async def _evict(self, request: web.Request, target: _Target) -> web.Response:
        assert target.name is not None
        # Some clients post the Eviction with no Content-Type at all (older Python clients): read it as JSON.
        eviction = await _body(request, required=False, any_type=True) or {}
        if not isinstance(eviction, dict) or eviction.get("kind") not in (None, "Eviction"):
            raise _BadRequest("the request body must be a policy/v1 Eviction")
        if (eviction.get("metadata") or {}).get("name") not in (None, "", target.name):
            raise _BadRequest("name in URL does not match name in Eviction object")
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
                return _json(_status(exc.code, exc.reason, exc.message, details={"causes": causes}), exc.code)
        if "All" not in (options.get("dryRun") or []) and not request.query.get("dryRun"):
            self._delete_pod(pod, _integer(options.get("gracePeriodSeconds"), "gracePeriodSeconds"),
                             evicted=True)
        return _json(_status(201, "", "", success=True), 201)

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

    def _change(self, target: _Target, build: Callable[[Obj], Obj]) -> Obj:
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

    async def _watch(self, request: web.Request, target: _Target, labels: LabelSelector,
                     fields: FieldSelector) -> web.StreamResponse:
        query, resource = request.query, target.resource
        since = query.get("resourceVersion")
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        initial_events = _flag(query.get("sendInitialEvents"))
        timeout = float(_integer(query.get("timeoutSeconds"), "timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        seed: list[Obj] = []
        try:
            if initial_events or since in (None, "", "0"):
                # No version, or "0": the current state comes first as ADDED events, as the API does.
                seed = self.store.list(resource, target.namespace, labels=labels, fields=fields)
                watch = self.store.watch(resource, target.namespace, None)
            else:
                watch = self.store.watch(resource, target.namespace, since)
        except Gone as exc:
            await response.prepare(request)
            await _send(response, "ERROR", _status(exc.code, exc.reason, exc.message))
            await response.write_eof()
            return response

        view = _view(request)
        include = request.query.get("includeObject", "Metadata")

        def render(obj: Obj) -> Obj:
            """An event's object: a one-row Table when the client asked for Tables (``kubectl get -w``)."""
            if view is None or view[0] != "Table":
                return _wire(resource, obj)
            return tables.table(resource, [obj], now=self.store.clock.wall(), include_object=include,
                                resource_version=obj["metadata"]["resourceVersion"], api_version=view[1])

        def bookmark(**annotations: str) -> Obj:
            meta: Obj = {"resourceVersion": self.store.resource_version}
            if annotations:
                meta["annotations"] = annotations
            return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta}

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        closing = asyncio.ensure_future(self.closing.wait())
        getter: asyncio.Future[Change] | None = None
        try:
            await response.prepare(request)
            for obj in seed:
                await _send(response, "ADDED", render(obj))
            if initial_events and bookmarks:
                await _send(response, "BOOKMARK", bookmark(**{"k8s.io/initial-events-end": "true"}))
            next_bookmark = loop.time() + BOOKMARK_INTERVAL_S
            while not closing.done() and loop.time() < deadline:
                getter = getter or asyncio.ensure_future(watch.queue.get())
                wait = min(deadline, next_bookmark if bookmarks else deadline) - loop.time()
                done, _ = await asyncio.wait({getter, closing}, timeout=max(wait, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    change, getter = getter.result(), None
                    kind = _event_type(change, labels, fields)
                    if kind is not None:
                        await _send(response, kind, render(change.object))
                if bookmarks and loop.time() >= next_bookmark and watch.queue.empty():
                    await _send(response, "BOOKMARK", bookmark())
                    next_bookmark = loop.time() + BOOKMARK_INTERVAL_S
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: nothing more to say
        finally:
            watch.close()
            for future in (closing, getter):
                if future is not None:
                    future.cancel()
        return response


def _parse_target(group: str, version: str, tail: str) -> _Target:
    served = {r.plural: r for r in RESOURCES if r.group == group and r.version == version}
    parts = [p for p in tail.split("/") if p]
    unknown = NotFound("the server could not find the requested resource")
    if not served or not parts:
        raise unknown
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] in served and served[parts[2]].namespaced:
        namespace, parts = parts[1], parts[2:]
    resource = served.get(parts[0])
    if resource is None or len(parts) > 3:
        raise unknown
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and sub not in resource.subresources:
        raise unknown
    if name is not None and resource.namespaced and namespace is None:
        raise unknown
    return _Target(resource, namespace, name, sub)


def _event_type(change: Change, labels: LabelSelector, fields: FieldSelector) -> str | None:
    """What a watch with these selectors reports of a change: objects enter and leave the selection."""
    def selected(obj: Obj | None) -> bool:
        return obj is not None and labels.matches(obj["metadata"].get("labels") or {}) and fields.matches(obj)

    now = selected(change.object)
    if change.type != "MODIFIED":
        return change.type if now else None
    before = selected(change.previous)
    if now:
        return "MODIFIED" if before else "ADDED"
    return "DELETED" if before else None


def _view(request: web.Request) -> tuple[str, str] | None:
    """The alternative representation the client asks for first, if any: a Table or bare metadata."""
    for media in request.headers.get("Accept", "").split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        as_ = params.get("as")
        if as_ is None:
            return None
        if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            if as_ == "Table":
                return "Table", f"meta.k8s.io/{params['v']}"
            if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return "PartialObjectMetadata", f"meta.k8s.io/{params['v']}"
    return None


_SCALE_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def _scale(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in _SCALE_METADATA if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": tables.format_label_selector(spec.get("selector"))}}


def _with_replicas(obj: Obj, scale: Obj, target: _Target) -> Obj:
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


def _wire(resource: Resource, obj: Obj) -> Obj:
    """An object as the API serialises it: a budget's status counters are never omitted (Go zero values)."""
    if resource != PDBS:
        return obj
    counters = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
    return {**obj, "status": {**counters, **(obj.get("status") or {})}}


def _budgets_ignored(pod: Obj) -> bool:
    """An eviction skips the budgets for a pod that is done, not yet running, or already leaving."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _budget_message(store: Store, pdb: Obj) -> str:
    status = budget(store, pdb)
    return (f"The disruption budget {pdb['metadata']['name']} needs {status.desired_healthy} healthy pods "
            f"and has {status.current_healthy} currently")


def _check_preconditions(obj: Obj, preconditions: Mapping[str, Any] | None, target: _Target) -> None:
    for key in ("uid", "resourceVersion"):
        wanted = (preconditions or {}).get(key)
        actual = obj["metadata"].get(key)
        if wanted and wanted != actual:
            label = "UID" if key == "uid" else "ResourceVersion"
            raise Conflict(f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: "
                           f"{actual}")


def _selectors(query: Mapping[str, str]) -> tuple[LabelSelector, FieldSelector]:
    try:
        labels = LabelSelector.parse(query.get("labelSelector"))
        return labels, FieldSelector.parse(query.get("fieldSelector"))
    except SelectorError as exc:
        raise _BadRequest(str(exc)) from exc


def _refuse_dry_run(options: Mapping[str, Any]) -> None:
    if options.get("dryRun"):
        raise _BadRequest("the lab's API server does not support dryRun on this request")


async def _body(request: web.Request, *, required: bool, any_type: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise _BadRequest("the request body is empty")
        return None
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not any_type and content_type not in ("", "application/json", "*/*"):
        raise _UnsupportedMediaType(f'the body of the request was in an unknown format ("{content_type}") - '
                                    f'accepted media types include: application/json')
    return _parse_json(raw)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"the request body is not valid JSON: {exc}") from exc


def _expect_object(body: Any, kind: str, api_version: str) -> Obj:
    if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
        raise _BadRequest(f"the request body must be a {kind} object")
    if body.get("kind") not in (None, "", kind) or body.get("apiVersion") not in (None, "", api_version):
        raise _BadRequest(f"the body is a {body.get('apiVersion')} {body.get('kind')}, expected "
                          f"{api_version} {kind}")
    return body


def _as_object(value: Any) -> Obj:
    if not isinstance(value, dict):
        raise PatchError("the patched document is not an object")
    return value


def _integer(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _BadRequest(f"{name}: invalid integer {value!r}") from exc


def _flag(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _status(code: int, reason: str, message: str, *, success: bool = False,
            details: Obj | None = None) -> Obj:
    status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                   "status": "Success" if success else "Failure"}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if details:
        status["details"] = details
    status["code"] = code
    return status


def _error(exc: ApiError, details: Obj | None = None) -> web.Response:
    return _json(_status(exc.code, exc.reason, exc.message, details=details), exc.code)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


async def _send(response: web.StreamResponse, kind: str, obj: Obj) -> None:
    await response.write(json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n")
