"""What the Kubernetes faults share: calling the API, acting on many objects, parameters, selectors.

Internal to :mod:`drills.faults`. Every call goes through :func:`call`, which applies the
client-side rate limit (:meth:`drills.targets.Kube.call`) and translates the client's errors into
:class:`~drills.errors.FaultError` at this boundary, marked transient when a retry may help (429,
409, 5xx, a connection that failed). :func:`each` acts on many objects at once with a bound, so
that cordoning a 40-node zone takes seconds rather than minutes, while never queueing thousands of
requests in front of the limiter. :class:`PodsGone` learns by watch when pods are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

import urllib3
from kubernetes.client import ApiException, V1LabelSelector, V1LabelSelectorRequirement, V1Node, V1PodList
from pydantic import AfterValidator, BaseModel, ConfigDict

from drills.errors import DrillError, FaultError
from drills.targets import Kube, Targets
from drills.watchstream import STOP_BOUND_S, WatchStreams, version_of

T = TypeVar("T")
R = TypeVar("R")

CONCURRENCY = 16
"""Objects acted on at once: the limiter's in-flight cap, so that no request waits on our side twice."""

REQUEST_TIMEOUT_S = (5.0, 30.0)
"""Connect and read timeouts of one request, in real seconds: a hung API server fails the call."""

WATCH_WINDOW_S = 60
"""How long one watch request lasts on the server. The client's own reconnect loop would bypass
our rate limit, so each window ends the call and the next one goes through the limiter."""

ZONE_LABEL = "topology.kubernetes.io/zone"
MANAGED_BY = {"app.kubernetes.io/managed-by": "drill"}
"""The label on every object drill creates, so that a person can find (and delete) them."""
RUN_LABEL = "drill.dev/run"
"""The label naming the run that created an object (and the annotation on objects a run changed):
the run's mark (:mod:`drills.marks`), so that ``drill recover --env`` finds it with no journal."""



def region(targets: Targets, cluster: str) -> Kube:
    """The API of region ``cluster``, or a FaultError naming the regions the environment has."""
    if cluster not in targets.env.regions:
        known = ", ".join(targets.env.regions)
        raise FaultError(f"the environment has no region {cluster!r} (it has {known})")
    return targets.kube(cluster)


async def call(kube: Kube, fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    """One API call within the rate limit, its errors as FaultError.

    ``what`` says what the call does ("cordon node us/node-1"), for the error message. Cancelled,
    it returns only once the request is done (bounded by its timeout).
    """
    request = asyncio.ensure_future(kube.call(fn, *args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs))
    try:
        return await asyncio.shield(request)
    except asyncio.CancelledError:
        # Cancelling cannot stop the worker thread the request runs in: let it land first, so that
        # the undo sent next (an abort's rollback) is not overtaken by the change it undoes.
        await asyncio.gather(request, return_exceptions=True)
        raise
    except ApiException as exc:
        raise api_error(exc, what) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise FaultError(f"{what}: cannot reach the API server: {exc}", transient=True) from exc


async def call_unless_gone(kube: Kube, fn: Callable[..., T], *args: Any, what: str,
                           **kwargs: Any) -> T | None:
    """Like :func:`call`, but ``None`` when the object is gone (404): what an idempotent undo wants."""
    try:
        return await call(kube, fn, *args, what=what, **kwargs)
    except FaultError as exc:
        if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404:
            return None
        raise


def api_error(exc: ApiException, what: str) -> FaultError:
    """A client error as a FaultError: the API's own message, and whether a retry may help."""
    status = exc.status or 0
    transient = status in (0, 409, 429) or status >= 500
    return FaultError(f"{what}: {status} {status_message(exc)}", transient=transient)


def status_message(exc: ApiException) -> str:
    """The ``message`` of the Status object the API answered with, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "error")


async def each(items: Iterable[T], action: Callable[[T], Awaitable[R]], *,
               limit: int = CONCURRENCY) -> list[R]:
    """Run ``action`` on every item, at most ``limit`` at once, and wait for all of them.

    Every item is tried even when some fail, so that an undo restores all it can; then one
    FaultError names every failure (transient only if all of them were). An error that is not a
    :class:`DrillError` is a bug and is raised as is.
    """
    slots = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with slots:
            return await action(item)

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, DrillError):
            raise error
    if len(errors) == 1:
        raise errors[0]
    if errors:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise FaultError(f"{len(errors)} of {len(results)} failed: {shown}{more}",
                         transient=all(isinstance(e, FaultError) and e.transient for e in errors))
    return [r for r in results if not isinstance(r, BaseException)]


async def zone_nodes(kube: Kube, cluster: str, zone: str) -> list[V1Node]:
    """The nodes of ``zone``; a FaultError naming the zones that exist if it has none (a likely typo)."""
    found = await call(kube, kube.core.list_node, label_selector=f"{ZONE_LABEL}={zone}",
                       what=f"list the nodes of zone {zone} in {cluster}")
    if found.items:
        return sorted(found.items, key=lambda n: n.metadata.name)
    every = await call(kube, kube.core.list_node, what=f"list the nodes in {cluster}")
    zones = sorted({(n.metadata.labels or {}).get(ZONE_LABEL) for n in every.items} - {None})
    raise FaultError(f"no node of {cluster} is in zone {zone!r} "
                     f"(zones: {', '.join(zones) or 'none labelled'})")


def check_node_limit(targets: Targets, cluster: str, names: list[str]) -> None:
    """A FaultError if a fault would touch more nodes than the environment's ``limits.maxNodes``."""
    limit = targets.env.limits.max_nodes
    if len(names) > limit:
        raise FaultError(f"{cluster}: the fault would touch {len(names)} nodes, more than the environment's "
                         f"limit of {limit} (limits.maxNodes)")


def object_name(region_name: str, kind: str, namespace: str, name: str) -> str:
    """How an undo record names an object: ``region/kind/namespace/name`` (namespace empty if none)."""
    return f"{region_name}/{kind}/{namespace}/{name}"


class PodsGone:
    """Which pods of one node are gone, learnt from a watch that starts where the pod list ended.

    The client's watch blocks, so it runs in a worker thread and hands each event to the loop. A
    pod is gone when it is DELETED, or when a pod of the same name and another uid appears (a
    StatefulSet's replacement). If the watch expires (410) or its connection drops, the pods are
    listed again and the watch resumes from that list. Leaving the block ends the watch within
    :data:`~drills.watchstream.STOP_BOUND_S` (:mod:`drills.watchstream`).
    """

    def __init__(self, kube: Kube, cluster: str, node: str, listed: V1PodList) -> None:
        self._kube = kube
        self._cluster = cluster
        self._node = node
        self._version: str | None = listed.metadata.resource_version
        self._uids = {(p.metadata.namespace, p.metadata.name): p.metadata.uid for p in listed.items}
        self._gone: set[str] = set()
        self._waiters: dict[str, asyncio.Event] = {}
        self._failure: FaultError | None = None
        self._streams = WatchStreams(kube)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    async def __aenter__(self) -> PodsGone:
        self._task = asyncio.create_task(self._run(), name=f"watch pods on {self._cluster}/{self._node}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        self._streams.stop()
        if self._task is not None:
            # The stop shuts the watch's socket, at once or (a response not yet begun) within the
            # bound; stopped again meanwhile, for a response that began after the first stop.
            deadline = self._loop.time() + STOP_BOUND_S
            while not self._task.done() and self._loop.time() < deadline:
                await asyncio.wait({self._task}, timeout=0.05)
                self._streams.stop()
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._streams.close()

    async def wait(self, uid: str) -> None:
        """Return once the pod with ``uid`` is gone."""
        event = self._waiters.setdefault(uid, asyncio.Event())
        if uid in self._gone:
            event.set()
        await event.wait()
        if self._failure is not None and uid not in self._gone:
            raise self._failure

    def _feed(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        uid = meta.get("uid", "")
        if kind == "DELETED":
            self._mark(uid)
        elif kind in ("ADDED", "MODIFIED"):
            known = self._uids.get(key)
            if known is not None and known != uid:
                self._mark(known)
            self._uids[key] = uid

    def _mark(self, uid: str) -> None:
        self._gone.add(uid)
        if uid in self._waiters:
            self._waiters[uid].set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._kube.call(self._stream, self._version)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                if self._stopping:
                    return
                if isinstance(exc, ApiException) and exc.status != 410:
                    self._fail(api_error(exc, f"watch pods on node {self._cluster}/{self._node}"))
                    return
                try:
                    await self._relist()
                except FaultError as failure:
                    self._fail(failure)
                    return

    def _stream(self, version: str | None) -> None:
        """The blocking watch, in a worker thread: every event goes to the loop. It ends when the
        server ends it, when it idles (then it resumes from the version seen) or when stopped."""
        for event in self._streams.events(self._kube.core.list_pod_for_all_namespaces,
                                          field_selector=f"spec.nodeName={self._node}",
                                          resource_version=version, timeout_seconds=WATCH_WINDOW_S):
            if self._stopping:
                return
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                with contextlib.suppress(RuntimeError):  # the loop closed under a lingering thread
                    self._loop.call_soon_threadsafe(self._feed, event["type"], event["raw_object"])
            self._version = version_of(event, self._version)

    async def _relist(self) -> None:
        listed = await call(self._kube, self._kube.core.list_pod_for_all_namespaces,
                            field_selector=f"spec.nodeName={self._node}",
                            what=f"list the pods on node {self._cluster}/{self._node}")
        present = {pod.metadata.uid for pod in listed.items}
        for uid in list(self._uids.values()) + list(self._waiters):
            if uid not in present:
                self._mark(uid)
        for pod in listed.items:
            self._feed("MODIFIED", {"metadata": {"namespace": pod.metadata.namespace,
                                                 "name": pod.metadata.name, "uid": pod.metadata.uid}})
        self._version = listed.metadata.resource_version

    def _fail(self, failure: FaultError) -> None:
        self._failure = failure
        for event in self._waiters.values():
            event.set()


_REQUIREMENT = re.compile(
    r"""^\s*(?:
        (?P<not>!)\s*(?P<absent>[\w./-]+)
      | (?P<setkey>[\w./-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<key>[\w./-]+)\s*(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)
      | (?P<exists>[\w./-]+)
    )\s*$""", re.VERBOSE)


def parse_selector(text: str) -> V1LabelSelector:
    """A label selector string (``app=web,tier in (a,b),!canary``) as the object a policy carries.

    Raises ValueError naming the part that is not a requirement.
    """
    match_labels: dict[str, str] = {}
    expressions: list[V1LabelSelectorRequirement] = []
    for part in _split_requirements(text):
        m = _REQUIREMENT.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not a label requirement "
                             "(e.g. app=web, tier in (a,b), !canary)")
        if m["absent"]:
            expressions.append(V1LabelSelectorRequirement(key=m["absent"], operator="DoesNotExist"))
        elif m["setkey"]:
            values = [v.strip() for v in m["values"].split(",") if v.strip()]
            if not values:
                raise ValueError(f"{part.strip()!r}: a set needs at least one value")
            expressions.append(V1LabelSelectorRequirement(
                key=m["setkey"], operator="In" if m["setop"] == "in" else "NotIn", values=values))
        elif m["key"]:
            if m["op"] == "!=":
                expressions.append(V1LabelSelectorRequirement(key=m["key"], operator="NotIn",
                                                              values=[m["value"]]))
            else:
                match_labels[m["key"]] = m["value"]
        else:
            expressions.append(V1LabelSelectorRequirement(key=m["exists"], operator="Exists"))
    if not match_labels and not expressions:
        raise ValueError("an empty selector would pick every pod; name at least one label")
    return V1LabelSelector(match_labels=match_labels or None, match_expressions=expressions or None)


def selector_matches(selector: V1LabelSelector | None, labels: dict[str, str] | None) -> bool:
    """Whether an object's ``labels`` satisfy a label selector object (None selects nothing)."""
    if selector is None:
        return False
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        value = labels.get(req.key)
        ok = {"In": present and value in (req.values or []),
              "NotIn": not present or value not in (req.values or []),
              "Exists": present,
              "DoesNotExist": not present}.get(req.operator, False)
        if not ok:
            return False
    return True


def _split_requirements(text: str) -> list[str]:
    """Split at the commas that separate requirements, not those inside ``in (a,b)``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


class FaultParams(BaseModel):
    """The base of every fault's ``Params``: unknown keys are errors, and each field's docstring
    documents it in the scenario schema."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _checked_selector(text: str) -> str:
    parse_selector(text)
    return text


Selector = Annotated[str, AfterValidator(_checked_selector)]
"""A label selector as kubectl takes it (``app=web``, ``tier in (a,b)``), checked when the scenario loads."""
