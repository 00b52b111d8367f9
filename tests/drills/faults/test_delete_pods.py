"""delete-pods against a lab: the chosen pods only (a zone, a share), and the limit."""

from __future__ import annotations

import pytest
from faultkube import (
    app_selector,
    lab_targets,  # noqa: F401 - the targets fixture
    nodes,
    pods,
    zone_of,
)

from drills.environment import Limits
from drills.errors import FaultError
from drills.faults.workloads import DeletePods
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def test_deletes_only_the_pods_in_the_zone(targets: Targets) -> None:
    web = await app_selector(targets, "us", "shop", "web")
    us = await nodes(targets, "us")
    before = await pods(targets, "us", "shop", web)
    zone = zone_of(us[before[0].spec.node_name])
    in_zone = {p.metadata.name: p.metadata.uid for p in before if zone_of(us[p.spec.node_name]) == zone}
    others = {p.metadata.uid for p in before if p.metadata.name not in in_zone}

    fault = DeletePods(DeletePods.Params(cluster="us", namespace="shop", selector=web, zone=zone))
    undo = await fault.prepare(targets)
    assert undo.objects == [f"us/Pod/shop/{n}" for n in sorted(in_zone)]
    await fault.inject(targets, undo)
    after = {p.metadata.uid for p in await pods(targets, "us", "shop", web)}
    assert not after & set(in_zone.values())
    assert others <= after
    await fault.revert(targets, undo)  # nothing to undo, and saying so is not an error
    assert DeletePods.by_hand(undo) is None


async def test_a_share_is_rounded_up_and_the_limit_refuses_more(targets: Targets) -> None:
    web = await app_selector(targets, "us", "shop", "web")
    count = len(await pods(targets, "us", "shop", web))
    half = await DeletePods(DeletePods.Params(cluster="us", namespace="shop", selector=web,
                                              share="50%")).prepare(targets)
    assert len(half.data["pods"]) == -(-count // 2)
    targets.env = targets.env.model_copy(update={"limits": Limits(max_pods=1)})
    with pytest.raises(FaultError, match=f"delete {count} pods .* limit of 1"):
        await DeletePods(DeletePods.Params(cluster="us", namespace="shop", selector=web)).prepare(targets)
    nothing = DeletePods.Params(cluster="us", namespace="shop", selector="app=nothing")
    with pytest.raises(FaultError, match="no running pod matches 'app=nothing'"):
        await DeletePods(nothing).prepare(targets)


async def test_a_zone_without_matching_pods_is_a_note_not_a_refusal(targets: Targets) -> None:
    # Two ingress replicas over three zones: one zone has none. A design that keeps a workload out of
    # a zone must still get a verdict when that zone is lost; the fault applies to nothing there.
    ingress = await app_selector(targets, "us", "ingress-nginx", "ingress-nginx-controller")
    us = await nodes(targets, "us")
    found = await pods(targets, "us", "ingress-nginx", ingress)
    occupied = {zone_of(us[p.spec.node_name]) for p in found}
    empty = sorted({zone_of(n) for n in us.values()} - occupied)[0]

    fault = DeletePods(DeletePods.Params(cluster="us", namespace="ingress-nginx", selector=ingress,
                                         zone=empty))
    undo = await fault.prepare(targets)
    assert undo.objects == []
    assert undo.data["pods"] == []
    assert undo.summary == (f"applies to nothing: none of the {len(found)} pods {ingress} in "
                            f"us/ingress-nginx is in zone {empty}")
    await fault.inject(targets, undo)
    assert {p.metadata.uid for p in await pods(targets, "us", "ingress-nginx", ingress)} == {
        p.metadata.uid for p in found}


async def test_a_zone_that_does_not_exist_is_refused(targets: Targets) -> None:
    web = await app_selector(targets, "us", "shop", "web")
    with pytest.raises(FaultError, match="no node of us is in zone 'zone-9' "
                                         r"\(zones: zone-1, zone-2, zone-3\)"):
        await DeletePods(DeletePods.Params(cluster="us", namespace="shop", selector=web,
                                           zone="zone-9")).prepare(targets)


async def test_without_namespace_or_selector_every_pod_of_the_zone_goes(targets: Targets) -> None:
    # A lost zone takes every pod on its nodes, whatever namespace or controller (DaemonSets' too).
    us = await nodes(targets, "us")
    zone = "zone-2"
    kube = targets.kube("us")
    listed = (await kube.call(kube.core.list_pod_for_all_namespaces)).items
    in_zone = sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in listed
                     if p.metadata.deletion_timestamp is None and p.spec.node_name in us
                     and zone_of(us[p.spec.node_name]) == zone)
    assert {name.split("/")[0] for name in in_zone} >= {"shop", "kube-system"}

    fault = DeletePods(DeletePods.Params(cluster="us", zone=zone))
    undo = await fault.prepare(targets)
    assert undo.objects == [f"us/Pod/{name}" for name in in_zone]
    assert undo.summary == (f"delete {len(in_zone)} of the {len(in_zone)} pods in us (every namespace) "
                            f"in zone {zone} (their controller recreates them)")
    await fault.inject(targets, undo)
    after = {f"{p.metadata.namespace}/{p.metadata.name}"
             for p in (await kube.call(kube.core.list_pod_for_all_namespaces)).items
             if p.metadata.deletion_timestamp is None}
    assert not after & set(in_zone)


async def test_every_pod_of_the_zone_is_still_within_the_limit(targets: Targets) -> None:
    targets.env = targets.env.model_copy(update={"limits": Limits(max_pods=1)})
    with pytest.raises(FaultError, match=r"would delete \d+ pods in us \(every namespace\) in zone zone-3, "
                                         "more than the environment's limit of 1"):
        await DeletePods(DeletePods.Params(cluster="us", zone="zone-3")).prepare(targets)
