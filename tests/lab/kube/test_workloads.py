"""Deployments, ReplicaSets, DaemonSets, garbage collection and PodDisruptionBudget status."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.disruption import check_eviction, is_healthy
from drills.lab.kube.garbage import GarbageCollector
from drills.lab.kube.kubelet import delete_pod
from drills.lab.kube.store import (
    DEPLOYMENTS,
    EVENTS,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    Obj,
    Store,
    TooManyRequests,
)

SCALE = 1000.0
PATIENCE = 3.0 * SCALE
"""How long (lab seconds) a wait may take before the test fails: 3 s real, for a loaded machine."""

MakeCluster = Callable[..., Awaitable[Cluster]]


def _pods(cluster: Cluster, app: str, *, live: bool = True) -> list[Obj]:
    return [p for p in cluster.store.iter(PODS) if p["metadata"]["labels"].get("app") == app
            and not (live and p["metadata"].get("deletionTimestamp"))]


def _ready(cluster: Cluster, app: str) -> int:
    return sum(1 for p in _pods(cluster, app) if is_healthy(p))


def _scale(cluster: Cluster, replicas: int) -> None:
    def change(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = replicas

    cluster.store.mutate(DEPLOYMENTS, "shop", "web", change)


async def test_a_deployment_owns_a_replica_set_that_owns_its_pods(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    deployment = cluster.store.get(DEPLOYMENTS, "shop", "web")
    [rs] = cluster.store.list(REPLICASETS, "shop")
    template_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{template_hash}"
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deployment["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert rs["spec"]["replicas"] == 3
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                            "availableReplicas": 3, "observedGeneration": 1}
    for pod in _pods(cluster, "web"):
        assert re.fullmatch(rf"web-{template_hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}",
                            pod["metadata"]["name"])
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": template_hash}
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300} in pod["spec"]["tolerations"]
        assert pod["status"]["podIP"].startswith("10.244.")
    status = deployment["status"]
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                                   "observedGeneration")} == {
        "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "observedGeneration": 1}
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}


async def test_scaling_down_gives_up_the_pods_that_are_not_ready_first(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    serving = {p["metadata"]["name"] for p in _pods(cluster, "web")}
    _scale(cluster, 6)
    await cluster.until(lambda: len(_pods(cluster, "web")) == 6, within=PATIENCE)
    _scale(cluster, 3)  # before the three new pods are Ready

    await cluster.until(lambda: len(_pods(cluster, "web", live=False)) == 3, within=PATIENCE)
    assert {p["metadata"]["name"] for p in _pods(cluster, "web")} == serving
    assert _ready(cluster, "web") == 3


async def test_a_template_change_rolls_out_without_losing_a_ready_pod(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    ready_seen: list[int] = []
    cluster.store.on_change(lambda change: ready_seen.append(_ready(cluster, "web")))

    def restart(deployment: Obj) -> None:
        deployment["spec"]["template"]["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/restartedAt": "2026-11-22T03:18:00Z"}

    old = {p["metadata"]["name"] for p in _pods(cluster, "web")}
    cluster.store.mutate(DEPLOYMENTS, "shop", "web", restart)
    await cluster.until(lambda: not old & {p["metadata"]["name"] for p in _pods(cluster, "web", live=False)}
                        and _ready(cluster, "web") == 3, within=PATIENCE)
    await cluster.settled(within=PATIENCE)

    sets = {rs["metadata"]["name"]: rs for rs in cluster.store.list(REPLICASETS, "shop")}
    assert len(sets) == 2
    new = next(rs for rs in sets.values() if rs["spec"]["replicas"] == 3)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert cluster.store.get(DEPLOYMENTS, "shop", "web")["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "2"
    assert [rs["spec"]["replicas"] for name, rs in sets.items() if rs is not new] == [0]
    # maxUnavailable 25% of 3 rounds down to 0: the rollout never drops below three Ready pods.
    assert min(ready_seen) == 3


async def test_deleting_a_deployment_collects_its_replica_set_and_pods(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    cluster.store.delete(DEPLOYMENTS, "shop", "web")
    await cluster.until(lambda: not cluster.store.list(REPLICASETS, "shop")
                        and not _pods(cluster, "web", live=False), within=PATIENCE)
    assert _pods(cluster, "ingress-nginx-controller")


async def test_a_daemon_set_follows_the_nodes(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    node = cluster.store.get(NODES, None, "aks-us-zone-3-1")
    node["metadata"] = {"name": "aks-us-zone-3-2", "labels": {
        **node["metadata"]["labels"], "kubernetes.io/hostname": "aks-us-zone-3-2"}}
    cluster.store.create(NODES, node)

    def agent_on(name: str) -> bool:
        return any(p["spec"]["nodeName"] == name and is_healthy(p) for p in _pods(cluster, "node-agent"))

    await cluster.until(lambda: agent_on("aks-us-zone-3-2"), within=PATIENCE)
    cluster.store.delete(NODES, None, "aks-us-zone-1-0")
    await cluster.until(lambda: not any(p["spec"]["nodeName"] == "aks-us-zone-1-0"
                                        for p in cluster.store.iter(PODS)), within=PATIENCE)
    assert sorted(p["spec"]["nodeName"] for p in _pods(cluster, "node-agent")) == cluster.node_names()


async def test_the_budget_allows_one_disruption_then_refuses(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    assert cluster.store.get(PDBS, "shop", "web")["status"] == {
        "observedGeneration": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
        "disruptionsAllowed": 1, "conditions": [{
            "type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "",
            "observedGeneration": 1,
            "lastTransitionTime": cluster.store.get(PDBS, "shop", "web")["status"]["conditions"][0][
                "lastTransitionTime"]}]}
    first, second, _ = _pods(cluster, "web")
    check_eviction(cluster.store, first)
    delete_pod(cluster.store, first, clock=cluster.clock)
    with pytest.raises(TooManyRequests):
        check_eviction(cluster.store, second)
    blocked: list[Obj] = []

    def no_disruption_allowed() -> bool:
        status = cluster.store.get(PDBS, "shop", "web")["status"]
        if status["disruptionsAllowed"] == 0:
            blocked.append(status)  # kept as it was then: the replacement turns Ready soon after
        return bool(blocked)

    await cluster.until(no_disruption_allowed, within=PATIENCE)
    # The replacement counts as expected, not yet as healthy.
    assert (blocked[0]["currentHealthy"], blocked[0]["expectedPods"]) == (2, 3)
    assert blocked[0]["conditions"][0]["reason"] == "InsufficientPods"

    await cluster.until(lambda: cluster.store.get(PDBS, "shop", "web")["status"]["disruptionsAllowed"] == 1,
                        within=PATIENCE)
    check_eviction(cluster.store, second)


def test_events_expire_an_hour_after_the_store_received_them() -> None:
    # As kube-apiserver's --event-ttl (an etcd lease taken at each write), not by the timestamps an event
    # states: a client's event stamped by the real clock is ahead of the lab's wall clock (which runs in
    # the past) and must expire all the same; one stamped long ago still lives its hour.
    # (The rule before counted from lastTimestamp: this test replaces one that encoded it.)
    monotonic = [0.0]
    clock = LabClock(60.0, monotonic=lambda: monotonic[0])
    store = Store(clock)
    collector = GarbageCollector(store, clock=clock)
    real_now = rfc3339(datetime.now(UTC))  # what a client writes: ahead of the lab's wall clock
    long_ago = rfc3339(clock.wall() - timedelta(days=2))
    for name, stamp in (("client", real_now), ("backdated", long_ago)):
        store.create(EVENTS, {"metadata": {"name": name, "namespace": "shop"}, "reason": "Scheduled",
                              "firstTimestamp": stamp, "lastTimestamp": stamp})
    monotonic[0] = 600 / 60  # ten lab minutes on
    store.create(EVENTS, {"metadata": {"name": "fresh", "namespace": "shop"}, "reason": "Scheduled"})

    assert collector.reconcile(clock.now()) == pytest.approx(3600)
    assert len(store.list(EVENTS)) == 3  # the backdated one too: received ten minutes ago

    monotonic[0] = 3600 / 60
    due = collector.reconcile(clock.now())

    assert [e["metadata"]["name"] for e in store.list(EVENTS)] == ["fresh"]
    assert due == pytest.approx(600 + 3600)
