"""Compute faults: ``zone-down`` powers off the VM scale-set instances under one zone's nodes.

The zone's nodes are found through Kubernetes (``topology.kubernetes.io/zone``, as ``cordon-zone``
takes it); each node's ``spec.providerID`` names its scale-set instance
(``azure:///subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{id}``,
AKS writes the resource group in lower case). Blast radius: an instance of a scale set the environment
does not list in ``regions.<region>.nodePools`` is refused, as is a node that is no scale-set instance,
and the nodes count against ``limits.maxNodes``; all of it before anything changes. Only instances
running when the fault is prepared are recorded (an instance already stopped is not ours to start).

Inject powers the recorded instances off, one ``begin_power_off`` per scale set, concurrently, graceful
(``skip_shutdown`` false), and waits for the operations; undo starts them (``begin_start``), which is
idempotent. Their nodes go NotReady and, after the cluster's node-failure timeout, their pods are
replaced elsewhere, as when a zone's machines fail.

Needs the ``Virtual Machine Contributor`` role on the node resource group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ConfigDict

from drills.armcalls import VM_ROLE, call, is_gone, outcome
from drills.azure import COMPUTE, preload
from drills.errors import FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import FaultParams, check_node_limit, each, region, zone_nodes
from drills.targets import Targets

_PROVIDER_ID = re.compile(
    r"azure:///subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)/providers/"
    r"Microsoft\.Compute/virtualMachineScaleSets/(?P<scale_set>[^/]+)/virtualMachines/(?P<instance_id>[^/]+)",
    re.IGNORECASE)

RUNNING = frozenset({"PowerState/running", "PowerState/starting"})
"""Power states of an instance that is (or is about to be) up: the ones zone-down powers off."""


@dataclass(frozen=True)
class ScaleSetInstance:
    """One VM of a scale set, as a node's providerID names it."""

    subscription: str
    resource_group: str
    scale_set: str
    instance_id: str

    @property
    def id(self) -> str:
        """The instance's resource id."""
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{self.scale_set}/virtualMachines/{self.instance_id}")


def parse_provider_id(provider_id: str | None) -> ScaleSetInstance | None:
    """The scale-set instance a node's ``spec.providerID`` names; None if it names none (a standalone
    VM, another cloud, no providerID)."""
    match = _PROVIDER_ID.fullmatch((provider_id or "").strip())
    if match is None:
        return None
    return ScaleSetInstance(**match.groupdict())


class ZoneDown:
    """Power off the scale-set instances of one zone's nodes; undo starts them again."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("list", "nodes"),
        AzureRole("Virtual Machine Contributor", "the node pools' scale sets"),
    )

    name: ClassVar[str] = "zone-down"

    class Params(FaultParams):
        model_config = ConfigDict(title="zone-down")

        cluster: str
        """The region whose zone goes down."""
        zone: str
        """The value of the nodes' ``topology.kubernetes.io/zone`` label."""

    def __init__(self, params: Params) -> None:
        self.params = params
        preload(COMPUTE)

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        nodes = await zone_nodes(region(targets, p.cluster), p.cluster, p.zone)
        instances = {n.metadata.name: _instance(targets, p.cluster, n.metadata.name,
                                                n.spec.provider_id if n.spec else None) for n in nodes}
        check_node_limit(targets, p.cluster, list(instances))
        states = dict(zip(instances, await each(instances.values(), lambda i: _power_state(targets, i)),
                          strict=True))
        ours = [name for name, state in states.items() if state in RUNNING]
        theirs = {name: state for name, state in states.items() if state not in RUNNING}
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for name in ours:
            i = instances[name]
            group = groups.setdefault((i.subscription, i.resource_group, i.scale_set), {
                "subscription": i.subscription, "resourceGroup": i.resource_group, "scaleSet": i.scale_set,
                "instanceIds": [], "nodes": []})
            group["instanceIds"].append(i.instance_id)
            group["nodes"].append(name)
        sets = ", ".join(sorted({g["scaleSet"] for g in groups.values()})) or "none"
        summary = (f"power off the {len(ours)} running scale-set instances of zone {p.zone} in {p.cluster} "
                   f"(nodes {', '.join(ours) or 'none'}; scale sets {sets})")
        if theirs:
            summary += "; left as they are: " + ", ".join(f"{n} ({s or 'power state unknown'})"
                                                          for n, s in theirs.items())
        return Undo(fault=self.name, region=p.cluster, summary=summary,
                    objects=[instances[name].id for name in ours],
                    data={"nodes": ours, "scaleSets": list(groups.values())})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await each(undo.data["scaleSets"], lambda g: _power(targets, g, on=False))

    async def revert(self, targets: Targets, undo: Undo) -> None:
        await each(undo.data["scaleSets"], lambda g: _power(targets, g, on=True))

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The ``az`` commands that undo it, for a person when drill could not."""
        commands = [f"az vmss start --subscription {g['subscription']} --resource-group {g['resourceGroup']} "
                    f"--name {g['scaleSet']} --instance-ids {' '.join(g['instanceIds'])}"
                    for g in undo.data["scaleSets"]]
        return " && ".join(commands) or None


def _instance(targets: Targets, cluster: str, node: str, provider_id: str | None) -> ScaleSetInstance:
    """The instance under ``node``, spelt as the environment's node pool names it; a FaultError if it is
    no scale-set instance or its scale set is not one of the region's ``nodePools``."""
    env = targets.env
    found = parse_provider_id(provider_id)
    if found is None:
        raise FaultError(f"zone-down in {cluster}: node {node} is not a VM scale-set instance (providerID "
                         f"{provider_id!r}); zone-down powers off scale-set instances only")
    default = env.azure.subscription if env.azure is not None else None
    pools = env.regions[cluster].node_pools
    for pool in pools:
        subscription = pool.subscription or default or found.subscription
        if (subscription.lower() == found.subscription.lower()
                and pool.resource_group.lower() == found.resource_group.lower()
                and pool.scale_set.lower() == found.scale_set.lower()):
            return ScaleSetInstance(subscription, pool.resource_group, pool.scale_set, found.instance_id)
    listed = ", ".join(f"{p.resource_group}/{p.scale_set}" for p in pools) or "none"
    raise FaultError(f"zone-down in {cluster}: node {node} is an instance of scale set "
                     f"{found.resource_group}/{found.scale_set}, which the environment does not list in "
                     f"regions.{cluster}.nodePools (the only scale sets zone-down may power off; listed: "
                     f"{listed}); nothing was changed")


async def _power_state(targets: Targets, instance: ScaleSetInstance) -> str | None:
    """The instance's ``PowerState/...`` code from its instance view; None if it reports none."""
    client = targets.azure.compute(instance.subscription)
    view = await call(targets.azure,
                      lambda: client.virtual_machine_scale_set_vms.get_instance_view(
                          instance.resource_group, instance.scale_set, instance.instance_id),
                      what=f"read the power state of instance {instance.instance_id} of scale set "
                           f"{instance.resource_group}/{instance.scale_set}", role=VM_ROLE)
    codes = [s.code for s in view.statuses or [] if s.code and s.code.startswith("PowerState/")]
    return codes[-1] if codes else None


async def _power(targets: Targets, group: dict[str, Any], *, on: bool) -> None:
    """Start (``on``) or power off one scale set's recorded instances and wait for the operation."""
    client = targets.azure.compute(group["subscription"])
    operations = client.virtual_machine_scale_sets
    ids = {"instanceIds": list(group["instanceIds"])}
    rg, name = group["resourceGroup"], group["scaleSet"]
    verb = "start" if on else "power off"
    what = f"{verb} instances {', '.join(group['instanceIds'])} of scale set {rg}/{name}"
    try:
        if on:
            poller = await call(targets.azure, lambda: operations.begin_start(rg, name, vm_instance_i_ds=ids),
                                what=what, role=VM_ROLE)
        else:
            poller = await call(targets.azure,
                                lambda: operations.begin_power_off(rg, name, vm_instance_i_ds=ids,
                                                                   skip_shutdown=False),
                                what=what, role=VM_ROLE)
        await outcome(poller.result(), what=what, role=VM_ROLE)
    except FaultError as exc:
        if not (on and is_gone(exc)):  # a scale set deleted since has nothing left to start
            raise
