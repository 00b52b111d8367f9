"""Traffic Manager faults: ``disable-endpoint``, the "manual failover" many teams practise.

The endpoint's ``endpointStatus`` is set to Disabled through ARM (``endpoints.update``, a PATCH of that
one property); Traffic Manager stops probing it and stops answering with it at once. The undo sets the
status recorded when the fault was prepared: an endpoint someone had already disabled is recorded
Disabled, and so stays Disabled (it is not ours to enable). Disabling the profile's last enabled
endpoint is allowed, since that is a failure a drill may want to see, but its summary says what it
means: the profile's name then answers NXDOMAIN.

Needs the ``Traffic Manager Contributor`` role on the profile (or its resource group).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, model_validator

from drills.armcalls import TRAFFIC_MANAGER_ROLE, call, is_gone
from drills.azure import TRAFFIC_MANAGER, TrafficManagerProfile, preload, traffic_manager_profile
from drills.errors import DrillError, FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import FaultParams
from drills.targets import Targets

ENDPOINT_TYPES = ("AzureEndpoints", "ExternalEndpoints", "NestedEndpoints")
"""The endpoint types, as the SDK's ``endpoint_type`` takes them (the last segment of an endpoint's type)."""

_CLI_TYPES = {"AzureEndpoints": "azureEndpoints", "ExternalEndpoints": "externalEndpoints",
              "NestedEndpoints": "nestedEndpoints"}
"""``az network traffic-manager endpoint --type`` spells them with a lower-case first letter."""


class DisableEndpoint:
    """Set one Traffic Manager endpoint Disabled; undo restores its recorded status."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        AzureRole("Traffic Manager Contributor", "the Traffic Manager profile"),
    )

    name: ClassVar[str] = "disable-endpoint"

    class Params(FaultParams):
        model_config = ConfigDict(title="disable-endpoint")

        region: str | None = None
        """The region whose endpoint (the environment's ``regions.<region>.endpoint``) is disabled."""
        endpoint: str | None = None
        """Or the endpoint's name in the profile, for one that serves no region of the environment."""

        @model_validator(mode="after")
        def _one_target(self) -> DisableEndpoint.Params:
            if (self.region is None) == (self.endpoint is None):
                raise ValueError("give either region or endpoint")
            return self

    def __init__(self, params: Params) -> None:
        self.params = params
        preload(TRAFFIC_MANAGER)

    async def prepare(self, targets: Targets) -> Undo:
        env = targets.env
        region, wanted = self._target(targets)
        profile = _profile(targets)
        client = targets.azure.traffic_manager(profile.subscription)
        found = await call(targets.azure, lambda: client.profiles.get(profile.resource_group, profile.name),
                           what=f"read Traffic Manager profile {profile.name} in resource group "
                                f"{profile.resource_group}", role=TRAFFIC_MANAGER_ROLE)
        endpoints = list((found.properties.endpoints if found.properties else None) or [])
        endpoint = next((e for e in endpoints if (e.name or "").lower() == wanted.lower()), None)
        if endpoint is None:
            names = ", ".join(e.name or "?" for e in endpoints) or "none"
            raise FaultError(f"disable-endpoint: Traffic Manager profile {profile.name} has no endpoint "
                             f"{wanted!r} (its endpoints: {names})")
        kind = endpoint_type(endpoint.type)
        status = _status(endpoint)
        name = endpoint.name or wanted
        still_enabled = [e.name for e in endpoints if e is not endpoint and _status(e) == "Enabled"]
        if status == "Disabled":
            summary = (f"Traffic Manager endpoint {name} of profile {profile.name} is already Disabled: "
                       "nothing to do, and the undo leaves it Disabled")
        else:
            summary = f"disable Traffic Manager endpoint {name} ({kind}) of profile {profile.name}"
            if not still_enabled:
                fqdn = (found.properties.dns_config.fqdn if found.properties and found.properties.dns_config
                        else None) or env.traffic_manager.fqdn
                summary += (f"; it is the profile's last enabled endpoint, so {fqdn} answers NXDOMAIN "
                            "until the undo")
        resource_id = endpoint.id or f"{profile.id}/{kind}/{name}"
        return Undo(fault=self.name, region=region, summary=summary, objects=[resource_id],
                    data={"subscription": profile.subscription, "resourceGroup": profile.resource_group,
                          "profile": profile.name, "endpointType": kind, "endpoint": name, "status": status})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        if undo.data["status"] != "Disabled":
            await _set_status(targets, undo, "Disabled")

    async def revert(self, targets: Targets, undo: Undo) -> None:
        if undo.data["status"] == "Disabled":
            return
        try:
            await _set_status(targets, undo, undo.data["status"])
        except FaultError as exc:
            if not is_gone(exc):  # an endpoint deleted since has nothing left to restore
                raise

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The ``az`` command that undoes it, for a person when drill could not."""
        d = undo.data
        if d["status"] == "Disabled":
            return None
        return (f"az network traffic-manager endpoint update --subscription {d['subscription']} "
                f"--resource-group {d['resourceGroup']} --profile-name {d['profile']} "
                f"--type {_CLI_TYPES.get(d['endpointType'], d['endpointType'])} --name {d['endpoint']} "
                f"--endpoint-status {d['status']}")

    def _target(self, targets: Targets) -> tuple[str, str]:
        """The region struck (empty if the endpoint serves none) and the endpoint's name."""
        env = targets.env
        p = self.params
        if p.region is not None:
            if p.region not in env.regions:
                raise FaultError(f"disable-endpoint: the environment has no region {p.region!r} "
                                 f"(it has {', '.join(env.regions)})")
            return p.region, env.regions[p.region].endpoint
        wanted = p.endpoint or ""
        region = next((r for r, spec in env.regions.items() if spec.endpoint.lower() == wanted.lower()), "")
        return region, wanted


def endpoint_type(resource_type: str | None) -> str:
    """``AzureEndpoints`` from ``Microsoft.Network/trafficManagerProfiles/azureEndpoints`` (any case);
    a FaultError for a type Traffic Manager does not have."""
    last = (resource_type or "").rsplit("/", 1)[-1].lower()
    for kind in ENDPOINT_TYPES:
        if kind.lower() == last:
            return kind
    raise FaultError(f"disable-endpoint: unknown Traffic Manager endpoint type {resource_type!r} "
                     f"(known: {', '.join(ENDPOINT_TYPES)})")


def _profile(targets: Targets) -> TrafficManagerProfile:
    try:
        return traffic_manager_profile(targets.env)
    except DrillError as exc:
        raise FaultError(f"disable-endpoint: {exc}") from exc


def _status(endpoint: Any) -> str:
    """The endpoint's ``endpointStatus``; ARM's default, Enabled, when it says none."""
    properties = endpoint.properties
    status = properties.endpoint_status if properties is not None else None
    # The SDK's enums are str enums whose str() is their Python name: the value is what ARM said.
    return str(getattr(status, "value", status) or "Enabled")


async def _set_status(targets: Targets, undo: Undo, status: str) -> None:
    d = undo.data
    client = targets.azure.traffic_manager(d["subscription"])
    body: dict[str, Any] = {"properties": {"endpointStatus": status}}
    await call(targets.azure,
               lambda: client.endpoints.update(d["resourceGroup"], d["profile"], d["endpointType"],
                                               d["endpoint"], body),
               what=f"set Traffic Manager endpoint {d['endpoint']} of profile {d['profile']} {status}",
               role=TRAFFIC_MANAGER_ROLE)
