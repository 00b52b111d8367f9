"""The region's ingress routes as ingress-nginx does, by the Ingress objects it finds: host, then path by
its type, to a Service, answered by that Service's ready endpoints (200), none (503), or no rule (404)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from drills.lab.clock import LabClock
from drills.lab.ingress import Ingress
from drills.lab.kube.endpoints import follow
from drills.lab.kube.exposure import seed
from drills.lab.kube.store import DEPLOYMENTS, INGRESS_CLASSES, INGRESSES, PODS, SERVICES, Obj, Store
from drills.lab.topology import DEFAULT


def _service(name: str, app: str, port: str = "http") -> Obj:
    return {"metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"app": app}, "ports": [{"name": port, "port": 80, "targetPort": 8080}]}}


def _path(path: str, kind: str, service: str, port: str = "http") -> Obj:
    return {"path": path, "pathType": kind,
            "backend": {"service": {"name": service, "port": {"name": port}}}}


def _ingress(name: str, rules: list[Obj], *, klass: str = "nginx") -> Obj:
    return {"metadata": {"name": name, "namespace": "shop"},
            "spec": {"ingressClassName": klass, "rules": rules}}


@pytest.fixture
async def ingress() -> AsyncIterator[str]:
    """A region whose Ingresses route to ``web`` (two Ready pods) and ``empty`` (a Service whose
    selector matches no pod); the ingress's URL."""
    clock = LabClock(60)
    store = Store(clock)
    controller = DEFAULT.ingress
    store.create(DEPLOYMENTS, {"metadata": {"namespace": controller.namespace, "name": controller.name},
                               "spec": {"selector": {"matchLabels": {"app": controller.name}}}})
    for namespace, app, count in ((controller.namespace, controller.name, 1), ("shop", "web", 2)):
        for i in range(count):
            meta = {"namespace": namespace, "name": f"{app}-{i}", "labels": {"app": app}}
            store.create(PODS, {"metadata": meta,
                                "spec": {"nodeName": "aks-us-zone-1-0"},
                                "status": {"phase": "Running", "podIP": f"10.244.0.{10 + i}",
                                           "conditions": [{"type": "Ready", "status": "True"}]}})
    seed(store, [(SERVICES, _service("web", "web")), (SERVICES, _service("empty", "nothing-has-this-label")),
                 (INGRESS_CLASSES, {"metadata": {"name": "nginx"},
                                    "spec": {"controller": "k8s.io/ingress-nginx"}}),
                 (INGRESS_CLASSES, {"metadata": {"name": "other"},
                                    "spec": {"controller": "example.com/other"}})])
    follow(store, clock)
    store.create(INGRESSES, _ingress("first", [
        {"http": {"paths": [_path("/", "Prefix", "web"), _path("/shop", "Prefix", "empty"),
                            _path("/img", "ImplementationSpecific", "empty"),
                            _path("/exact", "Exact", "empty")]}},
        {"host": "api.example.com", "http": {"paths": [_path("/v1", "Prefix", "web")]}},
        {"host": "*.example.com", "http": {"paths": [_path("/", "Prefix", "empty")]}},
        {"host": "port.test", "http": {"paths": [_path("/", "Prefix", "web", port="grpc")]}},
    ]))
    # Later Ingresses: one states a path the first already routes (the older one keeps it), one is of
    # a class another controller serves.
    store.create(INGRESSES, _ingress("second", [{"http": {"paths": [_path("/shop", "Prefix", "web")]}}]))
    store.create(INGRESSES, _ingress("foreign", [{"http": {"paths": [_path("/foreign", "Exact", "empty")]}}],
                                     klass="other"))
    server = Ingress("us", store, DEFAULT)
    host = f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.11"
    await server.start(host, 0)
    yield f"http://{host}:{server.port}"
    await server.close()


ROUTES = [
    ("shop.test", "/", 200),
    ("shop.test", "/anything/else", 200),        # Prefix "/" takes every path
    ("shop.test", "/shop", 503),                 # the longest prefix: the empty Service
    ("shop.test", "/shop/cart", 503),            # Prefix matches whole path elements ...
    ("shop.test", "/shopping", 200),             # ... so /shop does not take /shopping
    ("shop.test", "/img", 503),
    ("shop.test", "/imgs/logo.png", 503),        # ImplementationSpecific: nginx's plain prefix
    ("shop.test", "/exact", 503),
    ("shop.test", "/exact/more", 200),           # Exact takes only its path
    ("shop.test", "/foreign", 200),              # another class's Ingress is not this controller's
    ("api.example.com", "/v1/orders", 200),      # a host's own server ...
    ("api.example.com", "/", 404),               # ... answers only its own paths: default backend
    ("www.example.com", "/", 503),               # a wildcard host: one label
    ("a.b.example.com", "/", 200),               # two labels: the catch-all server
    ("port.test", "/", 503),                     # the Service has no port named grpc
]
"""(Host, path, the status ingress-nginx answers with)."""


async def test_routes_as_ingress_nginx(ingress: str) -> None:
    texts = {200: "served by us\n", 503: "no healthy upstream\n", 404: "default backend - 404\n"}
    async with httpx.AsyncClient() as client:
        answers = [(host, path, (await client.get(f"{ingress}{path}", headers={"Host": host})).text)
                   for host, path, _ in ROUTES]
    assert answers == [(host, path, texts[status]) for host, path, status in ROUTES]
