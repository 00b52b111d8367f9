"""zone-down against a lab's ARM endpoint, through the real azure-mgmt-compute client: exactly the zone's
running scale-set instances are powered off (their nodes go NotReady: Ready Unknown, as for a node
whose kubelet stopped posting) and started again; an instance of a scale set the environment does not
list, or more nodes than its limit, is refused before anything changes, and an instance already stopped
is left stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faultkube import lab_targets, nodes, zone_of  # noqa: F401 - the targets fixture

from drills import plugins
from drills.cli.plan import plan_lines
from drills.clock import ScenarioClock
from drills.environment import Environment, Limits, NodePool, load_environment
from drills.errors import FaultError
from drills.faults.compute import ZoneDown, parse_provider_id
from drills.runner.session import Where, plan_scenario, validate
from drills.targets import Targets

pytestmark = pytest.mark.lab

WAIT = "20s"
"""kubectl wait's timeout (real seconds): a powered-off node is NotReady after the lab's node monitor
grace period, well under a real second at the tests' time scale."""


@pytest.fixture(name="azure_targets")
async def _azure_targets(targets: Targets) -> AsyncIterator[Targets]:
    yield targets
    await targets.aclose()


async def _power_states(targets: Targets, region: str) -> dict[str, str]:
    """Each node's power state, read through the SDK from the instance its providerID names."""
    client = targets.azure.compute()
    states = {}
    for name, node in (await nodes(targets, region)).items():
        instance = parse_provider_id(node.spec.provider_id)
        assert instance is not None, node.spec.provider_id
        view = await client.virtual_machine_scale_set_vms.get_instance_view(
            instance.resource_group, instance.scale_set, instance.instance_id)
        states[name] = next(s.code for s in view.statuses if s.code.startswith("PowerState/"))
    return states


def _with(lab_env: Environment, **changes: Any) -> Environment:
    return load_environment(lab_env.path).model_copy(update=changes)


async def test_zone_down_powers_off_exactly_the_zones_instances_and_the_undo_starts_them(
        azure_targets: Targets, kubectl: Any) -> None:
    targets = azure_targets
    zone = sorted(n for n, node in (await nodes(targets, "us")).items() if zone_of(node) == "zone-1")
    assert len(zone) == 2
    before = await _power_states(targets, "us")
    assert set(before.values()) == {"PowerState/running"}
    fault = ZoneDown(ZoneDown.Params(cluster="us", zone="zone-1"))
    undo = await fault.prepare(targets)
    assert undo.data["nodes"] == zone
    assert len(undo.objects) == 2
    assert all("/virtualMachineScaleSets/" in o and "/virtualMachines/" in o for o in undo.objects)
    try:
        await fault.inject(targets, undo)
        after = await _power_states(targets, "us")
        assert {n for n, s in after.items() if s != "PowerState/running"} == set(zone)
        assert {after[n] for n in zone} == {"PowerState/stopped"}
        assert set((await _power_states(targets, "eu")).values()) == {"PowerState/running"}
        kubectl("wait", "--for=condition=Ready=Unknown", *(f"node/{n}" for n in zone), f"--timeout={WAIT}")
    finally:
        await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # idempotent
    assert set((await _power_states(targets, "us")).values()) == {"PowerState/running"}
    kubectl("wait", "--for=condition=Ready", *(f"node/{n}" for n in zone), f"--timeout={WAIT}")


async def test_an_instance_already_stopped_is_left_stopped(azure_targets: Targets) -> None:
    targets = azure_targets
    zone = sorted(n for n, node in (await nodes(targets, "eu")).items() if zone_of(node) == "zone-2")
    first = parse_provider_id((await nodes(targets, "eu"))[zone[0]].spec.provider_id)
    assert first is not None
    client = targets.azure.compute()
    stop = await client.virtual_machine_scale_sets.begin_power_off(
        first.resource_group, first.scale_set, vm_instance_i_ds={"instanceIds": [first.instance_id]})
    await stop.result()
    fault = ZoneDown(ZoneDown.Params(cluster="eu", zone="zone-2"))
    try:
        undo = await fault.prepare(targets)
        assert undo.data["nodes"] == zone[1:]
        assert f"{zone[0]} (PowerState/stopped)" in undo.summary
        await fault.inject(targets, undo)
        await fault.revert(targets, undo)
        states = await _power_states(targets, "eu")
        assert states[zone[0]] == "PowerState/stopped"
        assert states[zone[1]] == "PowerState/running"
    finally:
        start = await client.virtual_machine_scale_sets.begin_start(
            first.resource_group, first.scale_set, vm_instance_i_ds={"instanceIds": [first.instance_id]})
        await start.result()


async def test_a_scale_set_the_environment_does_not_list_is_refused_before_anything_changes(
        lab_env: Environment) -> None:
    regions = dict(lab_env.regions)
    regions["us"] = regions["us"].model_copy(update={"node_pools": [
        NodePool(resourceGroup=regions["us"].node_pools[0].resource_group, scaleSet="aks-systempool-vmss")]})
    targets = Targets(_with(lab_env, regions=regions), ScenarioClock(lab_env.time_scale))
    try:
        with pytest.raises(FaultError, match=r"does not list in regions\.us\.nodePools"):
            await ZoneDown(ZoneDown.Params(cluster="us", zone="zone-1")).prepare(targets)
        assert set((await _power_states(targets, "us")).values()) == {"PowerState/running"}
    finally:
        await targets.aclose()


async def test_more_nodes_than_the_environments_limit_are_refused(lab_env: Environment) -> None:
    targets = Targets(_with(lab_env, limits=Limits(maxNodes=1)), ScenarioClock(lab_env.time_scale))
    try:
        with pytest.raises(FaultError, match=r"limits\.maxNodes"):
            await ZoneDown(ZoneDown.Params(cluster="us", zone="zone-1")).prepare(targets)
    finally:
        await targets.aclose()


PLANNED = """\
apiVersion: drill/v1
name: azure-plan
probes:
  tm: {kind: traffic-manager}
steps:
  - {id: disable-us, fault: disable-endpoint, region: us}
  - {id: us-zone-3-down, fault: zone-down, cluster: us, zone: zone-3}
  - wait: 1m
"""


async def test_plan_and_validate_show_the_azure_faults_and_touch_nothing(
        azure_targets: Targets, lab: Any, tmp_path: Path) -> None:
    targets = azure_targets
    path = tmp_path / "azure-plan.yaml"
    path.write_text(PLANNED)
    env = str(lab.environment_file)
    # What `drill validate --env` and `drill plan --env` do, given the installed registry (the command
    # modules bind it when first imported, which another test of this worker may do with a fake one).
    where, installed = Where.parse(env), plugins.installed()
    scenario, _ = validate(path, where, plugins=installed)
    assert [s.fault for s in scenario.fault_steps()] == ["disable-endpoint", "zone-down"]
    out = "\n".join(plan_lines(*await plan_scenario(path, where, plugins=installed)))
    pool = targets.env.regions["us"].node_pools[0]
    assert "tm: traffic-manager every 5.0s" in out
    assert "disable-us: fault disable-endpoint in us: disable Traffic Manager endpoint us" in out
    assert "/providers/Microsoft.Network/trafficManagerProfiles/" in out
    assert "undone by hand with: az network traffic-manager endpoint update" in out
    assert ("us-zone-3-down: fault zone-down in us: power off the 2 running scale-set instances of zone "
            "zone-3 in us (nodes aks-us-zone-3-0, aks-us-zone-3-1") in out
    assert f"/virtualMachineScaleSets/{pool.scale_set}/virtualMachines/" in out
    assert f"undone by hand with: az vmss start --subscription {targets.env.azure.subscription} " in out
    assert out.rstrip().endswith("nothing was changed.")
    assert set((await _power_states(targets, "us")).values()) == {"PowerState/running"}
