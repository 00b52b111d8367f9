"""The watch cache behind the replicas probe: one deployment, its pods and the nodes, kept current.

Polling the API every period would cost a list per sample and still miss a dip between two polls.
Instead a :class:`DeploymentWatch` keeps three watches on the region's API server (the deployment, for
its desired count and pod selector; its pods; the nodes, for the zone of each), each a
``kubernetes.watch.Watch().stream`` in a thread of its own (through :mod:`drills.watchstream`, so
that a stopped watch's thread ends within a bounded time, also on a server that sends nothing),
feeding the event loop thread-safely. A
sample then reads the current state at once. Lists go through the region's rate-limited client; a
watch that expires (410 Gone) lists again; one that breaks is re-established with a back-off, and
samples say they are blind (``blind``: why, :data:`probes.base.BLIND`; no counts) until it is.

A pod counts as ready when its ``Ready`` condition is true and it is not being deleted (what a
ReplicaSet counts). Its zone is its node's ``topology.kubernetes.io/zone`` label.

Because the watches see every change, each sample also carries the lowest counts since the previous
sample (``low``, ``low_by_zone``), so that a dip shorter than the period is still seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes.client.rest import ApiException

from drills import watchstream
from drills.targets import Kube
from probes.base import BLIND, JSONValue

T = TypeVar("T")

ZONE_LABEL = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
UNKNOWN_ZONE = "unknown"
"""The zone of a pod whose node is not (yet) known or has no zone label."""

WATCH_TIMEOUT_S = 50
"""Real seconds the API server keeps one watch open (``timeoutSeconds``); the probe then resumes from
the last resource version, which also proves the connection is alive."""
REQUEST_TIMEOUT_S = (5.0, 60.0)
"""Connect and read timeouts of a list or read in real seconds (a watch's are
:mod:`drills.watchstream`'s)."""
_RESTOP_S = 0.05
"""Real seconds between two stops while waiting for the watch threads to end."""
BACKOFF_S = (0.2, 5.0)
"""First and longest real wait before re-establishing a broken watch."""

_PODS, _NODES, _DEPLOYMENT = "pods", "nodes", "deployment"
_Obj = dict[str, Any]
"""A Kubernetes object as JSON: the watch's own representation, read for a few fields only."""


class DeploymentWatch:
    """The ready pods of one deployment per zone, kept current by watches (see the module docstring).

    Nothing runs until :meth:`start`; :meth:`aclose` stops the watches and returns once their threads
    have ended.
    """

    def __init__(self, kube: Kube, label: str, *, namespace: str, deployment: str) -> None:
        """Watch ``namespace/deployment`` through ``kube``; ``label`` prefixes the names of the tasks and
        threads (``"replicas <probe name>"``)."""
        self.namespace = namespace
        self.deployment = deployment
        self._kube = kube
        self._label = label
        self._state = _State()
        self._task: asyncio.Task[None] | None = None
        self._streams = watchstream.WatchStreams(kube)
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def start(self) -> None:
        """Start the watches in the background, once (on the running loop); not after :meth:`aclose`."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"{self._label}: watches")

    def take(self) -> dict[str, JSONValue]:
        """A sample's values: the counts now and their lows since the previous take (blind, with the
        reason in ``error``, while a watch is down); never raises."""
        return self._state.take()

    async def aclose(self) -> None:
        """Stop the watches; return once their threads have ended (within
        :data:`~drills.watchstream.STOP_BOUND_S`)."""
        self._closed = True
        self._streams.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        threads = list(self._threads)
        if threads:
            await asyncio.to_thread(_join, threads, watchstream.STOP_BOUND_S, again=self._streams.stop)
        self._streams.close()

    async def _run(self) -> None:
        deployment = await self._sync_deployment()
        selector = pod_selector(deployment)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keep(_DEPLOYMENT, self._kube.apps.list_namespaced_deployment,
                                         self.namespace,
                                         field_selector=f"metadata.name={self.deployment}"),
                              name=f"{self._label}: deployment watch")
            group.create_task(self._keep(_PODS, self._kube.core.list_namespaced_pod, self.namespace,
                                         label_selector=selector),
                              name=f"{self._label}: pod watch")
            group.create_task(self._keep(_NODES, self._kube.core.list_node),
                              name=f"{self._label}: node watch")

    async def _sync_deployment(self) -> _Obj:
        # The pod selector comes from the deployment: retried until the API answers, with the same
        # back-off as the watches, and samples blind meanwhile.
        delay = BACKOFF_S[0]
        while True:
            try:
                found = await self._kube.call(_read_json, self._kube.apps.read_namespaced_deployment,
                                              self.deployment, self.namespace)
                return found
            except Exception as exc:  # whatever the client or the API does wrong: blind, and retry
                self._state.blind(_DEPLOYMENT, f"cannot read deployment {self.namespace}/"
                                               f"{self.deployment}: {_reason(exc)}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def _keep(self, kind: str, list_fn: Callable[..., Any], *args: Any, **selectors: str) -> None:
        """List, then watch from the list's version; list again on 410; back off on failures."""
        delay = BACKOFF_S[0]
        while not self._closed:
            try:
                listed = await self._kube.call(_read_json, list_fn, *args, **selectors)
                self._state.replace(kind, listed.get("items") or [])
                version = (listed.get("metadata") or {}).get("resourceVersion")
                delay = BACKOFF_S[0]
                while not self._closed:
                    version = await _in_thread(self._stream, kind, list_fn, version, args, selectors,
                                               name=f"{self._label}: {kind} watch", threads=self._threads)
            except ApiException as exc:
                if exc.status == 410:
                    continue  # the version expired: list again at once
                self._state.blind(kind, f"{kind} watch: {_reason(exc)}")
            except Exception as exc:  # as above: a watch must outlive any failure of one connection
                self._state.blind(kind, f"{kind} watch: {_reason(exc)}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    def _stream(self, kind: str, list_fn: Callable[..., Any], version: str | None, args: tuple[Any, ...],
                selectors: Mapping[str, str]) -> str | None:
        """In a watch thread: stream events to the loop until the server ends the watch (or it idles, or
        is stopped); return the last resource version seen (raises ApiException 410 when it expired)."""
        for event in self._streams.events(list_fn, *args, resource_version=version,
                                          timeout_seconds=WATCH_TIMEOUT_S, **selectors):
            kind_of_change, obj = event.get("type"), event.get("raw_object")
            if kind_of_change in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                self._state.post(kind, kind_of_change, obj)
            version = watchstream.version_of(event, version)
        return version


def pod_selector(deployment: Mapping[str, Any]) -> str:
    """A deployment's ``spec.selector`` (the object as JSON) as a label selector string."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class _State:
    """What the watches have seen, owned by the event loop; the watch threads post to it."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[str | None, bool]] = {}
        """Pod name -> (node name, counts as ready)."""
        self.zones: dict[str, str] = {}
        """Node name -> zone."""
        self.desired: int | None = None
        self.listed: set[str] = set()
        self.broken: dict[str, str] = {}
        self.low: int | None = None
        self.low_by_zone: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def post(self, kind: str, change: str, obj: _Obj) -> None:
        """From a watch thread: apply one event on the loop."""
        assert self._loop is not None, "a watch runs only after the state was first replaced on the loop"
        with contextlib.suppress(RuntimeError):  # the loop closed while the watch stopped: nobody to tell
            self._loop.call_soon_threadsafe(self._apply, kind, change, obj)

    def replace(self, kind: str, items: list[_Obj]) -> None:
        """A fresh list of ``kind``: it replaces everything known of it."""
        self._loop = asyncio.get_running_loop()
        if kind == _PODS:
            self.pods.clear()
        elif kind == _NODES:
            self.zones.clear()
        else:
            self.desired = None
        for item in items:
            self._set(kind, "ADDED", item)
        self.listed.add(kind)
        self.broken.pop(kind, None)
        self._track()

    def blind(self, kind: str, why: str) -> None:
        """A watch broke: samples are blind until it is re-established, and lows start afresh then."""
        self.broken[kind] = why
        self.listed.discard(kind)
        self.low, self.low_by_zone = None, {}

    def take(self) -> dict[str, JSONValue]:
        """A sample: the counts now and the lows since the previous one (which restart from now)."""
        if self.broken or len(self.listed) < 3:
            return _blind_values("; ".join(self.broken.values()) or "the watches are starting")
        if self.desired is None:
            return _blind_values("the deployment does not exist")
        ready, by_zone = self._counts()
        values: dict[str, JSONValue] = {
            "ready": ready, "desired": self.desired, "by_zone": dict(by_zone),
            "low": min(ready, self.low if self.low is not None else ready),
            "low_by_zone": {z: min(c, self.low_by_zone.get(z, c)) for z, c in by_zone.items()},
            "error": None}
        self.low, self.low_by_zone = ready, dict(by_zone)
        return values

    def _apply(self, kind: str, change: str, obj: _Obj) -> None:
        self._set(kind, change, obj)
        self._track()

    def _set(self, kind: str, change: str, obj: _Obj) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if kind == _DEPLOYMENT:
            self.desired = None if change == "DELETED" else int((obj.get("spec") or {}).get("replicas", 1))
        elif kind == _PODS:
            if change == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = ((obj.get("spec") or {}).get("nodeName"), _is_ready(obj))
        elif change == "DELETED":
            self.zones.pop(name, None)
        else:
            labels = meta.get("labels") or {}
            self.zones[name] = labels.get(ZONE_LABEL) or labels.get(LEGACY_ZONE_LABEL) or UNKNOWN_ZONE

    def _counts(self) -> tuple[int, dict[str, int]]:
        by_zone = dict.fromkeys(sorted(set(self.zones.values())), 0)
        for node, ready in self.pods.values():
            if ready:
                zone = self.zones.get(node or "", UNKNOWN_ZONE)
                by_zone[zone] = by_zone.get(zone, 0) + 1
        return sum(by_zone.values()), by_zone

    def _track(self) -> None:
        # Lows since the last sample, updated at every change so that a dip between samples shows.
        if len(self.listed) < 3:
            return
        ready, by_zone = self._counts()
        self.low = ready if self.low is None else min(self.low, ready)
        for zone, count in by_zone.items():
            self.low_by_zone[zone] = min(count, self.low_by_zone.get(zone, count))


def _blind_values(why: str) -> dict[str, JSONValue]:
    return {"ready": None, "desired": None, "by_zone": {}, "low": None, "low_by_zone": {}, "error": why,
            BLIND: why}


def _is_ready(pod: _Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _read_json(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> _Obj:
    """In a worker thread: one API call, its body parsed as JSON (raw, not the client's models)."""
    response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
    data: _Obj = json.loads(response.data)
    return data


async def _in_thread(fn: Callable[..., T], *args: Any, name: str, threads: set[threading.Thread]) -> T:
    """Run a long blocking call in a daemon thread of its own (a watch must not hold a worker of a
    shared pool, and must not keep the interpreter from exiting), kept in ``threads`` while it runs."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # delivered to the awaiting coroutine, which decides
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        finally:
            threads.discard(thread)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody awaits this any more
            loop.call_soon_threadsafe(settle, *outcome)

    thread = threading.Thread(target=run, name=name, daemon=True)
    threads.add(thread)
    thread.start()
    return await done


def _join(threads: list[threading.Thread], timeout: float, *, again: Callable[[], None]) -> None:
    """Wait for ``threads`` to end, ``timeout`` seconds at most in all, calling ``again`` every
    :data:`_RESTOP_S`: a watch whose response began after the first stop is unblocked by the next."""
    deadline = time.monotonic() + timeout
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        for thread in threads:
            thread.join(min(_RESTOP_S, max(0.0, deadline - time.monotonic())))
        again()



def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
