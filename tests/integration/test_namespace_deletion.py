"""Deleting the app's namespace in one region fails the service over, as it would in Azure.

``kubectl delete namespace shop`` in the US terminates the namespace: its pods, its Service and the
Ingress that routed to it go, so the US ingress controller answers every path with its default backend's
404 (as ingress-nginx does with no Ingress left), Traffic Manager's probes fail, and its DNS answer moves
to Europe. The lab runs in this process at a high time scale; the ground truth and a DNS query say where
users go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rdatatype
import httpx
import pytest
from kubectlrun import run_kubectl

from drills.lab.groundtruth import read
from drills.lab.kube.store import NAMESPACES
from drills.lab.topology import DEFAULT
from drills.lab.world import World

SCALE = 200.0
"""Lab seconds per real second: Traffic Manager's four failed 30 s probes take about 0.6 s."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path / "lab") as world:
        yield world


async def test_deleting_the_app_namespace_in_the_us_fails_over_to_europe(world: World,
                                                                       tmp_path: Path) -> None:
    moved = asyncio.Event()
    world.traffic_manager.on_answer(lambda shares: moved.set() if shares.get("eu") == 1.0 else None)
    code, out, err = await run_kubectl(world.kubeconfig_file, tmp_path, "--context", "lab-us",
                                       "delete", "namespace", "shop")
    assert (code, out) == (0, 'namespace "shop" deleted\n'), err
    assert world.cluster("us").store.find(NAMESPACES, None, "shop") is None
    assert world.cluster("eu").store.find(NAMESPACES, None, "shop") is not None

    us = next(r for r in world.addresses.regions if r.name == "us")
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{us.address}:{world.addresses.service_port}/", timeout=5)
    assert (answer.status_code, answer.text) == (404, "default backend - 404\n")

    await asyncio.wait_for(moved.wait(), world.clock.to_real(600.0))
    truth = read(world.ground_truth_file)
    gone = next(e for e in truth if e["event"] == "replicas" and e["region"] == "us"
                and e["deployment"] == "web" and e["ready"] == 0)
    degraded = next(e for e in truth if e["event"] == "endpoint_status" and e["endpoint"] == "us"
                    and e["status"] == "Degraded")
    answers = [e for e in truth if e["event"] == "dns_answer"]
    assert (answers[-1]["previous"], answers[-1]["answer"]) == ("us", "eu")
    assert gone["lab"] <= degraded["lab"] <= answers[-1]["lab"]

    query = dns.message.make_query(world.topology.traffic_manager.fqdn, "A")
    reply = await dns.asyncquery.udp(query, world.addresses.dns_address, port=world.addresses.dns_port,
                                     timeout=2)
    cname = reply.find_rrset(reply.answer, query.question[0].name, query.question[0].rdclass,
                             dns.rdatatype.CNAME)
    assert str(cname[0].target) == "eu.endpoints.drill.test."
