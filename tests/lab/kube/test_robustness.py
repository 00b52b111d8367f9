"""No client input crashes or wedges a region: malformed writes of every resource answer a 4xx Status,
odd objects put straight into the store stop no controller, and the region still reconciles after."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from apiseed import TOKEN, loopback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drills.lab.clock import rfc3339
from drills.lab.ingress import Ingress
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.store import (
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    INGRESSES,
    RESOURCES,
    SERVICES,
    Obj,
    Resource,
)
from drills.lab.topology import DEFAULT

NAMESPACE = "fuzz"
APP = DEFAULT.app

_TEMPLATE = {"metadata": {"labels": {"app": "f"}},
             "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}}
_SELECTOR = {"matchLabels": {"app": "f"}}

VALID: dict[str, Obj] = {
    "nodes": {"spec": {"podCIDR": "10.9.0.0/24", "unschedulable": True}},
    "namespaces": {},
    "pods": {"spec": _TEMPLATE["spec"]},
    "events": {"involvedObject": {"kind": "Pod", "name": "p", "namespace": NAMESPACE}, "reason": "R",
               "message": "m", "type": "Normal"},
    "deployments": {"spec": {"replicas": 1, "selector": _SELECTOR, "template": _TEMPLATE}},
    "replicasets": {"spec": {"replicas": 1, "selector": _SELECTOR, "template": _TEMPLATE}},
    "daemonsets": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "poddisruptionbudgets": {"spec": {"minAvailable": 1, "selector": _SELECTOR}},
    "networkpolicies": {"spec": {"podSelector": _SELECTOR, "ingress": [{"ports": [{"port": 80}]}]}},
    "leases": {"spec": {"holderIdentity": "h", "leaseDurationSeconds": 15}},
    "configmaps": {"data": {"k": "v"}},
    "secrets": {"stringData": {"k": "v"}},
    "services": {"spec": {"selector": {"app": "f"},
                          "ports": [{"name": "http", "port": 80, "targetPort": 80}]}},
    "endpoints": {"subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]},
    "endpointslices": {"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}],
                       "ports": [{"name": "http", "port": 80}]},
    "ingresses": {"spec": {"rules": [{"host": "fuzz.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "f", "port": {"number": 80}}}}]}}]}},
    "ingressclasses": {"spec": {"controller": "example.com/fuzz"}},
}
"""A valid object of each resource (without kind and metadata): what each malformed write starts from."""

def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": [value]}
    return value


BAD_VALUES: list[Any] = [
    [], "x", 1, -1, 2**63, 10**30, 1.5, True, None, {"a": 1}, [1], [None], ["x"], {"": []},
    "\u2603\U0001f600\x00", "é" * 300, {"matchLabels": 3}, [{"a": [{"b": {}}]}],
    {"apiVersion": 1, "kind": [], "name": {}, "uid": 3, "controller": "yes"},
]
"""Values of wrong types: put anywhere in a valid object, most cannot be decoded."""

PATHS: list[tuple[str, ...]] = [
    ("metadata",), ("metadata", "labels"), ("metadata", "labels", "a"), ("metadata", "annotations"),
    ("metadata", "name"), ("metadata", "ownerReferences"), ("metadata", "finalizers"),
    ("metadata", "deletionGracePeriodSeconds"), ("metadata", "generateName"), ("metadata", "namespace"),
    ("spec",), ("spec", "replicas"), ("spec", "selector"), ("spec", "selector", "matchLabels"),
    ("spec", "template"), ("spec", "template", "spec", "containers"), ("spec", "containers"),
    ("spec", "ports"), ("spec", "rules"), ("spec", "defaultBackend"), ("spec", "ingressClassName"),
    ("spec", "type"), ("spec", "clusterIP"), ("spec", "minAvailable"), ("spec", "controller"),
    ("status",), ("data",), ("stringData",), ("subsets",), ("endpoints",), ("ports",), ("involvedObject",),
    ("firstTimestamp",), ("addressType",), ("kind",), ("apiVersion",),
]
"""Where a bad value goes (a path absent from the kind still reaches the decoder as an unknown field)."""

CLASSIC: list[tuple[tuple[str, ...], Any]] = [
    (("metadata",), []), (("spec",), "x"), (("metadata", "labels"), {"a": 1}), (("metadata", "labels"), []),
    (("spec", "template", "spec", "containers"), None), (("spec", "ports"), [1]), (("spec", "rules"), "x"),
    (("spec", "selector"), {"matchLabels": 3}), (("metadata", "ownerReferences"), [{"uid": [], "kind": 1}]),
    (("metadata", "finalizers"), [1]), (("metadata", "deletionGracePeriodSeconds"), "x"),
    (("spec", "replicas"), 2**80), (("metadata", "annotations"), {"\u2603": "\U0001f600" * 50}),
    (("spec",), _deep(40)),
]
"""The shapes every resource gets, by create and by one more verb each."""

VERBS = ("create", "replace", "merge", "strategic", "json", "apply", "protobuf", "delete")


def _url(resource: Resource, name: str | None = None) -> str:
    base = "/api/v1" if not resource.group else f"/apis/{resource.group}/{resource.version}"
    scope = f"/namespaces/{NAMESPACE}" if resource.namespaced else ""
    return f"{base}{scope}/{resource.plural}" + (f"/{name}" if name else "")


def _object(resource: Resource, name: str) -> Obj:
    meta: Obj = {"name": name, **({"namespace": NAMESPACE} if resource.namespaced else {})}
    return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta,
            **copy.deepcopy(VALID[resource.plural])}


def _put(obj: Obj, path: tuple[str, ...], value: Any) -> Obj:
    node = obj
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return obj


def _nested(path: tuple[str, ...], value: Any) -> Obj:
    return _put({}, path, value)


@dataclass
class Region:
    """A region under test: its cluster, its API server's client, its ingress's URL."""

    cluster: Cluster
    client: httpx.Client
    ingress_url: str


@pytest.fixture
async def region(make_cluster: Callable[..., Awaitable[Cluster]]) -> AsyncIterator[Region]:
    cluster = await make_cluster()
    server: ApiServer = await start_api_server(cluster.store, host=loopback(), port=0, token=TOKEN)
    ingress = Ingress("us", cluster.store, DEFAULT)
    host = loopback()
    await ingress.start(host, 0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        yield Region(cluster, client, f"http://{host}:{ingress.port}")
    await ingress.close()
    await server.close()


def _send(client: httpx.Client, resource: Resource, verb: str, path: tuple[str, ...], value: Any,
          index: int) -> httpx.Response:
    """One malformed write of ``resource``: ``value`` at ``path`` of a valid object, sent by ``verb``."""
    name = f"base-{resource.plural}"
    if verb == "create":
        body = json.dumps(_put(_object(resource, f"new-{index}"), path, value))
        return client.post(_url(resource), content=body, headers={"Content-Type": "application/json"})
    if verb == "replace":
        body = json.dumps(_put(_object(resource, name), path, value))
        return client.put(_url(resource, name), content=body, headers={"Content-Type": "application/json"})
    if verb in ("merge", "strategic"):
        kind = "merge" if verb == "merge" else "strategic-merge"
        return client.patch(_url(resource, name), content=json.dumps(_nested(path, value)),
                            headers={"Content-Type": f"application/{kind}-patch+json"})
    if verb == "json":
        ops = [{"op": "add", "path": "/" + "/".join(path), "value": value}] if index % 3 else value
        return client.patch(_url(resource, name), content=json.dumps(ops),
                            headers={"Content-Type": "application/json-patch+json"})
    if verb == "apply":
        body = json.dumps(_put(_object(resource, name), path, value))
        return client.patch(_url(resource, name), params={"fieldManager": "fuzz", "force": "true"},
                            content=body, headers={"Content-Type": "application/apply-patch+yaml"})
    if verb == "protobuf":
        junk = b"k8s\x00" + json.dumps(value).encode()[:64] + bytes([index % 256]) * (index % 7)
        return client.post(_url(resource), content=junk,
                           headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    options = _nested(path[-1:], value) if index % 2 else value
    return client.request("DELETE", _url(resource, f"absent-{index}" if index % 5 else name),
                          params={"dryRun": "All"}, content=json.dumps(options),
                          headers={"Content-Type": "application/json"})


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        status = response.json()
        assert (status.get("kind"), status.get("code")) == ("Status", response.status_code), what


async def test_malformed_writes_answer_4xx_and_the_region_still_reconciles(
        region: Region, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    client = region.client

    def fuzz() -> None:
        created = client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        assert created.status_code == 201, created.text
        for resource in RESOURCES:
            answer = client.post(_url(resource), json=_object(resource, f"base-{resource.plural}"))
            assert answer.status_code == 201, f"{resource.plural}: {answer.text}"
        # Every resource: each classic shape by create and one other verb, each verb once more with
        # another shape; then random shapes at random paths.
        for i, resource in enumerate(RESOURCES):
            for j, (path, value) in enumerate(CLASSIC):
                for verb in ("create", VERBS[1 + (i + j) % (len(VERBS) - 1)]):
                    _check(_send(client, resource, verb, path, value, i + j),
                           f"{verb} {resource.plural} {path}")
            for j, verb in enumerate(VERBS):
                value = BAD_VALUES[(i + j) % len(BAD_VALUES)]
                path = PATHS[(i * len(VERBS) + j) % len(PATHS)]
                _check(_send(client, resource, verb, path, value, i + j), f"{verb} {resource.plural} {path}")

        @settings(max_examples=100, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(RESOURCES), st.sampled_from(VERBS), st.sampled_from(PATHS),
               st.one_of(st.sampled_from(BAD_VALUES), st.integers(0, 60).map(_deep),
                         st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                      lambda inner: st.lists(inner, max_size=3)
                                      | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                                      max_leaves=8)),
               st.integers(0, 1000))
        def one(resource: Resource, verb: str, path: tuple[str, ...], value: Any, index: int) -> None:
            _check(_send(client, resource, verb, path, value, index),
                   f"{verb} {resource.plural} {path} {value!r}")

        one()

    await asyncio.to_thread(fuzz)
    await _still_reconciles(region)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _still_reconciles(region: Region) -> None:
    """Scaling the app still brings Ready pods, and the ingress still serves it."""
    cluster = region.cluster
    scaled = await asyncio.to_thread(
        region.client.patch, f"/apis/apps/v1/namespaces/{APP.namespace}/deployments/{APP.name}",
        content=json.dumps({"spec": {"replicas": APP.replicas + 2}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert scaled.status_code == 200, scaled.text

    def ready() -> bool:
        status = cluster.store.get(DEPLOYMENTS, APP.namespace, APP.name).get("status") or {}
        return status.get("readyReplicas") == APP.replicas + 2

    await cluster.until(ready, within=60.0 * 1000)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{region.ingress_url}/", headers={"Host": "shop.test"})
    assert answer.status_code == 200, answer.text


ODD_OBJECTS: list[tuple[Resource, Obj]] = [
    (DEPLOYMENTS, {"metadata": {"name": "odd-replicas"}, "spec": {"replicas": "three", "selector": 3,
                                                                   "template": []}}),
    (DEPLOYMENTS, {"metadata": {"name": "odd-spec", "labels": {"a": 1}, "ownerReferences": [1]},
                   "spec": "x"}),
    (SERVICES, {"metadata": {"name": "odd-ports"}, "spec": {"ports": [1, {"port": "x"}], "selector": []}}),
    (SERVICES, {"metadata": {"name": "f"}, "spec": "x"}),
    (ENDPOINT_SLICES, {"metadata": {"name": "odd-slice", "labels": {"kubernetes.io/service-name": "web"}},
                       "endpoints": [1, {"addresses": "x", "conditions": []}], "ports": "x"}),
    (INGRESSES, {"metadata": {"name": "odd-rules"}, "spec": {"rules": "x", "defaultBackend": []}}),
    (INGRESSES, {"metadata": {"name": "odd-paths"}, "spec": {"rules": [
        {"host": 3, "http": {"paths": [1, {"path": 3, "backend": {"service": {"name": "web", "port": 8}}},
                                       {"backend": {"service": {"name": "web", "port": {"name": 3}}}}]}},
        {"http": "x"}, {"host": "h.test", "http": {"paths": "x"}}]}}),
    (INGRESSES, {"metadata": {"name": "odd-default"}, "spec": {"defaultBackend": {"service": "x"}}}),
]
"""Objects the API would refuse, as a bug or an older lab might leave them in the store."""


async def test_odd_objects_in_the_store_stop_no_controller_nor_the_ingress(
        region: Region, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    store = region.cluster.store
    now = rfc3339(region.cluster.clock.wall())
    for resource, obj in ODD_OBJECTS:
        obj = copy.deepcopy(obj)
        obj["metadata"].update(namespace=APP.namespace, creationTimestamp=now)
        store.create(resource, obj)
    assert region.cluster._settled() in (True, False)  # answers, whatever the odd Deployments say
    async with httpx.AsyncClient() as client:
        for path in ("/", "/anything"):
            answer = await client.get(f"{region.ingress_url}{path}", headers={"Host": "h.test"})
            assert answer.status_code in (200, 404, 503), answer.text
    await _still_reconciles(region)
    # An object a controller cannot sync waits alone (the work queue logs it); no controller as a whole
    # failed, nor did the API server.
    assert [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.name != "drills.lab.kube.workqueue"] == []
