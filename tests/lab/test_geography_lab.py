"""Geography in a lab process, driven as users drive it: the US ingress killed through the kubernetes
client, the name asked with dnspython from each region's users' subnet, the ground truth read back.

Performance routing and Geographic routing with a nested Priority fallback move the US users to
Europe once the US endpoint is Degraded, and with them their load; Geographic routing without a
fallback keeps answering the Degraded US endpoint to them. Europe's users' answer never changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rdatatype
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.environment import Environment, load_environment
from drills.lab.groundtruth import read
from drills.labprocess import start_lab

pytestmark = pytest.mark.lab

SCALE = 100.0
"""Detection (35-45 lab seconds with the default monitor) takes under half a real second."""

POLL_S = 0.02
"""Real seconds between looks at the ground truth a lab process writes (another process: no event to
await)."""

US_USERS, EU_USERS = "198.51.100.0", "203.0.113.0"


def _answer(env: Environment, subnet: str) -> str:
    """The region the name's CNAME names for a client in ``subnet``."""
    host, port = env.traffic_manager.nameservers[0].split(":")
    query = dns.message.make_query(env.traffic_manager.fqdn, dns.rdatatype.A, use_edns=0,
                                   options=[dns.edns.ECSOption(subnet, 24)])
    response = dns.query.udp(query, host, port=int(port), timeout=2)
    return env.region_of_target(str(response.answer[0][0].target)) or "?"


def _wait_truth(env: Environment, found: Any, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """The first ground-truth line ``found`` holds for, polling the lab's file."""
    assert env.lab is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in read(Path(env.lab.ground_truth)):
            if found(line):
                return line
        time.sleep(POLL_S)
    pytest.fail("the ground truth never showed what the test waited for")


@pytest.fixture
def killed_us(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Environment]:
    """A lab with the topology ``request.param`` whose US ingress is scaled to 0 once the answers are
    checked, until the US endpoint is Degraded; restored afterwards."""
    topology = tmp_path / "topology.yaml"
    topology.write_text(request.param)
    with start_lab(topology=topology, time_scale=SCALE, directory=tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        assert (_answer(env, US_USERS), _answer(env, EU_USERS)) == ("us", "eu")
        region = env.regions["us"]
        api = k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
        apps = k8s.AppsV1Api(api)
        ingress = region.ingress
        replicas = apps.read_namespaced_deployment_scale(ingress.deployment, ingress.namespace).spec.replicas
        try:
            apps.patch_namespaced_deployment_scale(ingress.deployment, ingress.namespace,
                                                   {"spec": {"replicas": 0}})
            _wait_truth(env, lambda line: line["event"] == "endpoint_status" and line["endpoint"] == "us"
                        and line["status"] == "Degraded")
            yield env
        finally:
            apps.patch_namespaced_deployment_scale(ingress.deployment, ingress.namespace,
                                                   {"spec": {"replicas": replicas}})
            api.close()


def _answers(env: Environment, vantage: str) -> list[str | None]:
    assert env.lab is not None
    return [line["answer"] for line in read(Path(env.lab.ground_truth))
            if line["event"] == "dns_answer" and line["vantage"] == vantage]


MOVES = ["trafficManager: {routing: Performance}\n",
         "trafficManager: {routing: Geographic, geographicFallback: priority}\n"]


@pytest.mark.parametrize("killed_us", MOVES, indirect=True, ids=["performance", "geographic-fallback"])
def test_the_us_users_and_their_load_move_to_europe_and_europes_users_stay(killed_us: Environment) -> None:
    env = killed_us
    assert (_answer(env, US_USERS), _answer(env, EU_USERS)) == ("eu", "eu")
    assert _answers(env, "us") == ["us", "eu"]
    assert _answers(env, "eu") == ["eu"]
    # Each region's users send 100 requests/s: Europe carries both once the US users' caches expired.
    _wait_truth(env, lambda line: line["event"] == "load" and line["region"] == "eu"
                and line["offered"] == 200)


@pytest.mark.parametrize("killed_us", ["trafficManager: {routing: Geographic}\n"], indirect=True,
                         ids=["geographic"])
def test_geographic_without_fallback_keeps_us_users_on_the_dead_region(killed_us: Environment) -> None:
    env = killed_us
    assert env.traffic_manager.geographic_fallback == "none"
    assert (_answer(env, US_USERS), _answer(env, EU_USERS)) == ("us", "eu")
    time.sleep(30 / SCALE * 1.5)  # longer than the TTL: a move of the users' load would have shown
    assert _answers(env, "us") == ["us"]
    assert _answers(env, "eu") == ["eu"]
    assert env.lab is not None
    offered = [line["offered"] for line in read(Path(env.lab.ground_truth))
               if line["event"] == "load" and line["region"] == "eu"]
    assert set(offered) == {100.0}
