"""The regional ingress: serves, answers 503, or holds connections like a load balancer with no backend."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from drills.lab.clock import LabClock
from drills.lab.ingress import Ingress, serving_state
from drills.lab.kube.endpoints import follow
from drills.lab.kube.exposure import exposure, seed
from drills.lab.kube.store import DEPLOYMENTS, INGRESSES, NETWORK_POLICIES, PODS, SERVICES, Obj, Store
from drills.lab.topology import DEFAULT, Topology

TOPOLOGY: Topology = DEFAULT  # app shop/web, ingress ingress-nginx/ingress-nginx-controller


def _deployment(namespace: str, name: str, app: str) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}}}}


def _pod(namespace: str, name: str, app: str, *, ready: bool) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name, "labels": {"app": app}},
            "spec": {"nodeName": "us-zone-1-0"},
            "status": {"phase": "Running", "podIP": f"10.244.0.{random.randint(2, 250)}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _policy(namespace: str, name: str, spec: Obj) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def _set_ready(store: Store, namespace: str, name: str, ready: bool) -> None:
    def change(pod: Obj) -> None:
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    store.mutate(PODS, namespace, name, change)


def _expose(store: Store, topology: Topology) -> None:
    """The topology's Services and Ingress, their EndpointSlices kept in step with the pods."""
    seed(store, exposure(topology.app, topology.ingress))
    follow(store, store.clock)


@pytest.fixture
def store() -> Store:
    """A region where the controller and the app each run two Ready pods behind the built-in design's
    Services and Ingress, and a bystander pod."""
    store = Store(LabClock(60))
    _expose(store, TOPOLOGY)
    store.create(DEPLOYMENTS, _deployment("ingress-nginx", "ingress-nginx-controller", "ingress-nginx"))
    store.create(DEPLOYMENTS, _deployment("shop", "web", "web"))
    for i in range(2):
        store.create(PODS, _pod("ingress-nginx", f"controller-{i}", "ingress-nginx", ready=True))
        store.create(PODS, _pod("shop", f"web-{i}", "web", ready=True))
    store.create(PODS, _pod("shop", "cart-0", "cart", ready=True))
    return store


@pytest.fixture
def host() -> str:
    """A random loopback address, so that parallel tests and labs never share one."""
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}.11"


@pytest.fixture
async def ingress(store: Store, host: str) -> AsyncIterator[Ingress]:
    ingress = Ingress("us", store, TOPOLOGY)
    await ingress.start(host, 0)
    yield ingress
    await ingress.close()


def _url(ingress: Ingress, host: str, path: str = "/") -> str:
    return f"http://{host}:{ingress.port}{path}"


async def test_serving_region_answers_200_and_names_itself(ingress: Ingress, host: str) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/", "/healthz", "/?x=1", "/healthz?probe=1"):
            response = await client.get(_url(ingress, host, path))
            assert response.status_code == 200
            assert response.headers["X-Drill-Region"] == "us"
            assert response.text == "served by us\n"


async def test_other_paths_reach_the_default_backend_404_app_or_no_app(
        ingress: Ingress, host: str, store: Store) -> None:
    async with httpx.AsyncClient() as client:
        for ready in (True, False):  # ingress-nginx's default backend answers with or without the app
            for i in range(2):
                _set_ready(store, "shop", f"web-{i}", ready)
            for path in ("/healthzz", "/any/path?x=1", "/healthz/", "/index.html"):
                response = await client.get(_url(ingress, host, path))
                assert (response.status_code, response.text) == (404, "default backend - 404\n"), path
            assert (await client.get(_url(ingress, host, "/"))).status_code == (200 if ready else 503)


async def test_the_apps_health_path_is_the_topologys(store: Store, host: str) -> None:
    topology = Topology.model_validate({"workloads": [
        {**w.model_dump(by_alias=True), "healthPath": "/ready"} if w.role == "app"
        else w.model_dump(by_alias=True) for w in DEFAULT.workloads]})
    store.delete(INGRESSES, "shop", "web")
    store.create(INGRESSES, next(o for r, o in exposure(topology.app, topology.ingress) if r is INGRESSES))
    ingress = Ingress("us", store, topology)
    await ingress.start(host, 0)
    try:
        async with httpx.AsyncClient() as client:
            statuses = {path: (await client.get(_url(ingress, host, path))).status_code
                        for path in ("/", "/ready", "/healthz")}
    finally:
        await ingress.close()
    assert statuses == {"/": 200, "/ready": 200, "/healthz": 404}


async def test_keep_alive_connection_serves_many_requests(ingress: Ingress, host: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            assert (await client.get(_url(ingress, host))).status_code == 200
        assert ingress.open_connections == 1


async def test_app_without_ready_pod_gives_503(ingress: Ingress, host: str, store: Store) -> None:
    _set_ready(store, "shop", "web-0", False)
    async with httpx.AsyncClient() as client:
        assert (await client.get(_url(ingress, host))).status_code == 200  # web-1 still serves
        _set_ready(store, "shop", "web-1", False)
        response = await client.get(_url(ingress, host, "/healthz"))
    assert response.status_code == 503
    assert response.text == "no healthy upstream\n"


@pytest.mark.parametrize(("namespace", "spec", "state"), [
    ("shop", {"podSelector": {}, "policyTypes": ["Ingress"]}, "unavailable"),
    ("shop", {"podSelector": {"matchLabels": {"app": "web"}}}, "unavailable"),  # Ingress implied
    ("shop", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"], "ingress": []},
     "unavailable"),
    ("shop", {"podSelector": {"matchLabels": {"app": "cart"}}, "policyTypes": ["Ingress"]}, "serving"),
    ("shop", {"podSelector": {}, "policyTypes": ["Egress"]}, "serving"),
    ("shop", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": []}]}, "serving"),
    ("default", {"podSelector": {}, "policyTypes": ["Ingress"]}, "serving"),
    ("ingress-nginx", {"podSelector": {}, "policyTypes": ["Ingress"]}, "blackhole"),
])
def test_network_policy_isolates_only_when_it_denies_all_ingress_to_the_pods(
        store: Store, namespace: str, spec: Obj, state: str) -> None:
    store.create(NETWORK_POLICIES, _policy(namespace, "policy", spec))
    assert serving_state(store, TOPOLOGY) == state


def test_policy_isolating_one_pod_leaves_the_other_serving(store: Store) -> None:
    def label(pod: Obj) -> None:
        pod["metadata"]["labels"]["isolated"] = "yes"
    store.mutate(PODS, "shop", "web-0", label)
    isolate = {"podSelector": {"matchLabels": {"isolated": "yes"}}}
    store.create(NETWORK_POLICIES, _policy("shop", "isolate", isolate))
    assert serving_state(store, TOPOLOGY) == "serving"
    _set_ready(store, "shop", "web-1", False)
    assert serving_state(store, TOPOLOGY) == "unavailable"


def test_missing_service_or_controller_deployment(store: Store) -> None:
    store.delete(SERVICES, "shop", "web")
    assert serving_state(store, TOPOLOGY) == "unavailable"
    store.delete(DEPLOYMENTS, "ingress-nginx", "ingress-nginx-controller")
    assert serving_state(store, TOPOLOGY) == "blackhole"


def test_terminating_controller_pods_do_not_serve(store: Store) -> None:
    def terminate(pod: Obj) -> None:
        pod["metadata"]["deletionTimestamp"] = "2026-11-22T03:18:00Z"
    for i in range(2):
        store.mutate(PODS, "ingress-nginx", f"controller-{i}", terminate)
    assert serving_state(store, TOPOLOGY) == "blackhole"


async def _held_connection(ingress: Ingress, host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection whose request the black hole swallowed: nothing comes back within 0.3 s."""
    reader, writer = await asyncio.open_connection(host, ingress.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: us\r\n\r\n")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await reader.read(1)
    return reader, writer


async def _until_no_connections(ingress: Ingress) -> None:
    async with asyncio.timeout(2):
        await ingress.wait_idle()
    assert ingress.open_connections == 0


async def test_blackhole_accepts_and_never_answers_until_the_client_gives_up(
        ingress: Ingress, host: str, store: Store) -> None:
    for i in range(2):
        _set_ready(store, "ingress-nginx", f"controller-{i}", False)
    tasks_before = len(asyncio.all_tasks())
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(_url(ingress, host, "/healthz"))
    held = [await _held_connection(ingress, host) for _ in range(3)]
    assert ingress.open_connections == 3
    for _, writer in held:
        writer.close()
        await writer.wait_closed()
    await _until_no_connections(ingress)
    assert len(asyncio.all_tasks()) == tasks_before


async def test_region_recovers_for_new_requests(ingress: Ingress, host: str, store: Store) -> None:
    for i in range(2):
        _set_ready(store, "ingress-nginx", f"controller-{i}", False)
    _, writer = await _held_connection(ingress, host)
    _set_ready(store, "ingress-nginx", "controller-1", True)
    async with httpx.AsyncClient() as client:
        assert (await client.get(_url(ingress, host))).status_code == 200
    writer.close()
    await writer.wait_closed()


async def test_close_releases_held_connections(store: Store, host: str) -> None:
    ingress = Ingress("us", store, TOPOLOGY)
    await ingress.start(host, 0)
    for i in range(2):
        _set_ready(store, "ingress-nginx", f"controller-{i}", False)
    reader, writer = await _held_connection(ingress, host)
    await ingress.close()
    assert ingress.open_connections == 0
    assert await reader.read() == b""  # the client sees the connection end instead of hanging forever
    writer.close()


async def test_taken_port_raises_oserror(ingress: Ingress, host: str, store: Store) -> None:
    other = Ingress("eu", store, TOPOLOGY)
    with pytest.raises(OSError, match="in use"):
        await other.start(host, ingress.port or 0)


async def test_new_connection_per_request_is_cheap(ingress: Ingress, host: str) -> None:
    """Drill's probes open a connection per request; 200 in a row must all be served and released."""
    for _ in range(200):
        reader, writer = await asyncio.open_connection(host, ingress.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: us\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b"served by us\n")
    await _until_no_connections(ingress)


def test_pods_on_a_powered_off_vm_serve_nothing_although_the_api_still_shows_them_ready(store: Store) -> None:
    stopped: set[str] = set()
    ingress = Ingress("us", store, TOPOLOGY, running=lambda node: node not in stopped)
    assert ingress.state() == "serving"
    stopped.add("us-zone-1-0")  # every pod of the fixture runs there
    ingress.power_changed()
    assert ingress.state() == "blackhole"
    assert serving_state(store, TOPOLOGY, lambda node: node not in stopped) == "blackhole"
    stopped.clear()
    ingress.power_changed()
    assert ingress.state() == "serving"
