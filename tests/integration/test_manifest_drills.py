"""A team's own manifests drive the drills (``--manifests``): the example shop (a Namespace, an app
Deployment behind a Service and an Ingress, a PodDisruptionBudget, an ingress controller Deployment)
gets the verdicts and numbers the built-in design gets, and a Service selector mistake in it is a
design flaw a drill sees: the region's ingress answers 503 and Traffic Manager fails over.

The built-in design's numbers (tests/integration/test_us_outage.py, test_corpus.py): Traffic Manager
probes every I = 10 s, tolerates N = 3 failures, times out at T = 5 s; a dead ingress hangs, so the
name moves within [N*I + T, (N+1)*I + T) = [35 s, 45 s) of the fault; a probe answered 503 fails at
once, so a region whose app is unreachable moves within [N*I, (N+1)*I] = [30 s, 40 s].
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
from drillrun import ROOT, SCENARIOS, drill_run, ground_truth
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.environment import Environment, load_environment
from drills.errors import LabError
from drills.labprocess import LabProcess, start_lab

pytestmark = pytest.mark.lab

EXAMPLE = ROOT / "examples" / "manifests" / "shop"
ZONE_SCALE = 20.0
"""zone-cordon promises users.downtime < 10s: at 20, only a stall of half a real second reaches it."""
DNS_SCALE = 120.0
"""us-outage's bounds are minutes: at 120 a stall of a real second is still far inside them."""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """``drill lab up --manifests examples/manifests/shop``."""
    with start_lab(manifests=EXAMPLE, time_scale=ZONE_SCALE,
                   directory=tmp_path_factory.mktemp("shop-lab")) as process:
        yield process


@pytest.fixture(scope="module")
def shop_env(shop: LabProcess) -> Environment:
    return load_environment(shop.environment_file)


def test_us_outage_on_the_teams_manifests_gets_the_built_in_designs_verdict_and_numbers(
        tmp_path: Path) -> None:
    run = drill_run(tmp_path, str(SCENARIOS / "us-outage.yaml"), "--manifests", str(EXAMPLE),
                    "--time-scale", str(DNS_SCALE), "--trials", "1")
    assert (run.code, run.record["verdict"]) == (0, "passed"), run.output
    assert "lab: not modelled, kept out: " in run.output
    assert "1 HorizontalPodAutoscaler" in run.output
    assert all(e["outcome"] == "passed" for e in run.record["expectations"])
    failover = run.metric("dns.failover_time")
    late = 0.5 * DNS_SCALE  # real time the lab's parts take, multiplied by its clock
    assert 35.0 - failover["error"] <= failover["value"] < 45.0 + failover["error"] + late, failover
    client = run.metric("dns.client_failover_time")
    assert client["value"] == pytest.approx(failover["value"] + 30.0, abs=0.01)
    assert run.metric("web_eu.min_ready")["value"] == 3
    windows = {e["metric"]: e["window"]["text"] for e in run.record["design"]["expectations"] if e["window"]}
    assert windows["dns.failover_time"] == "[35 s, 45 s)"  # the design review read the team's objects


def test_zone_cordon_on_the_teams_manifests_gets_the_built_in_designs_verdict(
        shop: LabProcess, shop_env: Environment, tmp_path: Path) -> None:
    assert shop_env.regions["us"].ingress.deployment == "ingress-nginx-controller"
    run = drill_run(tmp_path, str(SCENARIOS / "zone-cordon.yaml"), "--env", str(shop.environment_file),
                    "--trials", "1")
    assert (run.code, run.record["verdict"]) == (0, "passed"), run.output
    assert run.metric("web_us.min_ready")["value"] >= 2
    assert run.metric("web_us.time_to_restore")["value"] < 60.0
    # The budget that held web is the team's; the built-in one was kept out.
    k8s_config.load_kube_config(str(shop_env.regions["us"].kubeconfig), context="lab-us")
    budgets = k8s.PolicyV1Api().list_namespaced_pod_disruption_budget("shop").items
    assert [b.metadata.name for b in budgets] == ["web-pdb"]
    # The kubernetes Service's endpoint is the API server itself.
    api = httpx.URL(k8s.CoreV1Api().api_client.configuration.host)
    subset = k8s.CoreV1Api().read_namespaced_endpoints("kubernetes", "default").subsets[0]
    assert ([a.ip for a in subset.addresses], [p.port for p in subset.ports]) == ([api.host], [api.port])


def test_a_service_selector_mistake_makes_the_ingress_answer_503_and_traffic_manager_fail_over(
        shop: LabProcess, shop_env: Environment) -> None:
    k8s_config.load_kube_config(str(shop_env.regions["us"].kubeconfig), context="lab-us")
    core = k8s.CoreV1Api()
    us = next(re.search(r"ingress (http://\S+)", line)[1] for line in shop.output  # type: ignore[index]
              if line.strip().startswith("us ") and "ingress http" in line)
    assert httpx.get(us).status_code == 200
    assert _answer(shop_env) == "us"
    # The load balancer's address, as the Service and the Ingress publish it, is where the ingress listens.
    address = httpx.URL(us).host
    balancer = core.read_namespaced_service("ingress-nginx-controller", "ingress-nginx").status.load_balancer
    assert [(i.ip, i.ip_mode) for i in balancer.ingress] == [(address, "VIP")]
    published = k8s.NetworkingV1Api().read_namespaced_ingress("web", "shop").status.load_balancer
    assert [i.ip for i in published.ingress] == [address]
    core.patch_namespaced_service("web", "shop", {"spec": {"selector": {"app": "wbe"}}})
    patched = time.monotonic()
    try:
        assert core.read_namespaced_endpoints("web", "shop").subsets is None
        response = httpx.get(us)
        assert (response.status_code, response.text) == (503, "no healthy upstream\n")
        moved = _await_answer(shop_env, "eu", timeout=60.0 * 3 / ZONE_SCALE + 5.0)
        # Monitor probes answered 503 fail at once: Degraded on the 4th, [30 s, 40 s] after the patch.
        lab_seconds = (moved - patched) * ZONE_SCALE
        assert 30.0 - 0.5 * ZONE_SCALE <= lab_seconds <= 40.0 + 0.5 * ZONE_SCALE, lab_seconds
        truth = [e for e in ground_truth(shop_env)
                 if e["event"] == "endpoint_status" and e["endpoint"] == "us"]
        assert truth[-1]["status"] == "Degraded", truth[-1]
    finally:
        core.patch_namespaced_service("web", "shop", {"spec": {"selector": {"app": "web"}}})
    _await_answer(shop_env, "us", timeout=60.0 * 3 / ZONE_SCALE + 5.0)


def _answer(env: Environment) -> str:
    """The region the Traffic Manager name points at now (its CNAME target's first label)."""
    host, port = env.traffic_manager.nameservers[0].rsplit(":", 1)
    query = dns.message.make_query(env.traffic_manager.fqdn, dns.rdatatype.A)
    response = dns.query.udp(query, host, port=int(port), timeout=2.0)
    target = next(str(rr.target) for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME
                  for rr in rrset)
    return target.split(".", 1)[0]


def _await_answer(env: Environment, region: str, *, timeout: float) -> float:
    """Ask as a resolver does, every 20 ms, until the name points at ``region``; the real instant."""
    deadline = time.monotonic() + timeout
    while _answer(env) != region:
        assert time.monotonic() < deadline, f"the name did not move to {region} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic()


def test_a_manifest_the_api_server_refuses_is_an_error_at_its_place_and_no_lab_is_left(
        tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "dns.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
        "# Asks for the address the cluster's DNS Service already has.\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: shop}\n"
        "spec: {clusterIP: 10.0.0.10, selector: {app: dns}, ports: [{port: 53}]}\n")
    lab = LabProcess(manifests=manifests, time_scale=DNS_SCALE, directory=tmp_path / "lab")
    with pytest.raises(LabError) as raised:
        lab.start()
    message = str(raised.value)
    assert "exited with status 2" in message
    assert f"{manifests / 'dns.yaml'}:6:1: Service shop/dns: region us's API server refused it (422): " \
           'Service "dns" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.10"}: ' \
           "failed to allocate IP 10.0.0.10: provided IP is already allocated" in message
    assert not (tmp_path / "lab" / "environment.yaml").exists()
