"""Services, Endpoints, EndpointSlices and Ingresses of a running region, through kubectl: what a user
sees of them, and a Service selector mistake leaving the region's ingress nothing to send to."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import pytest
from kubectlrun import AsyncKubectl

from drills.lab.ingress import serving_state
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.store import ENDPOINT_SLICES, ENDPOINTS, PODS, Obj, Store
from drills.lab.topology import DEFAULT


@pytest.fixture
async def cluster(make_cluster: Callable[..., Awaitable[Cluster]]) -> Cluster:
    """The built-in design's ``us`` region, settled; its pods take 20 lab minutes to terminate (given the
    grace period), so that a pass sees them terminating at this scale however loaded the machine."""
    return await make_cluster(DEFAULT.model_copy(update={"termination_time": 1200.0}))


@pytest.fixture
def store(cluster: Cluster) -> Store:
    """The running cluster's store: what the API server fixtures serve."""
    return cluster.store


@pytest.fixture
def region(cluster: Cluster, kubectl: AsyncKubectl) -> tuple[Cluster, AsyncKubectl]:
    """The region and kubectl against its API server over HTTPS."""
    return cluster, kubectl


def _rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def _json(text: str) -> Obj:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


async def test_services_endpoints_ingress_and_cluster_info_as_kubectl_shows_them(
        region: tuple[Cluster, AsyncKubectl]) -> None:
    _, kubectl = region
    code, out, err = await kubectl("get", "services", "-A")
    assert code == 0, err
    rows = {(r[0], r[1]): r for r in _rows(out)[1:]}
    assert _rows(out)[0] == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[("default", "kubernetes")][2:6] == ["ClusterIP", "10.0.0.1", "<none>", "443/TCP"]
    assert rows[("kube-system", "kube-dns")][2:6] == ["ClusterIP", "10.0.0.10", "<none>", "53/UDP,53/TCP"]
    web = rows[("shop", "web")]
    assert (web[2], web[4], web[5]) == ("ClusterIP", "<none>", "80/TCP")
    assert re.fullmatch(r"10\.0\.(\d+)\.(\d+)", web[3])
    assert web[3] not in ("10.0.0.1", "10.0.0.10")
    controller = rows[("ingress-nginx", "ingress-nginx-controller")]
    assert (controller[2], controller[4]) == ("LoadBalancer", "<pending>")
    assert re.fullmatch(r"80:3\d{4}/TCP", controller[5])

    code, out, err = await kubectl("get", "endpoints", "web", "-n", "shop")
    assert code == 0, err
    addresses = _rows(out)[1][1].split(",")
    assert len(addresses) == 3
    assert all(re.fullmatch(r"10\.244\.\d+\.\d+:8080", a) for a in addresses)

    code, out, err = await kubectl("get", "endpointslices", "-n", "shop", "-l",
                                   "kubernetes.io/service-name=web", "-o", "json")
    assert code == 0, err
    slices = _json(out)["items"]
    assert len(slices) == 1
    piece = slices[0]
    assert piece["metadata"]["name"].startswith("web-")
    assert piece["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert piece["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert (piece["addressType"], piece["ports"]) == ("IPv4", [{"name": "http", "port": 8080,
                                                               "protocol": "TCP"}])
    assert sorted(e["zone"] for e in piece["endpoints"]) == ["zone-1", "zone-2", "zone-3"]
    assert all(e["conditions"] == {"ready": True, "serving": True, "terminating": False}
               and e["nodeName"].startswith("aks-us-") and e["targetRef"]["kind"] == "Pod"
               for e in piece["endpoints"])

    code, out, err = await kubectl("get", "ingress,ingressclass", "-A")
    assert code == 0, err
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[1]) == ["shop", "ingress.networking.k8s.io/web", "nginx", "*", "80",
                                             re.split(r"\s{2,}", lines[1])[-1]]
    assert "k8s.io/ingress-nginx" in out

    code, out, err = await kubectl("cluster-info")
    assert code == 0, err
    assert "Kubernetes control plane is running at https://" in out
    assert "CoreDNS is running at https://" in out


async def test_a_selector_that_matches_no_pod_leaves_the_service_without_endpoints_and_the_ingress_503(
        region: tuple[Cluster, AsyncKubectl]) -> None:
    cluster, kubectl = region
    assert serving_state(cluster.store, DEFAULT) == "serving"
    code, _, err = await kubectl("patch", "service", "web", "-n", "shop", "--type", "merge",
                                 "-p", '{"spec":{"selector":{"app":"wbe"}}}')
    assert code == 0, err
    await cluster.until(lambda: serving_state(cluster.store, DEFAULT) == "unavailable", within=30_000.0)
    code, out, _ = await kubectl("get", "endpoints", "web", "-n", "shop")
    assert _rows(out)[1][1] == "<none>"
    code, out, _ = await kubectl("get", "endpointslices", "-n", "shop", "-l",
                                 "kubernetes.io/service-name=web", "-o", "json")
    assert [s.get("endpoints") for s in _json(out)["items"]] == [None]
    # The cluster IP survived the patch: it is the Service's for life.
    code, out, _ = await kubectl("get", "service", "web", "-n", "shop", "-o", "jsonpath={.spec.clusterIP}")
    before = out
    code, _, err = await kubectl("patch", "service", "web", "-n", "shop", "--type", "merge",
                                 "-p", '{"spec":{"selector":{"app":"web"}}}')
    assert code == 0, err
    await cluster.until(lambda: serving_state(cluster.store, DEFAULT) == "serving", within=30_000.0)
    code, out, _ = await kubectl("get", "service", "web", "-n", "shop", "-o", "jsonpath={.spec.clusterIP}")
    assert out == before


async def test_not_ready_and_terminating_pods_as_each_controller_lists_them(
        region: tuple[Cluster, AsyncKubectl]) -> None:
    cluster, kubectl = region
    pods = [p["metadata"]["name"] for p in cluster.store.iter(PODS, "shop")]
    unready, leaving = pods[0], pods[1]

    def not_ready(pod: Obj) -> None:
        for condition in pod["status"]["conditions"]:
            if condition["type"] == "Ready":
                condition["status"] = "False"

    cluster.store.mutate(PODS, "shop", unready, not_ready)
    seen: dict[str, Obj] = {}

    def terminating_listed() -> bool:
        # Caught as the change commits: at this scale a pod terminates within milliseconds.
        pieces = list(cluster.store.iter(ENDPOINT_SLICES, "shop"))
        conditions = {e["targetRef"]["name"]: e["conditions"]
                      for s in pieces for e in s.get("endpoints") or []}
        if (conditions.get(leaving) or {}).get("terminating"):
            seen.update(conditions=conditions, endpoints=cluster.store.get(ENDPOINTS, "shop", "web"))
            return True
        return False

    waiting = asyncio.ensure_future(cluster.until(terminating_listed, within=30_000.0))
    code, _, err = await kubectl("delete", "pod", leaving, "-n", "shop", "--wait=false",
                                 "--grace-period=1200")
    assert code == 0, err
    await waiting
    assert seen["conditions"][unready] == {"ready": False, "serving": False, "terminating": False}
    assert seen["conditions"][leaving] == {"ready": False, "serving": True, "terminating": True}
    listed = {a["targetRef"]["name"]: kind for s in seen["endpoints"]["subsets"]
              for kind in ("addresses", "notReadyAddresses") for a in s.get(kind) or []}
    assert listed[unready] == "notReadyAddresses"
    assert leaving not in listed  # a terminating pod leaves Endpoints at once

    code, out, err = await kubectl("get", "endpoints", "web", "-n", "shop", "-o", "json")
    assert code == 0, err
    assert any(a["targetRef"]["name"] == unready for s in _json(out)["subsets"]
               for a in s.get("notReadyAddresses") or [])
