"""cordon-zone against a lab: exactly the zone's schedulable nodes, restored exactly."""

from __future__ import annotations

import pytest
from faultkube import (
    cordoned,
    lab_targets,  # noqa: F401 - the targets fixture
    nodes,
    set_cordon,
    zone_of,
)

from drills.environment import Limits
from drills.errors import FaultError
from drills.faults.nodes import CordonZone
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def test_cordons_the_zones_nodes_and_revert_restores_them(targets: Targets) -> None:
    fault = CordonZone(CordonZone.Params(cluster="us", zone="zone-1"))
    undo = await fault.prepare(targets)
    before = await nodes(targets, "us")
    zone_1 = sorted(n for n, node in before.items() if zone_of(node) == "zone-1")
    assert len(zone_1) == 2
    assert undo.objects == [f"us/Node//{n}" for n in zone_1]
    assert not any(cordoned(n) for n in before.values())  # prepare touched nothing

    await fault.inject(targets, undo)
    during = await nodes(targets, "us")
    assert sorted(n for n, node in during.items() if cordoned(node)) == zone_1
    assert not any(cordoned(n) for n in (await nodes(targets, "eu")).values())

    await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # idempotent
    assert not any(cordoned(n) for n in (await nodes(targets, "us")).values())


async def test_a_node_someone_else_cordoned_stays_cordoned(targets: Targets) -> None:
    zone_1 = sorted(n for n, node in (await nodes(targets, "us")).items() if zone_of(node) == "zone-1")
    await set_cordon(targets, "us", zone_1[0], True)
    try:
        fault = CordonZone(CordonZone.Params(cluster="us", zone="zone-1"))
        undo = await fault.prepare(targets)
        assert undo.data["nodes"] == [zone_1[1]]
        assert "already cordoned" in undo.summary
        await fault.inject(targets, undo)
        await fault.revert(targets, undo)
        after = await nodes(targets, "us")
        assert cordoned(after[zone_1[0]])
        assert not cordoned(after[zone_1[1]])
    finally:
        await set_cordon(targets, "us", zone_1[0], False)


async def test_an_unknown_zone_is_refused_naming_the_zones(targets: Targets) -> None:
    with pytest.raises(FaultError, match=r"zone 'zone-9' \(zones: zone-1, zone-2, zone-3\)"):
        await CordonZone(CordonZone.Params(cluster="us", zone="zone-9")).prepare(targets)
    with pytest.raises(FaultError, match="no region 'mars'"):
        await CordonZone(CordonZone.Params(cluster="mars", zone="zone-1")).prepare(targets)


async def test_a_zone_larger_than_the_limit_is_refused(targets: Targets) -> None:
    targets.env = targets.env.model_copy(update={"limits": Limits(max_nodes=1)})
    with pytest.raises(FaultError, match="2 nodes, more than the environment's limit of 1"):
        await CordonZone(CordonZone.Params(cluster="us", zone="zone-1")).prepare(targets)
