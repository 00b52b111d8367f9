"""Node lifecycle: a stopped zone goes NotReady, its pods are replaced after the timeout, and it recovers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.disruption import is_healthy
from drills.lab.kube.heartbeats import NODE_LEASE_NAMESPACE
from drills.lab.kube.kubelet import condition_status
from drills.lab.kube.nodes import NODE_MONITOR_GRACE_S, zone_of
from drills.lab.kube.store import LEASES, NODES, PODS, Obj
from drills.lab.topology import DEFAULT

SCALE = 600.0
"""Slower than elsewhere: these tests check when things happen, and 1 ms of real latency is 0.6 lab s."""
PATIENCE = 3.0 * SCALE
"""How long (lab seconds) a wait may take before the test fails: 3 s real, for a loaded machine."""
LATE = 0.1 * SCALE
"""How much later than due (lab seconds) a transition may show: 100 ms of real latency, which a loaded
2-core machine does reach; still well inside the gaps between the timeouts checked (40 s, 300 s)."""
WEB_START = DEFAULT.app.start_delay
FAILURE_TIMEOUT = DEFAULT.node_failure_timeout

MakeCluster = Callable[[], Awaitable[Cluster]]


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[MakeCluster]:
    """Start the default ``us`` region with a ground-truth log, settled; closed afterwards."""
    started: list[tuple[Cluster, GroundTruth]] = []

    async def make() -> Cluster:
        clock = LabClock(SCALE)
        truth = GroundTruth(tmp_path / "ground-truth.jsonl", clock)
        cluster = Cluster("us", DEFAULT, clock=clock, ground_truth=truth)
        started.append((cluster, truth))
        await cluster.start()
        await cluster.settled(within=PATIENCE)
        return cluster

    yield make
    for cluster, truth in started:
        await cluster.close()
        truth.close()


def _pods(cluster: Cluster, app: str) -> list[Obj]:
    return [p for p in cluster.store.iter(PODS) if p["metadata"]["labels"].get("app") == app]


def _zone(cluster: Cluster, pod: Obj) -> str | None:
    return next(zone_of(n) for n in cluster.store.iter(NODES)
                if n["metadata"]["name"] == pod["spec"]["nodeName"])


def _ready_by_zone(cluster: Cluster, app: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in _pods(cluster, app):
        if is_healthy(pod):
            zone = _zone(cluster, pod) or ""
            counts[zone] = counts.get(zone, 0) + 1
    return dict(sorted(counts.items()))


def _node_ready(cluster: Cluster, name: str) -> str | None:
    return condition_status(cluster.store.get(NODES, None, name), "Ready")


async def test_a_stopped_zone_is_replaced_after_the_timeout_and_recovers(make_cluster: MakeCluster,
                                                                         tmp_path: Path) -> None:
    cluster = await make_cluster()
    zone_1 = cluster.node_names("zone-1")
    [web_pod] = [p for p in _pods(cluster, "web") if _zone(cluster, p) == "zone-1"]
    stopped_at = cluster.clock.now()
    for name in zone_1:
        cluster.stop_node(name)

    web_node = web_pod["spec"]["nodeName"]
    not_ready_at = await cluster.until(lambda: _node_ready(cluster, web_node) == "Unknown",
                                       within=PATIENCE)
    assert stopped_at + NODE_MONITOR_GRACE_S <= not_ready_at <= stopped_at + NODE_MONITOR_GRACE_S + LATE
    await cluster.until(lambda: all(_node_ready(cluster, n) == "Unknown" for n in zone_1), within=PATIENCE)
    node = cluster.store.get(NODES, None, web_node)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == (
        "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert [(t["key"], t["effect"]) for t in node["spec"]["taints"]] == [
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")]
    await cluster.until(lambda: condition_status(cluster.store.get(PODS, "shop", web_pod["metadata"]["name"]),
                                                 "Ready") == "False", within=PATIENCE)
    assert _ready_by_zone(cluster, "web") == {"zone-2": 1, "zone-3": 1}

    evicted_at = await cluster.until(
        lambda: bool(cluster.store.get(PODS, "shop", web_pod["metadata"]["name"])["metadata"].get(
            "deletionTimestamp")), within=PATIENCE)
    assert not_ready_at + FAILURE_TIMEOUT <= evicted_at <= not_ready_at + FAILURE_TIMEOUT + LATE
    back_at = await cluster.until(lambda: sum(_ready_by_zone(cluster, "web").values()) == 3,
                                  within=PATIENCE)
    assert evicted_at + WEB_START <= back_at <= evicted_at + WEB_START + LATE
    assert "zone-1" not in _ready_by_zone(cluster, "web")
    # The evicted pod is stuck Terminating on the stopped node; the node agents are never evicted.
    assert cluster.store.find(PODS, "shop", web_pod["metadata"]["name"]) is not None
    agents = [p for p in _pods(cluster, "node-agent") if p["spec"]["nodeName"] in zone_1]
    assert len(agents) == 2
    assert not any(p["metadata"].get("deletionTimestamp") for p in agents)

    started_at = cluster.clock.now()
    for name in zone_1:
        cluster.start_node(name)
    await cluster.until(lambda: all(_node_ready(cluster, n) == "True" for n in zone_1)
                        and cluster.store.find(PODS, "shop", web_pod["metadata"]["name"]) is None,
                        within=PATIENCE)
    assert not any(cluster.store.get(NODES, None, n)["spec"].get("taints") for n in zone_1)
    await cluster.until(lambda: _ready_by_zone(cluster, "node-agent").get("zone-1") == 2, within=PATIENCE)
    restarted = [p for p in _pods(cluster, "node-agent") if p["spec"]["nodeName"] in zone_1]
    assert [p["status"]["containerStatuses"][0]["restartCount"] for p in restarted] == [1, 1]

    truth = read(tmp_path / "ground-truth.jsonl")
    nodes = [(line["node"], line["ready"], line["lab"]) for line in truth if line["event"] == "node"
             and line["node"] in zone_1 and line["lab"] > stopped_at]
    assert [(n, ready) for n, ready, _ in nodes] == [(zone_1[0], False), (zone_1[1], False),
                                                     (zone_1[0], True), (zone_1[1], True)]
    # Stamped in the same commit that the wait above saw (the predicate in between costs a little).
    assert next(lab for n, _, lab in nodes if n == web_node) == pytest.approx(not_ready_at, abs=0.5)
    assert all(started_at <= lab <= started_at + LATE for _, _, lab in nodes[2:])
    web = [line for line in truth if line["event"] == "replicas" and line["deployment"] == "web"]
    lost = next(line for line in web if line["lab"] > stopped_at)
    assert (lost["ready"], lost["by_zone"]) == (2, {"zone-1": 0, "zone-2": 1, "zone-3": 1})
    # Recorded when the pod stopped being ready, never before it, and before its eviction: the loss is
    # the readiness, not the deletion. (Not a wall-clock bound: a loaded machine may stall the recorder.)
    assert not_ready_at - 0.5 <= lost["lab"] < evicted_at
    assert web[-1]["ready"] == 3
    assert web[-1]["lab"] == pytest.approx(back_at, abs=0.5)


async def test_a_short_stop_restarts_the_containers_without_eviction(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    node = "aks-us-zone-2-0"
    before = {p["metadata"]["name"] for p in cluster.store.iter(PODS) if p["spec"]["nodeName"] == node}
    cluster.stop_node(node)
    # The outage itself: shorter than the node monitor grace period, nothing to await.
    await cluster.clock.sleep(NODE_MONITOR_GRACE_S / 4)
    assert _node_ready(cluster, node) == "True"
    cluster.start_node(node)

    def on_node() -> list[Obj]:
        return [p for p in cluster.store.iter(PODS) if p["spec"]["nodeName"] == node]

    await cluster.until(lambda: not any(is_healthy(p) for p in on_node()), within=PATIENCE)
    await cluster.until(lambda: all(is_healthy(p) for p in on_node()), within=PATIENCE)
    assert {p["metadata"]["name"] for p in on_node()} == before
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 1 for p in on_node())


async def test_cordoning_adds_the_unschedulable_taint_and_uncordoning_lifts_it(
        make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    name = "aks-us-zone-3-1"

    def taints() -> list[tuple[str, str]]:
        node = cluster.store.get(NODES, None, name)
        return [(t["key"], t["effect"]) for t in node["spec"].get("taints", [])]

    cluster.store.mutate(NODES, None, name, lambda node: node["spec"].update(unschedulable=True))
    await cluster.until(lambda: taints() == [("node.kubernetes.io/unschedulable", "NoSchedule")],
                        within=PATIENCE)
    cluster.store.mutate(NODES, None, name, lambda node: node["spec"].pop("unschedulable"))
    await cluster.until(lambda: taints() == [], within=PATIENCE)


async def test_a_deleted_nodes_heartbeat_lease_goes_with_it(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    gone, kept = cluster.node_names("zone-1")
    assert cluster.store.find(LEASES, NODE_LEASE_NAMESPACE, gone) is not None
    cluster.stop_node(gone)
    cluster.store.delete(NODES, None, gone)  # as a scale set's scale-in deletes the VM's Node
    await cluster.until(lambda: cluster.store.find(LEASES, NODE_LEASE_NAMESPACE, gone) is None,
                        within=PATIENCE)
    assert cluster.store.find(LEASES, NODE_LEASE_NAMESPACE, kept) is not None
