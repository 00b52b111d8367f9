"""An environment's identity: read from the lab through the real clients, and compared honestly."""

from __future__ import annotations

from typing import Any

import pytest

from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.identity import Identity, differences, read_identity
from drills.targets import Targets

GROUP = "/subscriptions/s/resourceGroups/g/providers"
RECORDED = Identity(clusters={"us": "uid-us", "eu": "uid-eu"},
                    azure={f"{GROUP}/Microsoft.Compute/virtualMachineScaleSets/aks-us": "unique-1",
                           f"{GROUP}/Microsoft.Network/trafficManagerProfiles/shop": None})


@pytest.mark.lab
async def test_the_labs_identity_is_its_clusters_uids_and_the_azure_resources_it_names(lab: Any) -> None:
    env = load_environment(lab.environment_file)
    targets = Targets(env, ScenarioClock(env.time_scale))
    try:
        identity = await read_identity(targets)
        kube = targets.kube("us")
        namespace = await kube.call(kube.core.read_namespace, "kube-system")
    finally:
        await targets.aclose()
    assert identity.clusters["us"] == namespace.metadata.uid
    assert set(identity.clusters) == {"us", "eu"}
    assert identity.clusters["us"] != identity.clusters["eu"]
    assert identity.unread == []
    kinds = sorted(rid.split("/providers/")[1].split("/")[1] for rid in identity.azure)
    assert kinds == ["databaseAccounts", "trafficManagerProfiles", "virtualMachineScaleSets",
                     "virtualMachineScaleSets"]
    unique = [u for rid, u in identity.azure.items() if "virtualMachineScaleSets" in rid]
    assert all(unique)
    assert len(set(unique)) == 2
    assert Identity.from_json(identity.to_json()) == identity


def test_differences_name_the_region_and_the_resource_and_skip_what_was_not_read() -> None:
    assert differences(RECORDED, RECORDED) == []
    # Resource ids compare as Azure compares them, whatever their case.
    recreated = Identity(clusters={"us": "uid-us-2", "eu": "uid-eu"},
                         azure={rid.upper(): u and "unique-2" for rid, u in RECORDED.azure.items()})
    assert differences(RECORDED, recreated) == [
        "region us: the cluster's UID (kube-system namespace) was uid-us, is now uid-us-2",
        f"Azure resource {GROUP}/Microsoft.Compute/virtualMachineScaleSets/aks-us: its unique id was "
        "unique-1, is now unique-2"]
    # A region that did not answer, and Azure that could not be read, are not compared.
    unread = Identity(clusters={"eu": "uid-eu"}, unread=["region us: refused", "azure: no credentials"])
    assert differences(RECORDED, unread) == []


def test_a_recorded_identity_that_is_not_drills_is_refused() -> None:
    with pytest.raises(ValueError, match="not what drill writes"):
        Identity.from_json({"clusters": {"us": 7}})
