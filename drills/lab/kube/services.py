"""Services as the API server stores them: defaults, a cluster IP from the service CIDR, node ports.

On create the API server fills what a Service leaves out (``type: ClusterIP``, TCP ports whose
``targetPort`` is the ``port``, ``sessionAffinity: None``, single-stack IPv4, traffic policies) and
allocates: a cluster IP from the service CIDR unless the Service is headless (``clusterIP: None``) or
an ``ExternalName``, and a node port (30000-32767) per port of a ``NodePort`` or ``LoadBalancer``
Service. An address or port asked for must be free (422 otherwise). On update the allocated values are
kept when the new object leaves them out, as ``kubectl apply`` and a PUT of an edited manifest expect
(the API server's ``patchAllocatedValues``). The ranges are AKS's defaults: service CIDR
``10.0.0.0/16``, the ``kubernetes`` Service on its first address and DNS on ``10.0.0.10``; dynamic
addresses come from above the CIDR's static band (its first 256), as Kubernetes' allocator does.

:func:`system_services` are what every cluster has before anything is deployed: ``kubernetes`` in
``default`` and ``kube-dns`` in ``kube-system``, labelled ``kubernetes.io/cluster-service=true`` as
AKS labels it, which is what ``kubectl cluster-info`` lists.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from drills.lab.kube.store import ENDPOINT_SLICES, ENDPOINTS, SERVICES, Invalid, Obj, Resource, Store

SERVICE_CIDR = ipaddress.ip_network("10.0.0.0/16")
KUBERNETES_IP = "10.0.0.1"
DNS_IP = "10.0.0.10"
NODE_PORTS = range(30000, 32768)
_STATIC_BAND = 256
"""Addresses at the start of the CIDR kept for Services that ask for one (Kubernetes: min(max(16,
size/16), 256))."""

_random = random.Random()


def apply_defaults(store: Store, service: Obj) -> None:
    """Fill what the API server defaults on create and allocate the cluster IP and node ports.

    Raises :class:`~drills.lab.kube.store.Invalid` for an address or port that is taken or out of range.
    """
    spec: dict[str, Any] = service.setdefault("spec", {})
    _default_fields(spec)
    kind = spec["type"]
    name = (service.get("metadata") or {}).get("name") or ""
    if kind == "ExternalName":
        service.setdefault("status", {"loadBalancer": {}})
        return
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    asked = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
    if asked != "None":
        spec["clusterIP"] = _cluster_ip(store, name, asked)
    spec["clusterIPs"] = [spec["clusterIP"]]
    if kind in ("NodePort", "LoadBalancer"):
        taken = _node_ports(store)
        for i, port in enumerate(spec.get("ports") or []):
            if isinstance(port, dict):
                port["nodePort"] = _node_port(name, i, port.get("nodePort"), taken)
                taken.add(port["nodePort"])
    service["status"] = {"loadBalancer": {}}


def keep_allocated(old: Obj, new: Obj) -> None:
    """On update, default what the new object leaves out, as on create, and keep the cluster IP and node
    ports it leaves out (they are immutable)."""
    old_spec, spec = old.get("spec") or {}, new.get("spec")
    if not isinstance(spec, dict):
        return
    _default_fields(spec)
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if field in old_spec and not spec.get(field):
            spec[field] = old_spec[field]
    if spec.get("clusterIP") != old_spec.get("clusterIP") and old_spec.get("clusterIP"):
        raise Invalid(f'Service "{old["metadata"]["name"]}" is invalid: spec.clusterIPs[0]: Invalid value: '
                      f'[]string{{"{spec.get("clusterIP")}"}}: may not change once set')
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                 for p in old_spec.get("ports") or [] if isinstance(p, dict)}
    if spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                kept = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if kept:
                    port["nodePort"] = kept


def _default_fields(spec: dict[str, Any]) -> None:
    """The defaults the API server fills on every write (a server-side apply that drops a field gets
    it back): type, each port's protocol and target port, the traffic policies."""
    kind = spec.setdefault("type", "ClusterIP")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    if kind == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def system_services() -> list[Obj]:
    """The Services a new AKS cluster has: ``kubernetes`` (the API) and ``kube-dns`` (CoreDNS)."""
    return [
        {"metadata": {"name": "kubernetes", "namespace": "default",
                      "labels": {"component": "apiserver", "provider": "kubernetes"}},
         "spec": {"clusterIP": KUBERNETES_IP,
                  "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}},
        {"metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {"addonmanager.kubernetes.io/mode": "Reconcile", "k8s-app": "kube-dns",
                                 "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
         "spec": {"clusterIP": DNS_IP, "selector": {"k8s-app": "kube-dns"},
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}},
    ]


def api_endpoints(address: str, port: int) -> list[tuple[Resource, Obj]]:
    """The ``kubernetes`` Service's Endpoints and EndpointSlice: the API server's own address, which it
    writes itself (the Service has no selector), port ``https``."""
    return [
        (ENDPOINTS, {"metadata": {"name": "kubernetes", "namespace": "default",
                                  "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                     "subsets": [{"addresses": [{"ip": address}],
                                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        (ENDPOINT_SLICES, {"metadata": {"name": "kubernetes", "namespace": "default",
                                        "labels": {"kubernetes.io/service-name": "kubernetes"}},
                           "addressType": "IPv4",
                           "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                           "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
    ]


def _cluster_ip(store: Store, name: str, asked: str | None) -> str:
    taken = {ip for s in store.iter(SERVICES)
             for ip in ((s.get("spec") or {}).get("clusterIPs") or [])}
    if asked:
        try:
            address = ipaddress.ip_address(asked)
        except ValueError:
            raise Invalid(f'Service "{name}" is invalid: spec.clusterIPs[0]: Invalid value: "{asked}": '
                          f"must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)") from None
        if address not in SERVICE_CIDR or address in (SERVICE_CIDR.network_address,
                                                      SERVICE_CIDR.broadcast_address):
            raise Invalid(f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: '
                          f'[]string{{"{asked}"}}: failed to allocate IP {asked}: the provided IP '
                          f"({asked}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}")
        if asked in taken:
            raise Invalid(f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: '
                          f'[]string{{"{asked}"}}: failed to allocate IP {asked}: provided IP is already '
                          f"allocated")
        return asked
    first = int(SERVICE_CIDR.network_address) + _STATIC_BAND
    last = int(SERVICE_CIDR.broadcast_address) - 1
    while True:
        candidate = str(ipaddress.ip_address(_random.randint(first, last)))
        if candidate not in taken:
            return candidate


def _node_ports(store: Store) -> set[int]:
    return {p["nodePort"] for s in store.iter(SERVICES) for p in (s.get("spec") or {}).get("ports") or []
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}


def _node_port(name: str, index: int, asked: Any, taken: set[int]) -> int:
    if asked:
        if not isinstance(asked, int) or asked not in NODE_PORTS:
            raise Invalid(f'Service "{name}" is invalid: spec.ports[{index}].nodePort: Invalid value: '
                          f"{asked}: provided port is not in the valid range. The range of valid ports is "
                          f"30000-32767")
        if asked in taken:
            raise Invalid(f'Service "{name}" is invalid: spec.ports[{index}].nodePort: Invalid value: '
                          f"{asked}: provided port is already allocated")
        return asked
    free = [p for p in NODE_PORTS if p not in taken]
    return _random.choice(free)
