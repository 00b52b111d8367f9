"""One region's ingress: the HTTP front door that users and Traffic Manager's probes reach.

It serves while the region could really serve: the ingress controller (the topology's ``ingress``
workload) and the app (its ``app`` workload) each have a pod that is Ready and that no deny-all
NetworkPolicy isolates. Every request is judged against the region's object store as it is now:

- ``serving``: ``200`` with ``served by <region>`` and the ``X-Drill-Region`` header;
- ``unavailable``: the controller runs but has no app pod to send to: ``503 no healthy upstream``
  (what ingress-nginx answers);
- ``blackhole``: no controller pod serves at all. In Azure the region's load balancer then has no
  healthy backend and drops the traffic: connections are accepted and never answered, so clients and
  Traffic Manager's probes wait for their timeout. A refused connection would make the lab fail over
  faster than production does.

The server is a bare :class:`asyncio.Protocol` rather than aiohttp: a held connection then costs no
task at all (nothing to leak; it goes when the client closes it or the ingress closes), a new
connection per request (drill's probes open ~60 a second) costs one object and two writes, and the
canned answers are prebuilt bytes. Requests are HTTP/1.1 with keep-alive; bodies are only skipped
(``Content-Length``).

Routing: requests are routed as ingress-nginx routes them, by the Ingress objects the region's
store holds now (:mod:`drills.lab.routes`: host, then path by its ``pathType``), to a Service, and
answered by that Service's ready endpoints (its EndpointSlices, :mod:`drills.lab.kube.endpoints`)
on a running VM that no deny-all NetworkPolicy isolates: none is ``503 no healthy upstream``, as is a
missing Service or port; a request no rule routes gets ingress-nginx's default backend, ``404 default
backend - 404``, whenever the controller runs, app or no app (a query string is not part of the path).
The built-in design's Ingress routes exactly ``/`` and the app's health path
(:mod:`drills.lab.kube.exposure`), so a monitor path with a typo fails in every region, as it does in
Azure; a team's own Ingress objects (``drill lab up --manifests``) route as they say. The *app*, whose
state the ground truth and the offered load follow, is what ``/`` routes to for a request with no
known host: ``serving`` while it has a ready endpoint, else ``unavailable``.

The ingress controller is the topology's ``ingress`` workload: its Deployment's pods (Ready, on a
running VM, not isolated) are the controller pods a load balancer sends to.

Capacity: given the lab's :class:`~drills.lab.load.OfferedLoad`, a request the app would serve fails
with ``503 upstream overloaded`` with the region's failing share (offered load past Ready app pods x
capacity), drawn per request; the default backend's 404 is not the app's and is never shed. The
ingress tells the offered load when its count of Ready app pods changes, for the ground truth.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Literal

from drills.lab.kube.disruption import is_healthy
from drills.lab.kube.endpoints import ready_endpoints
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.shapes import mapping
from drills.lab.kube.store import (
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    INGRESS_CLASSES,
    INGRESSES,
    NETWORK_POLICIES,
    PODS,
    SERVICES,
    Change,
    Obj,
    Store,
)
from drills.lab.load import OfferedLoad
from drills.lab.routes import Backend, RouteTable, route_table, service_port_exists
from drills.lab.topology import Topology, Workload

ServingState = Literal["serving", "unavailable", "blackhole"]
"""What the region's ingress does with a request now."""

_ROUTING = (PODS, DEPLOYMENTS, NETWORK_POLICIES, SERVICES, ENDPOINT_SLICES, INGRESSES, INGRESS_CLASSES)
"""The resources whose changes may change how the region serves."""

_MAX_HEAD = 16 * 1024
"""Request line plus headers; more is refused (431), as nginx refuses oversized headers."""


NodeRunning = Callable[[str], bool]
"""Whether a node's VM runs now, by node name: a pod on a powered-off VM serves nothing, although the
API shows it Ready until the node lifecycle controller notices (40 s)."""


def serving_state(store: Store, topology: Topology, running: NodeRunning | None = None) -> ServingState:
    """How the region's ingress answers now, from the deployments, pods and policies in ``store`` and,
    if given, which nodes' VMs run."""
    return _serving(store, topology, running)[0]


def _serving(store: Store, topology: Topology, running: NodeRunning | None) -> tuple[ServingState, int]:
    """The serving state and the app's pods the ingress can send to."""
    return _View(store, topology, running).status()


class _View:
    """How the region routes, as of one version of its store: the routing table, the controller's
    serving pods, and each backend's serving endpoints (counted when first asked)."""

    def __init__(self, store: Store, topology: Topology, running: NodeRunning | None) -> None:
        self._store = store
        self._running = running
        self.table: RouteTable = route_table(store)
        self.controller = _serving_pods(store, topology.ingress, running)
        self._counts: dict[Backend, int] = {}

    def serving(self, backend: Backend) -> int:
        """The backend's ready endpoints the controller can reach now."""
        if backend not in self._counts:
            self._counts[backend] = _serving_endpoints(self._store, backend, self._running)
        return self._counts[backend]

    def status(self) -> tuple[ServingState, int]:
        app = self.table.route("", "/")
        ready = self.serving(app) if app is not None else 0
        if self.controller == 0:
            return "blackhole", ready
        return ("serving" if ready else "unavailable"), ready


class Ingress:
    """The HTTP server in front of one region."""

    def __init__(self, region: str, store: Store, topology: Topology, *, load: OfferedLoad | None = None,
                 running: NodeRunning | None = None, rng: random.Random | None = None) -> None:
        """``running`` tells whether a node's VM runs (None: every VM runs); call :meth:`power_changed`
        whenever one stops or starts."""
        self.region = region
        self._store = store
        self._running = running
        self._topology = topology
        self._load = load
        self._random = rng or random.Random()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._state_version = ""
        self._state: ServingState = "blackhole"
        self._ready_app = 0
        self._view: _View | None = None
        self._controller_namespace = topology.ingress.namespace
        if load is not None:
            load.add_region(region, self.status)
            store.on_change(self._store_changed)
        body = f"served by {region}\n".encode()
        self._responses = {
            status: {keep_alive: _response(status, text, region, keep_alive=keep_alive)
                     for keep_alive in (True, False)}
            for status, text in ((200, body), (503, b"no healthy upstream\n"),
                                 (404, b"default backend - 404\n"))
        }
        self._overloaded = {keep: _response(503, b"upstream overloaded\n", region, keep_alive=keep)
                            for keep in (True, False)}

    @property
    def port(self) -> int | None:
        """The port listened on (useful after ``start(host, 0)``); None before start."""
        if self._server is None:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        """Client connections open now, held ones included."""
        return len(self._connections)

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``. Raises OSError if the port is taken (the caller picks another)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, backlog=512)

    async def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop listening and drop every open connection, held ones included."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for connection in list(self._connections):
            connection.abort()
        # abort() reports connection_lost on the next loop turn; wait for all of them.
        async with asyncio.timeout(timeout_s):
            await self.wait_idle()

    async def wait_idle(self) -> None:
        """Return once no client connection is open (held ones included)."""
        await self._idle.wait()

    def state(self) -> ServingState:
        """The serving state now, recomputed only when the store has changed since last asked."""
        self.view()
        return self._state

    def view(self) -> _View:
        """How the region routes now, recomputed only when the store has changed since last asked."""
        version = self._store.resource_version
        if self._view is None or version != self._state_version:
            self._view = _View(self._store, self._topology, self._running)
            self._state, self._ready_app = self._view.status()
            self._state_version = version
        return self._view

    def power_changed(self) -> None:
        """A node's VM stopped or started: how the region serves may have changed without the API
        showing it yet."""
        before = (self._state, self._ready_app)
        self._state_version = ""
        if self._load is not None and self.status() != before:
            self._load.record(self.region)

    def ready_app_pods(self) -> int:
        """The app's Ready pods the ingress sends to now."""
        self.state()
        return self._ready_app

    def status(self) -> tuple[ServingState, int]:
        """The serving state and the app's Ready pods, now."""
        return self.state(), self._ready_app

    def shed(self) -> float:
        """The share of the app's requests shed now for want of capacity (0 without an offered load)."""
        return 0.0 if self._load is None else self._load.region_load(self.region).shed

    def _store_changed(self, change: Change) -> None:
        # The controller's pods and Deployment, policies, and what routes to the app decide how the region
        # serves; the app's pods count through their EndpointSlices.
        if self._load is None or change.resource not in _ROUTING or (
                change.resource in (PODS, DEPLOYMENTS)
                and change.object["metadata"].get("namespace") != self._controller_namespace):
            return
        before = (self._state, self._ready_app)
        if self.status() != before:
            self._load.record(self.region)

    def _opened(self, connection: _Connection) -> None:
        self._connections.add(connection)
        self._idle.clear()

    def _closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if not self._connections:
            self._idle.set()


class _Connection(asyncio.Protocol):
    """One client connection: parses request heads, answers by the serving state, or holds."""

    def __init__(self, ingress: Ingress) -> None:
        self._ingress = ingress
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._skip = 0  # body bytes of the current request still to discard
        self._held = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._ingress._opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._ingress._closed(self)
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._held:
            return  # a black hole: whatever the client sends goes nowhere
        self._buffer += data
        while self._transport is not None and not self._held:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._reply(_response(431, b"request header too large\n", self._ingress.region,
                                          keep_alive=False), keep_alive=False)
                return
            head = bytes(self._buffer[:end])
            del self._buffer[:end + 4]
            self._handle(head)

    def _handle(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reply(_response(400, b"bad request\n", self._ingress.region, keep_alive=False),
                        keep_alive=False)
            return
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._reply(_response(411, b"length required\n", self._ingress.region, keep_alive=False),
                        keep_alive=False)
            return
        try:
            self._skip = int(headers.get("content-length", "0"))
        except ValueError:
            self._skip = -1
        if self._skip < 0:
            self._reply(_response(400, b"bad content-length\n", self._ingress.region, keep_alive=False),
                        keep_alive=False)
            return
        state = self._ingress.state()
        if state == "blackhole":
            self._held = True
            self._buffer.clear()
            return
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        ingress = self._ingress
        view = ingress.view()
        backend = view.table.route(headers.get("host", ""), target.split("?", 1)[0])
        if backend is None:
            response = ingress._responses[404][keep_alive]
        elif view.serving(backend) == 0:
            response = ingress._responses[503][keep_alive]
        elif ingress._load is not None and ingress._random.random() < ingress.shed():
            response = ingress._overloaded[keep_alive]
        else:
            response = ingress._responses[200][keep_alive]
        if method == "HEAD":
            response = response[:response.index(b"\r\n\r\n") + 4]
        self._reply(response, keep_alive=keep_alive)

    def _reply(self, response: bytes, *, keep_alive: bool) -> None:
        assert self._transport is not None
        self._transport.write(response)
        if not keep_alive:
            self._transport.close()
            self._transport = None


def _response(status: int, body: bytes, region: str, *, keep_alive: bool) -> bytes:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required",
               431: "Request Header Fields Too Large", 503: "Service Unavailable"}
    head = (f"HTTP/1.1 {status} {reasons[status]}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Drill-Region: {region}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("latin-1") + body


def _serving_pods(store: Store, workload: Workload, running: NodeRunning | None) -> int:
    """The workload's Deployment's pods that are Ready, on a running VM and reachable from the ingress."""
    deployment = store.find(DEPLOYMENTS, workload.namespace, workload.name)
    if deployment is None:
        return 0
    selector = LabelSelector.from_object(mapping(deployment.get("spec")).get("selector"))
    isolating = [LabelSelector.from_object(mapping(mapping(policy.get("spec")).get("podSelector")))
                 for policy in store.iter(NETWORK_POLICIES, workload.namespace)
                 if _denies_all_ingress(policy)]
    return sum(1 for pod in store.iter(PODS, workload.namespace, labels=selector)
               if is_healthy(pod) and _on_running_vm(pod, running)
               and not any(policy.matches(pod["metadata"].get("labels") or {}) for policy in isolating))


def _serving_endpoints(store: Store, backend: Backend, running: NodeRunning | None) -> int:
    """The backend Service's ready endpoints on a running VM whose pod no deny-all policy isolates; 0 when
    the Service or its port is missing."""
    if not service_port_exists(store, backend):
        return 0
    endpoints = [e for e in ready_endpoints(store, backend.namespace, backend.service)
                 if running is None or running(str(e.get("nodeName") or ""))]
    if not endpoints:
        return 0
    isolating = [LabelSelector.from_object(mapping(mapping(policy.get("spec")).get("podSelector")))
                 for policy in store.iter(NETWORK_POLICIES, backend.namespace) if _denies_all_ingress(policy)]
    if not isolating:
        return len(endpoints)
    count = 0
    for endpoint in endpoints:
        ref = mapping(endpoint.get("targetRef"))
        pod = store.find(PODS, str(ref.get("namespace") or backend.namespace), str(ref.get("name") or ""))
        labels = mapping((pod or {}).get("metadata", {}).get("labels"))
        count += pod is not None and not any(policy.matches(labels) for policy in isolating)
    return count


def _on_running_vm(pod: Obj, running: NodeRunning | None) -> bool:
    return running is None or running(str(mapping(pod.get("spec")).get("nodeName") or ""))


def _denies_all_ingress(policy: Obj) -> bool:
    """A policy that governs ingress (stated, or implied by no policyTypes) and allows none of it."""
    spec = mapping(policy.get("spec"))
    types = spec.get("policyTypes")
    governs_ingress = not isinstance(types, list) or not types or "Ingress" in types
    return governs_ingress and not spec.get("ingress")
