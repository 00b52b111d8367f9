"""A region's cluster: what the topology seeds, its lifecycle, and the ground truth it writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from drills.errors import LabError
from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.disruption import is_healthy
from drills.lab.kube.kubelet import delete_pod
from drills.lab.kube.nodes import zone_of
from drills.lab.kube.store import DAEMONSETS, DEPLOYMENTS, NAMESPACES, NODES, PDBS, PODS, NotFound, Obj
from drills.lab.topology import DEFAULT, Region, Topology

SCALE = 1000.0
"""Lab seconds per real second: the default workloads are Ready in about 30 ms."""
PATIENCE = 3.0 * SCALE
"""How long (lab seconds) a wait may take before the test fails: 3 s real, for a loaded machine."""

LATE = 0.03 * SCALE
"""How much later than due (lab seconds) a transition may show: 30 ms of latency on a busy machine."""

MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[MakeCluster]:
    """Start a region's cluster; each is closed (and its ground-truth log with it) afterwards."""
    started: list[tuple[Cluster, GroundTruth | None]] = []

    async def make(topology: Topology = DEFAULT, *, region: str = "us",
                   ground_truth: bool = False) -> Cluster:
        clock = LabClock(SCALE)
        truth = GroundTruth(tmp_path / f"truth-{len(started)}.jsonl", clock) if ground_truth else None
        cluster = Cluster(region, topology, clock=clock, ground_truth=truth)
        started.append((cluster, truth))
        await cluster.start()
        return cluster

    yield make
    for cluster, truth in started:
        await cluster.close()
        if truth is not None:
            truth.close()


def _pods(cluster: Cluster, app: str, *, live: bool = True) -> list[Obj]:
    return [p for p in cluster.store.iter(PODS) if p["metadata"]["labels"].get("app") == app
            and not (live and p["metadata"].get("deletionTimestamp"))]


def _ready_by_zone(cluster: Cluster, app: str) -> dict[str, int]:
    zones = {n["metadata"]["name"]: zone_of(n) or "" for n in cluster.store.iter(NODES)}
    counts: dict[str, int] = {}
    for pod in _pods(cluster, app):
        if is_healthy(pod):
            counts[zones[pod["spec"]["nodeName"]]] = counts.get(zones[pod["spec"]["nodeName"]], 0) + 1
    return dict(sorted(counts.items()))


def _zone(cluster: Cluster, pod: Obj) -> str | None:
    return next(zone_of(n) for n in cluster.store.iter(NODES)
                if n["metadata"]["name"] == pod["spec"]["nodeName"])


async def test_default_topology_seeds_three_zones_and_runs_its_workloads(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    nodes = cluster.store.list(NODES)
    assert [n["metadata"]["name"] for n in nodes] == [
        f"aks-us-zone-{z}-{i}" for z in (1, 2, 3) for i in (0, 1)]
    node = nodes[0]
    assert node["metadata"]["labels"] == {
        "topology.kubernetes.io/zone": "zone-1", "topology.kubernetes.io/region": "us",
        "kubernetes.io/hostname": "aks-us-zone-1-0", "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "agentpool": "nodepool1", "kubernetes.azure.com/role": "agent"}
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert {"type": "InternalIP", "address": "10.224.0.4"} in node["status"]["addresses"]
    assert all(next(c for c in n["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
               for n in nodes)
    assert {n["metadata"]["name"] for n in cluster.store.list(NAMESPACES)} >= {
        "default", "kube-system", "kube-public", "shop", "ingress-nginx"}
    assert cluster.store.get(PDBS, "shop", "web")["spec"]["minAvailable"] == 2
    assert cluster.store.get(DAEMONSETS, "kube-system", "node-agent")

    await cluster.settled(within=PATIENCE)

    assert _ready_by_zone(cluster, "web") == {"zone-1": 1, "zone-2": 1, "zone-3": 1}
    ingress_zones = {_zone(cluster, p) for p in _pods(cluster, "ingress-nginx-controller")}
    assert len(ingress_zones) == 2
    agents = _pods(cluster, "node-agent")
    assert sorted(p["spec"]["nodeName"] for p in agents) == cluster.node_names()
    web = cluster.store.get(DEPLOYMENTS, "shop", "web")
    assert web["status"]["readyReplicas"] == 3
    assert web["status"]["availableReplicas"] == 3
    constraint = web["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert constraint == {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                          "whenUnsatisfiable": "ScheduleAnyway",
                          "labelSelector": {"matchLabels": {"app": "web"}}}


async def test_node_names_by_zone(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    assert cluster.node_names("zone-2") == ["aks-us-zone-2-0", "aks-us-zone-2-1"]
    assert len(cluster.node_names()) == 6


async def test_a_second_region_gets_its_own_node_addresses_and_sizes(make_cluster: MakeCluster) -> None:
    topology = DEFAULT.model_copy(update={"regions": {
        "us": Region(priority=1), "eu": Region(priority=2, zones=["zone-1", "zone-2"], nodes_per_zone=1)}})
    cluster = await make_cluster(topology, region="eu")
    assert cluster.node_names() == ["aks-eu-zone-1-0", "aks-eu-zone-2-0"]
    node = cluster.store.get(NODES, None, "aks-eu-zone-2-0")
    assert {"type": "InternalIP", "address": "10.225.0.5"} in node["status"]["addresses"]


async def test_seeding_again_keeps_what_is_there(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.settled(within=PATIENCE)
    pods_before = sorted(p["metadata"]["name"] for p in _pods(cluster, "web"))
    await cluster.start()
    assert len(cluster.store.list(NODES)) == 6
    assert sorted(p["metadata"]["name"] for p in _pods(cluster, "web")) == pods_before


async def test_close_stops_every_task_it_started(make_cluster: MakeCluster) -> None:
    before = asyncio.all_tasks()
    cluster = await make_cluster()
    await cluster.settled(within=PATIENCE)
    await cluster.close()
    assert asyncio.all_tasks() == before
    rv = cluster.store.resource_version
    await asyncio.sleep(cluster.clock.to_real(30))  # nothing is awaited here: we check that nothing happens
    assert cluster.store.resource_version == rv


async def test_unknown_region_and_node_are_refused(make_cluster: MakeCluster) -> None:
    with pytest.raises(LabError, match="no region 'mars'"):
        Cluster("mars", DEFAULT, clock=LabClock(1000))
    cluster = await make_cluster()
    with pytest.raises(NotFound):
        cluster.stop_node("aks-us-zone-9-0")
    with pytest.raises(NotFound):
        cluster.start_node("nope")


async def test_ground_truth_records_node_and_replica_changes(make_cluster: MakeCluster,
                                                             tmp_path: Path) -> None:
    cluster = await make_cluster(ground_truth=True)
    await cluster.settled(within=PATIENCE)
    lines = read(tmp_path / "truth-0.jsonl")
    nodes = [line for line in lines if line["event"] == "node"]
    assert {line["node"] for line in nodes} == set(cluster.node_names())
    assert all(line["ready"] and not line["unschedulable"] and line["region"] == "us" for line in nodes)
    web = [line for line in lines if line["event"] == "replicas" and line["deployment"] == "web"]
    assert web[0]["ready"] == 0
    assert [line["ready"] for line in web] == [0, 1, 2, 3]
    assert web[-1]["by_zone"] == {"zone-1": 1, "zone-2": 1, "zone-3": 1}
    assert web[-1]["namespace"] == "shop"
    assert all(line["lab"] >= 20 for line in web[1:])  # never Ready before the workload's startDelay

    def cordon(node: Obj) -> None:
        node["spec"]["unschedulable"] = True

    before = cluster.clock.now()
    cluster.store.mutate(NODES, None, "aks-us-zone-1-0", cordon)
    after = cluster.clock.now()
    victim = next(p for p in _pods(cluster, "web") if _zone(cluster, p) == "zone-2")
    delete_pod(cluster.store, victim, clock=cluster.clock)
    await cluster.until(lambda: _ready_by_zone(cluster, "web") == {"zone-1": 1, "zone-2": 1, "zone-3": 1}
                        and len(_pods(cluster, "web", live=False)) == 3, within=PATIENCE)

    lines = read(tmp_path / "truth-0.jsonl")
    cordon_line = next(line for line in lines if line["event"] == "node" and line["unschedulable"])
    assert cordon_line["node"] == "aks-us-zone-1-0"
    assert cordon_line["ready"] is True
    assert before <= cordon_line["lab"] <= after  # stamped as the change committed
    web = [line for line in lines if line["event"] == "replicas" and line["deployment"] == "web"]
    assert [line["by_zone"]["zone-2"] for line in web[-2:]] == [0, 1]
    assert web[-2]["ready"] == 2
    # The replacement is Ready one start delay after the deletion (never sooner; later by the passes'
    # and the event loop's latency, which a loaded machine stretches).
    assert 20 <= web[-1]["lab"] - web[-2]["lab"] <= 20 + LATE


async def test_a_settled_cluster_is_quiet(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.settled(within=PATIENCE)
    # Nothing to await: the point is that nothing happens for a while (no controller rewrites a stamp).
    # The first sleep lets the pass that made the cluster settled finish.
    await asyncio.sleep(cluster.clock.to_real(10))
    passes = cluster.stats.passes
    changed: list[tuple[str, str]] = []
    cluster.store.on_change(lambda c: changed.append((c.resource.kind, c.object["metadata"]["namespace"])))
    await asyncio.sleep(cluster.clock.to_real(120))
    # Only the kubelets' heartbeats: node leases renewed every 10 s, without a reconcile pass.
    assert changed
    assert set(changed) == {("Lease", "kube-node-lease")}
    assert cluster.stats.passes == passes


async def test_readiness_probes_state_the_health_path_and_the_start_delay(make_cluster: MakeCluster) -> None:
    """A client reading a Deployment learns its pods' start delay, as from a real cluster's probes."""
    workloads = [w.model_dump(by_alias=True) for w in DEFAULT.workloads]
    workloads[0] |= {"healthPath": "/ready", "startDelay": "12500ms"}
    cluster = await make_cluster(Topology.model_validate({"workloads": workloads}))
    probes = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
              for d in cluster.store.iter(DEPLOYMENTS)}
    assert probes["web"]["httpGet"]["path"] == "/ready"
    assert probes["web"]["initialDelaySeconds"] == 13  # whole seconds, rounded up
    assert probes["ingress-nginx-controller"]["httpGet"]["path"] == "/healthz"
    assert probes["ingress-nginx-controller"]["initialDelaySeconds"] == 20
