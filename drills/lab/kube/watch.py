"""Watches over HTTP: a store's changes streamed as the API streams them, one JSON event per line.

A watch from no version (or ``"0"``, or with ``sendInitialEvents``) first sends the current state as
ADDED events; one from an older version resumes from there, or answers a single ERROR event (410 Gone)
when that version has been compacted away. Selectors apply to changes as the API applies them: an
object that starts to match arrives as ADDED, one that stops matching leaves as DELETED. With
``allowWatchBookmarks`` a quiet watch gets BOOKMARK events, and the end of the initial events is marked
by one (``k8s.io/initial-events-end``). Clients asking for Tables (``kubectl get -w``) get a one-row
Table per event. A watch ends at its ``timeoutSeconds``, when the server closes, or when the client leaves.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from drills.lab.kube import tables, wire
from drills.lab.kube.selectors import FieldSelector, LabelSelector
from drills.lab.kube.store import Change, Gone, Obj, Store
from drills.lab.kube.wire import Target

BOOKMARK_INTERVAL_S = 1.0
"""Real seconds between BOOKMARK events on a quiet watch that allows them (the API sends them about
every minute; the lab's time runs faster, and clients resume cheaper from a fresh version)."""

DEFAULT_WATCH_TIMEOUT_S = 1800.0
"""Real seconds a watch without ``timeoutSeconds`` stays open (the API's minimum request timeout)."""


async def serve_watch(request: web.Request, target: Target, *, store: Store, labels: LabelSelector,
                      fields: FieldSelector, closing: asyncio.Event) -> web.StreamResponse:
    """Stream the changes of ``target`` (a collection) that the selectors select, until ``closing`` is set."""
    query, resource = request.query, target.resource
    since = query.get("resourceVersion")
    bookmarks = wire.flag(query.get("allowWatchBookmarks"))
    initial_events = wire.flag(query.get("sendInitialEvents"))
    timeout = float(wire.integer(query.get("timeoutSeconds"), "timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    seed: list[Obj] = []
    try:
        if initial_events or since in (None, "", "0"):
            # No version, or "0": the current state comes first as ADDED events, as the API does.
            seed = store.list(resource, target.namespace, labels=labels, fields=fields)
            watch = store.watch(resource, target.namespace, None)
        else:
            watch = store.watch(resource, target.namespace, since)
    except Gone as exc:
        await response.prepare(request)
        await _send(response, "ERROR", wire.status(exc.code, exc.reason, exc.message))
        await response.write_eof()
        return response

    view = wire.view(request)
    include = request.query.get("includeObject", "Metadata")

    def render(obj: Obj) -> Obj:
        """An event's object: a one-row Table when the client asked for Tables (``kubectl get -w``)."""
        if view is None or view[0] != "Table":
            return wire.as_served(resource, obj)
        return tables.table(resource, [obj], now=store.clock.wall(), include_object=include,
                            resource_version=obj["metadata"]["resourceVersion"], api_version=view[1])

    def bookmark(**annotations: str) -> Obj:
        meta: Obj = {"resourceVersion": store.resource_version}
        if annotations:
            meta["annotations"] = annotations
        return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta}

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    closed = asyncio.ensure_future(closing.wait())
    getter: asyncio.Future[Change] | None = None
    try:
        await response.prepare(request)
        for obj in seed:
            await _send(response, "ADDED", render(obj))
        if initial_events and bookmarks:
            await _send(response, "BOOKMARK", bookmark(**{"k8s.io/initial-events-end": "true"}))
        next_bookmark = loop.time() + BOOKMARK_INTERVAL_S
        while not closed.done() and loop.time() < deadline:
            getter = getter or asyncio.ensure_future(watch.queue.get())
            wait = min(deadline, next_bookmark if bookmarks else deadline) - loop.time()
            done, _ = await asyncio.wait({getter, closed}, timeout=max(wait, 0),
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
        for future in (closed, getter):
            if future is not None:
                future.cancel()
    return response


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


async def _send(response: web.StreamResponse, kind: str, obj: Obj) -> None:
    await response.write(json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n")
