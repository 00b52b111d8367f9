"""Environment identity: what tells the clusters and Azure resources a run changes from others that
carry the same names.

Names say nothing: a lab started again in the same folder writes the same environment file, with
the same contexts and node names, and a production cluster recreated from the same template looks
just like the old one. What does tell them apart is what the platforms generate when a thing is
created: each cluster's ``kube-system`` namespace UID (what cluster-identity tools use, since that
namespace lives as long as the cluster), and for Azure the resource ids the environment names
(Traffic Manager profile, Cosmos DB account, node pool scale sets) with the unique id Azure gives a
scale set at creation (``uniqueId``).

The runner reads it before the journal's first line and records it in ``run_started``
(:mod:`drills.journal`); ``drill recover`` reads it again and refuses to undo anything where it
differs (:func:`check_same`), since the journal's undo records would then be applied to objects the
run never changed: an operator's cordon on a new cluster uncordoned, say.

JSON form (``run_started.identity``)::

    {"clusters": {"us": "<kube-system uid>", "eu": "..."},
     "azure": {"/subscriptions/.../trafficManagerProfiles/shop": null,
               "/subscriptions/.../virtualMachineScaleSets/aks-us": "<uniqueId>"},
     "unread": ["azure: <why it could not be read>"]}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiException

from drills.errors import DrillError, EnvironmentUnreachable
from drills.faults.kube import status_message
from drills.targets import Targets

IDENTITY_NAMESPACE = "kube-system"
"""The namespace whose UID identifies a cluster: it exists in every cluster and lives as long as it."""
_AZURE_TIMEOUT_S = 30.0
"""Real seconds the Azure look-ups may take together: a credential chain that finds nothing gives up
sooner on its own; past it the ids are recorded as unread rather than holding the drill."""
_REQUEST_TIMEOUT_S = (3.0, 10.0)


class IdentityMismatch(DrillError):
    """The environment is not the one a run changed: nothing of that run may be undone in it."""


@dataclass(frozen=True)
class Identity:
    """What identifies an environment (see the module docstring)."""

    clusters: dict[str, str] = field(default_factory=dict)
    """Each region's cluster UID (its ``kube-system`` namespace's ``metadata.uid``)."""
    azure: dict[str, str | None] = field(default_factory=dict)
    """Each Azure resource the environment names, by resource id: its unique id where Azure gives one."""
    unread: list[str] = field(default_factory=list)
    """What could not be read, and why (such parts are not compared)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form the journal records."""
        return {"clusters": dict(self.clusters), "azure": dict(self.azure), "unread": list(self.unread)}

    @classmethod
    def from_json(cls, data: Any) -> Identity:
        """From :meth:`to_json`'s form; ValueError when it is not that."""
        if not isinstance(data, dict):
            raise ValueError("the recorded identity is not a JSON object")
        clusters, azure, unread = data.get("clusters", {}), data.get("azure", {}), data.get("unread", [])
        if not (isinstance(clusters, dict) and all(isinstance(v, str) for v in clusters.values())
                and isinstance(azure, dict) and all(v is None or isinstance(v, str) for v in azure.values())
                and isinstance(unread, list)):
            raise ValueError("the recorded identity is not what drill writes")
        return cls(clusters={str(k): v for k, v in clusters.items()},
                   azure={str(k): v for k, v in azure.items()}, unread=[str(u) for u in unread])


async def read_identity(targets: Targets, *, regions: Iterable[str] | None = None, strict: bool = True,
                        azure: bool = True) -> Identity:
    """The environment's identity, read through its APIs: the clusters of ``regions`` (default every
    region) and, with ``azure``, the Azure resources its file names.

    ``strict``: a cluster whose UID cannot be read raises a DrillError (a run must not start with a
    journal it cannot bind); otherwise it is listed in ``unread``. Azure resources that cannot be read
    are always listed in ``unread`` (a drill of Kubernetes faults needs no Azure credentials).
    """
    names = sorted(targets.env.regions if regions is None else regions)
    uids = await asyncio.gather(*(_cluster_uid(targets, n) for n in names))
    clusters: dict[str, str] = {}
    unread: list[str] = []
    for name, (uid, why) in zip(names, uids, strict=True):
        if uid is not None:
            clusters[name] = uid
        elif strict:
            raise DrillError(
                f"cannot read the identity of region {name} (the UID of its {IDENTITY_NAMESPACE} namespace): "
                f"{why}; drill binds its journal to it so that `drill recover` never undoes a run in another "
                f"cluster (grant get on namespace {IDENTITY_NAMESPACE}); nothing was touched")
        else:
            unread.append(f"region {name}: {why}")
    resources: dict[str, str | None] = {}
    if azure and targets.env.azure is not None:
        try:
            resources = await asyncio.wait_for(_azure_ids(targets), _AZURE_TIMEOUT_S)
        except TimeoutError:
            unread.append(f"azure: no answer within {_AZURE_TIMEOUT_S:g} s")
        except Exception as exc:  # no credentials, no such resource, ARM down: recorded, not fatal
            unread.append(f"azure: {type(exc).__name__}: {exc}".splitlines()[0])
    return Identity(clusters=clusters, azure=resources, unread=unread)


def differences(recorded: Identity, live: Identity) -> list[str]:
    """How ``live`` differs from ``recorded``, one sentence each; empty when nothing read differs.
    Parts either side could not read are not compared."""
    found = []
    for region, uid in sorted(recorded.clusters.items()):
        now = live.clusters.get(region)
        if now is not None and now != uid:
            found.append(f"region {region}: the cluster's UID ({IDENTITY_NAMESPACE} namespace) was {uid}, "
                         f"is now {now}")
    live_azure = {rid.lower(): unique for rid, unique in live.azure.items()}
    azure_read = bool(live.azure) and not any(u.startswith("azure:") for u in live.unread)
    for rid, unique in sorted(recorded.azure.items()):
        if rid.lower() not in live_azure:
            if azure_read:
                found.append(f"Azure resource {rid} is not among those the environment names now")
        elif unique is not None and (now := live_azure[rid.lower()]) not in (None, unique):
            found.append(f"Azure resource {rid}: its unique id was {unique}, is now {now}")
    return found


async def check_same(recorded: Identity, targets: Targets, *, regions: Iterable[str]) -> None:
    """Raise :class:`IdentityMismatch` unless the environment ``targets`` reaches is the one
    ``recorded`` describes, as far as ``regions`` (those reachable) and Azure can be read."""
    wanted = [r for r in regions if r in recorded.clusters and r in targets.env.regions]
    live = await read_identity(targets, regions=wanted, strict=False, azure=bool(recorded.azure))
    found = differences(recorded, live)
    if found:
        raise IdentityMismatch("; ".join(found) + ": the environment was recreated or this is another "
                               "cluster: nothing was undone (what the run changed went with the environment "
                               "it changed)")


async def _cluster_uid(targets: Targets, region: str) -> tuple[str | None, str | None]:
    """The region's cluster UID, or None and why it could not be read."""
    try:
        kube = targets.kube(region)
        namespace = await kube.call(kube.core.read_namespace, IDENTITY_NAMESPACE,
                                    _request_timeout=_REQUEST_TIMEOUT_S)
    except EnvironmentUnreachable as exc:
        return None, str(exc)
    except ApiException as exc:
        return None, f"{exc.status} {status_message(exc)}"
    except Exception as exc:  # no answer at all: a refused connection, a timeout
        return None, f"{type(exc).__name__}: {exc}"
    uid = namespace.metadata.uid if namespace.metadata is not None else None
    return (str(uid), None) if uid else (None, f"its {IDENTITY_NAMESPACE} namespace has no UID")


async def _azure_ids(targets: Targets) -> dict[str, str | None]:
    """The resource ids (and unique ids) of the Azure resources the environment names."""
    env, azure = targets.env, targets.azure
    lookups: list[Callable[[], Awaitable[Any]]] = []
    tm = env.traffic_manager
    if tm.resource_group and tm.profile:
        client = azure.traffic_manager(tm.subscription)
        lookups.append(lambda: client.profiles.get(tm.resource_group, tm.profile))
    cosmos = env.cosmos
    if cosmos is not None and cosmos.resource_group:
        accounts = azure.cosmos_db(cosmos.subscription).database_accounts
        lookups.append(lambda: accounts.get(cosmos.resource_group, cosmos.account))
    for region in env.regions.values():
        for pool in region.node_pools:
            scale_sets = azure.compute(pool.subscription).virtual_machine_scale_sets
            lookups.append(lambda s=scale_sets, p=pool: s.get(p.resource_group, p.scale_set))
    found = await asyncio.gather(*(azure.call(lookup) for lookup in lookups))
    return {str(r.id): getattr(r, "unique_id", None) for r in found}
