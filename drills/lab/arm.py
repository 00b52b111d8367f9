"""The lab's Azure Resource Manager endpoint: the management REST surface the Azure SDKs call.

One HTTPS server per lab (``https://127.A.B.53:<port>``, the lab's CA), standing in for
``https://management.azure.com``. The parts of the lab that Azure manages (Traffic Manager, Cosmos DB
accounts, the node pools' scale sets) each serve their resources through an :class:`ArmProvider`: a list
of :class:`ArmRoute`, each a method and a resource path pattern such as
``/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Network/trafficmanagerprofiles/{profile}``.

What ARM does and the SDKs rely on, done here once for every provider:

- a bearer token on every request (the lab's; :class:`ArmError` 401 ``AuthenticationFailed`` otherwise);
- paths matched case-insensitively (ARM's resource ids are), captured names kept as sent;
- an ``api-version`` query parameter required, any value accepted (SDK releases send different ones);
- errors as ARM's ``{"error": {"code", "message"}}`` with ``x-ms-request-id``;
- long-running operations (:func:`long_running`): ``202 Accepted`` with an ``Azure-AsyncOperation``
  status URL and the poll interval; the status URL answers ``{"status": "InProgress"}`` until the work
  is done, then ``Succeeded`` or ``Failed`` with its error. The interval is the real-world one
  converted to the lab's time scale, so an SDK poller that follows it (azure-core's does) waits as
  long, in lab time, as it would in Azure. It is sent as ``retry-after-ms``, not ``Retry-After``:
  ARM's ``Retry-After`` is whole seconds, and the generated SDKs parse it as an integer (a lab
  interval such as 0.167 s makes ``begin_power_off`` raise ValueError), while azure-core's poller
  reads ``retry-after-ms`` when ``Retry-After`` is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from drills.lab import resources
from drills.lab.clock import LabClock

_log = logging.getLogger(__name__)

ArmHandler = Callable[[web.Request, Mapping[str, str]], Awaitable[web.StreamResponse]]
"""Handles one request; the mapping holds the names the route's ``{placeholders}`` captured."""

POLL_INTERVAL_S = 10.0
"""Real-world seconds a long-running operation's ``Retry-After`` asks a poller to wait."""

_SHUTDOWN_TIMEOUT_S = 2.0
_OPERATIONS_KEPT = 1000
"""Finished operations remembered for their pollers; older ones are forgotten first."""


class ArmError(Exception):
    """An ARM error reply: HTTP ``status``, ARM's error ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(kind: str, name: str) -> ArmError:
    """ARM's 404 for a resource that does not exist."""
    return ArmError(404, "ResourceNotFound", f"The Resource '{kind}/{name}' was not found.")


def check_subscription(subscription: str) -> None:
    """ARM's 404 ``SubscriptionNotFound`` unless ``subscription`` is the lab's."""
    if subscription.lower() != resources.SUBSCRIPTION:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")


MAX_TAGS = 50
"""Azure's limit of tags on one resource."""
MAX_TAG_VALUE = 256
"""Azure's limit of a tag value's length, in characters (a tag name's is 512)."""


def checked_tags(tags: Any) -> dict[str, str]:
    """A request's ``tags`` as Azure accepts them: an object of at most 50 names (each at most 512
    characters, none with ``<>%&\\?/``) to strings of at most 256 characters; ARM's 400 otherwise."""
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidTagFormat", "tags must be an object of names to strings")
    if len(tags) > MAX_TAGS:
        raise ArmError(400, "InvalidTagCount",
                       f"A resource may have at most {MAX_TAGS} tags, not {len(tags)}.")
    for name, value in tags.items():
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise ArmError(400, "InvalidTagValueLength", f"The value of tag '{name}' must be a string of "
                                                         f"at most {MAX_TAG_VALUE} characters.")
        if not name or len(name) > 512 or any(c in name for c in "<>%&\\?/"):
            raise ArmError(400, "InvalidTagNameCharacters", f"The tag name '{name}' is not allowed.")
    return {str(k): v for k, v in tags.items()}


def group_not_found(group: str) -> ArmError:
    """ARM's 404 for a resource group that does not exist."""
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


@dataclass(frozen=True)
class ArmRoute:
    """One method on one resource path pattern (``{name}`` matches one path segment)."""

    method: str
    pattern: str
    handler: ArmHandler


class ArmProvider(Protocol):
    """A part of the lab that ARM manages: the routes it serves."""

    def routes(self) -> Iterable[ArmRoute]: ...


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON reply with ARM's request id."""
    return web.json_response(body, status=status,
                             headers={"x-ms-request-id": str(uuid.uuid4()), **(headers or {})})


def page(items: Iterable[Any]) -> web.Response:
    """A list reply: ``{"value": [...]}`` in one page (no ``nextLink``)."""
    return json_response({"value": list(items)})


@dataclass
class _Operation:
    id: str
    task: asyncio.Task[None]


class ArmServer:
    """The lab's management endpoint; ``await start(host)``, then ``await close()``."""

    def __init__(self, providers: Iterable[ArmProvider], *, token: str, clock: LabClock,
                 ssl_context: ssl.SSLContext | None) -> None:
        self._expected = f"Bearer {token}".encode()
        self._clock = clock
        self._ssl = ssl_context
        self._routes = [(_compile(r.pattern), r) for p in providers for r in p.routes()]
        self._operations: dict[str, _Operation] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""
        """``https://host:port`` once started."""

    async def start(self, host: str, port: int = 0) -> int:
        """Serve on ``host:port`` (0: a free port); the port. Raises OSError if it cannot bind."""
        app = web.Application(middlewares=[self._guard])
        app[_SERVER] = self
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=self._ssl).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = int(runner.addresses[0][1])
        self.url = f"{'https' if self._ssl else 'http'}://{host}:{bound}"
        return bound

    async def close(self) -> None:
        """Stop serving; cancel operations still running."""
        for operation in self._operations.values():
            operation.task.cancel()
        tasks = [o.task for o in self._operations.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=_SHUTDOWN_TIMEOUT_S)
        self._operations.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def long_running(self, request: web.Request, work: Coroutine[Any, Any, None]) -> web.Response:
        """Start ``work`` and answer ``202 Accepted`` with the operation's status URL (see the module
        docstring). An :class:`ArmError` raised by ``work`` makes the operation ``Failed`` with it."""
        operation_id = str(uuid.uuid4())
        task = asyncio.get_running_loop().create_task(work, name=f"arm operation {operation_id}")
        self._operations[operation_id] = _Operation(operation_id, task)
        while len(self._operations) > _OPERATIONS_KEPT:
            oldest = next(iter(self._operations))
            if not self._operations[oldest].task.done():
                break
            del self._operations[oldest]
        parts = request.path.split("/")
        subscription = parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else "-"
        status_url = (f"{self.url}/subscriptions/{subscription}/providers/Microsoft.Lab/operations/"
                      f"{operation_id}?api-version={request.query.get('api-version', '')}")
        return json_response({}, 202, {"Azure-AsyncOperation": status_url, **self._retry_after()})

    def _retry_after(self) -> dict[str, str]:
        return {"retry-after-ms": str(max(1, round(self._clock.to_real(POLL_INTERVAL_S) * 1000)))}

    async def _operation_status(self, operation_id: str) -> web.Response:
        operation = self._operations.get(operation_id)
        if operation is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
        task = operation.task
        body: dict[str, Any] = {"id": operation_id, "name": operation_id}
        if not task.done():
            return json_response({**body, "status": "InProgress"}, 200, self._retry_after())
        failure = None if task.cancelled() else task.exception()
        if task.cancelled():
            return json_response({**body, "status": "Canceled"})
        if failure is None:
            return json_response({**body, "status": "Succeeded"})
        error = (failure if isinstance(failure, ArmError)
                 else ArmError(500, "InternalServerError", repr(failure)))
        return json_response({**body, "status": "Failed",
                              "error": {"code": error.code, "message": error.message}})

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            supplied = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(supplied, self._expected):
                raise ArmError(401, "AuthenticationFailed",
                               "Authentication failed. The 'Authorization' header is missing or invalid.")
            if "api-version" not in request.query:
                raise ArmError(400, "MissingApiVersionParameter",
                               "The api-version query parameter (?api-version=) is required for all "
                               "requests.")
            return await handler(request)
        except ArmError as exc:
            return json_response({"error": {"code": exc.code, "message": exc.message}}, exc.status)
        except Exception as exc:  # a bug of the lab: the client still gets an ARM error, the log the trace
            _log.exception("%s %s failed", request.method, request.path)
            return json_response({"error": {"code": "InternalServerError", "message": repr(exc)}}, 500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        status = _OPERATION.fullmatch(path)
        if status is not None and request.method == "GET":
            return await self._operation_status(status["id"])
        allowed = False
        for regex, route in self._routes:
            match = regex.fullmatch(path)
            if match is None:
                continue
            if route.method.upper() != request.method:
                allowed = True
                continue
            return await route.handler(request, match.groupdict())
        if allowed:
            raise ArmError(405, "MethodNotAllowed", f"The method {request.method} is not allowed here.")
        raise ArmError(404, "NotFound", f"No resource or operation at {request.path}.")


_SERVER = web.AppKey("arm_server", ArmServer)
"""The server, kept in its aiohttp application for :func:`long_running`."""

_OPERATION = re.compile(r"/subscriptions/[^/]+/providers/microsoft\.lab/operations/(?P<id>[^/]+)",
                        re.IGNORECASE)


def _compile(pattern: str) -> re.Pattern[str]:
    """A route pattern as a case-insensitive regex: literal segments exact, ``{name}`` one segment."""
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts), re.IGNORECASE)


def long_running(request: web.Request, work: Coroutine[Any, Any, None]) -> web.Response:
    """:meth:`ArmServer.long_running` of the server that received ``request`` (for providers, which
    are built before their server)."""
    return request.app[_SERVER].long_running(request, work)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; ARM's 400 ``InvalidRequestContent`` otherwise."""
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    raise ArmError(400, "InvalidRequestContent",
                   "The request content was invalid and could not be deserialized.")
