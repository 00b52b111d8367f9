"""Traffic Manager's ARM surface: the lab's profile and endpoints as ``azure-mgmt-trafficmanager`` reads
and changes them.

One state with the DNS server: every read comes from the lab's :class:`TrafficManager` at that instant
(``endpointMonitorStatus`` is the monitor's status now: a Degraded endpoint shows Degraded), and every
change is applied to it before the reply (disabling an endpoint changes the next DNS answer).

Served, under ``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/trafficmanagerprofiles``:
the list by subscription and by resource group, the profile (GET, PUT, PATCH) and its endpoints
``/{p}/ExternalEndpoints/{name}`` (GET, PUT, PATCH). None is long-running: ARM answers these at once.

The lab's endpoints are ``ExternalEndpoints``: their targets are host names
(``us.endpoints.drill.test``), as an AKS ingress behind Traffic Manager is often registered, and the lab
has no public IP resources an ``AzureEndpoints`` endpoint would point at. A drill finds the type from the
profile's ``endpoints[].type`` (``Microsoft.Network/trafficManagerProfiles/externalEndpoints``), as it
would on a real subscription.

What the lab applies: ``endpointStatus`` (Enabled/Disabled), ``priority`` and ``weight``, each at once,
through a profile or an endpoint PUT/PATCH. Everything else may be sent back as read (a GET object
PUT again works), but asking to change it (routing method, TTL, monitor settings, targets, locations,
profile status, adding or deleting endpoints) gets ARM's 400 ``BadRequest`` saying what the lab cannot
do, and nothing of that request is applied.

``profileMonitorStatus`` is derived from the endpoints as Azure documents it (learn.microsoft.com,
"Traffic Manager endpoint monitoring", profile status): Inactive when every endpoint is disabled,
else Degraded when one is Degraded, else Online when one is Online, else CheckingEndpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from drills.lab import resources
from drills.lab.arm import (
    ArmError,
    ArmRoute,
    check_subscription,
    checked_tags,
    group_not_found,
    json_response,
    not_found,
    page,
    read_json,
)
from drills.lab.topology import Topology
from drills.lab.trafficmanager import CHECKING, DEGRADED, DISABLED, ONLINE, Endpoint, TrafficManager

PROFILE_TYPE = "Microsoft.Network/trafficManagerProfiles"
ENDPOINT_KIND = "ExternalEndpoints"
"""The path segment of the lab's endpoints (``AzureEndpoints`` and ``NestedEndpoints`` hold none)."""
ENDPOINT_TYPE = f"{PROFILE_TYPE}/externalEndpoints"
_KINDS = {"azureendpoints", "externalendpoints", "nestedendpoints"}

_IN_SUBSCRIPTION = "/subscriptions/{subscription}/providers/Microsoft.Network/trafficmanagerprofiles"
_PROFILES = "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Network/" \
    "trafficmanagerprofiles"
_PROFILE = _PROFILES + "/{profile}"
_ENDPOINT = _PROFILE + "/{kind}/{endpoint}"

_APPLIED = "the lab applies endpointStatus, priority and weight"


class TrafficManagerArm:
    """The ARM provider of the lab's one Traffic Manager profile (see the module docstring)."""

    def __init__(self, traffic_manager: TrafficManager, topology: Topology) -> None:
        self._tm = traffic_manager
        self._settings = topology.traffic_manager
        self.name = resources.traffic_manager_profile(self._settings.fqdn)
        """The profile's name."""
        self._tags: dict[str, str] = {}

    def routes(self) -> list[ArmRoute]:
        """The profile's and its endpoints' paths."""
        return [
            ArmRoute("GET", _IN_SUBSCRIPTION, self._list_by_subscription),
            ArmRoute("GET", _PROFILES, self._list_by_group),
            ArmRoute("GET", _PROFILE, self._get_profile),
            ArmRoute("PUT", _PROFILE, self._update_profile),
            ArmRoute("PATCH", _PROFILE, self._update_profile),
            ArmRoute("DELETE", _PROFILE, self._delete),
            ArmRoute("GET", _ENDPOINT, self._get_endpoint),
            ArmRoute("PUT", _ENDPOINT, self._update_endpoint),
            ArmRoute("PATCH", _ENDPOINT, self._update_endpoint),
            ArmRoute("DELETE", _ENDPOINT, self._delete),
        ]

    # Reads.

    async def _list_by_subscription(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        check_subscription(names["subscription"])
        return page([self._profile()])

    async def _list_by_group(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        _group(names)
        return page([self._profile()])

    async def _get_profile(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._check_profile(names)
        return json_response(self._profile())

    async def _get_endpoint(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        return json_response(self._endpoint_json(self._find_endpoint(names)))

    def _profile(self) -> dict[str, Any]:
        monitor = self._settings.monitor
        endpoints = self._tm.endpoints()
        return {
            "id": self._profile_id(), "name": self.name, "type": PROFILE_TYPE, "location": "global",
            "tags": dict(self._tags),
            "properties": {
                "profileStatus": "Enabled",
                "trafficRoutingMethod": self._settings.routing,
                "dnsConfig": {"relativeName": self.name, "fqdn": self._settings.fqdn,
                              "ttl": int(self._settings.ttl)},
                "monitorConfig": {
                    "profileMonitorStatus": self._profile_monitor_status(),
                    "protocol": monitor.protocol,
                    "port": endpoints[0].port if endpoints else 80,
                    "path": monitor.path,
                    "intervalInSeconds": int(monitor.interval),
                    "timeoutInSeconds": int(monitor.timeout),
                    "toleratedNumberOfFailures": monitor.tolerated_failures,
                    "customHeaders": [],
                    "expectedStatusCodeRanges": self._status_ranges(),
                },
                "endpoints": [self._endpoint_json(e) for e in endpoints],
                "trafficViewEnrollmentStatus": "Disabled",
            },
        }

    def _endpoint_json(self, endpoint: Endpoint) -> dict[str, Any]:
        return {
            "id": f"{self._profile_id()}/externalEndpoints/{endpoint.name}",
            "name": endpoint.name,
            "type": ENDPOINT_TYPE,
            "properties": {
                "endpointStatus": "Enabled" if endpoint.enabled else "Disabled",
                "endpointMonitorStatus": self._tm.statuses()[endpoint.name],
                "target": endpoint.target,
                "weight": endpoint.weight,
                "priority": endpoint.priority,
                "endpointLocation": resources.location(endpoint.name),
                "alwaysServe": "Disabled",
                "customHeaders": [],
            },
        }

    def _profile_monitor_status(self) -> str:
        statuses = self._tm.statuses().values()
        if all(s == DISABLED for s in statuses):
            return "Inactive"
        for status, profile_status in ((DEGRADED, "Degraded"), (ONLINE, "Online")):
            if status in statuses:
                return profile_status
        return "CheckingEndpoints" if CHECKING in statuses else "Inactive"

    def _status_ranges(self) -> list[dict[str, int]]:
        return [{"min": r.min, "max": r.max} for r in self._settings.monitor.expected_status_code_ranges]

    def _profile_id(self) -> str:
        return (f"/subscriptions/{resources.SUBSCRIPTION}/resourceGroups/{resources.RESOURCE_GROUP}"
                f"/providers/{PROFILE_TYPE}/{self.name}")

    # Changes.

    async def _update_profile(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        self._check_profile(names)
        body = await read_json(request)
        location = body.get("location")
        if location is not None and str(location).lower() != "global":
            raise _cannot(f"a Traffic Manager profile's location is 'global', not {location!r}")
        tags = body.get("tags")
        if tags is not None:
            tags = checked_tags(tags)
        properties = _object(body.get("properties"), "properties")
        self._check_profile_settings(properties)
        changes: list[tuple[Endpoint, _EndpointChange]] = []
        listed = properties.get("endpoints")
        if listed is not None:
            if not isinstance(listed, list):
                raise ArmError(400, "BadRequest", "properties.endpoints must be a list")
            changes = [self._endpoint_change_in_profile(item) for item in listed]
            missing = {e.name for e in self._tm.endpoints()} - {e.name for e, _ in changes}
            if missing:
                raise _cannot(f"delete endpoints ({', '.join(sorted(missing))} missing from the list)")
        for endpoint, change in changes:
            change.apply(self._tm, endpoint.name)
        if tags is not None:
            self._tags = tags
        return json_response(self._profile())

    async def _update_endpoint(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        endpoint = self._find_endpoint(names, creating=request.method == "PUT")
        body = await read_json(request)
        change = _endpoint_change(endpoint, _object(body.get("properties"), "properties"))
        change.apply(self._tm, endpoint.name)
        return json_response(self._endpoint_json(self._endpoint_named(endpoint.name)))

    async def _delete(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        if "endpoint" in names:
            self._find_endpoint(names)
            raise _cannot("delete an endpoint; disable it (endpointStatus: Disabled) instead")
        self._check_profile(names)
        raise _cannot("delete its Traffic Manager profile")

    def _check_profile_settings(self, properties: Mapping[str, Any]) -> None:
        """Refuse any profile setting the request changes (the lab applies only endpoint settings)."""
        settings = self._settings
        _same("profileStatus", properties.get("profileStatus"), "Enabled", folded=True)
        _same("trafficRoutingMethod", properties.get("trafficRoutingMethod"), settings.routing, folded=True)
        dns = _object(properties.get("dnsConfig"), "dnsConfig")
        _same("dnsConfig.relativeName", dns.get("relativeName"), self.name, folded=True)
        _same("dnsConfig.ttl", dns.get("ttl"), int(settings.ttl))
        monitor = _object(properties.get("monitorConfig"), "monitorConfig")
        current = self._profile()["properties"]["monitorConfig"]
        for field in ("protocol", "port", "path", "intervalInSeconds", "timeoutInSeconds",
                      "toleratedNumberOfFailures", "customHeaders"):
            _same(f"monitorConfig.{field}", monitor.get(field), current[field], folded=field == "protocol")
        ranges = monitor.get("expectedStatusCodeRanges")
        if ranges is not None and _ranges(ranges) != _ranges(current["expectedStatusCodeRanges"]):
            now = current["expectedStatusCodeRanges"] or "only 200"
            raise _cannot(f"change monitorConfig.expectedStatusCodeRanges (they are {now}, the request asks "
                          f"for {ranges})")

    def _endpoint_change_in_profile(self, item: Any) -> tuple[Endpoint, _EndpointChange]:
        item = _object(item, "an item of properties.endpoints")
        kind = str(item.get("type") or ENDPOINT_TYPE).rsplit("/", 1)[-1]
        name = item.get("name")
        if not isinstance(name, str):
            raise ArmError(400, "BadRequest", "every item of properties.endpoints needs its name")
        endpoint = self._lookup(kind, name, creating=True)
        return endpoint, _endpoint_change(endpoint, _object(item.get("properties"), "properties"))

    def _check_profile(self, names: Mapping[str, str]) -> None:
        _group(names)
        if names["profile"].lower() != self.name.lower():
            raise not_found(PROFILE_TYPE, names["profile"])

    def _find_endpoint(self, names: Mapping[str, str], *, creating: bool = False) -> Endpoint:
        self._check_profile(names)
        if names["kind"].lower() not in _KINDS:
            raise ArmError(404, "NotFound",
                           f"No resource or operation at {names['kind']}/{names['endpoint']}.")
        return self._lookup(names["kind"], names["endpoint"], creating=creating)

    def _lookup(self, kind: str, name: str, *, creating: bool) -> Endpoint:
        """The endpoint ``kind/name`` (names compare case-insensitively); 404, or 400 for one a request
        would create."""
        found = next((e for e in self._tm.endpoints() if e.name.lower() == name.lower()), None)
        if found is None or kind.lower() != ENDPOINT_KIND.lower():
            if creating:
                raise _cannot(f"add endpoints (its endpoints are the regions' {ENDPOINT_KIND}: "
                              f"{', '.join(e.name for e in self._tm.endpoints())})")
            raise not_found(f"{PROFILE_TYPE}/{kind}", f"{self.name}/{name}")
        return found

    def _endpoint_named(self, name: str) -> Endpoint:
        return next(e for e in self._tm.endpoints() if e.name == name)


class _EndpointChange:
    """What a request asks of one endpoint, checked before anything is applied."""

    def __init__(self, enabled: bool | None, priority: int | None, weight: int | None) -> None:
        self.enabled = enabled
        self.priority = priority
        self.weight = weight

    def apply(self, traffic_manager: TrafficManager, name: str) -> None:
        traffic_manager.set_routing(name, priority=self.priority, weight=self.weight)
        if self.enabled is not None:
            traffic_manager.set_enabled(name, self.enabled)


def _endpoint_change(endpoint: Endpoint, properties: Mapping[str, Any]) -> _EndpointChange:
    """Check an endpoint's requested properties: the settings the lab applies, the rest unchanged."""
    status = properties.get("endpointStatus")
    enabled = None
    if status is not None:
        if str(status).lower() not in ("enabled", "disabled"):
            raise ArmError(400, "BadRequest", f"endpointStatus is Enabled or Disabled, not {status!r}")
        enabled = str(status).lower() == "enabled"
    priority = _setting(properties, "priority")
    weight = _setting(properties, "weight")
    target = properties.get("target")
    if target is not None and str(target).rstrip(".").lower() != endpoint.target.lower():
        raise _cannot(f"change endpoint {endpoint.name}'s target ({endpoint.target}, not {target!r})")
    location = properties.get("endpointLocation")
    where = resources.location(endpoint.name)
    if location is not None and str(location).replace(" ", "").lower() != where:
        raise _cannot(f"change endpoint {endpoint.name}'s endpointLocation ({where}, not {location!r})")
    _same("alwaysServe", properties.get("alwaysServe"), "Disabled", folded=True)
    for field in ("targetResourceId", "minChildEndpoints", "minChildEndpointsIPv4", "minChildEndpointsIPv6"):
        if properties.get(field) is not None:
            raise _cannot(f"set {field} on an external endpoint")
    for field in ("geoMapping", "subnets", "customHeaders"):
        if properties.get(field):
            raise _cannot(f"set {field} on an endpoint (the lab routes by priority or weight only)")
    return _EndpointChange(enabled, priority, weight)


def _setting(properties: Mapping[str, Any], field: str) -> int | None:
    value = properties.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ArmError(400, "BadRequest", f"{field} must be a whole number from 1 to 1000, not {value!r}")
    return value


def _same(field: str, given: Any, current: Any, *, folded: bool = False) -> None:
    """Refuse a request that sets ``field`` to anything but its current value."""
    if given is None:
        return
    if folded and isinstance(given, str) and isinstance(current, str):
        equal = given.lower() == current.lower()
    else:
        equal = given == current and type(given) is type(current)
    if not equal:
        raise _cannot(f"change {field} (it is {current!r}, the request asks for {given!r})")


def _ranges(ranges: Any) -> list[tuple[Any, Any]]:
    """Status code ranges compared as Azure means them: none is 200 only."""
    if not isinstance(ranges, list):
        return [("invalid", ranges)]
    return sorted((r.get("min"), r.get("max")) for r in ranges if isinstance(r, dict)) or [(200, 200)]


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArmError(400, "BadRequest", f"{what} must be an object")
    return value


def _cannot(what: str) -> ArmError:
    return ArmError(400, "BadRequest", f"The lab's Traffic Manager cannot {what}; {_APPLIED}.")


def _group(names: Mapping[str, str]) -> None:
    check_subscription(names["subscription"])
    if names["group"].lower() != resources.RESOURCE_GROUP.lower():
        raise group_not_found(names["group"])
