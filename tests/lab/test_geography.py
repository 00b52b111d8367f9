"""Performance and Geographic routing: the answer by where the client is (EDNS Client Subnet or the
query's source), the scope echoed, what a Degraded or Disabled endpoint changes for whom, the ground
truth per vantage point, each region's users' load following their own answer, and the environment
file naming each region's users."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from drills.environment import load_environment
from drills.lab.clock import LabClock
from drills.lab.files import LabAddresses, RegionAddress, write_environment
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.load import OfferedLoad
from drills.lab.topology import Topology, load_topology
from drills.lab.trafficmanager import DEGRADED, Endpoint, TrafficManager

FQDN = "shop.trafficmanager.net"
SCALE = 100.0
US_USERS, EU_USERS, ELSEWHERE = "198.51.100.0", "203.0.113.0", "192.0.2.0"
"""Addresses in the default regions' users' subnets, and in neither (RFC 5737's three ranges)."""


class _Health(asyncio.Protocol):
    """A region's front door for the monitor: 200 while healthy, 500 once failed."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            status = "200 OK" if self._door.healthy else "500 Internal Server Error"
            self._transport.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            self._transport.close()


@dataclass
class FrontDoor:
    host: str
    healthy: bool = True
    port: int = 0
    server: asyncio.Server | None = None

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Health(self), self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]


class WatchedGroundTruth(GroundTruth):
    """The ground truth, and a way to await an endpoint's status."""

    def __init__(self, path: Path, clock: LabClock) -> None:
        super().__init__(path, clock)
        self._statuses: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def record(self, event: str, **fields: Any) -> None:
        super().record(event, **fields)
        if event == "endpoint_status":
            self._statuses.append((fields["endpoint"], fields["status"]))
            self._changed.set()

    async def status(self, endpoint: str, status: str, *, after: int = 0) -> int:
        """Wait until ``endpoint`` took ``status`` (the ``after``-th status change on); its index."""
        async with asyncio.timeout(5):
            while True:
                for i, seen in enumerate(self._statuses[after:], start=after):
                    if seen == (endpoint, status):
                        return i
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Profile:
    tm: TrafficManager
    truth_log: WatchedGroundTruth
    truth_path: Path
    clock: LabClock
    doors: dict[str, FrontDoor]
    dns: tuple[str, int]

    async def ask(self, subnet: str | None, prefix: int = 24) -> dns.message.Message:
        options = [dns.edns.ECSOption(subnet, prefix)] if subnet is not None else []
        query = dns.message.make_query(FQDN, dns.rdatatype.A, use_edns=0 if options else None,
                                       options=options)
        return await dns.asyncquery.udp(query, self.dns[0], port=self.dns[1], timeout=2)

    async def answer(self, subnet: str | None) -> str | None:
        """The region the CNAME names for a client at ``subnet`` (None: no CNAME)."""
        response = await self.ask(subnet)
        if not response.answer:
            return None
        return str(response.answer[0][0].target).split(".")[0]

    async def degrade(self, name: str) -> int:
        """Make ``name``'s probes fail and return once Traffic Manager has it Degraded (the index of
        that status change)."""
        self.doors[name].healthy = False
        return await self.truth_log.status(name, DEGRADED)

    def truth(self) -> list[dict[str, Any]]:
        return [line for line in read(self.truth_path) if line["event"] == "dns_answer"]


def _topology(routing: str, **tm: Any) -> Topology:
    regions: dict[str, Any] = {"us": {"priority": 1, "subnets": ["198.51.100.0/24"]},
                               "eu": {"priority": 2, "subnets": ["203.0.113.0/24"]}}
    for region, geography in tm.pop("geography", {}).items():
        regions[region]["geography"] = geography
    return Topology.model_validate({"timeScale": SCALE, "regions": regions, "trafficManager": {
        "fqdn": FQDN, "routing": routing, "monitor": {"toleratedFailures": 0}, **tm}})


@pytest.fixture
async def profile(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Profile]:
    routing, settings = request.param
    block = f"127.{random.randint(20, 250)}.{random.randint(0, 255)}"
    clock = LabClock(SCALE)
    truth = WatchedGroundTruth(tmp_path / "ground-truth.jsonl", clock)
    doors = {"us": FrontDoor(f"{block}.11"), "eu": FrontDoor(f"{block}.12")}
    for door in doors.values():
        await door.serve()
    endpoints = [Endpoint(name, f"{name}.endpoints.drill.test", door.host, door.port, priority=i + 1)
                 for i, (name, door) in enumerate(doors.items())]
    tm = TrafficManager(_topology(routing, **settings), endpoints, clock=clock, ground_truth=truth)
    port = await tm.start(f"{block}.53")
    try:
        for name in doors:
            await truth.status(name, "Online")
        yield Profile(tm, truth, truth.path, clock, doors, (f"{block}.53", port))
    finally:
        await tm.close()
        for door in doors.values():
            assert door.server is not None
            door.server.close()
        truth.close()


PERFORMANCE = ("Performance", {})
GEOGRAPHIC = ("Geographic", {})
GEOGRAPHIC_FALLBACK = ("Geographic", {"geographicFallback": "priority"})


@pytest.mark.parametrize("profile", [PERFORMANCE], indirect=True)
async def test_performance_answers_each_client_its_closest_region_with_the_scope(profile: Profile) -> None:
    for subnet, prefix, region in ((US_USERS, 24, "us"), (EU_USERS, 24, "eu"), ("203.0.113.77", 32, "eu"),
                                   (ELSEWHERE, 24, "us")):  # a client no region holds: by priority
        response = await profile.ask(subnet, prefix)
        assert str(response.answer[0][0].target) == f"{region}.endpoints.drill.test."
        echoed = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
        assert [(o.srclen, o.scopelen) for o in echoed] == [(prefix, prefix)]
    # Without a client subnet the query's own source (a loopback address, in no region) decides.
    plain = await profile.ask(None)
    assert str(plain.answer[0][0].target) == "us.endpoints.drill.test."
    assert list(plain.options) == []


@pytest.mark.parametrize("profile", [PERFORMANCE], indirect=True)
async def test_performance_moves_only_the_users_of_a_degraded_region(profile: Profile) -> None:
    # Asked before and after: each answer is kept by its question, and its subnet is in the question.
    assert (await profile.answer(US_USERS), await profile.answer(EU_USERS)) == ("us", "eu")
    await profile.degrade("us")
    assert (await profile.answer(US_USERS), await profile.answer(EU_USERS)) == ("eu", "eu")
    assert (profile.tm.answer("us"), profile.tm.answer("eu"), profile.tm.routes()) == (
        "eu", "eu", {"us": {"eu": 1.0}, "eu": {"eu": 1.0}})
    profile.tm.set_enabled("eu", False)  # the next closest is gone too: the Degraded one, as if Online
    assert (await profile.answer(US_USERS), await profile.answer(EU_USERS)) == ("us", "us")
    answers = [(line["vantage"], line["subnet"], line["previous"], line["answer"])
               for line in profile.truth()]
    assert answers == [("us", "198.51.100.0/24", None, "us"), ("eu", "203.0.113.0/24", None, "eu"),
                       ("us", "198.51.100.0/24", "us", "eu"), ("us", "198.51.100.0/24", "eu", "us"),
                       ("eu", "203.0.113.0/24", "eu", "us")]


@pytest.mark.parametrize("profile", [GEOGRAPHIC], indirect=True)
async def test_geographic_without_fallback_keeps_answering_the_degraded_endpoint(profile: Profile) -> None:
    await profile.degrade("us")
    assert (await profile.answer(US_USERS), await profile.answer(EU_USERS)) == ("us", "eu")
    scope = [o for o in (await profile.ask(US_USERS)).options if isinstance(o, dns.edns.ECSOption)]
    assert scope[0].scopelen == 24
    # No geography maps a client elsewhere, nor (Disabled) the US users any more: NODATA.
    nowhere = await profile.ask(ELSEWHERE)
    assert (nowhere.rcode(), nowhere.answer) == (dns.rcode.NOERROR, [])
    profile.tm.set_enabled("us", False)
    disabled = await profile.ask(US_USERS)
    assert (disabled.rcode(), disabled.answer) == (dns.rcode.NOERROR, [])
    assert [(line["vantage"], line["answer"]) for line in profile.truth()] == [
        ("us", "us"), ("eu", "eu"), ("us", None)]


@pytest.mark.parametrize("profile", [GEOGRAPHIC_FALLBACK], indirect=True)
async def test_geographic_with_a_nested_priority_fallback_answers_the_next_endpoint(profile: Profile) -> None:
    degraded = await profile.degrade("us")
    assert (await profile.answer(US_USERS), await profile.answer(EU_USERS)) == ("eu", "eu")
    profile.doors["us"].healthy = True
    await profile.truth_log.status("us", "Online", after=degraded)
    assert await profile.answer(US_USERS) == "us"


@pytest.mark.parametrize("profile", [("Geographic", {"geography": {"eu": ["203.0.113.0/24", "WORLD"]}})],
                         indirect=True)
async def test_a_world_mapping_takes_every_client_no_other_mapping_holds(profile: Profile) -> None:
    found = [await profile.answer(s) for s in (US_USERS, EU_USERS, ELSEWHERE, None)]
    assert found == ["us", "eu", "eu", "eu"]
    assert (profile.tm.geography("us"), profile.tm.geography("eu")) == (
        ["198.51.100.0/24"], ["203.0.113.0/24", "WORLD"])


def test_each_regions_users_follow_the_answer_they_get() -> None:
    """Performance: the US users move to Europe over the TTL, Europe's users stay."""
    regions = _topology("Performance").regions
    topology = _topology("Performance").model_copy(update={"regions": {
        "us": regions["us"].model_copy(update={"load": 300.0}),
        "eu": regions["eu"].model_copy(update={"load": 100.0})}})
    load = OfferedLoad(topology, clock=LabClock(SCALE))
    load.follow({"us": 1.0}, users="us")
    load.follow({"eu": 1.0}, users="eu")
    assert (load.offered("us", at=0.0), load.offered("eu", at=0.0)) == (300.0, 100.0)
    load.moved({"eu": 1.0}, at=100.0, users="us")
    assert load.offered("eu", at=115.0) == pytest.approx(100.0 + 150.0)
    assert (load.offered("us", at=130.0), load.offered("eu", at=130.0)) == (0.0, 400.0)
    assert load.shares(at=115.0, users="eu") == {"eu": 1.0}
    assert load.shares(at=115.0) == pytest.approx({"us": 150 / 400, "eu": 250 / 400})


def _environment(tmp_path: Path, topology: str) -> Any:
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text(topology)
    addresses = LabAddresses(regions=(RegionAddress("us", "127.0.0.11", 6443),
                                      RegionAddress("eu", "127.0.0.12", 6443)),
                             service_port=8080, dns_address="127.0.0.53", dns_port=5353,
                             arm_url="https://127.0.0.53:8443")
    path = tmp_path / "environment.yaml"
    write_environment(path, addresses, topology=load_topology(topology_file),
                      kubeconfig=tmp_path / "kubeconfig", ground_truth=tmp_path / "ground-truth.jsonl", pid=1,
                      ca=tmp_path / "ca.crt", arm_token=tmp_path / "arm.token")
    return load_environment(path).traffic_manager


def test_the_environment_file_names_each_regions_users_and_the_geographic_fallback(tmp_path: Path) -> None:
    tm = _environment(tmp_path, "trafficManager: {routing: Performance}\n")
    assert tm.vantage_points == {"us": "198.51.100.0/24", "eu": "203.0.113.0/24"}
    assert (tm.routing, tm.geographic_fallback) == ("Performance", None)  # stated with Geographic only
    tm = _environment(tmp_path, "trafficManager: {routing: Geographic, geographicFallback: priority}\n"
                                "regions:\n  eu: {subnets: [203.0.113.128/25, 192.0.2.0/24]}\n")
    assert (tm.routing, tm.geographic_fallback) == ("Geographic", "priority")
    assert tm.vantage_points == {"us": "198.51.100.0/24", "eu": "203.0.113.128/25"}
