"""One region's Kubernetes API server: the lab's Store over HTTP, for the ``kubernetes`` client and kubectl.

Served by aiohttp over HTTPS (or plain HTTP when given no TLS context: kubectl needs TLS, since it sends
a kubeconfig's token only over TLS), with a bearer token required on every path but the health
endpoints. What is served:

- discovery (``/version``, ``/api``, ``/apis``, resource lists: :mod:`drills.lab.kube.discovery`);
- every resource of :data:`~drills.lab.kube.store.RESOURCES`: list (label and field selectors; pages
  with ``limit``/``continue``: :mod:`drills.lab.kube.paging`), watch (:mod:`drills.lab.kube.watch`),
  get, create, replace (PUT, ``resourceVersion`` conflicts answer 409), patch (JSON, merge and strategic
  merge: :mod:`drills.lab.kube.patch`), delete and deletecollection, each write also as a dry run
  (``dryRun=All``), with the ``status``, ``scale`` and ``eviction`` subresources
  (:mod:`drills.lab.kube.objects`);
- ``pods/log``, ``exec``, ``attach`` and ``portforward`` answer a 400 Status saying the lab runs no
  containers (:mod:`drills.lab.kube.containers`);
- the OpenAPI documents ``/openapi/v2`` and ``/openapi/v3`` (:mod:`drills.lab.kube.openapi`), for
  ``kubectl apply``, ``create`` and ``explain``;
- Tables for ``kubectl get`` (:mod:`drills.lab.kube.tables`); JSON wherever protobuf is asked for
  (:mod:`drills.lab.kube.wire`);
- ``GET /lab/v1/trafficmanager``, the lab's Traffic Manager monitor settings and each endpoint's next
  probe deadline (:data:`MonitorSchedule`), so that a drill can place a fault at a phase of the probe
  cycle;
- ``POST /lab/v1/proof`` (``{"nonce": HEX}``): the lab's other endpoints (:data:`LabEndpoints`) and
  the HMAC-SHA256, under the lab's proof key, of the nonce and those endpoints (:func:`proof_message`),
  which only the running lab and the owner of its key file can compute, so that a client can tell a
  lab from a real cluster whatever an environment file says (:mod:`drills.labproof`);
- RBAC (:mod:`drills.lab.rbac`): each ServiceAccount's token is authenticated as that account and every
  resource request authorized (403 with Kubernetes' message otherwise); ``SelfSubjectAccessReview``
  (``authorization.k8s.io/v1``) answers what the caller may do, for ``kubectl auth can-i``. The lab's
  own token is the administrator. ``SelfSubjectRulesReview`` lists the caller's rules in a namespace,
  for ``kubectl auth can-i --list``;
- ``/healthz``, ``/livez`` and ``/readyz`` (:mod:`drills.lab.kube.health`), without credentials as on
  a real cluster.

Every failure answers a ``Status`` object, a bug of the lab included (500, logged with its trace).
Requests run on the store's event loop and never wait between reading and writing an object, so every
write is atomic.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from drills.lab.kube import discovery, health, openapi, validation, wire
from drills.lab.kube.containers import LACKING, no_containers
from drills.lab.kube.objects import Objects
from drills.lab.kube.store import PODS, ApiError, NotFound, Store
from drills.lab.kube.wire import BadRequest, MethodNotAllowed
from drills.lab.rbac import ADMIN, Authorizer, Request, Rule, User, forbidden_message

_log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
"""Real seconds :meth:`ApiServer.close` waits for requests in flight; watches end at once."""


LabEndpoints = Callable[[], Mapping[str, str]]
"""The lab's endpoints besides the API servers (``arm``, ``cosmos``: URLs), which its proof vouches for."""


def proof_message(nonce: str, endpoints: Mapping[str, str]) -> bytes:
    """What a lab's proof is the HMAC of: the nonce, then the endpoints as canonical JSON."""
    return f"{nonce}\n{json.dumps(dict(endpoints), sort_keys=True, separators=(',', ':'))}".encode()


MonitorSchedule = Callable[[], Mapping[str, object]]
"""Answers ``GET /lab/v1/trafficmanager`` (JSON): the lab's Traffic Manager monitor settings and each
endpoint's next probe deadline (``TrafficManager.monitor_schedule``)."""


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
                           monitor: MonitorSchedule | None = None,
                           ssl_context: ssl.SSLContext | None = None,
                           proof_key: bytes | None = None, endpoints: LabEndpoints | None = None,
                           identities: Mapping[str, User] | None = None,
                           authorizer: Authorizer | None = None) -> ApiServer:
    """Serve ``store`` on ``host:port`` (0 picks a free port) to clients bearing ``token`` (the
    administrator) or a token of ``identities`` (token -> user), whose requests ``authorizer`` decides.

    ``monitor`` serves the lab's Traffic Manager schedule (without it that path answers 404), and
    ``proof_key`` the lab's proof (likewise), vouching for ``endpoints``. The nodes' VMs are powered
    off and on through the lab's ARM endpoint (:mod:`drills.lab.scalesets`).

    With ``ssl_context`` it serves HTTPS: kubectl (client-go) sends credentials only over TLS.

    Raises :class:`OSError` when the address cannot be bound.
    """
    api = _Api(store, token=token, monitor=monitor, proof_key=proof_key, endpoints=endpoints,
               identities=identities or {},
               authorizer=authorizer or Authorizer())
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


class _Api:
    """Request handling for one store."""

    def __init__(self, store: Store, *, token: str, monitor: MonitorSchedule | None, proof_key: bytes | None,
                 endpoints: LabEndpoints | None, identities: Mapping[str, User],
                 authorizer: Authorizer) -> None:
        self.closing = asyncio.Event()
        self.address = ""
        self._users = [(f"Bearer {token}".encode(), ADMIN),
                       *((f"Bearer {t}".encode(), user) for t, user in identities.items())]
        self._authorizer = authorizer
        self._monitor = monitor
        self._proof_key = proof_key
        self._endpoints = endpoints
        self._objects = Objects(store, closing=self.closing)
        self.app = web.Application(middlewares=[self._guard])
        router = self.app.router
        for slash in ("", "/"):  # the Python client asks for "/version/", "/apis/", "/api/v1/"...
            router.add_get("/version" + slash, self._version)
            router.add_get("/api" + slash, self._core_versions)
            router.add_get("/apis" + slash, self._groups)
            router.add_get("/api/{version}" + slash, self._group_version)
            router.add_get("/apis/{group}" + slash, self._group)
            router.add_get("/apis/{group}/{version}" + slash, self._group_version)
        # Before the resource routes, which would take these paths for objects of unknown resources.
        router.add_post(SSAR_PATH, self._access_review)
        router.add_route("*", "/api/v1/namespaces/{namespace}/pods/{name}/{sub:" + "|".join(LACKING) + "}",
                         self._container_access)
        router.add_post(SSRR_PATH, self._rules_review)
        for endpoint in health.ENDPOINTS:
            router.add_get(f"/{endpoint}", self._health)
            router.add_get(f"/{endpoint}/{{check:.+}}", self._health)
        router.add_route("*", "/api/{version}/{tail:.+}", self._resource)
        router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)
        router.add_get("/openapi/v2", openapi.serve_v2)
        router.add_get("/openapi/v3", openapi.serve_v3_index)
        router.add_get("/openapi/v3/{path:.+}", openapi.serve_v3)
        router.add_get("/lab/v1/trafficmanager", self._traffic_manager)
        router.add_post("/lab/v1/proof", self._proof)

    def _user(self, request: web.Request) -> User | None:
        supplied = request.headers.get("Authorization", "").encode()
        found = None
        for expected, user in self._users:  # compare with every token, in constant time each
            if hmac.compare_digest(supplied, expected):
                found = user
        return found

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        user = self._user(request)
        if user is None and "Authorization" not in request.headers and _public(request.path):
            user = ANONYMOUS
        if user is None:
            return wire.json_response(wire.status(401, "Unauthorized", "Unauthorized"), 401)
        request[_USER] = user
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return wire.error(exc)
        except web.HTTPMethodNotAllowed:
            return wire.error(MethodNotAllowed("the server does not allow this method on the requested "
                                               "resource"))
        except web.HTTPNotFound:
            return wire.error(NotFound("the server could not find the requested resource"))
        except Exception as exc:  # a bug of the lab: the client still gets a Status, the log the trace
            _log.exception("%s %s failed", request.method, request.path)
            return wire.error(ApiError(f"the lab's API server failed: {exc!r}"))

    async def _version(self, _request: web.Request) -> web.Response:
        return wire.json_response(discovery.version_info())

    async def _core_versions(self, _request: web.Request) -> web.Response:
        return wire.json_response(discovery.api_versions(self.address))

    async def _groups(self, _request: web.Request) -> web.Response:
        return wire.json_response(discovery.api_group_list())

    async def _group(self, request: web.Request) -> web.Response:
        doc = discovery.api_group(request.match_info["group"])
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return wire.json_response(doc)

    async def _group_version(self, request: web.Request) -> web.Response:
        doc = discovery.api_resource_list(request.match_info.get("group", ""), request.match_info["version"])
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return wire.json_response(doc)

    async def _traffic_manager(self, _request: web.Request) -> web.Response:
        if self._monitor is None:
            raise NotFound("this lab serves no Traffic Manager schedule")
        return wire.json_response(dict(self._monitor()))

    async def _proof(self, request: web.Request) -> web.Response:
        if self._proof_key is None:
            raise NotFound("this API server proves no lab")
        nonce = _field(await wire.read_body(request, required=True), "nonce")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 256:
            raise BadRequest("the proof needs a nonce: a string of 16 to 256 characters")
        endpoints = dict(self._endpoints()) if self._endpoints is not None else {}
        digest = hmac.new(self._proof_key, proof_message(nonce, endpoints), hashlib.sha256).hexdigest()
        return wire.json_response({"kind": "LabProof", "nonce": nonce, "endpoints": endpoints,
                                   "hmac": digest})

    async def _access_review(self, request: web.Request) -> web.Response:
        review = await wire.read_body(request, required=True)
        spec = review.get("spec") if isinstance(review, dict) else None
        attributes = spec.get("resourceAttributes") if isinstance(spec, dict) else None
        if not isinstance(attributes, dict):
            raise BadRequest("spec.resourceAttributes is required (non-resource URLs are not modelled)")
        asked = Request(verb=str(attributes.get("verb") or ""), group=str(attributes.get("group") or ""),
                        resource=str(attributes.get("resource") or ""),
                        subresource=str(attributes.get("subresource") or ""),
                        namespace=str(attributes.get("namespace") or ""),
                        name=str(attributes.get("name") or ""))
        user: User = request[_USER]
        allowed = self._authorizer.allows(user, asked)
        status: dict[str, Any] = {"allowed": allowed}
        if not allowed:
            status["reason"] = forbidden_message(user, asked)
        return wire.json_response({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                                   "metadata": {"creationTimestamp": None}, "spec": spec, "status": status},
                                  201)

    async def _container_access(self, request: web.Request) -> web.Response:
        match = request.match_info
        target = wire.Target(PODS, match["namespace"], match["name"], match["sub"])
        try:
            self._authorize(request, target)
            self._objects.store.get(PODS, target.namespace, match["name"])
        except ApiError as exc:
            return wire.error(exc, target.details() if exc.code in (403, 404) else None)
        raise no_containers(match["sub"], match["name"])
    async def _health(self, request: web.Request) -> web.Response:
        endpoint = request.path.strip("/").split("/")[0]
        return health.answer(request, endpoint, request.match_info.get("check"),
                             failing=lambda check: check == "shutdown" and self.closing.is_set())

    async def _rules_review(self, request: web.Request) -> web.Response:
        review = await wire.read_body(request, required=True)
        spec = review.get("spec") if isinstance(review, dict) else None
        namespace = spec.get("namespace") if isinstance(spec, dict) else None
        if not isinstance(namespace, str) or not namespace:
            raise BadRequest('SelfSubjectRulesReview.authorization.k8s.io "" is invalid: spec.namespace: '
                             'Required value: no namespace on request')
        user: User = request[_USER]
        return wire.json_response({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                                   "metadata": {"creationTimestamp": None}, "spec": {"namespace": namespace},
                                   "status": _rules_status(self._authorizer.rules(user, namespace))}, 201)

    def _authorize(self, request: web.Request, target: wire.Target) -> None:
        """Raise :class:`Forbidden` unless the caller may do what ``request`` asks of ``target``."""
        user: User = request[_USER]
        asked = Request(verb=_verb(request, target), group=target.resource.group,
                        resource=target.resource.plural,
                        subresource=target.subresource or "", namespace=target.namespace or "",
                        name=target.name or "")
        if not self._authorizer.allows(user, asked):
            raise Forbidden(forbidden_message(user, asked))

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        target = wire.parse_target(match.get("group", ""), match["version"], match["tail"])
        try:
            self._authorize(request, target)
        except Forbidden as exc:
            return wire.error(exc, target.details())
        try:
            response = await self._objects.handle(request, target)
        except ApiError as exc:
            return wire.error(exc, target.details() if target.name and exc.code in (404, 409) else None)
        for warning in validation.warning_headers(request):
            response.headers.add("Warning", warning)
        return response


class Forbidden(ApiError):
    """A request RBAC does not allow (403)."""

    code, reason = 403, "Forbidden"


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SSRR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
"""Who a request without credentials is: let in only where Kubernetes lets everyone in (health)."""


NON_RESOURCE_RULES = (
    {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*",
                                            "/version", "/version/"]},
    {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]},
)
"""What Kubernetes lets every authenticated user read beyond resources (``system:discovery``,
``system:public-info-viewer``); the administrator may read every path."""


def _rules_status(rules: list[Rule]) -> dict[str, Any]:
    """A SelfSubjectRulesReview's status listing ``rules``."""
    resource_rules = []
    for rule in rules:
        entry: dict[str, Any] = {"verbs": sorted(rule.verbs), "apiGroups": sorted(rule.api_groups),
                                 "resources": sorted(rule.resources)}
        if rule.resource_names:
            entry["resourceNames"] = sorted(rule.resource_names)
        resource_rules.append(entry)
    admin = any(r.verbs == {"*"} and r.api_groups == {"*"} and r.resources == {"*"} for r in rules)
    non_resource = [{"verbs": ["*"], "nonResourceURLs": ["*"]}] if admin else []
    return {"resourceRules": resource_rules, "nonResourceRules": [*non_resource, *NON_RESOURCE_RULES],
            "incomplete": False}


def _public(path: str) -> bool:
    """Whether ``path`` is one Kubernetes serves without credentials (``system:public-info-viewer``)."""
    return path.strip("/").split("/")[0] in health.ENDPOINTS
_USER = web.RequestKey("user", User)


def _verb(request: web.Request, target: wire.Target) -> str:
    """The RBAC verb of a resource request."""
    method = request.method
    if method == "GET":
        if target.name is not None:
            return "get"
        return "watch" if wire.flag(request.query.get("watch")) else "list"
    if method == "DELETE":
        return "delete" if target.name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
