"""The lab's world, in this process: where it listens, the files it writes, start and close in order."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.message
import dns.rdatatype
import httpx
import pytest
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos.aio import CosmosClient
from ruamel.yaml import YAML

from drills.environment import load_environment
from drills.errors import LabError
from drills.lab import world as world_module
from drills.lab.groundtruth import read
from drills.lab.kube.api import ApiServer
from drills.lab.kube.store import DEPLOYMENTS, NODES
from drills.lab.topology import DEFAULT, Region, Topology
from drills.lab.trafficmanager import ONLINE, TrafficManager
from drills.lab.world import World
from drills.labproof import prove_lab

SCALE = 100.0
"""Lab seconds per real second: the default topology settles (20 s pod start) in about 0.3 s."""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path / "lab") as world:
        yield world


async def test_the_environment_file_is_what_a_run_loads(world: World) -> None:
    env = load_environment(world.environment_file)
    a = world.addresses
    assert env.name == "lab"
    assert env.lab is not None
    assert (await prove_lab(env)).is_lab  # the lab proves it is one
    assert env.time_scale == SCALE
    assert list(env.regions) == ["us", "eu"]
    for name, region in env.regions.items():
        assert region.context == f"lab-{name}"
        assert region.endpoint == name
        assert region.target == f"{name}.endpoints.drill.test"
        assert (region.ingress.namespace, region.ingress.deployment) == ("ingress-nginx",
                                                                       "ingress-nginx-controller")
        assert region.kubeconfig == str(world.kubeconfig_file)
    assert env.traffic_manager.fqdn == "shop.trafficmanager.net"
    assert env.traffic_manager.nameservers == [f"{world.block}.53:{a.dns_port}"]
    assert (env.service.scheme, env.service.port) == ("http", a.service_port)
    assert env.lab is not None
    assert env.lab.ground_truth == str(world.ground_truth_file)
    assert env.lab.pid == os.getpid()


async def test_the_environment_files_cosmos_account_is_served_to_the_async_client(world: World) -> None:
    env = load_environment(world.environment_file)
    assert env.cosmos is not None
    assert env.lab is not None
    assert env.lab.cosmos_key_file is not None
    assert (env.cosmos.account, env.cosmos.database, env.cosmos.container) == ("shop-db", "shop", "canary")
    assert env.cosmos.locations == {"us": "East US", "eu": "West Europe"}
    assert env.cosmos.endpoint == f"https://{world.block}.11:{world.addresses.cosmos_port}/"
    assert stat.S_IMODE(os.stat(env.lab.cosmos_key_file).st_mode) == 0o600
    key = (await asyncio.to_thread(Path(env.lab.cosmos_key_file).read_text)).strip()
    # The async client reaches a private CA through its transport's session (its ssl_config path loads
    # an empty client certificate and fails).
    trust = ssl.create_default_context(cafile=world.directory / "ca.crt")
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
    try:
        async with CosmosClient(env.cosmos.endpoint, credential=key,
                                transport=AioHttpTransport(session=session, session_owner=False),
                                preferred_locations=["West Europe"]) as client:
            container = client.get_database_client(env.cosmos.database).get_container_client(
                env.cosmos.container)
            await container.create_item({"id": "hello", "pk": "hello"})
            assert (await container.read_item("hello", partition_key="hello"))["id"] == "hello"
    finally:
        await session.close()
    regions = {loc["locationName"]: loc["documentEndpoint"]
               for loc in world.cosmos.describe()["readLocations"]}
    assert regions == {world.cosmos.location_of(r.name): f"https://{r.address}:{r.cosmos_port}/"
                       for r in world.addresses.regions}
    assert [e["id"] for e in read(world.ground_truth_file) if e["event"] == "cosmos_write"] == ["hello"]


async def test_the_kubeconfig_has_a_context_per_region_with_the_token(world: World) -> None:
    config = YAML(typ="safe").load(world.kubeconfig_file)
    servers = {c["name"]: c["cluster"]["server"] for c in config["clusters"]}
    assert servers == {"lab-us": f"https://{world.block}.11:{world.addresses.region('us').api_port}",
                       "lab-eu": f"https://{world.block}.12:{world.addresses.region('eu').api_port}"}
    # The clusters trust the lab's own CA, which signed the certificate the API servers present.
    ca = {base64.b64decode(c["cluster"]["certificate-authority-data"]) for c in config["clusters"]}
    assert ca == {(world.directory / "ca.crt").read_bytes()}
    assert {u["name"]: u["user"]["token"] for u in config["users"]} == {"lab-us": world.token,
                                                                       "lab-eu": world.token}
    assert {c["name"]: c["context"] for c in config["contexts"]} == {
        "lab-us": {"cluster": "lab-us", "user": "lab-us"}, "lab-eu": {"cluster": "lab-eu", "user": "lab-eu"}}
    assert config["current-context"] == "lab-us"
    # It holds a credential: only its owner may read it.
    assert stat.S_IMODE(world.kubeconfig_file.stat().st_mode) == 0o600


async def test_a_started_world_has_settled_and_serves_on_every_socket(world: World) -> None:
    a = world.addresses
    assert world.unsettled == []
    assert world.traffic_manager.statuses() == {"us": ONLINE, "eu": ONLINE}
    trust = ssl.create_default_context(cafile=world.directory / "ca.crt")
    async with httpx.AsyncClient(verify=trust) as client:
        for region in a.regions:
            served = await client.get(f"http://{region.address}:{a.service_port}/")
            assert (served.status_code, served.headers["x-drill-region"]) == (200, region.name)
            nodes = await client.get(f"{region.api_url}/api/v1/nodes",
                                     headers={"Authorization": f"Bearer {world.token}"})
            assert nodes.status_code == 200
            assert len(nodes.json()["items"]) == 6
            refused = await client.get(f"{region.api_url}/api/v1/nodes")
            assert refused.status_code == 401
    query = dns.message.make_query("shop.trafficmanager.net", "A")
    reply = await dns.asyncquery.udp(query, a.dns_address, port=a.dns_port, timeout=2)
    cname = reply.find_rrset(reply.answer, query.question[0].name, query.question[0].rdclass,
                             dns.rdatatype.CNAME)
    assert str(cname[0].target) == "us.endpoints.drill.test."
    assert cname.ttl == 30


async def test_the_ground_truth_brackets_the_lab_and_close_frees_every_socket(tmp_path: Path) -> None:
    world = World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path)
    a = await world.start()
    await world.close()
    lines = read(world.ground_truth_file)
    started = next(line for line in lines if line["event"] == "lab_started")
    assert started["time_scale"] == SCALE
    assert started["service_port"] == a.service_port
    assert started["dns"] == {"address": a.dns_address, "port": a.dns_port}
    assert started["regions"] == {
        r.name: {"address": r.address, "api_port": r.api_port, "cosmos_port": r.cosmos_port,
                 "cosmos_location": location} for r, location in zip(a.regions, ["East US", "West Europe"],
                                                                      strict=True)}
    assert lines[-1]["event"] == "lab_stopped"
    assert started["real"] < lines[-1]["real"]
    for host, port in ([(r.address, r.api_port) for r in a.regions] + [(r.address, a.service_port)
                                                                        for r in a.regions]
                       + [(r.address, r.cosmos_port) for r in a.regions]
                       + [(a.regions[0].address, a.cosmos_port)]):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=1).close()


async def test_regions_live_on_consecutive_addresses_in_topology_order(tmp_path: Path) -> None:
    regions = {"us": Region(priority=2), "eu": Region(priority=1),
               "asia": Region(priority=3, zones=["a"], nodes_per_zone=3)}
    block = world_module.pick_block()
    async with World(Topology(time_scale=SCALE, regions=regions), tmp_path, block=block) as world:
        a = world.addresses
        assert [(r.name, r.address) for r in a.regions] == [
            ("us", f"{block}.11"), ("eu", f"{block}.12"), ("asia", f"{block}.13")]
        assert a.dns_address == f"{block}.53"
        # Priority routing follows the topology's priorities, not the order.
        assert world.traffic_manager.answer() == "eu"
        assert len(load_environment(world.environment_file).regions) == 3


async def test_the_shared_ingress_port_is_searched_again_when_one_address_has_it_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = world_module.pick_block()
    with _listening(f"{block}.12") as taken:
        offered = iter([taken])
        real_free_port = world_module._free_port
        monkeypatch.setattr(world_module, "_free_port", lambda address: next(offered, None)
                            or real_free_port(address))
        async with World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path, block=block) as world:
            assert world.addresses.service_port != taken
            async with httpx.AsyncClient() as client:
                for region in world.addresses.regions:
                    reply = await client.get(f"http://{region.address}:{world.addresses.service_port}/")
                    assert reply.status_code == 200


async def test_a_start_that_fails_stops_what_had_started(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    servers: list[tuple[str, int]] = []
    real_start_api_server = world_module.start_api_server

    async def start_api_server(*args: Any, **kwargs: Any) -> ApiServer:
        server = await real_start_api_server(*args, **kwargs)
        servers.append((server.host, server.port))
        return server

    async def refuse(self: TrafficManager, host: str, port: int = 0) -> int:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(world_module, "start_api_server", start_api_server)
    monkeypatch.setattr(TrafficManager, "start", refuse)
    world = World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path)
    with pytest.raises(LabError, match="could not start"):
        await world.start()
    assert read(world.ground_truth_file)[-1]["event"] == "lab_stopped"
    assert not world.environment_file.exists()
    assert len(servers) == 2
    for host, port in servers:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)


class _listening:
    """A TCP port held open on ``address``."""

    def __init__(self, address: str) -> None:
        self._socket = socket.socket()
        self._socket.bind((address, 0))
        self._socket.listen()

    def __enter__(self) -> int:
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


async def test_a_regions_overrides_and_users_load_reach_its_cluster_and_ground_truth(tmp_path: Path) -> None:
    workloads = [w.model_dump(by_alias=True) for w in DEFAULT.workloads]
    workloads[0]["capacity"] = 50
    topology = Topology.model_validate({
        "timeScale": SCALE, "workloads": workloads,
        "regions": {"us": {"priority": 1, "load": 100},
                    "eu": {"priority": 2, "load": 50, "nodeSize": {"cpu": 2, "memory": "8Gi"},
                           "workloads": [{"namespace": "shop", "name": "web", "replicas": 1}]}}})
    world = World(topology, tmp_path / "lab")
    await world.start()
    try:
        assert world.unsettled == []
        eu = world.cluster("eu").store
        assert [d["spec"]["replicas"] for d in eu.iter(DEPLOYMENTS, "shop")] == [1]
        assert {n["status"]["allocatable"]["cpu"] for n in eu.iter(NODES)} == {"1900m"}
        assert {n["status"]["allocatable"]["cpu"] for n in world.cluster("us").store.iter(NODES)} == {"3860m"}
    finally:
        await world.close()
    last: dict[str, tuple[Any, ...]] = {}
    for line in read(world.ground_truth_file):
        if line["event"] == "load":
            last[line["region"]] = (line["offered"], line["capacity"], line["ready"], line["failing"])
    assert last == {"us": (150.0, 150.0, 3, 0.0), "eu": (0.0, 50.0, 1, 0.0)}  # Priority: everyone on us
