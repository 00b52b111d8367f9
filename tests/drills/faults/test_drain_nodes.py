"""drain-nodes against a lab: kubectl's semantics, PodDisruptionBudgets respected, blocked drains named."""

from __future__ import annotations

import re

import pytest
from faultkube import (
    app_selector,
    cordoned,
    lab_targets,  # noqa: F401 - the targets fixture
    nodes,
    owner_kind,
    pods,
    pods_on,
    zone_of,
)
from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from drills.errors import FaultError
from drills.faults.kube import selector_matches
from drills.faults.nodes import DrainNodes
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def test_drains_two_zones_through_the_budget_leaving_daemonset_pods(targets: Targets) -> None:
    us = await nodes(targets, "us")
    drained = sorted(n for n, node in us.items() if zone_of(node) in ("zone-1", "zone-2"))
    web = await app_selector(targets, "us", "shop", "web")
    fault = DrainNodes(DrainNodes.Params(cluster="us", nodes=drained, timeout="10m"))
    undo = await fault.prepare(targets)
    assert undo.data["nodes"] == drained
    t0 = targets.clock.now()
    await fault.inject(targets, undo)
    took = targets.clock.now() - t0

    for name in drained:
        left = await pods_on(targets, "us", name)
        assert left, f"{name} lost its DaemonSet pod"
        assert {owner_kind(p) for p in left} == {"DaemonSet"}, [p.metadata.name for p in left]
    remaining = await pods(targets, "us", "shop", web)
    assert {zone_of(us[p.spec.node_name]) for p in remaining} == {"zone-3"}
    # Two web pods left zones 1 and 2 while the budget (minAvailable 2 of 3) allows one disruption at
    # a time: the second eviction had to wait for the first pod's replacement to become Ready.
    assert took >= 20.0

    await fault.revert(targets, undo)
    assert not any(cordoned(n) for n in (await nodes(targets, "us")).values())


async def test_a_blocking_budget_fails_the_drain_at_its_timeout_naming_the_budget(targets: Targets) -> None:
    kube = targets.kube("us")
    web = await app_selector(targets, "us", "shop", "web")
    victim = (await pods(targets, "us", "shop", web))[0]
    # Kubernetes refuses to evict a pod that two budgets select (500), so the test tightens web's own
    # budget from minAvailable 2 to 3 (of 3 replicas): no web pod may be evicted at all.
    budgets = await kube.call(kube.policy.list_namespaced_pod_disruption_budget, "shop")
    budget = next(b for b in budgets.items if selector_matches(b.spec.selector, victim.metadata.labels))
    name, was = budget.metadata.name, budget.spec.min_available
    await kube.call(kube.policy.patch_namespaced_pod_disruption_budget, name, "shop",
                    {"spec": {"minAvailable": 3}})
    fault = DrainNodes(DrainNodes.Params(cluster="us", nodes=[victim.spec.node_name], timeout="30s"))
    undo = await fault.prepare(targets)
    try:
        t0 = targets.clock.now()
        with pytest.raises(FaultError) as caught:
            await fault.inject(targets, undo)
        message = str(caught.value)
        assert targets.clock.now() - t0 >= 30.0, message
        assert message.startswith("drain-nodes in us: timed out after 30.0s"), message
        named = re.findall(r"shop/(web-\S+) \(blocked by PodDisruptionBudget shop/(\S+): minAvailable 3",
                           message)
        assert named, message
        assert {budget_name for _, budget_name in named} == {name}
        on_node = {p.metadata.name for p in await pods_on(targets, "us", victim.spec.node_name)}
        assert {pod for pod, _ in named} <= on_node
        assert not caught.value.transient
    finally:
        await fault.revert(targets, undo)
        await kube.call(kube.policy.patch_namespaced_pod_disruption_budget, name, "shop",
                        {"spec": {"minAvailable": was}})
    assert not any(cordoned(n) for n in (await nodes(targets, "us")).values())


async def test_a_pod_no_controller_manages_is_refused_before_anything_is_touched(targets: Targets) -> None:
    kube = targets.kube("us")
    us = await nodes(targets, "us")
    node = sorted(n for n, node in us.items() if zone_of(node) == "zone-2")[0]
    bare = V1Pod(metadata=V1ObjectMeta(name="debug-shell", namespace="shop"),
                 spec=V1PodSpec(node_name=node, containers=[V1Container(name="sh", image="busybox")]))
    await kube.call(kube.core.create_namespaced_pod, "shop", bare)
    try:
        fault = DrainNodes(DrainNodes.Params(cluster="us", zone="zone-2"))
        with pytest.raises(FaultError, match=r"no controller manages .*: shop/debug-shell"):
            await fault.prepare(targets)
        assert not any(cordoned(n) for n in (await nodes(targets, "us")).values())
        forced = await DrainNodes(DrainNodes.Params(cluster="us", zone="zone-2", force=True)).prepare(targets)
        assert "us/Pod/shop/debug-shell" in forced.objects
    finally:
        await kube.call(kube.core.delete_namespaced_pod, "debug-shell", "shop", grace_period_seconds=0)
