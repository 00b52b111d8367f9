"""Cosmos DB faults: ``region-failover`` (the planned failover: the write region moves by a failover priority
change, nothing is lost; undo restores the priorities) and ``region-outage`` (a region taken offline, the
forced failover: writes the next region had not yet applied are lost under Session, Consistent prefix and
Eventual consistency; undo brings it online, then moves the write region back if the outage moved it).

Both act on the one account the environment's ``cosmos`` section names, through ``azure-mgmt-cosmosdb``'s
long-running operations (``database_accounts.begin_failover_priority_change``, ``begin_offline_region``,
``begin_online_region``), which need the ``Cosmos DB Operator`` or ``DocumentDB Account Contributor`` role
on the account. Each prepare reads the account and records its failover priorities; each revert reads it
again and changes only what differs from the record, so running it twice changes nothing.

A failover takes minutes in Azure (the operation is polled every Retry-After, 10 s in the lab's ARM);
both faults wait for the operation to finish, so a later step sees the account as it will stay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import ConfigDict

from drills.azure import COSMOS_DB, location_key, preload
from drills.errors import EnvironmentUnreachable, FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import FaultParams
from drills.targets import Targets

T = TypeVar("T")

ROLES = "'Cosmos DB Operator' or 'DocumentDB Account Contributor'"
"""The built-in roles that may fail a Cosmos DB account over and take its regions offline."""

ARM_API_VERSION = "2024-11-15"
"""The api-version of the ``az rest`` commands a person runs to undo a region outage by hand."""


@dataclass(frozen=True)
class AccountRef:
    """Where the environment's Cosmos DB account is, and its drill regions' locations."""

    subscription: str
    resource_group: str
    account: str
    locations: Mapping[str, str]
    """Drill region -> the account's location name (``us: East US``)."""
    arm_endpoint: str = "https://management.azure.com"

    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.DocumentDB/databaseAccounts/{self.account}")

    def region_of(self, location: str) -> str | None:
        """The drill region of an account location (None: the environment maps no region to it)."""
        return next((r for r, loc in self.locations.items() if location_key(loc) == location_key(location)),
                    None)

    def location(self, region: str) -> str:
        """The location of drill region ``region``; a FaultError naming the mapped regions otherwise."""
        if region not in self.locations:
            raise FaultError(f"cosmos.locations maps no location to region {region!r} (it maps "
                             f"{', '.join(f'{r}: {loc}' for r, loc in self.locations.items())})")
        return self.locations[region]


@dataclass(frozen=True)
class AccountState:
    """What the faults read of the account: failover priorities, the write region, the online regions."""

    priorities: dict[str, int]
    """Each location (as the account names it) -> its failover priority; the write region's is 0."""
    write_location: str
    online: frozenset[str]
    """The locations that serve reads now (``readLocations``), by :func:`location_key`."""
    consistency: str

    def is_online(self, location: str) -> bool:
        return location_key(location) in self.online

    def same_priorities(self, recorded: Mapping[str, int]) -> bool:
        """Whether the account's priorities are ``recorded`` (location names compared as Azure does)."""
        return ({location_key(k): v for k, v in self.priorities.items()}
                == {location_key(k): v for k, v in recorded.items()})


def account_ref(targets: Targets) -> AccountRef:
    """The environment's account; a FaultError saying what the environment file lacks."""
    cosmos = targets.env.cosmos
    if cosmos is None:
        raise FaultError(f"environment {targets.env.name} has no 'cosmos' section: the Cosmos DB faults act "
                         "on the account it names (account, resourceGroup, locations)")
    if not cosmos.resource_group:
        raise FaultError(f"environment {targets.env.name}: cosmos.resourceGroup is not set (the resource "
                         f"group of account {cosmos.account})")
    try:
        azure = targets.azure
        subscription = azure.subscription(cosmos.subscription)
    except EnvironmentUnreachable as exc:  # no azure section or no subscription
        raise FaultError(str(exc)) from exc
    return AccountRef(subscription=subscription, resource_group=cosmos.resource_group, account=cosmos.account,
                      locations=dict(cosmos.locations), arm_endpoint=azure.settings.arm_endpoint)


async def call(targets: Targets, ref: AccountRef, what: str, fn: Callable[[], Awaitable[T]]) -> T:
    """One management call (or a whole long-running operation) within the rate limit, its errors as
    FaultError: 429, 5xx and unreachable are transient; 401/403 say which credentials and role are needed;
    404 names the account that was not found."""
    from azure.core.exceptions import (  # imported late: azure-core is slow to import
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        return await targets.azure.call(fn)
    except ClientAuthenticationError as exc:
        raise FaultError(f"{what}: Azure refused the credentials ({_message(exc)}); sign in (az login, or "
                         "the AZURE_* variables of DefaultAzureCredential) as an identity with the "
                         f"{ROLES} role on {ref.resource_id}") from exc
    except HttpResponseError as exc:
        status = exc.status_code or 0
        if status == 403:
            raise FaultError(f"{what}: not allowed ({_message(exc)}); the identity needs the {ROLES} role on "
                             f"{ref.resource_id}") from exc
        if status == 404:
            raise FaultError(f"{what}: Cosmos DB account {ref.account} not found in resource group "
                             f"{ref.resource_group} of subscription {ref.subscription} "
                             f"({_message(exc)})") from exc
        transient = status == 429 or status >= 500
        raise FaultError(f"{what}: {status or 'failed'} {_message(exc)}", transient=transient) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise FaultError(f"{what}: cannot reach Azure Resource Manager: {exc}", transient=True) from exc


def _message(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    return str(getattr(exc, "reason", None) or exc).splitlines()[0]


async def read_account(targets: Targets, ref: AccountRef) -> AccountState:
    """The account's failover priorities, write region, online regions and consistency level."""
    client = targets.azure.cosmos_db(ref.subscription)
    found: Any = await call(targets, ref, f"read Cosmos DB account {ref.account}",
                            lambda: client.database_accounts.get(ref.resource_group, ref.account))
    properties = found.properties
    priorities = {p.location_name: int(p.failover_priority) for p in properties.failover_policies or []}
    writes = [w.location_name for w in properties.write_locations or []]
    if not priorities or not writes:
        raise FaultError(f"Cosmos DB account {ref.account} reports no failover policies or no write region")
    level = properties.consistency_policy.default_consistency_level if properties.consistency_policy else None
    consistency = getattr(level, "value", level)
    online = frozenset(location_key(r.location_name) for r in properties.read_locations or [])
    return AccountState(priorities=priorities, write_location=writes[0], online=online,
                        consistency=str(consistency or "unknown"))


async def change_priorities(targets: Targets, ref: AccountRef, priorities: Mapping[str, int]) -> None:
    """The planned failover: set every location's failover priority and wait until it is done."""
    client = targets.azure.cosmos_db(ref.subscription)
    body = {"failoverPolicies": [{"locationName": loc, "failoverPriority": p}
                                 for loc, p in sorted(priorities.items(), key=lambda item: item[1])]}
    order = ", ".join(f"{loc}={p}" for loc, p in sorted(priorities.items(), key=lambda item: item[1]))

    async def run() -> None:
        poller = await client.database_accounts.begin_failover_priority_change(
            ref.resource_group, ref.account, body)
        await poller.result()

    await call(targets, ref, f"change the failover priorities of {ref.account} to {order}", run)


async def set_region_online(targets: Targets, ref: AccountRef, location: str, *, online: bool) -> None:
    """Take ``location`` offline (the forced failover) or bring it online, and wait until it is done."""
    client = targets.azure.cosmos_db(ref.subscription)
    accounts = client.database_accounts
    begin = accounts.begin_online_region if online else accounts.begin_offline_region

    async def run() -> None:
        poller = await begin(ref.resource_group, ref.account, {"region": location})
        await poller.result()

    state = "online" if online else "offline"
    await call(targets, ref, f"take {ref.account}'s region {location} {state}", run)


def promoted(priorities: Mapping[str, int], target: str) -> dict[str, int]:
    """``priorities`` with ``target`` at 0 and the others after it in their order."""
    rest = sorted((loc for loc in priorities if loc != target), key=priorities.__getitem__)
    return {target: 0, **{loc: i for i, loc in enumerate(rest, start=1)}}


def failover_command(data: Mapping[str, Any], priorities: Mapping[str, int]) -> str:
    """``az cosmosdb failover-priority-change`` setting ``priorities``."""
    policies = " ".join(f"{location_key(loc)}={p}"
                        for loc, p in sorted(priorities.items(), key=lambda item: item[1]))
    return (f"az cosmosdb failover-priority-change --subscription {data['subscription']} "
            f"--resource-group {data['resourceGroup']} --name {data['account']} "
            f"--failover-policies {policies}")


def _undo_data(ref: AccountRef, state: AccountState, **more: Any) -> dict[str, Any]:
    return {"subscription": ref.subscription, "resourceGroup": ref.resource_group, "account": ref.account,
            "armEndpoint": ref.arm_endpoint, "priorities": dict(state.priorities),
            "writeLocation": state.write_location, **more}


def _ref(undo: Undo, targets: Targets) -> AccountRef:
    """The account the record names (the environment gives the region names)."""
    d = undo.data
    cosmos = targets.env.cosmos
    return AccountRef(subscription=d["subscription"], resource_group=d["resourceGroup"], account=d["account"],
                      locations=dict(cosmos.locations) if cosmos is not None else {},
                      arm_endpoint=d.get("armEndpoint", AccountRef.arm_endpoint))


def _named(ref: AccountRef, location: str) -> str:
    region = ref.region_of(location)
    return f"{location} ({region})" if region else location


def _account_location(ref: AccountRef, state: AccountState, region: str, *, fault: str) -> str:
    """The account's own spelling of the location the environment maps ``region`` to; a FaultError
    naming the account's locations when it has none such."""
    wanted = location_key(ref.location(region))
    found = next((loc for loc in state.priorities if location_key(loc) == wanted), None)
    if found is None:
        raise FaultError(f"{fault}: {ref.location(region)} ({region}) is not a location of Cosmos DB account "
                         f"{ref.account} (its locations: {', '.join(state.priorities)})")
    return found


class RegionFailover:
    """Move the account's write region to another location by changing its failover priorities."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        AzureRole("Cosmos DB Operator", "the Cosmos DB account"),
    )

    name: ClassVar[str] = "region-failover"

    class Params(FaultParams):
        model_config = ConfigDict(title="region-failover")

        to: str | None = None
        """The region (of the environment's ``cosmos.locations``) that takes the writes; none: the location
        with the next failover priority after the write region's."""

    def __init__(self, params: Params) -> None:
        self.params = params
        preload(COSMOS_DB)

    async def prepare(self, targets: Targets) -> Undo:
        ref = account_ref(targets)
        state = await read_account(targets, ref)
        current = state.write_location
        if self.params.to is not None:
            target = _account_location(ref, state, self.params.to, fault=self.name)
        else:
            others = sorted((loc for loc in state.priorities if location_key(loc) != location_key(current)),
                            key=state.priorities.__getitem__)
            if not others:
                raise FaultError(f"region-failover: Cosmos DB account {ref.account} has one location only")
            target = others[0]
        if location_key(target) == location_key(current):
            raise FaultError(f"region-failover: {_named(ref, target)} is already the write region of "
                             f"{ref.account}: nothing would move")
        if not state.is_online(target):
            raise FaultError(f"region-failover: {_named(ref, target)} is offline: it cannot take the writes")
        new = promoted(state.priorities, target)
        return Undo(fault=self.name, region=ref.region_of(current) or "",
                    summary=f"move the write region of Cosmos DB account {ref.account} from "
                            f"{_named(ref, current)} to {_named(ref, target)} (planned failover, nothing "
                            f"lost; priorities {_order(state.priorities)} -> {_order(new)})",
                    objects=[ref.resource_id],
                    data=_undo_data(ref, state, target=target, newPriorities=new))

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await change_priorities(targets, _ref(undo, targets), undo.data["newPriorities"])

    async def revert(self, targets: Targets, undo: Undo) -> None:
        ref = _ref(undo, targets)
        state = await read_account(targets, ref)
        if not state.same_priorities(undo.data["priorities"]):
            await change_priorities(targets, ref, undo.data["priorities"])

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The az command that restores the recorded priorities."""
        return failover_command(undo.data, undo.data["priorities"])


class RegionOutage:
    """Take one region of the account offline: the forced failover when it holds the writes."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        AzureRole("Cosmos DB Operator", "the Cosmos DB account"),
    )

    name: ClassVar[str] = "region-outage"

    class Params(FaultParams):
        model_config = ConfigDict(title="region-outage")

        region: str
        """The region (of the environment's ``cosmos.locations``) taken offline."""

    def __init__(self, params: Params) -> None:
        self.params = params
        preload(COSMOS_DB)

    async def prepare(self, targets: Targets) -> Undo:
        ref = account_ref(targets)
        state = await read_account(targets, ref)
        location = _account_location(ref, state, self.params.region, fault=self.name)
        if not state.is_online(location):
            raise FaultError(f"region-outage: {_named(ref, location)} of {ref.account} is offline already "
                             "(a run that did not finish? drill recover undoes what it left)")
        if len(state.online) < 2:
            raise FaultError(f"region-outage: {_named(ref, location)} is the last online region of "
                             f"{ref.account}")
        if location_key(location) == location_key(state.write_location):
            survivors = sorted((loc for loc in state.priorities if loc != location and state.is_online(loc)),
                               key=state.priorities.__getitem__)
            what = (f"it holds the writes: {_named(ref, survivors[0])} takes them over at once (forced "
                    f"failover) and writes not yet replicated there are lost under {state.consistency} "
                    "consistency; undo brings it online and moves the writes back (planned, lossless)")
        else:
            what = "a read region: the write region stays"
        return Undo(fault=self.name, region=self.params.region,
                    summary=f"take region {_named(ref, location)} of Cosmos DB account {ref.account} "
                            f"offline; {what}",
                    objects=[ref.resource_id],
                    data=_undo_data(ref, state, location=location))

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await set_region_online(targets, _ref(undo, targets), undo.data["location"], online=False)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        ref = _ref(undo, targets)
        state = await read_account(targets, ref)
        if not state.is_online(undo.data["location"]):
            await set_region_online(targets, ref, undo.data["location"], online=True)
            state = await read_account(targets, ref)
        # Azure does not move the writes back when the region returns: the recorded priorities do.
        if not state.same_priorities(undo.data["priorities"]):
            await change_priorities(targets, ref, undo.data["priorities"])

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The commands that bring the region online and restore the recorded priorities."""
        d = undo.data
        resource = (f"/subscriptions/{d['subscription']}/resourceGroups/{d['resourceGroup']}/providers/"
                    f"Microsoft.DocumentDB/databaseAccounts/{d['account']}")
        endpoint = d.get("armEndpoint", AccountRef.arm_endpoint)
        online = (f"az rest --method post --url '{endpoint}{resource}/onlineRegion"
                  f"?api-version={ARM_API_VERSION}' --body '{{\"region\": \"{d['location']}\"}}'")
        return f"{online} && {failover_command(d, d['priorities'])}"


def _order(priorities: Mapping[str, int]) -> str:
    return ", ".join(f"{loc}={p}" for loc, p in sorted(priorities.items(), key=lambda item: item[1]))
