"""The lab's Cosmos DB account through the real ``azure-mgmt-cosmosdb`` (aio) client, as a run reaches it:
the account resource, the planned failover and offline/online region as long-running operations polled at
the lab's pace, refusals as the service refuses; the data plane's discovery follows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from drills.azure import Azure
from drills.environment import Environment
from drills.lab.groundtruth import read

pytestmark = pytest.mark.lab

GROUP, ACCOUNT = "drill-lab", "shop-db"
LRO_REAL_S = 5.0
"""An operation that takes the lab a few lab seconds must end well before the SDK's default 30 s poll."""


@pytest.fixture
async def accounts(lab_env: Environment) -> AsyncIterator[Any]:
    azure = Azure(lab_env)
    yield azure.cosmos_db().database_accounts
    await azure.aclose()


def policies(**priorities: int) -> dict[str, Any]:
    """A failover priority change's body (``East_US=0``: location ``East US``, priority 0)."""
    return {"failoverPolicies": [{"locationName": name.replace("_", " "), "failoverPriority": priority}
                                 for name, priority in priorities.items()]}


async def write_location(accounts: Any) -> str:
    found = await accounts.get(GROUP, ACCOUNT)
    return str(found.properties.write_locations[0].location_name)


async def discovered_write_location(env: Environment) -> str:
    """What the data plane's account discovery (``GET /``) says, through the real client."""
    import ssl

    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.cosmos.aio import CosmosClient

    assert env.cosmos is not None
    assert env.lab is not None
    assert env.lab.cosmos_key_file is not None
    assert env.azure is not None
    assert env.azure.ca_file is not None
    key = (await asyncio.to_thread(Path(env.lab.cosmos_key_file).read_text)).strip()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=ssl.create_default_context(cafile=env.azure.ca_file)))
    try:
        async with CosmosClient(env.cosmos.endpoint, key,
                                transport=AioHttpTransport(session=session, session_owner=False)) as client:
            account = await client.client_connection.GetDatabaseAccount()
            return str(account.WritableLocations[0]["name"])
    finally:
        await session.close()


async def test_the_account_is_read_and_listed_with_its_locations_and_priorities(accounts: Any) -> None:
    found = await accounts.get(GROUP, ACCOUNT)
    assert (found.name, found.type, found.kind) == (ACCOUNT, "Microsoft.DocumentDB/databaseAccounts",
                                                   "GlobalDocumentDB")
    assert found.id.endswith(f"/resourceGroups/{GROUP}/providers/Microsoft.DocumentDB/databaseAccounts/"
                             f"{ACCOUNT}")
    policies = {p.location_name: p.failover_priority for p in found.properties.failover_policies}
    assert policies == {"East US": 0, "West Europe": 1}
    assert [w.location_name for w in found.properties.write_locations] == ["East US"]
    assert [a.name async for a in accounts.list_by_resource_group(GROUP)] == [ACCOUNT]


async def test_a_failover_priority_change_moves_the_writes_polled_at_the_labs_pace(
        accounts: Any, lab_env: Environment) -> None:
    started = time.monotonic()
    poller = await accounts.begin_failover_priority_change(GROUP, ACCOUNT, policies(westeurope=0, East_US=1))
    await poller.result()
    assert time.monotonic() - started < LRO_REAL_S
    assert await write_location(accounts) == "West Europe"
    assert await discovered_write_location(lab_env) == "West Europe"
    poller = await accounts.begin_failover_priority_change(GROUP, ACCOUNT, policies(East_US=0, West_Europe=1))
    await poller.result()
    assert await write_location(accounts) == "East US"
    assert await discovered_write_location(lab_env) == "East US"
    assert lab_env.lab is not None
    moves = [(e["location"], e["reason"]) for e in read(Path(lab_env.lab.ground_truth))
             if e["event"] == "cosmos_write_region"]
    assert moves == [("West Europe", "planned"), ("East US", "planned")]


@pytest.mark.parametrize(("body", "message"), [
    (policies(East_US=0), "missing: West Europe"),
    (policies(East_US=1, West_Europe=1), "unique"),
    (policies(East_US=1, West_Europe=2), "priority 0"),
    (policies(Mars=0, West_Europe=1), "'Mars' is not a location"),
])
async def test_priorities_the_service_refuses_are_refused_at_once(accounts: Any, body: dict[str, Any],
                                                                  message: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        await accounts.begin_failover_priority_change(GROUP, ACCOUNT, body)
    assert caught.value.status_code == 400
    assert message in str(caught.value)
    assert await write_location(accounts) == "East US"


async def test_a_region_goes_offline_and_online_again(accounts: Any) -> None:
    poller = await accounts.begin_offline_region(GROUP, ACCOUNT, {"region": "West Europe"})
    await poller.result()
    found = await accounts.get(GROUP, ACCOUNT)
    assert [r.location_name for r in found.properties.read_locations] == ["East US"]
    poller = await accounts.begin_online_region(GROUP, ACCOUNT, {"region": "West Europe"})
    await poller.result()
    found = await accounts.get(GROUP, ACCOUNT)
    assert sorted(r.location_name for r in found.properties.read_locations) == ["East US", "West Europe"]
    with pytest.raises(HttpResponseError) as caught:
        await accounts.begin_offline_region(GROUP, ACCOUNT, {"region": "Mars"})
    assert caught.value.status_code == 400


async def test_another_account_or_group_is_not_found(accounts: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        await accounts.get(GROUP, "other-db")
    assert caught.value.status_code == 404
    with pytest.raises(HttpResponseError) as caught:
        await accounts.get("other-group", ACCOUNT)
    assert caught.value.status_code == 404
