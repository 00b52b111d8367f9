"""The official Python client (``kubernetes``) against a lab, as a team's own tooling uses it: list with
paging, watch from a resourceVersion and resume after 410, the three patch types, Eviction against a
PodDisruptionBudget, and the clear refusal of what the lab lacks (logs).

The tests share the module's lab and leave it as they found it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException

from drills.lab.clock import LabClock
from drills.lab.kube.api import start_api_server
from drills.lab.kube.store import Store

pytestmark = pytest.mark.lab

NODE = "aks-us-zone-3-1"
"""The node whose metadata the patch test changes (and restores)."""

TOKEN = "compat-token"
"""The token of the small API server of the 410 test."""


def test_list_with_paging(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    assert len(core.list_node().items) == 6
    everything = core.list_pod_for_all_namespaces()
    names = [(p.metadata.namespace, p.metadata.name) for p in everything.items]
    assert len(names) > 2

    paged: list[tuple[str, str]] = []
    token: str | None = None
    pages = 0
    while True:
        page = core.list_pod_for_all_namespaces(limit=2, _continue=token)
        pages += 1
        assert len(page.items) <= 2
        paged += [(p.metadata.namespace, p.metadata.name) for p in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert pages < 20, "the continue tokens do not end"
    assert paged == names
    assert pages == -(-len(names) // 2)


def test_watch_from_a_resource_version(api: k8s.ApiClient, web_available: Callable[[], None]) -> None:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    listed = core.list_namespaced_pod("shop", label_selector="app=web")
    known = {p.metadata.name for p in listed.items}
    apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 4}})
    try:
        # The watch starts after the change: it replays what happened since the listed version.
        added = None
        for event in watch.Watch().stream(core.list_namespaced_pod, "shop", label_selector="app=web",
                                          resource_version=listed.metadata.resource_version,
                                          timeout_seconds=30):
            assert event["type"] in ("ADDED", "MODIFIED")
            if event["type"] == "ADDED":
                added = event["object"].metadata.name
                break
        assert added is not None
        assert added not in known
    finally:
        apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 3}})
    web_available()


async def test_watch_resumes_after_410_by_listing_again() -> None:
    # The lab keeps 20,000 changes, which its quiet default world takes far longer than a test to
    # outgrow; the lab's own API server over a store keeping 5 expires versions after 5 changes.
    store = Store(LabClock(time_scale=1.0), history=5)
    server = await start_api_server(store, host="127.0.0.1", token=TOKEN)
    try:
        await asyncio.to_thread(_resume_after_410, server.url)
    finally:
        await server.close()


def _resume_after_410(url: str) -> None:
    configuration = k8s.Configuration(host=url, api_key={"BearerToken": TOKEN},
                                      api_key_prefix={"BearerToken": "Bearer"})
    with k8s.ApiClient(configuration) as api:
        core = k8s.CoreV1Api(api)
        old = core.list_namespace().metadata.resource_version
        for index in range(8):
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=f"early-{index}")))
        with pytest.raises(ApiException) as expired:
            next(iter(watch.Watch().stream(core.list_namespace, resource_version=old, timeout_seconds=5)))
        assert expired.value.status == 410
        assert "too old resource version" in str(expired.value.reason)

        # As the client's documentation says: list again, and watch from that version on.
        fresh = core.list_namespace()
        assert len(fresh.items) == 8
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="late")))
        event = next(iter(watch.Watch().stream(core.list_namespace,
                                               resource_version=fresh.metadata.resource_version,
                                               timeout_seconds=5)))
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "late")


def test_patch_strategic_merge_and_json(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)

    def finalizers() -> list[str]:
        return core.read_node(NODE).metadata.finalizers or []

    try:
        # A dict is sent as a strategic merge patch: finalizers, a set, are united.
        core.patch_node(NODE, {"metadata": {"finalizers": ["compat.drill/a"]}})
        core.patch_node(NODE, {"metadata": {"finalizers": ["compat.drill/b"]}})
        assert finalizers() == ["compat.drill/a", "compat.drill/b"]
        # A merge patch replaces lists whole.
        core.patch_node(NODE, {"metadata": {"finalizers": ["compat.drill/c"],
                                            "annotations": {"compat.drill/patched": "merge"}}},
                        _content_type="application/merge-patch+json")
        assert finalizers() == ["compat.drill/c"]
        # A list is sent as a JSON patch; a failed test operation refuses the whole patch.
        with pytest.raises(ApiException) as refused:
            core.patch_node(NODE, [{"op": "test", "path": "/metadata/annotations/compat.drill~1patched",
                                    "value": "other"},
                                   {"op": "remove", "path": "/metadata/finalizers"}])
        assert refused.value.status == 422
        assert finalizers() == ["compat.drill/c"]
        core.patch_node(NODE, [{"op": "test", "path": "/metadata/annotations/compat.drill~1patched",
                                "value": "merge"},
                               {"op": "remove", "path": "/metadata/finalizers"},
                               {"op": "remove", "path": "/metadata/annotations/compat.drill~1patched"}])
        node = core.read_node(NODE)
        assert not node.metadata.finalizers
        assert "compat.drill/patched" not in (node.metadata.annotations or {})
    finally:
        core.patch_node(NODE, {"metadata": {"finalizers": None,
                                            "annotations": {"compat.drill/patched": None}}},
                        _content_type="application/merge-patch+json")


def test_eviction_honours_the_disruption_budget(api: k8s.ApiClient,
                                                web_available: Callable[[], None]) -> None:
    core = k8s.CoreV1Api(api)
    nodes = [n.metadata.name for n in core.list_node().items]
    pods = [p.metadata.name for p in core.list_namespaced_pod("shop", label_selector="app=web").items]
    assert len(pods) == 3

    def evict(name: str) -> Any:
        return core.create_namespaced_pod_eviction(
            name, "shop", k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=name, namespace="shop")))

    # Every node cordoned: an evicted pod's replacement stays Pending, so the budget stays spent.
    for node in nodes:
        core.patch_node(node, {"spec": {"unschedulable": True}})
    try:
        evict(pods[0])
        # Terminating, or already gone: its grace period is half a real second at the lab's scale.
        evicted = core.list_namespaced_pod("shop", field_selector=f"metadata.name={pods[0]}").items
        assert not evicted or evicted[0].metadata.deletion_timestamp is not None
        with pytest.raises(ApiException) as refused:
            evict(pods[1])
        assert refused.value.status == 429
        status = json.loads(refused.value.body)
        assert status["reason"] == "TooManyRequests"
        assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        assert [c["reason"] for c in status["details"]["causes"]] == ["DisruptionBudget"]
        assert core.read_namespaced_pod(pods[1], "shop").metadata.deletion_timestamp is None
    finally:
        for node in nodes:
            core.patch_node(node, {"spec": {"unschedulable": False}})
    web_available()


def test_logs_are_refused_with_the_reason(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    pod = core.list_namespaced_pod("shop", label_selector="app=web").items[0].metadata.name
    with pytest.raises(ApiException) as refused:
        core.read_namespaced_pod_log(pod, "shop")
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["message"].startswith("the lab runs no containers")
