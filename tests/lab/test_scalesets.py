"""The lab's node pools through ``azure-mgmt-compute``, as a drill reaches them: the real aio client built
by :class:`drills.azure.Azure` from the lab's environment file; the nodes read through the kubernetes
client. One lab for the module; each test starts what it powered off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import VirtualMachineScaleSetVMInstanceIDs
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.azure import Azure
from drills.environment import load_environment
from drills.lab import resources
from drills.lab.groundtruth import read
from drills.lab.kube.nodes import NODE_MONITOR_GRACE_S
from drills.lab.scalesets import POWER_OFF_S, START_S
from drills.lab.topology import DEFAULT, ZONE_LABEL
from drills.lab.world import World

pytestmark = [pytest.mark.lab, pytest.mark.asyncio(loop_scope="module")]

SCALE = 100.0
"""Lab seconds per real second: a power off (30 s) takes 0.3 s, a node goes NotReady 0.4 s after."""

US_GROUP, US_VMSS = resources.node_resource_group("us"), resources.scale_set("us")
_POLL_S = 0.02


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    world = World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path_factory.mktemp("lab"))
    await world.start()
    try:
        yield world
    finally:
        await world.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def compute(world: World) -> AsyncIterator[Any]:
    azure = Azure(load_environment(world.environment_file))
    try:
        yield azure.compute()
    finally:
        await azure.aclose()


@pytest.fixture(scope="module")
def core(world: World) -> k8s.CoreV1Api:
    """The US cluster's kubernetes client (blocking: call it in a thread, the lab runs on this loop)."""
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(world.kubeconfig_file),
                                                           context="lab-us"))


async def test_each_region_is_one_scale_set_across_its_zones(compute: Any) -> None:
    every = [s async for s in compute.virtual_machine_scale_sets.list_all()]
    assert sorted(s.name for s in every) == ["aks-nodepool1-eu-vmss", "aks-nodepool1-us-vmss"]
    listed = [s async for s in compute.virtual_machine_scale_sets.list(US_GROUP)]
    assert [s.name for s in listed] == [US_VMSS]
    us = await compute.virtual_machine_scale_sets.get(US_GROUP, US_VMSS)
    assert us.id == (f"/subscriptions/{resources.SUBSCRIPTION}/resourceGroups/{US_GROUP}/providers/"
                     f"Microsoft.Compute/virtualMachineScaleSets/{US_VMSS}")
    assert (us.location, us.zones, us.sku.capacity, us.properties.provisioning_state) == (
        "eastus", ["1", "2", "3"], 6, "Succeeded")
    with pytest.raises(ResourceNotFoundError):
        await compute.virtual_machine_scale_sets.get(US_GROUP, "aks-nodepool1-eu-vmss")


async def test_instances_are_the_nodes_with_their_zones(compute: Any, core: k8s.CoreV1Api) -> None:
    vms = [vm async for vm in compute.virtual_machine_scale_set_vms.list(US_GROUP, US_VMSS,
                                                                          expand="instanceView")]
    nodes = (await asyncio.to_thread(core.list_node)).items
    zones = DEFAULT.regions["us"].zones
    expected = {n.spec.provider_id.rsplit("/", 1)[-1]: (n.metadata.name,
                                                       str(zones.index(n.metadata.labels[ZONE_LABEL]) + 1))
                for n in nodes}
    assert {vm.instance_id: (vm.properties.os_profile.computer_name, vm.zones[0]) for vm in vms} == expected
    assert all(vm.name == f"{US_VMSS}_{vm.instance_id}" for vm in vms)
    assert all(_power(vm.properties.instance_view) == "PowerState/running" for vm in vms)


async def test_powering_off_a_zone_makes_its_nodes_not_ready_and_start_brings_them_back(
        world: World, compute: Any, core: k8s.CoreV1Api) -> None:
    vms = [vm async for vm in compute.virtual_machine_scale_set_vms.list(US_GROUP, US_VMSS)]
    zone_1 = sorted(vm.instance_id for vm in vms if vm.zones == ["1"])
    names = {vm.properties.os_profile.computer_name for vm in vms if vm.instance_id in zone_1}
    assert len(zone_1) == 2
    ids = VirtualMachineScaleSetVMInstanceIDs(instance_ids=zone_1)
    began = world.clock.now()
    try:
        poller = await compute.virtual_machine_scale_sets.begin_power_off(US_GROUP, US_VMSS, ids)
        view = await compute.virtual_machine_scale_set_vms.get_instance_view(US_GROUP, US_VMSS, zone_1[0])
        assert _power(view) == "PowerState/stopping"
        assert view.statuses[0].code == "ProvisioningState/updating"
        await poller.result()
        assert world.clock.now() - began >= POWER_OFF_S
        view = await compute.virtual_machine_scale_set_vms.get_instance_view(US_GROUP, US_VMSS, zone_1[0])
        assert (view.statuses[0].code, _power(view)) == ("ProvisioningState/succeeded", "PowerState/stopped")
        await _until(core, lambda ready: {n for n, r in ready.items() if not r} == names)
        assert world.clock.now() - began >= NODE_MONITOR_GRACE_S
    finally:
        started = world.clock.now()
        poller = await compute.virtual_machine_scale_sets.begin_start(US_GROUP, US_VMSS, ids)
        await poller.result()
    assert world.clock.now() - started >= START_S
    await _until(core, lambda ready: all(ready.values()))
    lines = [(line["instance"], line["zone"], line["node"], line["state"])
             for line in read(world.ground_truth_file) if line["event"] == "instance_power"]
    first = sorted(zone_1)[0]
    node = next(vm.properties.os_profile.computer_name for vm in vms if vm.instance_id == first)
    assert [line for line in lines if line[0] == first][-4:] == [
        (first, "1", node, state) for state in ("stopping", "stopped", "starting", "running")]


async def test_a_start_preempts_a_power_off_in_progress(compute: Any, core: k8s.CoreV1Api) -> None:
    vms = compute.virtual_machine_scale_set_vms
    instance = [vm async for vm in vms.list(US_GROUP, US_VMSS)][1].instance_id
    stopping = await vms.begin_power_off(US_GROUP, US_VMSS, instance)
    starting = await vms.begin_start(US_GROUP, US_VMSS, instance)
    with pytest.raises(HttpResponseError, match="OperationPreempted"):
        await stopping.result()
    await starting.result()
    assert _power(await vms.get_instance_view(US_GROUP, US_VMSS, instance)) == "PowerState/running"
    await _until(core, lambda ready: all(ready.values()))


async def test_deallocate_and_bad_requests(compute: Any, core: k8s.CoreV1Api) -> None:
    vm = [vm async for vm in compute.virtual_machine_scale_set_vms.list(US_GROUP, US_VMSS)][-1]
    ids = VirtualMachineScaleSetVMInstanceIDs(instance_ids=[vm.instance_id])
    await (await compute.virtual_machine_scale_sets.begin_deallocate(US_GROUP, US_VMSS, ids)).result()
    got = await compute.virtual_machine_scale_set_vms.get(US_GROUP, US_VMSS, vm.instance_id,
                                                          expand="instanceView")
    assert _power(got.properties.instance_view) == "PowerState/deallocated"
    summary = await compute.virtual_machine_scale_sets.get_instance_view(US_GROUP, US_VMSS)
    assert {s.code: s.count for s in summary.virtual_machine.statuses_summary} == {
        "PowerState/running": 5, "PowerState/deallocated": 1}
    await (await compute.virtual_machine_scale_sets.begin_start(US_GROUP, US_VMSS, ids)).result()
    await _until(core, lambda ready: all(ready.values()))
    with pytest.raises(HttpResponseError) as refused:
        await compute.virtual_machine_scale_sets.begin_power_off(
            US_GROUP, US_VMSS, VirtualMachineScaleSetVMInstanceIDs(instance_ids=["99"]))
    assert refused.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        await compute.virtual_machine_scale_set_vms.get(US_GROUP, US_VMSS, "99")


def _power(view: Any) -> str:
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


async def _until(core: k8s.CoreV1Api, holds: Callable[[dict[str, bool]], bool], *,
                 timeout_s: float = 5) -> None:
    """Poll the nodes' Ready condition through the kubernetes client until ``holds`` says so."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = (await asyncio.to_thread(core.list_node)).items
        ready = {n.metadata.name: any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                 for n in nodes}
        if holds(ready):
            return
        assert time.monotonic() < deadline, f"nodes still {ready}"
        await asyncio.sleep(_POLL_S)


async def test_tags_are_replaced_by_a_patch_within_azures_limits(compute: Any) -> None:
    sets = compute.virtual_machine_scale_sets
    own = dict((await sets.get(US_GROUP, US_VMSS)).tags)
    assert own["aks-managed-poolName"] == "nodepool1"
    try:
        await (await sets.begin_update(US_GROUP, US_VMSS, {"tags": {**own, "drill-run": "r1"}})).result()
        assert (await sets.get(US_GROUP, US_VMSS)).tags == {**own, "drill-run": "r1"}
        with pytest.raises(HttpResponseError, match="InvalidTagCount"):
            await sets.begin_update(US_GROUP, US_VMSS, {"tags": {f"t{i}": "x" for i in range(51)}})
        with pytest.raises(HttpResponseError, match="InvalidTagValueLength"):
            await sets.begin_update(US_GROUP, US_VMSS, {"tags": {"t": "x" * 257}})
        with pytest.raises(HttpResponseError, match="tags only"):
            await sets.begin_update(US_GROUP, US_VMSS, {"sku": {"capacity": 1}})
        assert (await sets.get(US_GROUP, US_VMSS)).tags == {**own, "drill-run": "r1"}
    finally:
        await (await sets.begin_update(US_GROUP, US_VMSS, {"tags": own})).result()
    assert (await sets.get(US_GROUP, US_VMSS)).tags == own
