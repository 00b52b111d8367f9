"""Azure, as faults and probes reach it: one credential and the management clients of a run.

The clients are the Azure SDK's own asynchronous ones (``azure-mgmt-trafficmanager``,
``azure-mgmt-cosmosdb``, ``azure-mgmt-compute``), pointed at the environment's ARM endpoint
(``https://management.azure.com`` unless the file says otherwise) and trusting its ``caFile`` if it
names one. Credentials never come from the environment file: a real environment uses
``DefaultAzureCredential`` (environment variables, workload or managed identity, ``az login``); a lab's
file names the token file its ARM endpoint accepts, read by :class:`LabCredential`. Either way every
call after that is the production code path.

ARM throttles per subscription (about 1,200 writes an hour per principal), so calls go through
:meth:`Azure.call`, which bounds the requests in flight and their rate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from drills.environment import Environment
from drills.errors import DrillError, EnvironmentUnreachable
from drills.ratelimit import RateLimiter

T = TypeVar("T")

_LAB_TOKEN_LIFETIME_S = 3600
"""How long a lab token is reported valid: the lab accepts it as long as it runs."""

_ARM_QPS, _ARM_BURST, _ARM_IN_FLIGHT = 5.0, 10, 8
"""Well under ARM's per-principal limits even for a fault that touches many resources (requests per
second of the environment's clock)."""


def location_key(name: str) -> str:
    """How Azure compares location names: ``West Europe``, ``westeurope`` and ``WestEurope`` are one."""
    return name.replace(" ", "").lower()


class LabCredential(AsyncTokenCredential):
    """The token a lab's ARM endpoint accepts, read from the file its environment names."""

    def __init__(self, token_file: str | Path) -> None:
        self._file = Path(token_file)

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        try:
            token = self._file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EnvironmentUnreachable(f"cannot read the lab's ARM token {self._file}: {exc}") from exc
        return AccessToken(token, int(time.time()) + _LAB_TOKEN_LIFETIME_S)

    async def close(self) -> None:
        """Nothing to release."""


def credential(env: Environment) -> AsyncTokenCredential:
    """The lab's token for a lab's file, ``DefaultAzureCredential`` for anything else."""
    if env.lab is not None and env.lab.arm_token_file:
        return LabCredential(env.lab.arm_token_file)
    from azure.identity.aio import DefaultAzureCredential  # imported late: it is slow to import

    return DefaultAzureCredential()


class Azure:
    """The management clients of one environment, built on first use; :meth:`aclose` releases them."""

    def __init__(self, env: Environment) -> None:
        if env.azure is None:
            raise EnvironmentUnreachable(
                f"environment {env.name} ({env.path}) has no 'azure' section: Azure faults and probes "
                "need at least azure.subscription")
        self.env = env
        self.settings = env.azure
        self._credential: AsyncTokenCredential | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        # A lab's ARM keeps Azure's limits on its own clock, as every lab setting is: per real second,
        # the rate scales with the time scale (1 for a real environment).
        self._limiter = RateLimiter(qps=_ARM_QPS * env.time_scale, burst=_ARM_BURST, in_flight=_ARM_IN_FLIGHT)

    def subscription(self, override: str | None = None) -> str:
        """``override`` or the environment's subscription; a clear error when neither is set."""
        subscription = override or self.settings.subscription
        if not subscription:
            raise EnvironmentUnreachable(f"environment {self.env.name}: no subscription given "
                                         "(set azure.subscription in the environment file)")
        return subscription

    def traffic_manager(self, subscription: str | None = None) -> Any:
        """A ``TrafficManagerManagementClient`` (aio) for the subscription."""
        from azure.mgmt.trafficmanager.aio import TrafficManagerManagementClient

        return self._client(TrafficManagerManagementClient, subscription)

    def cosmos_db(self, subscription: str | None = None) -> Any:
        """A ``CosmosDBManagementClient`` (aio) for the subscription."""
        from azure.mgmt.cosmosdb.aio import CosmosDBManagementClient

        return self._client(CosmosDBManagementClient, subscription)

    def compute(self, subscription: str | None = None) -> Any:
        """A ``ComputeManagementClient`` (aio) for the subscription."""
        from azure.mgmt.compute.aio import ComputeManagementClient

        return self._client(ComputeManagementClient, subscription)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one management call within the rate limit: ``await azure.call(lambda: client.x.get(...))``."""
        async with self._limiter:
            return await fn()

    def connection_verify(self) -> str | bool:
        """What the SDKs' transports verify TLS with: the environment's CA file, or the system's."""
        return self.settings.ca_file or True

    def token_credential(self) -> AsyncTokenCredential:
        """The run's credential (shared by every client)."""
        if self._credential is None:
            self._credential = credential(self.env)
        return self._credential

    async def aclose(self) -> None:
        """Close every client and the credential."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
        if self._credential is not None:
            await self._credential.close()
            self._credential = None

    def _client(self, cls: type, subscription: str | None) -> Any:
        key = (cls.__name__, self.subscription(subscription))
        if key not in self._clients:
            endpoint = self.settings.arm_endpoint
            self._clients[key] = cls(self.token_credential(), key[1], base_url=endpoint,
                                     credential_scopes=[f"{endpoint}/.default"],
                                     connection_verify=self.connection_verify())
        return self._clients[key]


@dataclass(frozen=True)
class TrafficManagerProfile:
    """Where the environment's Traffic Manager profile is in ARM."""

    subscription: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        """The profile's resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Network/trafficManagerProfiles/{self.name}")


def traffic_manager_profile(env: Environment) -> TrafficManagerProfile:
    """The environment's profile (``trafficManager.subscription`` or ``azure.subscription``,
    ``trafficManager.resourceGroup``, ``trafficManager.profile``); a DrillError naming each key missing."""
    tm = env.traffic_manager
    subscription = tm.subscription or (env.azure.subscription if env.azure is not None else None)
    if subscription and tm.resource_group and tm.profile:
        return TrafficManagerProfile(subscription, tm.resource_group, tm.profile)
    missing = [key for key, value in (("trafficManager.subscription (or azure.subscription)", subscription),
                                      ("trafficManager.resourceGroup", tm.resource_group),
                                      ("trafficManager.profile", tm.profile)) if not value]
    raise DrillError(f"environment {env.name} ({env.path}) does not say where its Traffic Manager "
                     f"profile is in Azure: set {', '.join(missing)}")
