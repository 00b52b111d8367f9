"""region-failover and region-outage against a lab through azure-mgmt-cosmosdb, undone exactly and
idempotently; their plans, the commands a person runs, and the mistakes they refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import FaultError
from drills.faults.base import Undo
from drills.faults.cosmos import RegionFailover, RegionOutage, promoted, read_account
from drills.faults.cosmos import account_ref as ref_of
from drills.lab.groundtruth import read
from drills.runner.faultrun import by_hand
from drills.targets import Targets

ACCOUNT_ID = ("/subscriptions/00000000-0000-4000-8000-00000000d7a1/resourceGroups/drill-lab/providers/"
              "Microsoft.DocumentDB/databaseAccounts/shop-db")


@pytest.fixture
async def targets(lab: Any) -> AsyncIterator[Targets]:
    env = load_environment(lab.environment_file)
    found = Targets(env, ScenarioClock(env.time_scale))
    yield found
    await found.aclose()


async def state(targets: Targets) -> tuple[str, dict[str, int], frozenset[str]]:
    account = await read_account(targets, ref_of(targets))
    return account.write_location, account.priorities, account.online


def moves(env: Environment) -> list[tuple[str, str]]:
    assert env.lab is not None
    return [(e["location"], e["reason"]) for e in read(Path(env.lab.ground_truth))
            if e["event"] == "cosmos_write_region"]


@pytest.mark.lab
async def test_region_failover_moves_the_writes_to_the_next_priority_and_back(targets: Targets) -> None:
    fault = RegionFailover(RegionFailover.Params())
    undo = await fault.prepare(targets)
    assert undo.objects == [ACCOUNT_ID]
    assert undo.region == "us"
    assert "from East US (us) to West Europe (eu)" in undo.summary
    await fault.inject(targets, undo)
    assert await state(targets) == ("West Europe", {"West Europe": 0, "East US": 1},
                                    frozenset({"eastus", "westeurope"}))
    await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # idempotent: nothing left to change
    assert (await state(targets))[:2] == ("East US", {"East US": 0, "West Europe": 1})
    assert moves(targets.env)[-2:] == [("West Europe", "planned"), ("East US", "planned")]
    with pytest.raises(FaultError, match="already the write region"):
        await RegionFailover(RegionFailover.Params(to="us")).prepare(targets)


@pytest.mark.lab
async def test_region_outage_of_the_write_region_forces_the_failover_and_its_undo_moves_the_writes_back(
        targets: Targets) -> None:
    fault = RegionOutage(RegionOutage.Params(region="us"))
    undo = await fault.prepare(targets)
    assert "West Europe (eu) takes them over at once" in undo.summary
    assert "lost under Session consistency" in undo.summary
    await fault.inject(targets, undo)
    assert await state(targets) == ("West Europe", {"West Europe": 0, "East US": 1},
                                    frozenset({"westeurope"}))
    await fault.revert(targets, undo)
    before = moves(targets.env)
    await fault.revert(targets, undo)
    assert moves(targets.env) == before
    assert await state(targets) == ("East US", {"East US": 0, "West Europe": 1},
                                    frozenset({"eastus", "westeurope"}))
    assert before[-2:] == [("West Europe", "forced"), ("East US", "planned")]


def _undo(**data: Any) -> Undo:
    base = {"subscription": "s1", "resourceGroup": "rg", "account": "shop-db",
            "armEndpoint": "https://management.azure.com", "priorities": {"East US": 0, "West Europe": 1},
            "writeLocation": "East US"}
    return Undo(fault="x", region="us", summary="", data={**base, **data})


def test_the_commands_a_person_runs_to_undo_them_are_whole_az_commands(lab_free_env: Environment) -> None:
    failover = _undo(target="West Europe")
    command = "az cosmosdb failover-priority-change --subscription s1 --resource-group rg --name shop-db " \
              "--failover-policies eastus=0 westeurope=1"
    assert RegionFailover.by_hand(failover) == command
    assert by_hand(RegionFailover(RegionFailover.Params()), failover, lab_free_env) == command
    outage = RegionOutage.by_hand(_undo(location="East US"))
    assert outage == ("az rest --method post --url 'https://management.azure.com/subscriptions/s1/resourceGroups/"
                      "rg/providers/Microsoft.DocumentDB/databaseAccounts/shop-db/onlineRegion?api-version="
                      "2024-11-15' --body '{\"region\": \"East US\"}' && " + command)


def test_promoting_a_location_keeps_the_others_in_their_order() -> None:
    assert promoted({"a": 0, "b": 1, "c": 2}, "c") == {"c": 0, "a": 1, "b": 2}


@pytest.fixture
def lab_free_env() -> Environment:
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "prod",
        "regions": {r: {"context": r, "ingress": {"namespace": "i", "deployment": "i"}, "endpoint": r,
                        "target": f"{r}.example.com"} for r in ("us", "eu")},
        "trafficManager": {"fqdn": "shop.trafficmanager.net", "nameservers": ["127.0.0.1:53"]},
        "azure": {"subscription": "s1"},
        "cosmos": {"account": "shop-db", "endpoint": "https://shop-db.documents.azure.com:443/",
                   "database": "shop", "container": "canary",
                   "locations": {"us": "East US", "eu": "West Europe"}},
    })


async def test_an_environment_that_does_not_say_where_the_account_is_gets_a_clear_error(
        lab_free_env: Environment) -> None:
    targets = Targets(lab_free_env, ScenarioClock(1.0))
    try:
        with pytest.raises(FaultError, match=r"cosmos.resourceGroup is not set"):
            await RegionOutage(RegionOutage.Params(region="us")).prepare(targets)
        no_cosmos = Targets(lab_free_env.model_copy(update={"cosmos": None}), ScenarioClock(1.0))
        with pytest.raises(FaultError, match="has no 'cosmos' section"):
            await RegionFailover(RegionFailover.Params()).prepare(no_cosmos)
        no_cosmos.close()
    finally:
        await targets.aclose()
