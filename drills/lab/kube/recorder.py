"""Events as Kubernetes components record them: one ``Event`` per occurrence, repeats counted.

Each component (the scheduler, a kubelet, the node controller) writes ``v1`` Events about the objects
it acts on, as client-go's event recorder does: ``involvedObject`` names the object (and, for a
container, ``fieldPath`` ``spec.containers{name}``), ``source`` the component and its host, and
``firstTimestamp``/``lastTimestamp``/``count`` the occurrences. An event equal to one already recorded
(same object, type, reason, message, source) is not written again: the recorded one's ``count`` goes up
and its ``lastTimestamp`` moves, as the recorder's correlator aggregates repeats. Events about nodes
live in namespace ``default``; a kubelet names its node by name in ``involvedObject.uid`` too, the
node controller by its uid (``kubectl describe node`` searches for both). The garbage collector expires
events after the API server's event TTL, which keeps their number bounded. An event about an object in
a namespace being terminated is dropped: the API server refuses new content there.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.store import EVENTS, NAMESPACES, NODES, NotFound, Obj, Store

_REMEMBERED = 4096
"""How many distinct events a recorder remembers for aggregation (client-go's LRU size)."""
_Key = tuple[str, ...]


class EventRecorder:
    """Records the events of one component of one cluster (``host``: a kubelet's node, per event)."""

    def __init__(self, store: Store, *, clock: LabClock, component: str,
                 node_uid_is_name: bool = False) -> None:
        self._store = store
        self._clock = clock
        self._component = component
        self._node_uid_is_name = node_uid_is_name
        self._recorded: OrderedDict[_Key, str] = OrderedDict()
        self._sequence = itertools.count()

    def event(self, obj: Obj, type_: str, reason: str, message: str, *, host: str | None = None,
              field_path: str | None = None) -> None:
        """Record that ``reason`` happened to ``obj`` (``type_``: ``Normal`` or ``Warning``)."""
        involved = _reference(obj, field_path, node_uid_is_name=self._node_uid_is_name)
        namespace = involved.get("namespace") or "default"
        home = self._store.find(NAMESPACES, None, namespace)
        if home is not None and (home.get("status") or {}).get("phase") == "Terminating":
            return  # the API server refuses new content there; the recorder only logs that
        key: _Key = (namespace, involved["kind"], involved["name"], involved["uid"], field_path or "", type_,
                     reason, message, host or "")
        wall = self._clock.wall()
        stamp = rfc3339(wall)
        name = self._recorded.get(key)
        if name is not None:
            self._recorded.move_to_end(key)
            try:
                self._store.mutate(EVENTS, namespace, name, lambda e: e.update(
                    count=int(e.get("count") or 1) + 1, lastTimestamp=stamp))
                return
            except NotFound:
                del self._recorded[key]  # expired: record it anew
        source = {"component": self._component, **({"host": host} if host else {})}
        name = f"{involved['name']}.{int(wall.timestamp() * 1e9) + next(self._sequence):x}"
        self._store.create(EVENTS, {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": source, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self._component, "reportingInstance": host or "",
        })
        self._recorded[key] = name
        if len(self._recorded) > _REMEMBERED:
            self._recorded.popitem(last=False)


def _reference(obj: Obj, field_path: str | None, *, node_uid_is_name: bool) -> Obj:
    meta = obj["metadata"]
    kind = obj.get("kind") or ""
    by_name = node_uid_is_name and kind == NODES.kind
    ref: Obj = {"kind": kind, "apiVersion": obj.get("apiVersion") or "v1", "name": meta["name"],
                "uid": meta["name"] if by_name else meta.get("uid", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if meta.get("resourceVersion") and kind != NODES.kind:
        ref["resourceVersion"] = meta["resourceVersion"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref
