"""The Azure faults' rules that need no Azure: which instance a node is, which scale sets zone-down may
power off, what a person runs to undo each fault, and their parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import FaultError
from drills.faults.base import Undo, undo_command
from drills.faults.compute import ScaleSetInstance, ZoneDown, _instance, parse_provider_id
from drills.faults.trafficmanager import DisableEndpoint, endpoint_type
from drills.targets import Targets

EXAMPLE = Path(__file__).parents[3] / "scenarios" / "environments" / "prod.example.yaml"
SUB = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def env() -> Environment:
    return load_environment(EXAMPLE)


def test_an_aks_node_names_its_scale_set_instance() -> None:
    found = parse_provider_id(f"azure:///subscriptions/{SUB}/resourceGroups/mc_rg-shop-eastus_aks-shop-eastus_"
                              "eastus/providers/Microsoft.Compute/virtualMachineScaleSets/"
                              "aks-nodepool1-12345678-vmss/virtualMachines/7")
    assert found == ScaleSetInstance(SUB, "mc_rg-shop-eastus_aks-shop-eastus_eastus",
                                     "aks-nodepool1-12345678-vmss", "7")
    assert found.id == (f"/subscriptions/{SUB}/resourceGroups/mc_rg-shop-eastus_aks-shop-eastus_eastus/"
                        "providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/"
                        "virtualMachines/7")


@pytest.mark.parametrize("provider_id", [
    None, "", "kind://docker/kind-worker",
    f"azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1",
    f"azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/s",
])
def test_a_node_that_is_no_scale_set_instance_is_recognised(provider_id: str | None) -> None:
    assert parse_provider_id(provider_id) is None


def test_an_instance_of_a_listed_pool_is_spelt_as_the_environment_spells_it(env: Environment) -> None:
    targets = Targets(env, ScenarioClock(1.0))
    try:
        found = _instance(targets, "us", "aks-nodepool1-12345678-vmss000007",
                          f"azure:///subscriptions/{SUB}/resourceGroups/mc_rg-shop-eastus_aks-shop-eastus_eastus/"
                          "providers/Microsoft.Compute/virtualMachineScaleSets/AKS-NODEPOOL1-12345678-VMSS/"
                          "virtualMachines/7")
    finally:
        targets.close()
    assert found == ScaleSetInstance(SUB, "MC_rg-shop-eastus_aks-shop-eastus_eastus",
                                     "aks-nodepool1-12345678-vmss", "7")


@pytest.mark.parametrize(("provider_id", "why"), [
    (f"azure:///subscriptions/{SUB}/resourceGroups/MC_rg-shop-eastus_aks-shop-eastus_eastus/providers/"
     "Microsoft.Compute/virtualMachineScaleSets/aks-gpupool-1-vmss/virtualMachines/0",
     "not list in regions.us.nodePools"),
    (f"azure:///subscriptions/{SUB}/resourceGroups/MC_rg-shop-westeurope_aks-shop-westeurope_westeurope/"
     "providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-87654321-vmss/virtualMachines/0",
     "not list in regions.us.nodePools"),  # the other region's pool is not this region's
    ("azure:///subscriptions/11111111-0000-0000-0000-000000000000/resourceGroups/MC_rg-shop-eastus_"
     "aks-shop-eastus_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/"
     "virtualMachines/0", "not list in regions.us.nodePools"),
    (f"azure:///subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1",
     "not a VM scale-set instance"),
])
def test_zone_down_refuses_instances_outside_the_regions_node_pools(
        env: Environment, provider_id: str, why: str) -> None:
    targets = Targets(env, ScenarioClock(1.0))
    try:
        with pytest.raises(FaultError, match=why):
            _instance(targets, "us", "node-0", provider_id)
    finally:
        targets.close()


def _zone_down_undo() -> Undo:
    return Undo(fault="zone-down", region="us", summary="", data={"nodes": ["a", "b", "c"], "scaleSets": [
        {"subscription": SUB, "resourceGroup": "MC_rg", "scaleSet": "pool1", "instanceIds": ["0", "3"],
         "nodes": ["a", "b"]},
        {"subscription": SUB, "resourceGroup": "MC_rg", "scaleSet": "pool2", "instanceIds": ["5"],
         "nodes": ["c"]}]})


def test_zone_down_is_undone_by_hand_with_az_vmss_start_used_as_is(env: Environment) -> None:
    assert undo_command(ZoneDown, _zone_down_undo(), env) == (
        f"az vmss start --subscription {SUB} --resource-group MC_rg --name pool1 --instance-ids 0 3 && "
        f"az vmss start --subscription {SUB} --resource-group MC_rg --name pool2 --instance-ids 5")


def _endpoint_undo(status: str) -> Undo:
    return Undo(fault="disable-endpoint", region="us", summary="", data={
        "subscription": SUB, "resourceGroup": "rg-shop-global", "profile": "shop",
        "endpointType": "AzureEndpoints", "endpoint": "shop-eastus", "status": status})


def test_disable_endpoint_is_undone_by_hand_with_az_and_the_recorded_status(env: Environment) -> None:
    assert undo_command(DisableEndpoint, _endpoint_undo("Enabled"), env) == (
        f"az network traffic-manager endpoint update --subscription {SUB} --resource-group rg-shop-global "
        "--profile-name shop --type azureEndpoints --name shop-eastus --endpoint-status Enabled")
    assert undo_command(DisableEndpoint, _endpoint_undo("Disabled"), env) is None


def test_kubectl_faults_still_get_the_regions_context(env: Environment) -> None:
    from drills.faults.nodes import CordonZone

    undo = Undo(fault="cordon-zone", region="us", summary="", data={"nodes": ["n1"]})
    assert undo_command(CordonZone, undo, env) == "kubectl --kubeconfig " + str(
        Path("~/.kube/config").expanduser()) + " --context aks-shop-eastus uncordon n1"


@pytest.mark.parametrize(("given", "kind"), [
    ("Microsoft.Network/trafficManagerProfiles/azureEndpoints", "AzureEndpoints"),
    ("Microsoft.Network/TrafficManagerProfiles/ExternalEndpoints", "ExternalEndpoints"),
    ("microsoft.network/trafficmanagerprofiles/nestedendpoints", "NestedEndpoints"),
])
def test_an_endpoints_type_is_the_one_the_sdk_takes(given: str, kind: str) -> None:
    assert endpoint_type(given) == kind


def test_an_unknown_endpoint_type_is_refused() -> None:
    with pytest.raises(FaultError, match="unknown Traffic Manager endpoint type"):
        endpoint_type("Microsoft.Network/trafficManagerProfiles/otherEndpoints")


@pytest.mark.parametrize("params", [{}, {"region": "us", "endpoint": "shop-eastus"}])
def test_disable_endpoint_takes_a_region_or_an_endpoint(params: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="give either region or endpoint"):
        DisableEndpoint.Params.model_validate(params)
