"""The region's API server as the ``kubernetes`` client (and a raw HTTP client) sees it, on real sockets.

The client is synchronous: its calls run in worker threads (:func:`pyclient.call`) while the server
runs on the test's event loop, as it runs on the lab's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from apiseed import NODE_NAMES, TOKEN, WEB_PODS, loopback, refresh_pdb_status, seed
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pyclient import call

from drills.lab.clock import LabClock
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.store import DEPLOYMENTS, NODES, PDBS, PODS, Obj, Store
from drills.lab.kube.tables import age, human_duration, table


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        yield session


async def test_discovery_names_eviction_and_scale_as_kubectl_needs(kube: client.ApiClient) -> None:
    version = await call(client.VersionApi(kube).get_code)
    assert version.git_version == "v1.32.0"
    groups = await call(client.ApisApi(kube).get_api_versions)
    assert {g.preferred_version.group_version for g in groups.groups} == {
        "apps/v1", "policy/v1", "networking.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1"}
    core = {r.name: r for r in (await call(client.CoreV1Api(kube).get_api_resources)).resources}
    eviction = core["pods/eviction"]
    assert (eviction.group, eviction.version, eviction.kind, eviction.verbs) == ("policy", "v1", "Eviction",
                                                                                ["create"])
    assert (core["nodes"].short_names, core["nodes"].namespaced) == (["no"], False)
    assert ("watch" in core["pods"].verbs, core["pods"].namespaced) == (True, True)
    apps = {r.name: r for r in (await call(client.AppsV1Api(kube).get_api_resources)).resources}
    assert (apps["deployments/scale"].group, apps["deployments/scale"].kind) == ("autoscaling", "Scale")
    assert apps["deployments"].short_names == ["deploy"]


async def test_every_path_needs_the_token(server: ApiServer) -> None:
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/version", "/api/v1/nodes", "/lab/v1/trafficmanager"):
            async with anonymous.get(server.url + path) as response:
                assert response.status == 401
                assert (await response.json())["reason"] == "Unauthorized"
        async with anonymous.get(server.url + "/api/v1/nodes",
                                 headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401


async def test_list_with_label_and_field_selectors(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    zone2 = await call(core.list_node, label_selector="topology.kubernetes.io/zone=eastus-2")
    assert [n.metadata.name for n in zone2.items] == ["aks-pool-2a", "aks-pool-2b"]
    on_node = await call(core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={NODE_NAMES[0]}",
                          limit=500)
    assert sorted(p.metadata.name for p in on_node.items) == sorted(["agent-1a", WEB_PODS[0]])
    web = await call(core.list_namespaced_pod, "shop", label_selector="app in (web),app!=agent")
    assert sorted(p.metadata.name for p in web.items) == sorted(WEB_PODS)
    assert int(web.metadata.resource_version) > 0
    with pytest.raises(ApiException) as bad:
        await call(core.list_node, label_selector="zone in (a")
    assert bad.value.status == 400


async def test_get_and_not_found(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    web = await call(apps.read_namespaced_deployment, "web", "shop")
    assert web.spec.replicas == 3
    assert web.metadata.uid
    with pytest.raises(ApiException) as missing:
        await call(client.CoreV1Api(kube).read_namespaced_pod, "nope", "shop")
    status = json.loads(missing.value.body)
    assert (missing.value.status, status["reason"]) == (404, "NotFound")
    assert status["message"] == 'pods "nope" not found'
    assert status["details"] == {"name": "nope", "kind": "pods"}


async def test_create_conflicts_and_replace_with_a_stale_version(kube: client.ApiClient,
                                                                  store: Store) -> None:
    core = client.CoreV1Api(kube)
    body = {"metadata": {"name": "debug"}, "spec": {"containers": [{"name": "sh", "image": "busybox"}]}}
    created = await call(core.create_namespaced_pod, "shop", body)
    assert (created.status.phase, created.spec.termination_grace_period_seconds) == ("Pending", 30)
    with pytest.raises(ApiException) as exists:
        await call(core.create_namespaced_pod, "shop", body)
    assert (exists.value.status, json.loads(exists.value.body)["reason"]) == (409, "AlreadyExists")
    with pytest.raises(ApiException) as no_namespace:
        await call(core.create_namespaced_pod, "nowhere", body)
    assert no_namespace.value.status == 404

    node = await call(core.read_node, NODE_NAMES[0])
    store.mutate(NODES, None, NODE_NAMES[0], lambda n: n["metadata"]["labels"].update(touched="yes"))
    node.spec.unschedulable = True
    with pytest.raises(ApiException) as stale:
        await call(core.replace_node, NODE_NAMES[0], node)
    assert (stale.value.status, json.loads(stale.value.body)["reason"]) == (409, "Conflict")
    fresh = await call(core.read_node, NODE_NAMES[0])
    fresh.spec.unschedulable = True
    fresh.status.conditions = []  # the main resource ignores status changes
    replaced = await call(core.replace_node, NODE_NAMES[0], fresh)
    assert replaced.spec.unschedulable is True
    assert [c.type for c in replaced.status.conditions] == ["Ready"]


async def test_cordon_uncordon_and_the_other_patch_types(kube: client.ApiClient, store: Store) -> None:
    core = client.CoreV1Api(kube)
    name = NODE_NAMES[1]
    await call(core.patch_node, name, {"spec": {"unschedulable": True}})
    assert store.get(NODES, None, name)["spec"]["unschedulable"] is True
    rv = store.resource_version
    await call(core.patch_node, name, {"spec": {"unschedulable": True}})
    assert store.resource_version == rv, "a patch that changes nothing is not a change"
    await call(core.patch_node, name, {"spec": {"unschedulable": None}})
    assert "unschedulable" not in store.get(NODES, None, name)["spec"]

    await call(core.patch_node, name, {"metadata": {"labels": {"role": "x"}}},
                _content_type="application/merge-patch+json")
    await call(core.patch_node, name, [{"op": "add", "path": "/metadata/labels/team", "value": "sre"}])
    assert {"role": "x", "team": "sre"}.items() <= store.get(NODES, None, name)["metadata"]["labels"].items()
    with pytest.raises(ApiException) as failed:
        await call(core.patch_node, name, [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert failed.value.status == 422

    status = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletDown"}]}}
    await call(core.patch_node_status, name, status)
    assert store.get(NODES, None, name)["status"]["conditions"][0]["status"] == "False"
    await call(core.patch_node, name, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert store.get(NODES, None, name)["status"]["conditions"][0]["status"] == "False", \
        "the main resource ignores status changes"


async def test_scale_subresource(kube: client.ApiClient, store: Store) -> None:
    apps = client.AppsV1Api(kube)
    scale = await call(apps.patch_namespaced_deployment_scale, "web", "shop", {"spec": {"replicas": 5}})
    assert (scale.kind, scale.spec.replicas, scale.status.replicas, scale.status.selector) == (
        "Scale", 5, 3, "app=web")
    deployment = store.get(DEPLOYMENTS, "shop", "web")
    assert (deployment["spec"]["replicas"], deployment["metadata"]["generation"]) == (5, 2)
    current = await call(apps.read_namespaced_replica_set_scale, "web-6d4cf56db6", "shop")
    current.spec.replicas = 1
    assert (await call(apps.replace_namespaced_replica_set_scale, "web-6d4cf56db6", "shop", current)) \
        .spec.replicas == 1
    with pytest.raises(ApiException) as stale:
        await call(apps.replace_namespaced_replica_set_scale, "web-6d4cf56db6", "shop", current)
    assert stale.value.status == 409
    with pytest.raises(ApiException) as negative:
        await call(apps.patch_namespaced_deployment_scale, "web", "shop", {"spec": {"replicas": -1}})
    assert negative.value.status == 422


async def test_deleting_a_bound_pod_is_graceful(kube: client.ApiClient, store: Store,
                                                 clock: LabClock) -> None:
    core = client.CoreV1Api(kube)
    before = clock.wall()
    pod = await call(core.delete_namespaced_pod, WEB_PODS[0], "shop")
    assert pod.metadata.deletion_grace_period_seconds == 30
    expected = before + timedelta(seconds=30)
    assert abs((pod.metadata.deletion_timestamp - expected).total_seconds()) <= 1.5
    assert store.get(PODS, "shop", WEB_PODS[0])["metadata"]["deletionTimestamp"]
    await call(core.delete_namespaced_pod, WEB_PODS[0], "shop", grace_period_seconds=0)
    assert store.find(PODS, "shop", WEB_PODS[0]) is None

    store.mutate(PODS, "shop", WEB_PODS[1], lambda p: p["spec"].pop("nodeName"))
    await call(core.delete_namespaced_pod, WEB_PODS[1], "shop")
    assert store.find(PODS, "shop", WEB_PODS[1]) is None, "an unbound pod goes at once"
    status = await call(client.AppsV1Api(kube).delete_namespaced_deployment, "web", "shop",
                         propagation_policy="Background")
    assert status["status"] == "Success"
    assert store.find(DEPLOYMENTS, "shop", "web") is None


async def test_delete_options_in_the_body(server: ApiServer, http: aiohttp.ClientSession,
                                          store: Store) -> None:
    url = f"{server.url}/api/v1/namespaces/shop/pods/{WEB_PODS[0]}"
    uid = store.get(PODS, "shop", WEB_PODS[0])["metadata"]["uid"]
    wrong = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-" + uid}}
    async with http.delete(url, json=wrong) as response:
        assert response.status == 409
    async with http.delete(url, json={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}) as response:
        assert response.status == 200
        assert (await response.json())["metadata"]["name"] == WEB_PODS[0]
    assert store.find(PODS, "shop", WEB_PODS[0]) is None


async def test_eviction_honours_the_disruption_budget(kube: client.ApiClient, store: Store) -> None:
    core = client.CoreV1Api(kube)
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=WEB_PODS[0], namespace="shop"))
    await call(core.create_namespaced_pod_eviction, WEB_PODS[0], "shop", eviction)
    evicted = store.get(PODS, "shop", WEB_PODS[0])
    assert evicted["metadata"]["deletionGracePeriodSeconds"] == 30
    assert {"type": "DisruptionTarget", "reason": "EvictionByEvictionAPI"}.items() <= \
        evicted["status"]["conditions"][-1].items()

    with pytest.raises(ApiException) as refused:
        await call(core.create_namespaced_pod_eviction, WEB_PODS[1], "shop", _eviction(WEB_PODS[1]))
    assert refused.value.status == 429
    assert json.loads(refused.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests", "code": 429,
        "details": {"causes": [{"reason": "DisruptionBudget",
                                "message": "The disruption budget web needs 2 healthy pods and has 2 "
                                           "currently"}]}}
    assert store.get(PODS, "shop", WEB_PODS[1])["metadata"].get("deletionTimestamp") is None

    store.mutate(PDBS, "shop", "web", lambda p: p["spec"].update(minAvailable=1))
    refresh_pdb_status(store, "web")
    await call(core.create_namespaced_pod_eviction, WEB_PODS[1], "shop", _eviction(WEB_PODS[1]))
    assert store.get(PODS, "shop", WEB_PODS[1])["metadata"]["deletionTimestamp"]
    store.delete(PODS, "shop", WEB_PODS[1])
    with pytest.raises(ApiException) as gone:
        await call(core.create_namespaced_pod_eviction, WEB_PODS[1], "shop", _eviction(WEB_PODS[1]))
    assert gone.value.status == 404


def _eviction(name: str) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "shop"}}


async def test_eviction_without_a_content_type(server: ApiServer, http: aiohttp.ClientSession,
                                               store: Store) -> None:
    url = f"{server.url}/api/v1/namespaces/shop/pods/{WEB_PODS[2]}/eviction"
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": WEB_PODS[2]},
                       "deleteOptions": {"gracePeriodSeconds": 0}}).encode()
    async with http.post(url, data=body, skip_auto_headers=["Content-Type"]) as response:
        assert response.status == 201
        assert (await response.json())["status"] == "Success"
    assert store.find(PODS, "shop", WEB_PODS[2]) is None


def _collect(kube: client.ApiClient, wanted: int, ready: Callable[[], None] | None = None,
             **kwargs: Any) -> list[tuple[str, str]]:
    """Watch ``shop`` pods until ``wanted`` events came; ``ready`` is called once the initial state is in."""
    events: list[tuple[str, str]] = []
    stream = watch.Watch().stream(client.CoreV1Api(kube).list_namespaced_pod, "shop", timeout_seconds=10,
                                  **kwargs)
    for event in stream:
        if event["type"] == "BOOKMARK":
            continue
        events.append((event["type"], event["object"].metadata.name))
        if ready is not None and len(events) == len(WEB_PODS):
            ready()
        if len(events) == wanted:
            stream.close()
    return events


async def test_watch_streams_changes_and_resumes_from_a_version(kube: client.ApiClient, store: Store) -> None:
    loop = asyncio.get_running_loop()
    listening = asyncio.Event()
    watching = asyncio.create_task(call(_collect, kube, 7, lambda: loop.call_soon_threadsafe(listening.set),
                                         label_selector="app=web"))
    await asyncio.wait_for(listening.wait(), 10)
    version = store.resource_version

    def relabel(app: str) -> Callable[[Obj], None]:
        return lambda pod: pod["metadata"]["labels"].update(app=app)

    store.mutate(PODS, "shop", WEB_PODS[0], lambda p: p["metadata"]["labels"].update(extra="1"))
    store.mutate(PODS, "shop", WEB_PODS[1], relabel("other"))
    store.mutate(PODS, "shop", WEB_PODS[1], relabel("web"))
    store.delete(PODS, "shop", WEB_PODS[2])
    events = await asyncio.wait_for(watching, 10)
    assert events == [("ADDED", WEB_PODS[0]), ("ADDED", WEB_PODS[1]), ("ADDED", WEB_PODS[2]),
                      ("MODIFIED", WEB_PODS[0]), ("DELETED", WEB_PODS[1]), ("ADDED", WEB_PODS[1]),
                      ("DELETED", WEB_PODS[2])]
    resumed = await call(_collect, kube, 2, resource_version=str(int(version) + 2), label_selector="app=web")
    assert resumed == [("ADDED", WEB_PODS[1]), ("DELETED", WEB_PODS[2])]


async def test_watch_from_a_version_too_old_is_gone(clock: LabClock) -> None:
    small = Store(clock, history=5)
    seed(small)
    server = await start_api_server(small, host=loopback(), token=TOKEN)
    try:
        configuration = client.Configuration(host=server.url, api_key={"BearerToken": TOKEN},
                                             api_key_prefix={"BearerToken": "Bearer"})
        with pytest.raises(ApiException) as gone:
            await call(_collect, client.ApiClient(configuration), 1, resource_version="3")
        assert gone.value.status == 410
        assert "too old resource version" in str(gone.value.reason)
    finally:
        await server.close()


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[Obj]:
    async for line in response.content:
        if line.strip():
            yield json.loads(line)


async def test_watch_bookmarks_timeout_and_close(server: ApiServer, http: aiohttp.ClientSession,
                                                 store: Store) -> None:
    tasks_before = asyncio.all_tasks()
    url = f"{server.url}/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=2" \
          f"&resourceVersion={store.resource_version}"
    started = asyncio.get_running_loop().time()
    async with http.get(url) as response:
        events = [event async for event in _lines(response)]
    elapsed = asyncio.get_running_loop().time() - started
    assert 1.9 <= elapsed < 3.0, "the watch ends at timeoutSeconds"
    assert events
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert events[0]["object"] == {"kind": "Node", "apiVersion": "v1",
                                   "metadata": {"resourceVersion": store.resource_version}}

    async with http.get(f"{server.url}/api/v1/namespaces/shop/pods?watch=true") as response:
        stream = _lines(response)
        assert [(await anext(stream))["type"] for _ in WEB_PODS] == ["ADDED"] * 3
        closing = asyncio.create_task(server.close())
        assert [e async for e in stream] == [], "the server's close ends the stream cleanly"
        await asyncio.wait_for(closing, 5)
    await asyncio.sleep(0)  # let the finished connection's task be collected
    assert asyncio.all_tasks() - tasks_before <= {asyncio.current_task()}


async def test_watch_list_ends_its_initial_events_with_a_bookmark(server: ApiServer,
                                                                 http: aiohttp.ClientSession) -> None:
    """What client-go's reflectors ask for when the WatchListClient feature is on (kubectl 1.37's default)."""
    url = f"{server.url}/apis/apps/v1/namespaces/shop/deployments?watch=true&sendInitialEvents=true" \
          "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Dweb"
    async with http.get(url) as response:
        stream = _lines(response)
        added, bookmark = await anext(stream), await anext(stream)
    assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "web")
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_a_client_going_away_ends_its_watch(server: ApiServer) -> None:
    tasks_before = asyncio.all_tasks()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session, \
            session.get(f"{server.url}/api/v1/pods?watch=true") as response:
        await response.content.readline()
    deadline = asyncio.get_running_loop().time() + 5
    # Nothing to await on the server side: poll until its handler has noticed the disconnect.
    while asyncio.all_tasks() - tasks_before - {asyncio.current_task()}:
        assert asyncio.get_running_loop().time() < deadline, "the watch outlived its client"
        await asyncio.sleep(0.01)


async def test_tables_for_kubectl_get(server: ApiServer, http: aiohttp.ClientSession, store: Store) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    store.mutate(NODES, None, NODE_NAMES[1], lambda n: n["spec"].update(unschedulable=True))
    store.mutate(NODES, None, NODE_NAMES[2], lambda n: n["status"]["conditions"][0].update(status="Unknown"))
    async with http.get(f"{server.url}/api/v1/nodes", headers={"Accept": accept}) as response:
        nodes = await response.json()
    assert (nodes["kind"], nodes["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in nodes["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Status", "Roles", "Age", "Version"]
    assert [r["cells"][1] for r in nodes["rows"][:3]] == ["Ready", "Ready,SchedulingDisabled", "NotReady"]
    assert nodes["rows"][0]["cells"][2] == "agent"
    assert nodes["rows"][0]["object"]["kind"] == "PartialObjectMetadata"

    async with http.get(f"{server.url}/apis/apps/v1/namespaces/shop/deployments/web?includeObject=Object",
                        headers={"Accept": accept}) as response:
        web = await response.json()
    assert web["rows"][0]["cells"][:4] == ["web", "3/3", 3, 3]
    assert web["rows"][0]["object"]["spec"]["replicas"] == 3
    async with http.get(f"{server.url}/api/v1/pods?includeObject=None",
                        headers={"Accept": accept}) as response:
        assert all("object" not in row for row in (await response.json())["rows"])
    async with http.get(f"{server.url}/api/v1/namespaces/shop/pods?watch=1",
                        headers={"Accept": accept}) as response:
        first = json.loads(await response.content.readline())
    assert (first["type"], first["object"]["kind"]) == ("ADDED", "Table"), "kubectl get -w reads Tables"
    assert first["object"]["rows"][0]["cells"][:3] == [WEB_PODS[0], "1/1", "Running"]
    protobuf = "application/vnd.kubernetes.protobuf,application/json"
    async with http.get(f"{server.url}/api/v1/nodes", headers={"Accept": protobuf}) as response:
        assert response.content_type == "application/json"
        assert (await response.json())["kind"] == "NodeList"


def test_pod_status_and_ages_as_kubectl_prints_them() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    created = "2026-11-22T11:54:48Z"  # 5m12s before now
    pod: Obj = {"metadata": {"name": "web-1", "creationTimestamp": created,
                             "deletionTimestamp": "2026-11-22T12:00:30Z"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
                "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.9"}],
                           "containerStatuses": [
                               {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
                                "lastState": {"terminated": {"finishedAt": created}}},
                               {"name": "b", "ready": False, "restartCount": 0,
                                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    rows = table(PODS, [pod], now=now, resource_version="9")["rows"]
    assert rows[0]["cells"] == ["web-1", "1/2", "Terminating", "2 (5m12s ago)", "5m12s", "10.244.0.9", "n1",
                                "<none>", "<none>"]
    pod["metadata"].pop("deletionTimestamp")
    assert table(PODS, [pod], now=now, resource_version="9")["rows"][0]["cells"][2] == "CrashLoopBackOff"
    assert [human_duration(s) for s in (0, 59, 119, 120, 312, 600, 10800, 7 * 3600 + 60, 30 * 3600,
                                        12 * 86400, 3 * 86400 + 7200)] == [
        "0s", "59s", "119s", "2m", "5m12s", "10m", "3h", "7h1m", "30h", "12d", "3d2h"]
    assert age(None, now) == "<unknown>"


async def test_unknown_paths_methods_and_bodies(server: ApiServer, http: aiohttp.ClientSession) -> None:
    async def status_of(method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        async with http.request(method, server.url + path, **kwargs) as response:
            return response.status, (await response.json())["reason"]

    assert await status_of("GET", "/api/v1/widgets") == (404, "NotFound")
    assert await status_of("GET", "/apis/batch/v1/jobs") == (404, "NotFound")
    # deletecollection is served per namespace only
    assert await status_of("DELETE", "/api/v1/pods") == (405, "MethodNotAllowed")
    yaml = {"Content-Type": "application/yaml"}
    assert await status_of("PATCH", f"/api/v1/nodes/{NODE_NAMES[0]}", data=b"{}", headers=yaml) == (
        415, "UnsupportedMediaType")
    assert await status_of("POST", "/api/v1/namespaces/shop/pods", data=b"{not json",
                           headers={"Content-Type": "application/json"}) == (400, "BadRequest")
    assert await status_of("POST", "/api/v1/namespaces/shop/pods", data=b"\x0a\x02",
                           headers={"Content-Type": "application/vnd.kubernetes.protobuf"}) == (
        400, "BadRequest")
    assert await status_of("POST", "/api/v1/namespaces/shop/pods", data=b"{}",
                           headers={"Content-Type": "application/yaml"}) == (415, "UnsupportedMediaType")
