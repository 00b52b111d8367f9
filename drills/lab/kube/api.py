"""One region's Kubernetes API server: the lab's Store over HTTP, for the ``kubernetes`` client and kubectl.

Served by aiohttp over HTTPS (or plain HTTP when given no TLS context: kubectl needs TLS, since it sends
a kubeconfig's token only over TLS), with a bearer token required on every path. What is served:

- discovery (``/version``, ``/api``, ``/apis``, resource lists: :mod:`drills.lab.kube.discovery`);
- every resource of :data:`~drills.lab.kube.store.RESOURCES`: list (label and field selectors;
  ``limit``/``continue`` accepted, everything comes in one page), watch (:mod:`drills.lab.kube.watch`),
  get, create, replace (PUT, ``resourceVersion`` conflicts answer 409), patch (JSON, merge and strategic
  merge: :mod:`drills.lab.kube.patch`) and delete, with the ``status``, ``scale`` and ``eviction``
  subresources (:mod:`drills.lab.kube.objects`);
- Tables for ``kubectl get`` (:mod:`drills.lab.kube.tables`); JSON wherever protobuf is asked for
  (:mod:`drills.lab.kube.wire`);
- ``GET /lab/v1/trafficmanager``, the lab's Traffic Manager monitor settings and each endpoint's next
  probe deadline (:data:`MonitorSchedule`), so that a drill can place a fault at a phase of the probe
  cycle.

Every failure answers a ``Status`` object, a bug of the lab included (500, logged with its trace).
Requests run on the store's event loop and never wait between reading and writing an object, so every
write is atomic.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from drills.lab.kube import discovery, wire
from drills.lab.kube.objects import Objects
from drills.lab.kube.store import ApiError, NotFound, Store
from drills.lab.kube.wire import MethodNotAllowed

_log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
"""Real seconds :meth:`ApiServer.close` waits for requests in flight; watches end at once."""


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
                           ssl_context: ssl.SSLContext | None = None) -> ApiServer:
    """Serve ``store`` on ``host:port`` (0 picks a free port) to clients bearing ``token``.

    ``monitor`` serves the lab's Traffic Manager schedule (without it that path answers 404). The
    nodes' VMs are powered off and on through the lab's ARM endpoint (:mod:`drills.lab.scalesets`).

    With ``ssl_context`` it serves HTTPS: kubectl (client-go) sends credentials only over TLS.

    Raises :class:`OSError` when the address cannot be bound.
    """
    api = _Api(store, token=token, monitor=monitor)
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

    def __init__(self, store: Store, *, token: str, monitor: MonitorSchedule | None) -> None:
        self.closing = asyncio.Event()
        self.address = ""
        self._expected = f"Bearer {token}".encode()
        self._monitor = monitor
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
        router.add_route("*", "/api/{version}/{tail:.+}", self._resource)
        router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)
        router.add_get("/lab/v1/trafficmanager", self._traffic_manager)

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, self._expected):
            return wire.json_response(wire.status(401, "Unauthorized", "Unauthorized"), 401)
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

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        match = request.match_info
        target = wire.parse_target(match.get("group", ""), match["version"], match["tail"])
        try:
            return await self._objects.handle(request, target)
        except ApiError as exc:
            return wire.error(exc, target.details() if target.name and exc.code in (404, 409) else None)
