"""The lab's Cosmos DB account as Azure Resource Manager serves it
(``Microsoft.DocumentDB/databaseAccounts``).

What ``azure-mgmt-cosmosdb`` (10.x) calls, on the lab's ARM endpoint (:mod:`drills.lab.arm`):

- ``GET .../resourceGroups/{group}/providers/Microsoft.DocumentDB/databaseAccounts/{account}``
  (``database_accounts.get``): the account resource, its ``properties`` from
  :meth:`~drills.lab.cosmos.account.CosmosAccount.describe` (locations, ``writeLocations``,
  ``readLocations``, ``failoverPolicies``);
- ``GET .../resourceGroups/{group}/providers/Microsoft.DocumentDB/databaseAccounts`` and
  ``GET /subscriptions/{s}/providers/Microsoft.DocumentDB/databaseAccounts`` (the lists);
- ``POST .../{account}/failoverPriorityChange`` with ``{"failoverPolicies": [{"locationName",
  "failoverPriority"}]}`` (the planned failover), ``POST .../{account}/offlineRegion`` and
  ``.../onlineRegion`` with ``{"region": location}``: long-running, ``202 Accepted`` then polled
  (:func:`drills.lab.arm.long_running`);
- ``PATCH .../{account}`` (``database_accounts.begin_update``) with ``{"tags": {...}}``: the account's
  tags, replaced as sent (Azure's limits checked); done at once (200), as ARM answers a tags-only update.
  A PATCH that sets anything else is refused.

A request the service refuses outright is refused at once with ARM's 400 ``BadRequest``, as Azure does:
priorities that are not unique, miss a location, name one the account does not have, or give no
location priority 0; an offline/online region the account does not have. Location names compare as
ARM compares them: case and spaces ignored (``West Europe`` = ``westeurope``). What the account itself
refuses while the operation runs (taking its last online location offline) fails the operation with the
account's status and code.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from aiohttp import web

from drills.lab.arm import (
    ArmError,
    ArmRoute,
    checked_tags,
    json_response,
    long_running,
    not_found,
    page,
    read_json,
)
from drills.lab.cosmos.account import AccountError, CosmosAccount
from drills.lab.resources import RESOURCE_GROUP, SUBSCRIPTION

RESOURCE_TYPE = "Microsoft.DocumentDB/databaseAccounts"

_GROUP = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/"
          "Microsoft.DocumentDB/databaseAccounts")
_ACCOUNT = _GROUP + "/{account}"


def location_key(name: str) -> str:
    """How ARM compares location names: ``West Europe``, ``westeurope`` and ``WestEurope`` are one."""
    return name.replace(" ", "").lower()


class CosmosDbArm:
    """The ARM routes of one lab account."""

    def __init__(self, account: CosmosAccount) -> None:
        self._account = account
        self._home = account.locations()[0]
        """The account's ``location`` (where it was created: fixed, whatever the failovers)."""
        self._tags: dict[str, str] = {}

    def routes(self) -> Iterable[ArmRoute]:
        return [
            ArmRoute("GET", _ACCOUNT, self._get),
            ArmRoute("PATCH", _ACCOUNT, self._update),
            ArmRoute("GET", _GROUP, self._list_group),
            ArmRoute("GET", "/subscriptions/{subscription}/providers/Microsoft.DocumentDB/databaseAccounts",
                     self._list_subscription),
            ArmRoute("POST", _ACCOUNT + "/failoverPriorityChange", self._failover_priority_change),
            ArmRoute("POST", _ACCOUNT + "/offlineRegion", self._offline_region),
            ArmRoute("POST", _ACCOUNT + "/onlineRegion", self._online_region),
        ]

    def resource(self) -> dict[str, Any]:
        """The account as ARM returns it."""
        name = self._account.name
        return {
            "id": (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                   f"{RESOURCE_TYPE}/{name}"),
            "name": name,
            "type": RESOURCE_TYPE,
            "location": self._home,
            "kind": "GlobalDocumentDB",
            "tags": dict(self._tags),
            "properties": self._account.describe(),
        }

    async def _get(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._find(names)
        return json_response(self.resource())

    async def _update(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._find(names)
        body = await read_json(request)
        others = sorted(k for k, v in body.items() if k not in ("tags", "location") and v)
        if others:
            raise ArmError(400, "BadRequest",
                           f"The lab's account changes its tags only, not {', '.join(others)}.")
        if "tags" in body:
            self._tags = checked_tags(body["tags"])
        return json_response(self.resource())

    async def _list_group(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._check_subscription(names)
        return page([self.resource()] if _same(names["group"], RESOURCE_GROUP) else [])

    async def _list_subscription(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._check_subscription(names)
        return page([self.resource()])

    async def _failover_priority_change(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._find(names)
        body = await read_json(request)
        priorities = self._priorities(body.get("failoverPolicies"))
        return self._run(request, self._account.failover_priority_change(priorities))

    async def _offline_region(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._find(names)
        location = self._region(await read_json(request))
        return self._run(request, self._account.offline_region(location))

    async def _online_region(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._find(names)
        location = self._region(await read_json(request))
        return self._run(request, self._account.online_region(location))

    def _run(self, request: web.Request, work: Coroutine[Any, Any, None]) -> web.Response:
        async def operation() -> None:
            try:
                await work
            except AccountError as exc:
                raise ArmError(exc.status, exc.code, str(exc)) from exc
        return long_running(request, operation())

    def _check_subscription(self, names: Mapping[str, str]) -> None:
        if not _same(names["subscription"], SUBSCRIPTION):
            raise ArmError(404, "SubscriptionNotFound",
                           f"The subscription '{names['subscription']}' could not be found.")

    def _find(self, names: Mapping[str, str]) -> None:
        """The route names this account, or ARM's 404 for what it names instead."""
        self._check_subscription(names)
        if not _same(names["group"], RESOURCE_GROUP):
            raise ArmError(404, "ResourceGroupNotFound",
                           f"Resource group '{names['group']}' could not be found.")
        if not _same(names["account"], self._account.name):
            raise not_found(RESOURCE_TYPE, names["account"])

    def _location(self, name: object) -> str:
        """The account's own name for a location given as ARM accepts it; 400 if it has none such."""
        known = {location_key(loc): loc for loc in self._account.locations()}
        if isinstance(name, str) and location_key(name) in known:
            return known[location_key(name)]
        raise ArmError(400, "BadRequest", f"The location '{name}' is not a location of the database account "
                                          f"'{self._account.name}' (its locations: "
                                          f"{', '.join(self._account.locations())}).")

    def _region(self, body: Mapping[str, Any]) -> str:
        if "region" not in body:
            raise ArmError(400, "BadRequest", "The request body must name the 'region'.")
        return self._location(body["region"])

    def _priorities(self, policies: object) -> dict[str, int]:
        """``failoverPolicies`` as {account location: priority}, checked as the service checks them."""
        if not isinstance(policies, list) or not policies:
            raise ArmError(400, "BadRequest", "The request body must give 'failoverPolicies', a list of "
                                              "{locationName, failoverPriority}.")
        priorities: dict[str, int] = {}
        for policy in policies:
            if not isinstance(policy, dict):
                raise ArmError(400, "BadRequest", "Each failover policy is {locationName, failoverPriority}.")
            location = self._location(policy.get("locationName"))
            priority = policy.get("failoverPriority")
            if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
                raise ArmError(400, "BadRequest", f"The failover priority of {location} must be a whole "
                                                  f"number from 0, not {priority!r}.")
            if location in priorities:
                raise ArmError(400, "BadRequest", f"The location {location} is listed twice.")
            priorities[location] = priority
        missing = [loc for loc in self._account.locations() if loc not in priorities]
        if missing:
            raise ArmError(400, "BadRequest", f"Failover priorities must be given for every location of the "
                                              f"account; missing: {', '.join(missing)}.")
        values = sorted(priorities.values())
        if len(set(values)) != len(values):
            raise ArmError(400, "BadRequest", "Failover priorities must be unique.")
        if 0 not in values:
            raise ArmError(400, "BadRequest", "One location must have failover priority 0: the write region.")
        return priorities


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()
