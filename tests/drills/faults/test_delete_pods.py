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
