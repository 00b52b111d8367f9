"""Snapshots: every object a drill touches, as it was before the drill's first change to it.

A fault's undo record restores what the fault saw when it was prepared; two faults on one object (an
ingress killed twice) would leave the object as the first fault left it. So the run also snapshots each
object it touches, the fields its faults change, before the first change (first touch wins: a later
fault on the same object only adds the values it sets), and after the rollback (and in ``drill
recover``) puts each object back from its snapshot and verifies it:

- a field equal to the snapshot is left alone (``unchanged``);
- a field at a value one of this run's faults set is written back to the snapshot, then read again
  (``restored``; ``failed`` when the write fails or the read disagrees);
- a field at any other value was changed by someone else during the drill: it is reported as
  ``drift`` and left as it is, never overwritten;
- an object that is gone has nothing to restore (``gone``); one that cannot be read is ``failed``
  ("cannot verify").

Which objects and fields a fault touches comes from its undo record (:func:`touches`); each kind of
object has a reader and a writer (:data:`KINDS`) over the clients the faults use. An object a fault
creates (an isolate's NetworkPolicy) is snapshotted as ``exists: false``, so restoring it deletes it.
Deleted pods are not restorable (their controllers recreate them): their deployments are snapshotted
instead (:func:`controllers`), and any change to their replicas is drift.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from drills.armcalls import TRAFFIC_MANAGER_ROLE, VM_ROLE, call, is_gone, outcome
from drills.errors import DrillError, FaultError
from drills.faults.base import Undo
from drills.faults.cosmos import AccountRef, change_priorities, read_account, set_region_online
from drills.faults.kube import call as kube_call
from drills.faults.kube import call_unless_gone, each
from drills.faults.nodes import set_unschedulable
from drills.journal import JournalEntry
from drills.targets import Targets

Outcome = Literal["unchanged", "restored", "drift", "gone", "failed"]
"""What became of one snapshotted object (see the module docstring)."""
DONE: frozenset[Outcome] = frozenset({"unchanged", "restored", "drift", "gone"})
"""Outcomes after which the object is no longer the run's business: its mark is removed."""


@dataclass
class Snapshot:
    """One object as it was before the run first changed it, and the values the run's faults set.

    ``key`` names the object as undo records do (``us/Node//node-1``, a resource id); ``kind`` is a key
    of :data:`KINDS`; ``ref`` how that kind reaches it (JSON); ``fields`` the values before; ``caused``
    per field the values this run's faults set (None: any value, when a fault's outcome is Azure's to
    decide, as a forced failover's priorities are).
    """

    key: str
    kind: str
    ref: dict[str, str]
    fields: dict[str, Any] = field(default_factory=dict)
    caused: dict[str, list[Any] | None] = field(default_factory=dict)

    def add_caused(self, caused: dict[str, list[Any] | None]) -> bool:
        """Merge what another fault sets; whether anything was new."""
        changed = False
        for name, values in caused.items():
            known = self.caused.get(name, [])
            if known is None:
                continue
            if values is None:
                self.caused[name] = None
                changed = True
                continue
            for value in values:
                if value not in known:
                    known = [*known, value]
                    changed = True
            self.caused[name] = known
        return changed

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "ref": dict(self.ref), "fields": dict(self.fields),
                "caused": dict(self.caused)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """From :meth:`as_json`; a DrillError for anything else."""
        try:
            return cls(key=str(data["key"]), kind=str(data["kind"]), ref=dict(data["ref"]),
                       fields=dict(data["fields"]), caused=dict(data["caused"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DrillError(f"not a snapshot: {json.dumps(data)[:200]}") from exc


@dataclass(frozen=True)
class Touch:
    """An object a fault's undo record says it changes, and the values it sets."""

    key: str
    kind: str
    ref: dict[str, str]
    caused: dict[str, list[Any] | None]


@dataclass(frozen=True)
class Restored:
    """What restoring one snapshot did."""

    key: str
    outcome: Outcome
    detail: str
    """For a person: what was restored, which field drifted to what, or why it could not be verified."""
    trial: int = 1
    """The run's trial whose rollback restored it."""

    @property
    def done(self) -> bool:
        return self.outcome in DONE


class ObjectKind(Protocol):
    """Reads and writes the fields of one kind of object."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        """The fields now; None when the object is gone."""
        ...

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        """Set ``fields`` (a subset of what :meth:`read` returns)."""
        ...


def touches(undo: Undo) -> list[Touch]:
    """The objects ``undo``'s fault changes, by fault name; none for a fault drill does not know (its
    own undo record is all there is) and for ``delete-pods`` (see :func:`controllers`)."""
    d, region = undo.data, undo.region
    if undo.fault in ("cordon-zone", "drain-nodes"):
        return [Touch(f"{region}/Node//{name}", "node", {"region": region, "name": name},
                      {"unschedulable": [True]}) for name in d.get("nodes", [])]
    if undo.fault == "kill-ingress":
        ns, name = d["namespace"], d["deployment"]
        return [Touch(f"{region}/Deployment/{ns}/{name}", "deployment",
                      {"region": region, "namespace": ns, "name": name}, {"replicas": [0]})]
    if undo.fault == "isolate":
        ns, name = d["namespace"], d["policy"]
        return [Touch(f"{region}/NetworkPolicy/{ns}/{name}", "networkpolicy",
                      {"region": region, "namespace": ns, "name": name}, {"exists": [True]})]
    if undo.fault == "disable-endpoint":
        if d.get("status") == "Disabled":
            return []
        ref = {k: d[k] for k in ("subscription", "resourceGroup", "profile", "endpointType", "endpoint")}
        return [Touch(undo.objects[0], "tm-endpoint", ref, {"endpointStatus": ["Disabled"]})]
    if undo.fault == "zone-down":
        found = []
        for group in d.get("scaleSets", []):
            for instance in group["instanceIds"]:
                ref = {"subscription": group["subscription"], "resourceGroup": group["resourceGroup"],
                       "scaleSet": group["scaleSet"], "instance": str(instance)}
                found.append(Touch(_vm_id(ref), "vmss-instance", ref, {"power": ["stopped"]}))
        return found
    if undo.fault in ("region-failover", "region-outage"):
        ref = {k: d[k] for k in ("subscription", "resourceGroup", "account")}
        caused: dict[str, list[Any] | None] = (
            {"priorities": [d["newPriorities"]]} if undo.fault == "region-failover"
            else {"priorities": None, "offline": None})
        return [Touch(undo.objects[0], "cosmos-account", ref, caused)]
    return []


async def controllers(targets: Targets, undo: Undo) -> list[Touch]:
    """For ``delete-pods``, the deployments whose pods it deletes: deleted pods are not restorable, their
    controllers' replicas are what is verified (the fault sets none, so any change is drift)."""
    if undo.fault != "delete-pods" or not undo.data.get("pods"):
        return []
    kube, region = targets.kube(undo.region), undo.region
    wanted: dict[str, set[str]] = {}
    for pod in undo.data["pods"]:
        namespace, name = str(pod).split("/", 1)
        wanted.setdefault(namespace, set()).add(name)
    found: list[Touch] = []
    for namespace, names in sorted(wanted.items()):
        pods = await kube_call(kube, kube.core.list_namespaced_pod, namespace,
                               what=f"list the pods in {region}/{namespace}")
        sets = await kube_call(kube, kube.apps.list_namespaced_replica_set, namespace,
                               what=f"list the replica sets in {region}/{namespace}")
        deployment_of = {rs.metadata.name: owner.name for rs in sets.items
                         for owner in rs.metadata.owner_references or []
                         if owner.controller and owner.kind == "Deployment"}
        deployments = {deployment_of[owner.name] for pod in pods.items if pod.metadata.name in names
                       for owner in pod.metadata.owner_references or []
                       if owner.controller and owner.kind == "ReplicaSet" and owner.name in deployment_of}
        found += [Touch(f"{region}/Deployment/{namespace}/{name}", "deployment",
                        {"region": region, "namespace": namespace, "name": name}, {})
                  for name in sorted(deployments)]
    return found


async def take(targets: Targets, touch: Touch) -> Snapshot:
    """Read ``touch``'s object now: its snapshot. Raises a DrillError when it cannot be read."""
    fields = await KINDS[touch.kind].read(targets, touch.ref)
    if fields is None:
        raise FaultError(f"cannot snapshot {touch.key}: it does not exist")
    return Snapshot(key=touch.key, kind=touch.kind, ref=dict(touch.ref), fields=fields,
                    caused={k: (None if v is None else list(v)) for k, v in touch.caused.items()})


async def restore(targets: Targets, snapshot: Snapshot) -> Restored:
    """Put one object back from its snapshot and verify it (see the module docstring)."""
    kind = KINDS.get(snapshot.kind)
    if kind is None:
        return Restored(snapshot.key, "failed", f"drill knows no object kind {snapshot.kind!r}")
    try:
        now = await kind.read(targets, snapshot.ref)
    except DrillError as exc:
        return Restored(snapshot.key, "failed", f"cannot verify: {exc}")
    if now is None:
        return Restored(snapshot.key, "gone", "gone: nothing to restore")
    wanted, drift = _compare(snapshot, now)
    if wanted:
        try:
            await kind.write(targets, snapshot.ref, wanted)
            after = await kind.read(targets, snapshot.ref)
        except DrillError as exc:
            return Restored(snapshot.key, "failed", f"could not restore {_fields(wanted)}: {exc}")
        if after is None:
            return Restored(snapshot.key, "gone", f"gone while {_fields(wanted)} was restored")
        wrong = [n for n, v in wanted.items() if not _same(after.get(n), v)]
        if wrong:
            return Restored(snapshot.key, "failed", "restored, yet reads " + ", ".join(
                f"{n} {_shown(after.get(n))} (wanted {_shown(wanted[n])})" for n in wrong))
    if drift:
        restored = f"; restored {_fields(wanted)}" if wanted else ""
        return Restored(snapshot.key, "drift", "changed by someone else during the drill, left as it is: "
                        + "; ".join(drift) + restored)
    if wanted:
        return Restored(snapshot.key, "restored", f"restored {_fields(wanted)}")
    return Restored(snapshot.key, "unchanged", "as before the drill")


State = Literal["before", "ours", "drift"]
"""Where one object stands against its snapshot: every field as before the drill; some field at a value
this run set (and none drifted); some field at a value nobody in this run set."""


async def standing(targets: Targets, snapshot: Snapshot) -> tuple[State, list[str]] | None:
    """Where ``snapshot``'s object stands now, with what drifted; None when it cannot be read or is gone
    (then nothing is concluded)."""
    kind = KINDS.get(snapshot.kind)
    if kind is None:
        return None
    try:
        now = await kind.read(targets, snapshot.ref)
    except DrillError:
        return None
    if now is None:
        return None
    ours, drift = _compare(snapshot, now)
    state: State = "drift" if drift else "ours" if ours else "before"
    return state, [f"{snapshot.key}: {line}" for line in drift]


def _compare(snapshot: Snapshot, now: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``now`` at a value this run set, with their values before the drill; and, for a
    person, each field at a value nobody in this run set (drift)."""
    ours: dict[str, Any] = {}
    drift: list[str] = []
    for name, before in snapshot.fields.items():
        value = now.get(name)
        if _same(value, before):
            continue
        caused = snapshot.caused.get(name, [])
        if caused is None or any(_same(value, c) for c in caused):
            ours[name] = before
        else:
            drift.append(f"{name} is {_shown(value)} (before the drill {_shown(before)}; this run set "
                         f"{' or '.join(_shown(c) for c in caused) or 'nothing else'})")
    return ours, drift


async def needless_revert(targets: Targets, undo: Undo, snapshots: Mapping[str, Snapshot]) -> str | None:
    """Why ``undo``'s fault must not be reverted from its own record, or None when it must.

    The record holds what the fault saw when it was prepared. When every object it changed is back as
    before the drill (an earlier fault on the same object was undone, and with it this one's effect),
    writing the record would put the earlier fault's state back; when someone else changed one of them
    meanwhile, it would overwrite their change. In both cases restoring from ``snapshots`` (the run's,
    by object key) afterwards does, object by object, what is right. None as well when drill does not
    know the fault's objects or cannot read one of them: the record is all there is then.
    """
    touched = touches(undo)
    if not touched or any(t.key not in snapshots for t in touched):
        return None
    found = await asyncio.gather(*(standing(targets, snapshots[t.key]) for t in touched))
    states = [f for f in found if f is not None]
    if len(states) < len(found):
        return None
    drift = [line for _, lines in states for line in lines]
    if drift:
        return "changed by someone else during the drill, left as it is: " + "; ".join(drift)
    if all(state == "before" for state, _ in states):
        return "what it changed is already as before the drill"
    return None


async def restore_all(targets: Targets, snapshots: list[Snapshot]) -> list[Restored]:
    """:func:`restore` each of ``snapshots``, several at once (a zone's VMs each take minutes to start),
    the outcomes in the same order."""
    return await each(snapshots, lambda snapshot: restore(targets, snapshot))


def pending_snapshots(entries: Iterable[JournalEntry]) -> list[Snapshot]:
    """The journal's snapshots not yet restored (``object_snapshot`` with its ``object_touched``
    additions, and no later ``object_restored`` of a done outcome), in the order taken."""
    found: dict[str, Snapshot] = {}
    for entry in entries:
        key = entry.fields.get("key")
        if entry.event == "object_snapshot" and isinstance(entry.fields.get("snapshot"), dict):
            snapshot = Snapshot.from_json(entry.fields["snapshot"])
            found.setdefault(snapshot.key, snapshot)
        elif entry.event == "object_touched" and key in found:
            found[key].add_caused(entry.fields.get("caused") or {})
        elif entry.event == "object_restored" and entry.fields.get("outcome") in DONE:
            found.pop(str(key), None)
    return list(found.values())


def _same(a: Any, b: Any) -> bool:
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    if isinstance(value, dict):  # location names compare as Azure compares them
        value = {str(k).replace(" ", "").lower(): v for k, v in value.items()}
    if isinstance(value, list):
        value = sorted(str(v).replace(" ", "").lower() for v in value)
    return json.dumps(value, sort_keys=True)


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _fields(fields: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_shown(v)}" for k, v in fields.items())


def _vm_id(ref: dict[str, str]) -> str:
    return (f"/subscriptions/{ref['subscription']}/resourceGroups/{ref['resourceGroup']}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{ref['scaleSet']}/virtualMachines/{ref['instance']}")


class _Nodes:
    """A node's ``spec.unschedulable``."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        kube = targets.kube(ref["region"])
        node = await call_unless_gone(kube, kube.core.read_node, ref["name"],
                                      what=f"read node {ref['region']}/{ref['name']}")
        return None if node is None else {"unschedulable": bool(node.spec and node.spec.unschedulable)}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        await set_unschedulable(targets.kube(ref["region"]), ref["region"], [ref["name"]],
                                cordon=bool(fields["unschedulable"]))


class _Deployments:
    """A deployment's ``spec.replicas`` (through its scale subresource, as kill-ingress changes it)."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        kube = targets.kube(ref["region"])
        scale = await call_unless_gone(kube, kube.apps.read_namespaced_deployment_scale, ref["name"],
                                       ref["namespace"], what=f"read the scale of {_kube_name(ref)}")
        return None if scale is None else {"replicas": (scale.spec.replicas if scale.spec else None) or 0}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        kube = targets.kube(ref["region"])
        body = {"spec": {"replicas": int(fields["replicas"])}}
        await kube_call(kube, kube.apps.patch_namespaced_deployment_scale, ref["name"], ref["namespace"],
                        body, _content_type="application/merge-patch+json",
                        what=f"scale {_kube_name(ref)} to {fields['replicas']}")


class _NetworkPolicies:
    """Whether a NetworkPolicy drill creates exists; writing ``exists: false`` deletes it."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        kube = targets.kube(ref["region"])
        found = await call_unless_gone(kube, kube.networking.read_namespaced_network_policy, ref["name"],
                                       ref["namespace"], what=f"read NetworkPolicy {_kube_name(ref)}")
        return {"exists": found is not None}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        if fields["exists"]:
            raise FaultError(f"NetworkPolicy {_kube_name(ref)} is drill's own: drill never recreates it")
        kube = targets.kube(ref["region"])
        await call_unless_gone(kube, kube.networking.delete_namespaced_network_policy, ref["name"],
                               ref["namespace"], what=f"delete NetworkPolicy {_kube_name(ref)}")


class _Endpoints:
    """A Traffic Manager endpoint's ``endpointStatus``."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        client = targets.azure.traffic_manager(ref["subscription"])
        try:
            found = await call(targets.azure, lambda: client.endpoints.get(
                ref["resourceGroup"], ref["profile"], ref["endpointType"], ref["endpoint"]),
                what=f"read Traffic Manager endpoint {ref['endpoint']} of profile {ref['profile']}",
                role=TRAFFIC_MANAGER_ROLE)
        except FaultError as exc:
            if is_gone(exc):
                return None
            raise
        status = found.properties.endpoint_status if found.properties else None
        return {"endpointStatus": str(getattr(status, "value", status) or "Enabled")}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        client = targets.azure.traffic_manager(ref["subscription"])
        status = fields["endpointStatus"]
        await call(targets.azure, lambda: client.endpoints.update(
            ref["resourceGroup"], ref["profile"], ref["endpointType"], ref["endpoint"],
            {"properties": {"endpointStatus": status}}),
            what=f"set Traffic Manager endpoint {ref['endpoint']} of profile {ref['profile']} {status}",
            role=TRAFFIC_MANAGER_ROLE)


_POWER = {"running": "running", "starting": "running", "stopped": "stopped", "stopping": "stopped",
          "deallocated": "deallocated", "deallocating": "deallocated"}
"""Power states as a snapshot holds them: where the instance is, or is going."""


class _Instances:
    """A scale-set instance's power state: ``running``, ``stopped`` or ``deallocated``."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        client = targets.azure.compute(ref["subscription"])
        try:
            view = await call(targets.azure, lambda: client.virtual_machine_scale_set_vms.get_instance_view(
                ref["resourceGroup"], ref["scaleSet"], ref["instance"]),
                what=f"read the power state of instance {ref['instance']} of scale set {ref['scaleSet']}",
                role=VM_ROLE)
        except FaultError as exc:
            if is_gone(exc):
                return None
            raise
        codes = [s.code for s in view.statuses or [] if s.code and s.code.startswith("PowerState/")]
        state = codes[-1].split("/", 1)[1] if codes else "unknown"
        return {"power": _POWER.get(state, state)}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        operations = targets.azure.compute(ref["subscription"]).virtual_machine_scale_sets
        ids = {"instanceIds": [ref["instance"]]}
        rg, name, power = ref["resourceGroup"], ref["scaleSet"], fields["power"]
        begin = {"running": lambda: operations.begin_start(rg, name, vm_instance_i_ds=ids),
                 "stopped": lambda: operations.begin_power_off(rg, name, vm_instance_i_ds=ids),
                 "deallocated": lambda: operations.begin_deallocate(rg, name, vm_instance_i_ds=ids),
                 }.get(power)
        if begin is None:
            raise FaultError(f"cannot bring instance {ref['instance']} of {name} to power state {power}")
        what = f"bring instance {ref['instance']} of scale set {rg}/{name} to {power}"
        poller = await call(targets.azure, begin, what=what, role=VM_ROLE)
        await outcome(poller.result(), what=what, role=VM_ROLE)


class _CosmosAccounts:
    """A Cosmos DB account's failover ``priorities`` and its ``offline`` locations."""

    async def read(self, targets: Targets, ref: dict[str, str]) -> dict[str, Any] | None:
        try:
            state = await read_account(targets, _account(ref))
        except FaultError as exc:
            if is_gone(exc):
                return None
            raise
        return {"priorities": dict(state.priorities),
                "offline": sorted(loc for loc in state.priorities if not state.is_online(loc))}

    async def write(self, targets: Targets, ref: dict[str, str], fields: dict[str, Any]) -> None:
        account = _account(ref)
        if "offline" in fields:
            state = await read_account(targets, account)
            wanted = {str(loc).replace(" ", "").lower() for loc in fields["offline"]}
            for location in state.priorities:
                offline = location.replace(" ", "").lower() in wanted
                if state.is_online(location) == offline:
                    await set_region_online(targets, account, location, online=not offline)
        if "priorities" in fields:
            state = await read_account(targets, account)
            if not state.same_priorities(fields["priorities"]):
                await change_priorities(targets, account, fields["priorities"])


def _account(ref: dict[str, str]) -> AccountRef:
    return AccountRef(subscription=ref["subscription"], resource_group=ref["resourceGroup"],
                      account=ref["account"], locations={})


def _kube_name(ref: dict[str, str]) -> str:
    return f"{ref['region']}/{ref['namespace']}/{ref['name']}"


KINDS: dict[str, ObjectKind] = {
    "node": _Nodes(), "deployment": _Deployments(), "networkpolicy": _NetworkPolicies(),
    "tm-endpoint": _Endpoints(), "vmss-instance": _Instances(), "cosmos-account": _CosmosAccounts(),
}
"""Every kind of object a snapshot can hold, by the name snapshots and marks give it."""

