"""The Endpoints and EndpointSlice controllers: which pods stand behind each Service, now.

For every Service with a selector (not an ``ExternalName``), the pods of its namespace that the
selector matches, that have an IP and have not finished (``Succeeded``/``Failed``), are its endpoints;
each Service port's ``targetPort`` is resolved per pod (a number, or a container port's name; a pod
without that named port is left out of that port). As Kubernetes' controllers write them:

- ``Endpoints`` (core v1, named as the Service, with its labels): Ready pods under ``addresses``, the
  others under ``notReadyAddresses``; terminating pods are left out (unless
  ``publishNotReadyAddresses``), subsets grouped by their ports;
- ``EndpointSlices`` (``discovery.k8s.io/v1``, ``<service>-<suffix>``, labelled
  ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by:
  endpointslice-controller.k8s.io``, owned by the Service): every such pod, terminating ones included,
  with ``conditions`` ``serving`` (the pod is Ready), ``terminating`` (it has a deletion timestamp) and
  ``ready`` (serving and not terminating), ``nodeName``, ``zone`` (its node's
  ``topology.kubernetes.io/zone``) and a ``targetRef`` to the pod; one slice per set of ports. A
  Service with no endpoint keeps one empty slice.

Services without a selector (``kubernetes``, or one whose Endpoints a user writes) are left alone.
When a Service goes, its Endpoints and slices go with it. This is what the lab's ingress routes by
(:mod:`drills.lab.ingress`), so a Service whose selector matches no pod leaves it nothing to send to.
A Service whose sync fails (a shape the API would refuse) waits and is retried alone
(:mod:`drills.lab.kube.workqueue`).
"""

from __future__ import annotations

import copy
from typing import Any

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.shapes import entries, mapping
from drills.lab.kube.store import ENDPOINT_SLICES, ENDPOINTS, NODES, PODS, SERVICES, Obj, Store
from drills.lab.kube.workqueue import Retries
from drills.lab.topology import ZONE_LABEL

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"

_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
_Port = tuple[str, int, str]
"""A resolved port: (name, number, protocol)."""


def is_ready_pod(pod: Obj) -> bool:
    """The pod's Ready condition is True (whether or not it is terminating)."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in entries(mapping(pod.get("status")).get("conditions")))


def selects(service: Obj) -> bool:
    """Whether the controllers manage the Service's endpoints (it has a selector and is no ExternalName)."""
    spec = mapping(service.get("spec"))
    return bool(mapping(spec.get("selector"))) and spec.get("type") != "ExternalName"


def ready_endpoints(store: Store, namespace: str, service: str) -> list[Obj]:
    """The endpoints of the Service's slices whose ``ready`` condition is true, read-only."""
    return [endpoint for piece in store.iter(ENDPOINT_SLICES, namespace)
            if mapping(piece["metadata"].get("labels")).get(SERVICE_NAME_LABEL) == service
            for endpoint in entries(piece.get("endpoints"))
            if mapping(endpoint.get("conditions")).get("ready") is True]


class EndpointsController:
    """Keeps every selecting Service's Endpoints and EndpointSlices in step with its pods."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component="endpointslice-controller")

    def reconcile(self, now: float) -> float | None:
        """Rewrite what changed of each Service's Endpoints and slices; drop those of Services gone."""
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self._store.iter(SERVICES)}
        zones = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE_LABEL)
                 for n in self._store.iter(NODES)}
        for service in list(services.values()):
            if selects(service):
                self._retries.sync(service, lambda s=service: self._sync(s, zones))
        for endpoints in list(self._store.iter(ENDPOINTS)):
            key = (endpoints["metadata"]["namespace"], endpoints["metadata"]["name"])
            if key not in services and _controlled(endpoints):
                self._store.delete(ENDPOINTS, *key)
        for piece in list(self._store.iter(ENDPOINT_SLICES)):
            labels = mapping(piece["metadata"].get("labels"))
            owner = services.get((piece["metadata"]["namespace"], labels.get(SERVICE_NAME_LABEL, "")))
            if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and (owner is None or not selects(owner)):
                self._store.delete(ENDPOINT_SLICES, piece["metadata"]["namespace"], piece["metadata"]["name"])
        return self._retries.due()

    def _sync(self, service: Obj, zones: dict[str, Any]) -> None:
        pods = self._pods(service)
        self._endpoints(service, pods)
        self._slices(service, pods, zones)

    def _pods(self, service: Obj) -> list[tuple[Obj, list[_Port]]]:
        spec = mapping(service.get("spec"))
        selector = LabelSelector.from_object({"matchLabels": spec.get("selector") or {}})
        found = []
        for pod in self._store.iter(PODS, service["metadata"]["namespace"], labels=selector):
            status = pod.get("status") or {}
            if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
                continue
            found.append((pod, _resolve_ports(entries(spec.get("ports")), pod)))
        return found

    def _endpoints(self, service: Obj, pods: list[tuple[Obj, list[_Port]]]) -> None:
        publish = bool(mapping(service.get("spec")).get("publishNotReadyAddresses"))
        subsets: dict[tuple[_Port, ...], Obj] = {}
        for pod, ports in pods:
            if pod["metadata"].get("deletionTimestamp") and not publish:
                continue
            subset = subsets.setdefault(tuple(ports), {"ports": [_port(p) for p in ports]} if ports else {})
            where = "addresses" if publish or is_ready_pod(pod) else "notReadyAddresses"
            address: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                address["nodeName"] = node
            subset.setdefault(where, []).append(address)
        meta = service["metadata"]
        wanted: Obj = {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                    "labels": dict(meta.get("labels") or {})}}
        if subsets:
            wanted["subsets"] = list(subsets.values())
        current = self._store.find(ENDPOINTS, meta["namespace"], meta["name"])
        if current is None:
            wanted["metadata"]["annotations"] = {
                _TRIGGER_TIME: rfc3339(self._clock.wall())}
            self._store.create(ENDPOINTS, wanted)
            return
        if current.get("subsets") == wanted.get("subsets") and \
                current["metadata"].get("labels") == wanted["metadata"]["labels"]:
            return

        def change(obj: Obj) -> None:
            obj["metadata"]["labels"] = wanted["metadata"]["labels"]
            obj["metadata"].setdefault("annotations", {})[
                _TRIGGER_TIME] = rfc3339(self._clock.wall())
            obj.pop("subsets", None)
            if "subsets" in wanted:
                obj["subsets"] = wanted["subsets"]

        self._store.mutate(ENDPOINTS, meta["namespace"], meta["name"], change)

    def _slices(self, service: Obj, pods: list[tuple[Obj, list[_Port]]], zones: dict[str, Any]) -> None:
        meta = service["metadata"]
        by_ports: dict[tuple[_Port, ...], list[Obj]] = {}
        for pod, ports in pods:
            by_ports.setdefault(tuple(ports), []).append(_slice_endpoint(pod, zones))
        if not by_ports:
            by_ports[()] = []
        existing = {_ports_of(s): s for s in self._store.iter(ENDPOINT_SLICES, meta["namespace"])
                    if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == meta["name"]
                    and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY}
        labels = {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"],
                  MANAGED_BY_LABEL: MANAGED_BY}
        for ports, endpoints in by_ports.items():
            body: Obj = {"addressType": "IPv4", "endpoints": endpoints or None,
                         "ports": [_port(p) for p in ports] or None}
            piece = existing.pop(ports, None)
            if piece is None:
                self._store.create(ENDPOINT_SLICES, {
                    "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                                 "labels": labels, "ownerReferences": [_owner(service)]}, **body})
            elif any(piece.get(k) != v for k, v in body.items()) or piece["metadata"].get("labels") != labels:
                def change(obj: Obj, body: Obj = body) -> None:
                    obj.update(copy.deepcopy(body))
                    obj["metadata"]["labels"] = dict(labels)

                self._store.mutate(ENDPOINT_SLICES, meta["namespace"], piece["metadata"]["name"], change)
        for piece in existing.values():
            self._store.delete(ENDPOINT_SLICES, meta["namespace"], piece["metadata"]["name"])


def _controlled(endpoints: Obj) -> bool:
    """Endpoints the controller wrote (it stamps the trigger time); a user's own are left alone."""
    return _TRIGGER_TIME in (endpoints["metadata"].get("annotations") or {})


def _ports_of(piece: Obj) -> tuple[_Port, ...]:
    return tuple((p.get("name", ""), p.get("port"), p.get("protocol")) for p in entries(piece.get("ports")))


def _resolve_ports(ports: list[Obj], pod: Obj) -> list[_Port]:
    named = {p.get("name"): p.get("containerPort")
             for c in entries(mapping(pod.get("spec")).get("containers"))
             for p in entries(c.get("ports")) if isinstance(p.get("name"), str)}
    resolved = []
    for port in ports:
        target = port.get("targetPort", port.get("port"))
        number = named.get(target) if isinstance(target, str) else target
        if isinstance(number, int):
            resolved.append((port.get("name") or "", number, port.get("protocol") or "TCP"))
    return sorted(resolved)


def _port(port: _Port) -> Obj:
    name, number, protocol = port
    return {"name": name, "port": number, "protocol": protocol} if name else \
        {"port": number, "protocol": protocol}


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def _slice_endpoint(pod: Obj, zones: dict[str, Any]) -> Obj:
    serving = is_ready_pod(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    endpoint: Obj = {"addresses": [pod["status"]["podIP"]],
                     "conditions": {"ready": serving and not terminating, "serving": serving,
                                    "terminating": terminating},
                     "targetRef": _target_ref(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
        if zones.get(node):
            endpoint["zone"] = zones[node]
    return endpoint


def _owner(service: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": service["metadata"]["name"],
            "uid": service["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def follow(store: Store, clock: LabClock) -> None:
    """Keep ``store``'s Endpoints and EndpointSlices in step as each change commits, for a store that no
    cluster's reconcile loop runs (a benchmark's, a unit test's): what the loop does within the pass
    that made the change."""
    controller = EndpointsController(store, clock=clock)
    busy = False

    def changed(_change: object) -> None:
        nonlocal busy
        if busy:
            return  # the controller's own writes
        busy = True
        try:
            controller.reconcile(clock.now())
        finally:
            busy = False

    store.on_change(changed)
    changed(None)
