"""The lab's world: every region's cluster, API server and ingress, Traffic Manager, Cosmos DB, the
ground truth.

:class:`World` is the lab's composition root. From a :class:`~drills.lab.topology.Topology` it picks
where the lab listens, so that several labs can run on one machine at once: a random loopback block
``127.A.B.0`` (A in 20..250, B in 0..255), region ``i`` (topology order) on ``127.A.B.(11+i)``, the
DNS server on ``127.A.B.53``; free ports everywhere, and one service port that every region's ingress
shares (users connect to it after resolving, as they would to port 443). It then starts, in this order,
the ground-truth log, the lab's TLS (:mod:`drills.lab.certs`: kubectl sends its token only over TLS),
per region a :class:`~drills.lab.kube.cluster.Cluster` and its HTTPS API server, the Cosmos DB
account (:mod:`drills.lab.cosmos`: one HTTPS endpoint per region's location, on the region's
address), the ingresses, Traffic Manager (one endpoint per region, probing that region's ingress), and
the lab's Azure Resource Manager endpoint (:mod:`drills.lab.arm`, HTTPS on the DNS server's address,
serving the Cosmos DB account's management surface, :mod:`drills.lab.cosmos.arm`); waits until the
world has settled (every node and workload Ready, every endpoint probed once), bounded, so that a flawed
design still starts; and writes the lab directory's files (:mod:`drills.lab.files`). :meth:`World.close`
stops it all in the reverse order.

The ingresses shed load past capacity through one :class:`~drills.lab.load.OfferedLoad`, which follows
Traffic Manager's answers in-process (the lab is one process).

Ground truth: ``lab_started`` (time scale, addresses and ports, once ready) and ``lab_stopped``; the
parts record the rest (nodes, replicas, endpoint status, DNS answers, offered load, Cosmos writes,
applies and failovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import random
import secrets
import socket
import ssl
import time
from pathlib import Path
from types import TracebackType

from drills.errors import LabError
from drills.lab.arm import ArmProvider, ArmServer
from drills.lab.certs import issue
from drills.lab.clock import LabClock
from drills.lab.cosmos.account import CosmosAccount
from drills.lab.cosmos.arm import CosmosDbArm
from drills.lab.cosmos.server import CosmosServer
from drills.lab.files import (
    ARM_TOKEN_FILE,
    COSMOS_KEY_FILE,
    ENVIRONMENT_FILE,
    GROUND_TRUTH_FILE,
    IDENTITIES_DIR,
    KUBECONFIG_FILE,
    PROOF_FILE,
    LabAddresses,
    RegionAddress,
    write_cosmos_key,
    write_environment,
    write_kubeconfig,
    write_secret,
)
from drills.lab.groundtruth import GroundTruth
from drills.lab.ingress import Ingress
from drills.lab.kube import services
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.exposure import seed
from drills.lab.kube.nodes import is_ready
from drills.lab.kube.store import DEPLOYMENTS, NODES
from drills.lab.load import OfferedLoad
from drills.lab.manifests import Manifests, apply
from drills.lab.rbac import Authorizer, User, load_manifests
from drills.lab.scalesets import ScaleSets
from drills.lab.topology import Topology
from drills.lab.trafficmanager import CHECKING, Endpoint, TrafficManager
from drills.lab.trafficmanagerarm import TrafficManagerArm

FIRST_REGION_HOST = 11
"""Region ``i`` lives on ``127.A.B.(11 + i)``."""
DNS_HOST = 53
MAX_REGIONS = DNS_HOST - FIRST_REGION_HOST

_PORT_ATTEMPTS = 20
"""Tries to find a port free on every region's address at once (another process may take one between)."""

_SETTLE_POLL_S = 0.02
"""Real seconds between looks at the world while it settles: Traffic Manager announces nothing, so this
polls; 20 ms is a small share of the shortest settling seen (a pod start of 20 s at scale 100 is 200 ms)."""

_SETTLE_MARGIN_S = 60.0
"""Lab seconds allowed to settle beyond the slowest pod start plus one monitor round."""


def pick_block(rng: random.Random | None = None) -> str:
    """A random loopback block ``127.A.B`` for one lab (59,000 of them: two labs rarely share one, and
    then still work, since every port is free-picked)."""
    rng = rng or random.SystemRandom()
    return f"127.{rng.randint(20, 250)}.{rng.randint(0, 255)}"


class World:
    """One lab: build it from a topology, ``await start()``, use its sockets, ``await close()``."""

    def __init__(self, topology: Topology, directory: Path, *, block: str | None = None,
                 manifests: Manifests | None = None) -> None:
        """``manifests``: a team's objects, applied to each region after its defaults (give the topology
        :meth:`~drills.lab.manifests.Manifests.adopt_roles` made from them)."""
        if len(topology.regions) > MAX_REGIONS:
            raise LabError(f"a lab holds at most {MAX_REGIONS} regions; the topology has "
                           f"{len(topology.regions)}")
        self.topology = topology
        self.manifests = manifests
        self.directory = directory
        self.block = block or pick_block()
        self.token = secrets.token_urlsafe(24)
        """The bearer token every region's API server requires (it is in the kubeconfig)."""
        self.arm_token = secrets.token_urlsafe(24)
        """The bearer token the lab's ARM endpoint requires (in a file the environment file names)."""
        self.proof_key = secrets.token_bytes(32)
        """The key the API servers prove the lab with (in a file only its owner may read)."""
        self.proof_file = directory / PROOF_FILE
        self.authorizer: Authorizer = load_manifests(topology.rbac)
        self.identity_tokens: dict[str, str] = {account.name: secrets.token_urlsafe(24)
                                                for account in self.authorizer.service_accounts}
        """Each ServiceAccount's bearer token, by the account's name."""
        self.environment_file = directory / ENVIRONMENT_FILE
        self.kubeconfig_file = directory / KUBECONFIG_FILE
        self.ground_truth_file = directory / GROUND_TRUTH_FILE
        self.arm_token_file = directory / ARM_TOKEN_FILE
        self.cosmos_key_file = directory / COSMOS_KEY_FILE
        self.clock = LabClock(topology.time_scale)
        self.start_s: float | None = None
        """Real seconds :meth:`start` took, once it has returned."""
        self.unsettled: list[str] = []
        """What had not settled when :meth:`start` stopped waiting (empty: the world settled)."""
        self._addresses: LabAddresses | None = None
        self._clusters: dict[str, Cluster] = {}
        self._traffic_manager: TrafficManager | None = None
        self._cosmos: CosmosAccount | None = None
        self._ground_truth: GroundTruth | None = None
        self._ingresses: dict[str, Ingress] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def addresses(self) -> LabAddresses:
        """Where the started lab listens."""
        if self._addresses is None:
            raise LabError("the lab has not started")
        return self._addresses

    @property
    def traffic_manager(self) -> TrafficManager:
        if self._traffic_manager is None:
            raise LabError("the lab has not started")
        return self._traffic_manager

    @property
    def cosmos(self) -> CosmosAccount:
        """The Cosmos DB account (its ARM surface and the drill's faults act on it)."""
        if self._cosmos is None:
            raise LabError("the lab has not started")
        return self._cosmos

    def cluster(self, region: str) -> Cluster:
        """The cluster of ``region`` (KeyError for an unknown one)."""
        return self._clusters[region]

    async def start(self, *, settle: bool = True) -> LabAddresses:
        """Start every part, wait (bounded) for the world to settle, write the lab's files.

        On any failure, or when cancelled, whatever had started is stopped again before this raises.
        """
        if self._stack is not None:
            raise LabError("the lab has already started")
        began = time.monotonic()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in (self.environment_file, self.kubeconfig_file, self.ground_truth_file,
                          self.arm_token_file, self.cosmos_key_file, self.proof_file,
                          *(self.directory / IDENTITIES_DIR).glob("*")):
                stale.unlink(missing_ok=True)  # a reused directory must not describe a lab that is gone
            addresses = await self._start_all(settle=settle)
        except OSError as exc:
            raise LabError(f"the lab could not start: {exc}") from exc
        self.start_s = time.monotonic() - began
        return addresses

    async def _start_all(self, *, settle: bool) -> LabAddresses:
        async with contextlib.AsyncExitStack() as stack:
            ground_truth = self._ground_truth = GroundTruth(self.ground_truth_file, self.clock)
            stack.callback(ground_truth.close)
            stack.callback(lambda: ground_truth.record("lab_stopped"))
            region_addresses = [self._address(i) for i in range(len(self.topology.regions))]
            global_address = f"{self.block}.{DNS_HOST}"
            certificates = issue(self.directory, [*region_addresses, global_address],
                                 name=f"drill lab {self.block}.0")
            ssl_context = certificates.server_context()
            regions = await self._start_regions(stack, ground_truth, ssl_context)
            if self.manifests is not None:
                client_context = ssl.create_default_context(cadata=certificates.ca_pem().decode("ascii"))
                for region in regions:
                    await apply(self.manifests.regions[region.name], region=region.name, url=region.api_url,
                                token=self.token, ssl_context=client_context)
            regions, cosmos_port = await self._start_cosmos(stack, ground_truth, ssl_context, regions)
            load = OfferedLoad(self.topology, clock=self.clock, ground_truth=ground_truth)
            stack.push_async_callback(load.close)
            service_port = await self._start_ingresses(stack, regions, load)
            dns_address = global_address
            endpoints = [Endpoint(name=r.name, target=r.target, address=r.address, port=service_port,
                                  priority=self.topology.regions[r.name].priority) for r in regions]
            # The lab knows whether a region's front door holds requests: it judges only the monitor's
            # probes that timed out because this process stalled (see TrafficManager._after_stall).
            traffic_manager = TrafficManager(self.topology, endpoints, clock=self.clock,
                                             ground_truth=ground_truth,
                                             answers=self._front_door_answers)
            dns_port = await traffic_manager.start(dns_address, 0)
            stack.push_async_callback(traffic_manager.close)
            load.follow_each(traffic_manager.routes())
            traffic_manager.on_route(load.moved_each)
            self._traffic_manager = traffic_manager
            arm = ArmServer(self._arm_providers(), token=self.arm_token, clock=self.clock,
                            ssl_context=ssl_context)
            await arm.start(global_address)
            stack.push_async_callback(arm.close)
            addresses = LabAddresses(regions=tuple(regions), service_port=service_port,
                                     dns_address=dns_address, dns_port=dns_port, arm_url=arm.url,
                                     cosmos_port=cosmos_port)
            if settle:
                await self._settle()
            write_kubeconfig(self.kubeconfig_file, addresses, token=self.token, ca_pem=certificates.ca_pem())
            write_secret(self.arm_token_file, self.arm_token)
            write_cosmos_key(self.cosmos_key_file, self.cosmos.primary_key)
            write_secret(self.proof_file, self.proof_key.hex())
            write_environment(self.environment_file, addresses, topology=self.topology,
                              kubeconfig=self.kubeconfig_file, ground_truth=self.ground_truth_file,
                              pid=os.getpid(), ca=certificates.ca, arm_token=self.arm_token_file,
                              cosmos_key=self.cosmos_key_file, proof=self.proof_file)
            self._write_identities(addresses, certificates.ca_pem(), certificates.ca)
            ground_truth.record(
                "lab_started", time_scale=self.topology.time_scale, pid=os.getpid(),
                directory=str(self.directory.resolve()), service_port=service_port,
                dns={"address": dns_address, "port": dns_port}, fqdn=self.topology.traffic_manager.fqdn,
                arm=arm.url,
                cosmos={"endpoint": self.cosmos.global_endpoint, "account": self.cosmos.name},
                regions={r.name: {"address": r.address, "api_port": r.api_port, "cosmos_port": r.cosmos_port,
                                  "cosmos_location": self.topology.cosmos_location(r.name)}
                         for r in regions},
                unsettled=self.unsettled)
            self._addresses = addresses
            self._stack = stack.pop_all()
        return addresses

    async def close(self) -> None:
        """Stop Traffic Manager, the ingresses, Cosmos DB, the API servers and the clusters, then the log."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> World:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _write_identities(self, addresses: LabAddresses, ca_pem: bytes, ca: Path) -> None:
        """A kubeconfig and an environment file per ServiceAccount of the RBAC manifests."""
        folder = self.directory / IDENTITIES_DIR
        if self.identity_tokens:
            folder.mkdir(exist_ok=True)
        for name, token in self.identity_tokens.items():
            kubeconfig = folder / f"{name}.kubeconfig"
            write_kubeconfig(kubeconfig, addresses, token=token, ca_pem=ca_pem)
            write_environment(folder / f"{name}.yaml", addresses, topology=self.topology,
                              kubeconfig=kubeconfig,
                              ground_truth=self.ground_truth_file, pid=os.getpid(), ca=ca,
                              arm_token=self.arm_token_file, cosmos_key=self.cosmos_key_file,
                              proof=self.proof_file)

    def _identities(self) -> dict[str, User]:
        """Each identity's token -> the user it authenticates as."""
        return {self.identity_tokens[account.name]: account.user
                for account in self.authorizer.service_accounts}

    def _arm_providers(self) -> list[ArmProvider]:
        """What the lab's ARM endpoint serves (called once Traffic Manager and Cosmos DB have started)."""
        return [TrafficManagerArm(self.traffic_manager, self.topology),
                ScaleSets(self._clusters, self.topology, clock=self.clock, ground_truth=self._ground_truth),
                CosmosDbArm(self.cosmos)]

    def _lab_endpoints(self) -> dict[str, str]:
        """The lab's ARM and Cosmos DB endpoints, as its environment file names them (its proof vouches
        for them: a file that sends a lab's clusters' drill to another ARM is no lab's)."""
        a = self.addresses
        endpoints = {"arm": a.arm_url}
        if a.cosmos_port is not None:
            endpoints["cosmos"] = f"https://{a.regions[0].address}:{a.cosmos_port}/"
        return endpoints

    def _monitor_schedule(self) -> dict[str, object]:
        """``GET /lab/v1/trafficmanager``: the API servers start before Traffic Manager does."""
        return self.traffic_manager.monitor_schedule()

    def _front_door_answers(self, region: str) -> bool:
        """Whether the region's ingress answers requests now (it holds them with no controller pod)."""
        return self._ingresses[region].state() != "blackhole"

    def _address(self, region_index: int) -> str:
        return f"{self.block}.{FIRST_REGION_HOST + region_index}"

    async def _start_regions(self, stack: contextlib.AsyncExitStack, ground_truth: GroundTruth,
                             ssl_context: ssl.SSLContext) -> list[RegionAddress]:
        regions: list[RegionAddress] = []
        for i, name in enumerate(self.topology.regions):
            address = self._address(i)
            keep_out = functools.partial(self.manifests.keeps_out, name, self.topology) \
                if self.manifests is not None else None
            cluster = Cluster(name, self.topology, clock=self.clock, ground_truth=ground_truth,
                              keep_out=keep_out, address=address)
            await cluster.start()
            stack.push_async_callback(cluster.close)
            self._clusters[name] = cluster
            api: ApiServer = await start_api_server(cluster.store, host=address, port=0, token=self.token,
                                                    monitor=self._monitor_schedule, ssl_context=ssl_context,
                                                    proof_key=self.proof_key, endpoints=self._lab_endpoints,
                                                    identities=self._identities(),
                                                    authorizer=self.authorizer)
            stack.push_async_callback(api.close)
            seed(cluster.store, services.api_endpoints(address, api.port))
            regions.append(RegionAddress(name=name, address=address, api_port=api.port))
        return regions

    async def _start_cosmos(self, stack: contextlib.AsyncExitStack, ground_truth: GroundTruth,
                            ssl_context: ssl.SSLContext, regions: list[RegionAddress],
                            ) -> tuple[list[RegionAddress], int]:
        """Start the Cosmos DB account and its endpoints; the regions with their Cosmos ports, and the
        port of the account's global endpoint (on the first region's address)."""
        account = CosmosAccount(self.topology, clock=self.clock, ground_truth=ground_truth)
        stack.callback(account.close)
        server = CosmosServer(account, ssl_context=ssl_context)
        stack.push_async_callback(server.close)
        locations = {r.name: self.topology.cosmos_location(r.name) for r in regions}
        await server.start({locations[r.name]: r.address for r in regions}, global_host=regions[0].address)
        self._cosmos = account
        return ([dataclasses.replace(r, cosmos_port=server.port(locations[r.name])) for r in regions],
                server.global_port)

    async def _start_ingresses(self, stack: contextlib.AsyncExitStack, regions: list[RegionAddress],
                               load: OfferedLoad) -> int:
        """Start every region's ingress on one port number free on all their addresses; that port."""
        ingresses = [(Ingress(r.name, self._clusters[r.name].store, self.topology, load=load,
                              running=self._clusters[r.name].node_running), r.address)
                     for r in regions]
        for r, (ingress, _) in zip(regions, ingresses, strict=True):
            self._clusters[r.name].on_power(ingress.power_changed)
        self._ingresses = {r.name: ingress for r, (ingress, _) in zip(regions, ingresses, strict=True)}
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port(regions[0].address)
            started: list[Ingress] = []
            try:
                for ingress, address in ingresses:
                    await ingress.start(address, port)
                    started.append(ingress)
            except OSError:
                for ingress in started:
                    await ingress.close()
                continue
            for ingress in started:
                stack.push_async_callback(ingress.close)
            return port
        raise LabError(f"found no port free on all of {', '.join(r.address for r in regions)} "
                       f"in {_PORT_ATTEMPTS} tries")

    async def _settle(self) -> None:
        """Wait until nodes, workloads and endpoints are as the design says they should be, bounded."""
        monitor = self.topology.traffic_manager.monitor
        slowest_start = max((w.start_delay for w in self.topology.workloads), default=0.0)
        if self.manifests is not None:
            slowest_start = max(slowest_start, self.manifests.slowest_start())
        budget_s = self.clock.to_real(slowest_start + monitor.interval + monitor.timeout + _SETTLE_MARGIN_S)
        deadline = time.monotonic() + budget_s
        while True:
            self.unsettled = self._unsettled()
            if not self.unsettled or time.monotonic() >= deadline:
                return
            await asyncio.sleep(_SETTLE_POLL_S)

    def _unsettled(self) -> list[str]:
        """What is not yet as the topology wants it, in words."""
        waiting: list[str] = []
        for region, cluster in self._clusters.items():
            store = cluster.store
            not_ready = [n["metadata"]["name"] for n in store.iter(NODES) if not is_ready(n)]
            if not_ready:
                waiting.append(f"{region}: nodes not Ready: {', '.join(sorted(not_ready))}")
            for deployment in store.iter(DEPLOYMENTS):
                meta = deployment["metadata"]
                want = int((deployment.get("spec") or {}).get("replicas", 1))
                ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
                if ready < want:
                    waiting.append(f"{region}: {meta['namespace']}/{meta['name']} has {ready}/{want} "
                                   "replicas ready")
        if self._traffic_manager is not None:
            statuses = self._traffic_manager.statuses()
            checking = [name for name, status in statuses.items() if status == CHECKING]
            if checking:
                waiting.append(f"traffic manager: endpoints not probed yet: {', '.join(checking)}")
        return waiting


def _free_port(address: str) -> int:
    """A TCP port free on ``address`` now (the caller binds it at once and retries if it was taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
