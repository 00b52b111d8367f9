"""VM scale sets: each region's node pool as ``azure-mgmt-compute`` sees it, and the power of its VMs.

Each region's nodes are the instances of one scale set (:func:`resources.scale_set` in
:func:`resources.node_resource_group`), as AKS builds a node pool: an instance's id is the number at the
end of its node's ``spec.providerID``, its ``zones`` the node's zone as Azure numbers them (``"1"`` for
the first zone of the region in the topology), its ``osProfile.computerName`` the node's name, and its
resource name ``<scale set>_<id>``.

Served, under ``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets``
(and the subscription-wide list): the scale sets (list, get, ``instanceView``), their VMs (list, with
``$expand=instanceView``; get; ``instanceView``), and power control, long-running as in Azure (202,
then polled): ``poweroff``, ``deallocate`` and ``start`` on the scale set with ``{"instanceIds": [...]}``
(none or ``"*"``: every instance), and ``powerOff``, ``deallocate``, ``start`` on one VM. A scale set's
``tags`` are kept as sent by a PATCH of the scale set (``begin_update(..., {"tags": {...}})``, which
replaces them all, as ARM's PATCH does; at most 50, values at most 256 characters); a PATCH that sets
anything else is refused.

Power: an instance runs until powered off. A power off (or deallocate) stops the node's VM at once (its
kubelet stops posting: the node goes NotReady after the node monitor grace period and its pods are
replaced after the node failure timeout, :mod:`drills.lab.kube.nodes`); the instance shows
``PowerState/stopping`` until the operation completes :data:`POWER_OFF_S` later, then ``stopped``
(``deallocating``/``deallocated``). A start shows ``starting`` for :data:`START_S`, then the VM runs
again (``running``) and the node turns Ready. A newer operation on an instance preempts an older one,
which then fails with ``OperationPreempted``, as Azure's do. ``ProvisioningState`` is ``updating``
while an operation works on the instance, ``succeeded`` otherwise.

Ground truth: ``instance_power`` (scale_set, instance, zone, node, state) at every power state change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    long_running,
    page,
    read_json,
)
from drills.lab.clock import LabClock, rfc3339
from drills.lab.groundtruth import GroundTruth
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.nodes import zone_of
from drills.lab.kube.quantity import parse_quantity
from drills.lab.kube.store import NODES
from drills.lab.topology import Topology

POWER_OFF_S = 30.0
"""Real-world seconds a power off or deallocate takes to complete (Azure: tens of seconds)."""
START_S = 45.0
"""Real-world seconds a start takes until the VM runs (and its kubelet posts again)."""

RUNNING, STOPPING, STOPPED = "running", "stopping", "stopped"
STARTING, DEALLOCATING, DEALLOCATED = "starting", "deallocating", "deallocated"

SCALE_SET_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VM_TYPE = f"{SCALE_SET_TYPE}/virtualMachines"

_IN_SUBSCRIPTION = "/subscriptions/{subscription}/providers/Microsoft.Compute/virtualMachineScaleSets"
_SCALE_SETS = "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/" \
    "virtualMachineScaleSets"
_SCALE_SET = _SCALE_SETS + "/{scale_set}"
_VMS = _SCALE_SET + "/virtualMachines"
_VM = _VMS + "/{instance}"

_ACTIONS = {  # action -> (transition, final state, lab seconds)
    "poweroff": (STOPPING, STOPPED, POWER_OFF_S),
    "deallocate": (DEALLOCATING, DEALLOCATED, POWER_OFF_S),
    "start": (STARTING, RUNNING, START_S),
}
_ORCHESTRATOR = "Kubernetes:1.32.0"


@dataclass
class _Instance:
    """One VM of a scale set: a node of the region's cluster."""

    region: str
    instance_id: str
    node: str
    zone: str
    """Azure's zone number, ``"1"`` to ``"3"``."""
    power: str = RUNNING
    changed: str = ""
    """When the power state last changed (the lab's wall clock, RFC 3339)."""
    operation: object | None = field(default=None, repr=False)
    """The operation working on this instance now, if any."""


class ScaleSets:
    """The ARM provider of the node pools' scale sets (see the module docstring)."""

    def __init__(self, clusters: Mapping[str, Cluster], topology: Topology, *, clock: LabClock,
                 ground_truth: GroundTruth | None = None) -> None:
        self._clusters = dict(clusters)
        self._topology = topology
        self._clock = clock
        self._ground_truth = ground_truth
        stamp = rfc3339(clock.wall())
        self._instances: dict[str, dict[str, _Instance]] = {}
        # Azure gives a scale set a new uniqueId at each creation: a lab started again is another one.
        self._unique_ids = {region: str(uuid.uuid4()) for region in self._clusters}
        for region, cluster in self._clusters.items():
            zones = topology.regions[region].zones
            instances = []
            for node in cluster.store.iter(NODES):
                instance_id = str(int(node["spec"]["providerID"].rsplit("/", 1)[-1]))
                zone = str(zones.index(zone_of(node) or "") + 1)
                instances.append(_Instance(region, instance_id, node["metadata"]["name"], zone,
                                           changed=stamp))
            instances.sort(key=lambda i: int(i.instance_id))
            self._instances[region] = {i.instance_id: i for i in instances}
        self._tags: dict[str, dict[str, str]] = {region: _tags() for region in self._clusters}

    def routes(self) -> list[ArmRoute]:
        """The scale sets' and their VMs' paths."""
        return [
            ArmRoute("GET", _IN_SUBSCRIPTION, self._list_all),
            ArmRoute("GET", _SCALE_SETS, self._list),
            ArmRoute("GET", _SCALE_SET, self._get),
            ArmRoute("PATCH", _SCALE_SET, self._update),
            ArmRoute("GET", _SCALE_SET + "/instanceView", self._scale_set_view),
            ArmRoute("POST", _SCALE_SET + "/{action}", self._scale_set_action),
            ArmRoute("GET", _VMS, self._list_vms),
            ArmRoute("GET", _VM, self._get_vm),
            ArmRoute("GET", _VM + "/instanceView", self._vm_view),
            ArmRoute("POST", _VM + "/{action}", self._vm_action),
        ]

    def power_states(self, region: str) -> dict[str, str]:
        """Each node's VM power state in ``region`` (``running``, ``stopped`` ...), by node name."""
        return {i.node: i.power for i in self._instances[region].values()}

    # Reads.

    async def _list_all(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        check_subscription(names["subscription"])
        return page(self._scale_set_json(region) for region in self._instances)

    async def _list(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        check_subscription(names["subscription"])
        group = names["group"].lower()
        regions = [r for r in self._instances if resources.node_resource_group(r).lower() == group]
        if not regions and group != resources.RESOURCE_GROUP.lower():
            raise group_not_found(names["group"])
        return page(self._scale_set_json(region) for region in regions)

    async def _get(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        return json_response(self._scale_set_json(self._region(names)))

    async def _update(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        region = self._region(names)
        body = await read_json(request)
        others = sorted(k for k, v in body.items() if k != "tags" and v)
        if others:
            raise ArmError(400, "BadRequest",
                           f"The lab's scale sets change their tags only, not {', '.join(others)}.")
        if "tags" in body:
            self._tags[region] = checked_tags(body["tags"])
        return json_response(self._scale_set_json(region))

    async def _scale_set_view(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        instances = self._instances[self._region(names)].values()
        counts: dict[str, int] = {}
        for instance in instances:
            code = f"PowerState/{instance.power}"
            counts[code] = counts.get(code, 0) + 1
        busy = any(i.operation is not None for i in instances)
        return json_response({
            "virtualMachine": {"statusesSummary": [{"code": c, "count": n} for c, n in counts.items()]},
            "statuses": [_provisioning(busy, rfc3339(self._clock.wall()))],
        })

    async def _list_vms(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        region = self._region(names)
        if "$filter" in request.query:
            raise ArmError(400, "InvalidParameter", "The lab's scale sets do not filter their VMs: list "
                                                    "them all (with $expand=instanceView) and filter them.")
        expand = _expands(request)
        return page(self._vm_json(i, expand=expand) for i in self._instances[region].values())

    async def _get_vm(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        return json_response(self._vm_json(self._instance(names), expand=_expands(request)))

    async def _vm_view(self, _request: web.Request, names: Mapping[str, str]) -> web.Response:
        return json_response(self._view_json(self._instance(names)))

    def _scale_set_json(self, region: str) -> dict[str, Any]:
        name = resources.scale_set(region)
        instances = self._instances[region]
        zones = sorted({i.zone for i in instances.values()}, key=int)
        busy = any(i.operation is not None for i in instances.values())
        return {
            "id": self._scale_set_id(region), "name": name, "type": SCALE_SET_TYPE,
            "location": resources.location(region), "tags": dict(self._tags[region]),
            "zones": zones,
            "sku": {"name": self._vm_size(region), "tier": "Standard", "capacity": len(instances)},
            "properties": {
                "provisioningState": "Updating" if busy else "Succeeded",
                "orchestrationMode": "Uniform", "singlePlacementGroup": False, "overprovision": False,
                "upgradePolicy": {"mode": "Manual"}, "platformFaultDomainCount": 1,
                "uniqueId": self._unique_ids[region],
                "virtualMachineProfile": {"osProfile": {"computerNamePrefix": f"aks-{region}-",
                                                        "adminUsername": "azureuser"}},
            },
        }

    def _vm_json(self, instance: _Instance, *, expand: bool) -> dict[str, Any]:
        vm_id = f"{self._scale_set_id(instance.region)}/virtualMachines/{instance.instance_id}"
        properties: dict[str, Any] = {
            "latestModelApplied": True,
            "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm_id)),
            "provisioningState": "Updating" if instance.operation is not None else "Succeeded",
            "osProfile": {"computerName": instance.node, "adminUsername": "azureuser"},
        }
        if expand:
            properties["instanceView"] = self._view_json(instance)
        return {
            "id": vm_id, "name": f"{resources.scale_set(instance.region)}_{instance.instance_id}",
            "type": VM_TYPE, "location": resources.location(instance.region), "tags": _tags(),
            "instanceId": instance.instance_id, "zones": [instance.zone],
            "sku": {"name": self._vm_size(instance.region), "tier": "Standard"},
            "properties": properties,
        }

    def _view_json(self, instance: _Instance) -> dict[str, Any]:
        return {
            "platformUpdateDomain": 0, "platformFaultDomain": 0, "computerName": instance.node,
            "osName": "ubuntu", "osVersion": "22.04",
            "statuses": [
                _provisioning(instance.operation is not None, instance.changed),
                {"code": f"PowerState/{instance.power}", "level": "Info",
                 "displayStatus": f"VM {instance.power}"},
            ],
        }

    def _vm_size(self, region: str) -> str:
        """The node size as an Azure D-series v5 name with as many vCPUs (nominal: the lab has no SKUs)."""
        cores = parse_quantity(self._topology.regions[region].node_size.cpu)
        return f"Standard_D{max(1, round(cores))}s_v5"

    def _scale_set_id(self, region: str) -> str:
        group = resources.node_resource_group(region)
        return (f"/subscriptions/{resources.SUBSCRIPTION}/resourceGroups/{group}"
                f"/providers/{SCALE_SET_TYPE}/{resources.scale_set(region)}")

    # Power.

    async def _scale_set_action(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        region = self._region(names)
        action = _action(names["action"])
        wanted: Any = None
        if request.can_read_body:
            wanted = (await read_json(request)).get("instanceIds")
        instances = self._instances[region]
        if not wanted or wanted == ["*"]:
            chosen = list(instances.values())
        else:
            if not isinstance(wanted, list):
                raise ArmError(400, "InvalidParameter", "instanceIds must be a list of instance ids")
            unknown = [str(i) for i in wanted if str(i) not in instances]
            if unknown:
                raise ArmError(400, "InvalidParameter",
                               f"The provided instanceId(s) {', '.join(unknown)} are not active Virtual "
                               f"Machine Scale Set VM instanceIds of {resources.scale_set(region)}.")
            chosen = [instances[str(i)] for i in dict.fromkeys(wanted)]
        return self._power(request, chosen, action)

    async def _vm_action(self, request: web.Request, names: Mapping[str, str]) -> web.Response:
        return self._power(request, [self._instance(names)], _action(names["action"]))

    def _power(self, request: web.Request, instances: list[_Instance], action: str) -> web.Response:
        """Start ``action`` on ``instances`` now; the operation completes after the action's duration."""
        transition, final, duration = _ACTIONS[action]
        token = object()
        changing = [i for i in instances if i.power != final or i.operation is not None]
        for instance in changing:
            instance.operation = token
            if action != "start":
                self._clusters[instance.region].stop_node(instance.node)  # the guest shuts down now
            self._set_power(instance, transition)

        async def work() -> None:
            if changing:
                await self._clock.sleep(duration)
            preempted = [i for i in changing if i.operation is not token]
            for instance in changing:
                if instance.operation is not token:
                    continue
                instance.operation = None
                if action == "start":
                    self._clusters[instance.region].start_node(instance.node)
                self._set_power(instance, final)
            if preempted:
                raise ArmError(409, "OperationPreempted",
                               f"Operation '{action}' was preempted on instance(s) "
                               f"{', '.join(i.instance_id for i in preempted)} by a later operation.")

        return long_running(request, work())

    def _set_power(self, instance: _Instance, state: str) -> None:
        instance.power = state
        instance.changed = rfc3339(self._clock.wall())
        if self._ground_truth is not None:
            self._ground_truth.record("instance_power", scale_set=resources.scale_set(instance.region),
                                      instance=instance.instance_id, zone=instance.zone, node=instance.node,
                                      state=state)

    # Names.

    def _region(self, names: Mapping[str, str]) -> str:
        """The region whose scale set the path names; ARM's 404s otherwise."""
        check_subscription(names["subscription"])
        group, name = names["group"].lower(), names["scale_set"].lower()
        in_group = [r for r in self._instances if resources.node_resource_group(r).lower() == group]
        if not in_group and group != resources.RESOURCE_GROUP.lower():
            raise group_not_found(names["group"])
        for region in in_group:
            if resources.scale_set(region).lower() == name:
                return region
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{SCALE_SET_TYPE}/{names['scale_set']}' under resource group "
                       f"'{names['group']}' was not found.")

    def _instance(self, names: Mapping[str, str]) -> _Instance:
        instances = self._instances[self._region(names)]
        found = instances.get(names["instance"])
        if found is None:
            raise ArmError(404, "NotFound", f"The entity was not found: virtual machine "
                                            f"{names['instance']} of {names['scale_set']}.")
        return found


def _action(name: str) -> str:
    action = name.lower()
    if action not in _ACTIONS:
        raise ArmError(404, "NotFound", f"No operation {name!r} on a scale set or its VMs here "
                                        f"(the lab serves {', '.join(_ACTIONS)}).")
    return action


def _expands(request: web.Request) -> bool:
    return "instanceview" in request.query.get("$expand", "").lower()


def _provisioning(busy: bool, when: str) -> dict[str, str]:
    if busy:
        return {"code": "ProvisioningState/updating", "level": "Info", "displayStatus": "Updating"}
    return {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
            "time": when}


def _tags() -> dict[str, str]:
    """The tags AKS puts on a node pool's scale set."""
    return {"aks-managed-poolName": "nodepool1", "aks-managed-orchestrator": _ORCHESTRATOR,
            "aks-managed-createOperationID": "00000000-0000-4000-8000-000000000000"}
