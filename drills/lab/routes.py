"""The routing table of a region's ingress controller, built from the Ingress objects it serves.

As ingress-nginx builds it: the controller serves the Ingresses whose ``ingressClassName`` is a class
whose ``spec.controller`` is ``k8s.io/ingress-nginx``, and those naming no class (the lab's controller
watches Ingresses without a class, as ``--watch-ingress-without-class`` does; the API server would give
them the default class anyway). Each rule's ``host`` makes a server; rules without a host go to the
catch-all server. A request goes to the server of its ``Host`` (exact, or a ``*.`` wildcard for one
label), else to the catch-all one, and within it to the path that matches:

- ``Exact``: the path as written;
- ``Prefix``: the path split on ``/`` element by element (``/shop`` matches ``/shop`` and
  ``/shop/cart``, not ``/shopping``; ``/`` matches everything);
- ``ImplementationSpecific``: nginx's own prefix match, character by character (``/shop`` matches
  ``/shopping``);

an exact match first, else the longest path. Where two Ingresses state the same host, path and type,
the older one wins (ingress-nginx keeps the first). With no path matching, an Ingress's
``spec.defaultBackend`` takes the request, else the controller's default backend (404).

A path leads to a Service port (by number or name); the answer then depends on that Service's ready
endpoints (:func:`drills.lab.kube.endpoints.ready_endpoints`): none, or no such Service or port, is
ingress-nginx's ``503``.
"""

from __future__ import annotations

from dataclasses import dataclass

from drills.lab.kube.exposure import INGRESS_CONTROLLER
from drills.lab.kube.shapes import entries, mapping
from drills.lab.kube.store import INGRESS_CLASSES, INGRESSES, SERVICES, Store

_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
"""The class an Ingress names the old way, before ``ingressClassName``."""


@dataclass(frozen=True)
class Backend:
    """A Service port an Ingress path leads to."""

    namespace: str
    service: str
    port: int | str | None


@dataclass(frozen=True)
class _Path:
    path: str
    kind: str  # Exact, Prefix or ImplementationSpecific
    backend: Backend
    order: tuple[str, str, str]  # creationTimestamp, namespace, name: the older Ingress wins

    def matches(self, path: str) -> bool:
        if self.kind == "Exact":
            return path == self.path
        if self.kind == "Prefix":
            prefix = self.path.rstrip("/")
            return not prefix or path == prefix or path.startswith(prefix + "/")
        return path.startswith(self.path)


@dataclass(frozen=True)
class RouteTable:
    """The servers (by host; ``""`` the catch-all) and their paths, and the default backend."""

    servers: dict[str, tuple[_Path, ...]]
    default: Backend | None

    def route(self, host: str, path: str) -> Backend | None:
        """Where a request for ``host`` and ``path`` goes; None: the controller's default backend."""
        host = host.lower() if host.startswith("[") else host.lower().split(":", 1)[0]
        paths = self.servers.get(host) if host else None
        if paths is None and "." in host:
            paths = self.servers.get("*." + host.split(".", 1)[1])
        if paths is None:
            paths = self.servers.get("", ())
        exact = [p for p in paths if p.kind == "Exact" and p.matches(path)]
        if exact:
            return min(exact, key=lambda p: p.order).backend
        matching = [p for p in paths if p.matches(path)]
        if matching:
            return min(matching, key=lambda p: (-len(p.path), p.order)).backend
        return self.default


def route_table(store: Store) -> RouteTable:
    """The routing table of the Ingresses in ``store`` that an ingress-nginx controller serves."""
    classes = {c["metadata"]["name"] for c in store.iter(INGRESS_CLASSES)
               if mapping(c.get("spec")).get("controller") == INGRESS_CONTROLLER}
    servers: dict[str, list[_Path]] = {}
    default: tuple[tuple[str, str, str], Backend] | None = None
    for ingress in store.iter(INGRESSES):
        meta, spec = ingress["metadata"], mapping(ingress.get("spec"))
        name = spec.get("ingressClassName") or mapping(meta.get("annotations")).get(_CLASS_ANNOTATION)
        if name is not None and name not in classes:
            continue
        order = (str(meta.get("creationTimestamp") or ""), meta["namespace"], meta["name"])
        fallback = _backend(meta["namespace"], spec.get("defaultBackend"))
        if fallback is not None and (default is None or order < default[0]):
            default = (order, fallback)
        for rule in entries(spec.get("rules")):
            paths = servers.setdefault(str(rule.get("host") or "").lower(), [])
            for entry in entries(mapping(rule.get("http")).get("paths")):
                backend = _backend(meta["namespace"], entry.get("backend"))
                if backend is not None:
                    kind = str(entry.get("pathType") or "ImplementationSpecific")
                    paths.append(_Path(str(entry.get("path") or "/"), kind, backend, order))
    return RouteTable({host: tuple(paths) for host, paths in servers.items()},
                      default[1] if default is not None else None)


def service_port_exists(store: Store, backend: Backend) -> bool:
    """Whether the backend's Service exists and has the port it names (else ingress-nginx answers 503)."""
    service = store.find(SERVICES, backend.namespace, backend.service)
    if service is None:
        return False
    ports = entries(mapping(service.get("spec")).get("ports"))
    if backend.port is None:
        return bool(ports)
    key = "port" if isinstance(backend.port, int) else "name"
    return any(p.get(key) == backend.port for p in ports)


def _backend(namespace: str, backend: object) -> Backend | None:
    service = mapping(mapping(backend).get("service"))
    if not service.get("name"):
        return None  # none, or a resource backend: not modelled, as if the path were not there
    port = mapping(service.get("port"))
    number, name = port.get("number"), port.get("name")
    stated = number if isinstance(number, int) and not isinstance(number, bool) and number else \
        name if isinstance(name, str) and name else None
    return Backend(namespace, str(service["name"]), stated)
