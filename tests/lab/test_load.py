"""Offered load: users follow Traffic Manager's answer over the TTL, and a region past its capacity sheds
requests, through the lab's real ingress and Traffic Manager."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.ingress import Ingress
from drills.lab.kube.endpoints import follow
from drills.lab.kube.exposure import exposure, seed
from drills.lab.kube.store import DEPLOYMENTS, PODS, Obj, Store
from drills.lab.load import OfferedLoad, RegionLoad
from drills.lab.topology import DEFAULT, Topology
from drills.lab.trafficmanager import Endpoint, TrafficManager

SCALE = 60.0
LATE_S = 0.03
"""Real seconds a timer may fire late on a busy machine."""


def _topology(*, capacity: float | None = 50.0, us_load: float = 100.0, eu_load: float = 0.0,
              ttl: str = "30s") -> Topology:
    workloads = [w.model_dump(by_alias=True) for w in DEFAULT.workloads]
    workloads[0]["capacity"] = capacity
    return Topology.model_validate({
        "timeScale": SCALE, "workloads": workloads, "trafficManager": {"ttl": ttl},
        "regions": {"us": {"priority": 1, "load": us_load}, "eu": {"priority": 2, "load": eu_load}}})


def test_users_move_linearly_over_the_ttl_and_a_second_move_averages_over_it() -> None:
    load = OfferedLoad(_topology(us_load=300, eu_load=100), clock=LabClock(SCALE))
    assert load.offered("us", at=0.0) == 0.0  # before it follows Traffic Manager, nobody is sent
    load.follow({"us": 1.0})
    load.moved({"eu": 1.0}, at=100.0)
    assert load.offered("us", at=100.0) == 400.0
    assert load.offered("us", at=115.0) == pytest.approx(200.0)
    assert load.offered("eu", at=115.0) == pytest.approx(200.0)
    assert load.offered("eu", at=124.0) == pytest.approx(320.0)
    load.moved({"us": 1.0}, at=110.0)  # back, a third of the way through: caches hold both answers
    assert load.shares(at=120.0) == pytest.approx({"us": 20 / 30, "eu": 10 / 30})
    assert load.shares(at=140.0) == pytest.approx({"us": 1.0})
    load.moved({}, at=150.0)  # NXDOMAIN: users who learn it send nowhere
    assert load.offered("us", at=165.0) == pytest.approx(200.0)
    assert load.shares(at=180.0) == {}


def test_weighted_shares_split_the_load_and_ttl_zero_moves_at_once() -> None:
    load = OfferedLoad(_topology(us_load=300, eu_load=100, ttl="0s"), clock=LabClock(SCALE))
    load.follow({"us": 0.75, "eu": 0.25})
    assert (load.offered("us", at=1.0), load.offered("eu", at=1.0)) == (300.0, 100.0)
    load.moved({"eu": 1.0}, at=5.0)
    assert (load.offered("us", at=5.0), load.offered("eu", at=5.0)) == (0.0, 400.0)


@pytest.mark.parametrize(("offered", "capacity", "shed"), [
    (300.0, None, 0.0), (300.0, 300.0, 0.0), (200.0, 300.0, 0.0), (300.0, 150.0, 0.5), (400.0, 100.0, 0.75),
    (100.0, 0.0, 1.0),
])
def test_the_shed_share_is_what_capacity_cannot_carry(offered: float, capacity: float | None,
                                                      shed: float) -> None:
    load = RegionLoad(offered=offered, capacity=capacity, ready=3)
    assert (load.shed, load.failing) == (pytest.approx(shed), pytest.approx(shed))
    for serving in ("unavailable", "blackhole"):  # no app or no controller: every request fails
        assert RegionLoad(offered=offered, capacity=capacity, ready=0, serving=serving).failing == 1.0


def _region(clock: LabClock, *, app_pods: int) -> Store:
    store = Store(clock)
    for workload, pods in ((DEFAULT.ingress, 1), (DEFAULT.app, app_pods)):
        store.create(DEPLOYMENTS, {"metadata": {"namespace": workload.namespace, "name": workload.name},
                                   "spec": {"selector": {"matchLabels": {"app": workload.name}}}})
        for i in range(pods):
            store.create(PODS, _pod(workload.namespace, f"{workload.name}-{i}", workload.name))
    seed(store, exposure(DEFAULT.app, DEFAULT.ingress))
    follow(store, clock)
    return store


def _pod(namespace: str, name: str, app: str) -> Obj:
    return {"metadata": {"namespace": namespace, "name": name, "labels": {"app": app}},
            "status": {"podIP": "10.244.0.2", "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.fixture
def block() -> str:
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}"


@pytest.fixture
async def overloaded(block: str, tmp_path: Path) -> AsyncIterator[tuple[Ingress, str, GroundTruth]]:
    """The us ingress with one app pod of 50 requests/s capacity, offered 100 requests/s."""
    topology = _topology(capacity=50.0, us_load=100.0)
    clock = LabClock(SCALE)
    truth = GroundTruth(tmp_path / "ground-truth.jsonl", clock)
    load = OfferedLoad(topology, clock=clock, ground_truth=truth)
    ingress = Ingress("us", _region(clock, app_pods=1), topology, load=load, rng=random.Random(7))
    await ingress.start(f"{block}.11", 0)
    load.follow({"us": 1.0})
    yield ingress, f"http://{block}.11:{ingress.port}", truth
    await ingress.close()
    truth.close()


async def test_a_region_offered_twice_its_capacity_fails_half_the_requests(
        overloaded: tuple[Ingress, str, GroundTruth]) -> None:
    """200 requests, each failing with probability 0.5: 100 expected, sd 7.1; 65..135 is 5 sd, a false
    alarm about once in 1.7 million runs."""
    _, url, truth = overloaded
    statuses: Counter[tuple[int, str]] = Counter()
    async with httpx.AsyncClient() as client:
        for i in range(200):
            response = await client.get(f"{url}/" if i % 2 else f"{url}/healthz")
            statuses[(response.status_code, response.text)] += 1
    assert set(statuses) == {(200, "served by us\n"), (503, "upstream overloaded\n")}
    assert 65 <= statuses[(503, "upstream overloaded\n")] <= 135, statuses
    async with httpx.AsyncClient() as client:  # the default backend is not the app: never shed
        assert {(await client.get(f"{url}/nothing")).status_code for _ in range(20)} == {404}
    lines = [line for line in read(truth.path) if line["event"] == "load"]
    fields = ("region", "offered", "capacity", "ready", "serving", "failing")
    assert [tuple(line[f] for f in fields) for line in lines] == [("us", 100.0, 50.0, 1, "serving", 0.5)]


async def test_a_ready_pod_more_carries_the_load_and_is_recorded(
        overloaded: tuple[Ingress, str, GroundTruth]) -> None:
    ingress, url, truth = overloaded
    ingress._store.create(PODS, _pod("shop", "web-1", "web"))
    async with httpx.AsyncClient() as client:
        assert {(await client.get(url)).status_code for _ in range(100)} == {200}
    lines = [line for line in read(truth.path) if line["event"] == "load"]
    assert [(line["capacity"], line["ready"], line["failing"]) for line in lines] == [(50.0, 1, 0.5),
                                                                                     (100.0, 2, 0.0)]


async def test_the_load_follows_traffic_managers_answer_over_the_ttl(block: str, tmp_path: Path) -> None:
    """us disabled at t0: Europe's offered load climbs in ten steps of a tenth of the TTL to all users'."""
    topology = _topology(capacity=None, us_load=300.0, eu_load=100.0)
    clock = LabClock(SCALE)
    truth = GroundTruth(tmp_path / "ground-truth.jsonl", clock)
    load = OfferedLoad(topology, clock=clock, ground_truth=truth)
    for region in ("us", "eu"):
        load.add_region(region, lambda: ("serving", 3))
    # Nothing listens on the endpoints: their probes fail, but routing alone moves the name here.
    tm = TrafficManager(topology, [Endpoint("us", "us.endpoints.drill.test", f"{block}.11", 9, priority=1),
                                   Endpoint("eu", "eu.endpoints.drill.test", f"{block}.12", 9, priority=2)],
                        clock=clock, ground_truth=truth)
    await tm.start(f"{block}.53")
    load.follow(tm.shares())
    tm.on_answer(load.moved)
    try:
        tm.set_enabled("us", False)
        t0 = clock.now()
        ttl = topology.traffic_manager.ttl
        await clock.sleep(ttl * 1.2)
    finally:
        await load.close()
        await tm.close()
        truth.close()
    lines: list[dict[str, Any]] = read(truth.path)
    at = next(i for i, line in enumerate(lines) if line["event"] == "dns_answer" and line["answer"] == "eu")
    moved = lines[at]
    assert [line["offered"] for line in lines[:at] if line["event"] == "load"] == [400.0, 0.0]  # us, eu
    shift = [line for line in lines[at:] if line["event"] == "load" and line["region"] == "eu"]
    assert len(shift) == 10  # a line at each tenth of the TTL (the first, at 0, changes nothing)
    for step, line in enumerate(shift, start=1):
        assert line["lab"] - t0 == pytest.approx(ttl * step / 10, abs=LATE_S * SCALE)
        # offered at the instant written: 400 rps x the share of caches expired by then
        assert line["offered"] == pytest.approx(400.0 * min((line["lab"] - moved["lab"]) / ttl, 1.0), abs=0.5)
    assert shift[-1]["offered"] == 400.0


async def test_traffic_managers_probes_are_shed_too(block: str, tmp_path: Path) -> None:
    """A region offered a million requests/s with one pod of 1 request/s fails (almost) every request,
    Traffic Manager's health probes included: its endpoint goes Degraded, though its pods are Ready."""
    topology = _topology(capacity=1.0, us_load=1_000_000.0)
    clock = LabClock(SCALE)
    truth = GroundTruth(tmp_path / "ground-truth.jsonl", clock)
    load = OfferedLoad(topology, clock=clock, ground_truth=truth)
    ingresses = {name: Ingress(name, _region(clock, app_pods=1), topology, load=load)
                 for name in ("us", "eu")}
    await ingresses["us"].start(f"{block}.11", 0)
    port = ingresses["us"].port or 0
    await ingresses["eu"].start(f"{block}.12", port)
    load.follow({"us": 1.0})  # held there: this test does not let the load follow the answer
    tm = TrafficManager(topology, [
        Endpoint("us", "us.endpoints.drill.test", f"{block}.11", port, priority=1),
        Endpoint("eu", "eu.endpoints.drill.test", f"{block}.12", port, priority=2)],
        clock=clock, ground_truth=truth)
    await tm.start(f"{block}.53")
    try:
        monitor = topology.traffic_manager.monitor
        await clock.sleep((monitor.tolerated_failures + 1.5) * monitor.interval)
        assert tm.statuses() == {"us": "Degraded", "eu": "Online"}
        assert ingresses["us"].ready_app_pods() == 1
    finally:
        await tm.close()
        for ingress in ingresses.values():
            await ingress.close()
        truth.close()
