"""Marks: each object a run changes carries the run's id and its snapshot, in the environment itself.

A journal lives on the machine that ran the drill; a runner's disk can be lost, its runs directory
deleted, or recover run from elsewhere. So before a run first changes an object it marks it, and the
mark holds all a restore needs (:class:`~drills.snapshot.Snapshot`), so that ``drill recover --env E``
(:mod:`drills.leftovers`) can find a lost run's changes and undo them with no journal:

- Kubernetes objects it changes (nodes, deployments) get the annotations ``drill.dev/run`` (the run id)
  and ``drill.dev/snapshot`` (the snapshot as JSON); an object drill creates (an isolate's
  NetworkPolicy) is created with the label ``drill.dev/run``, so that a selector lists them all.
- Azure resources get tags, on the resource changed or, when the changed thing has no tags of its own,
  on its parent: a Traffic Manager endpoint's marks are on its profile, a scale-set instance's on its
  scale set, a Cosmos DB account's on the account. ``drill-run`` holds the run id and
  ``drill-snapshot-0``, ``drill-snapshot-1`` ... the snapshots of the marked children, as compact JSON
  (``{child: [fields, caused]}``) cut into values of at most 256 characters (Azure's limit); a resource
  that would exceed Azure's 50 tags is refused before anything changes.

A mark is removed once its object is restored and verified (or found changed by someone else, and so
reported). An object already carrying another run's mark keeps it: this run's snapshot of it is then in
its journal only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import V1ObjectMeta

from drills.armcalls import READER_ROLE, TRAFFIC_MANAGER_ROLE, VM_ROLE, call, outcome
from drills.azure import traffic_manager_profile
from drills.errors import DrillError, FaultError
from drills.faults.kube import RUN_LABEL, call_unless_gone, each
from drills.faults.kube import call as kube_call
from drills.snapshot import Snapshot
from drills.targets import Targets

RUN = RUN_LABEL
"""The annotation (on objects drill changes) and label (on objects it creates) naming the run."""
SNAPSHOT = "drill.dev/snapshot"
"""The annotation holding the object's snapshot as JSON."""
RUN_TAG = "drill-run"
"""The Azure tag naming the run."""
SNAPSHOT_TAG = "drill-snapshot-"
"""The prefix of the Azure tags holding the snapshots (``drill-snapshot-0``, ``-1`` ...)."""
MAX_TAGS = 50
MAX_TAG_VALUE = 256
"""Azure's limits: tags on one resource, and characters in a tag's value."""

_MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Mark:
    """A mark found in the environment: the run that left it and the snapshot it holds."""

    run_id: str
    snapshot: Snapshot
    where: str
    """Where it was found, for a person (``us/Node//node-1``, a resource id)."""


@dataclass(frozen=True)
class Scan:
    """Every mark found in an environment, and what could not be looked at (and why)."""

    marks: list[Mark]
    errors: list[str]

    def runs(self) -> dict[str, list[Mark]]:
        """The marks by run id, oldest run first (run ids sort by start time)."""
        found: dict[str, list[Mark]] = {}
        for mark in sorted(self.marks, key=lambda m: m.run_id):
            found.setdefault(mark.run_id, []).append(mark)
        return found


async def mark(targets: Targets, run_id: str, snapshots: Iterable[Snapshot]) -> list[str]:
    """Mark the objects of ``snapshots`` as changed by ``run_id``; the keys of those left unmarked
    because another run's mark is on them. Raises a DrillError when a mark cannot be written."""
    foreign: list[str] = []
    holders = _by_holder(snapshots)

    async def one(item: tuple[tuple[str, str], list[Snapshot]]) -> None:
        (kind, _), group = item
        if kind == "kube":
            for snapshot in group:
                if not await _mark_kube(targets, run_id, snapshot):
                    foreign.append(snapshot.key)
        elif not await _mark_azure(targets, run_id, group):
            foreign.extend(s.key for s in group)

    await each(holders.items(), one)
    return foreign


async def unmark(targets: Targets, run_id: str, snapshots: Iterable[Snapshot]) -> None:
    """Remove ``run_id``'s marks of ``snapshots`` (another run's are left). Raises a DrillError."""

    async def one(item: tuple[tuple[str, str], list[Snapshot]]) -> None:
        (kind, _), group = item
        if kind == "kube":
            for snapshot in group:
                await _unmark_kube(targets, run_id, snapshot)
        else:
            await _unmark_azure(targets, run_id, group)

    await each(_by_holder(snapshots).items(), one)


FAULT_HOLDERS = {"disable-endpoint": "tm-profile", "zone-down": "vmss", "region-failover": "cosmos",
                 "region-outage": "cosmos"}
"""The Azure resources whose tags hold the marks of each Azure fault."""


async def scan(targets: Targets, *, faults: Collection[str] | None = None) -> Scan:
    """Every mark in the environment: each region's nodes, deployments and NetworkPolicies, and the
    Azure resources the environment names (Traffic Manager profile, node pools' scale sets, Cosmos DB
    account), or with ``faults`` (fault names) only those resources such faults would mark."""
    marks: list[Mark] = []
    errors: list[str] = []
    for region in targets.env.regions:
        try:
            marks.extend(await _scan_region(targets, region, errors))
        except DrillError as exc:
            errors.append(f"region {region}: {exc}")
    wanted = None if faults is None else {FAULT_HOLDERS[f] for f in faults if f in FAULT_HOLDERS}
    for holder, ref in _azure_holders(targets):
        if wanted is not None and holder not in wanted:
            continue
        try:
            marks.extend(_decode_tags(holder, ref, await _read_tags(targets, holder, ref)))
        except DrillError as exc:
            errors.append(f"{_holder_id(holder, ref)}: {exc}")
    return Scan(marks, errors)


# Kubernetes.

async def _kube_meta(targets: Targets, snapshot: Snapshot) -> V1ObjectMeta | None:
    ref = snapshot.ref
    kube = targets.kube(ref["region"])
    if snapshot.kind == "node":
        found = await call_unless_gone(kube, kube.core.read_node, ref["name"],
                                       what=f"read node {snapshot.key}")
    else:
        found = await call_unless_gone(kube, kube.apps.read_namespaced_deployment, ref["name"],
                                       ref["namespace"], what=f"read deployment {snapshot.key}")
    return None if found is None else found.metadata


async def _patch_annotations(targets: Targets, snapshot: Snapshot,
                             annotations: dict[str, str | None]) -> None:
    ref = snapshot.ref
    kube = targets.kube(ref["region"])
    body = {"metadata": {"annotations": annotations}}
    if snapshot.kind == "node":
        await kube_call(kube, kube.core.patch_node, ref["name"], body, _content_type=_MERGE,
                        what=f"mark node {snapshot.key}")
    else:
        await kube_call(kube, kube.apps.patch_namespaced_deployment, ref["name"], ref["namespace"], body,
                        _content_type=_MERGE, what=f"mark deployment {snapshot.key}")


async def _mark_kube(targets: Targets, run_id: str, snapshot: Snapshot) -> bool:
    if snapshot.kind == "networkpolicy":
        return True  # created with the run's label (drills.faults.network)
    meta = await _kube_meta(targets, snapshot)
    if meta is None:
        raise FaultError(f"cannot mark {snapshot.key}: it is gone")
    if (meta.annotations or {}).get(RUN) not in (None, run_id):
        return False
    await _patch_annotations(targets, snapshot, {RUN: run_id, SNAPSHOT: json.dumps(snapshot.as_json())})
    return True


async def _unmark_kube(targets: Targets, run_id: str, snapshot: Snapshot) -> None:
    if snapshot.kind == "networkpolicy":
        return  # restoring it deleted it
    meta = await _kube_meta(targets, snapshot)
    if meta is not None and (meta.annotations or {}).get(RUN) == run_id:
        await _patch_annotations(targets, snapshot, {RUN: None, SNAPSHOT: None})


async def _scan_region(targets: Targets, region: str, errors: list[str]) -> list[Mark]:
    """The marks in one region; an object whose mark cannot be read is added to ``errors``."""
    kube = targets.kube(region)
    found: list[Mark] = []
    nodes = await kube_call(kube, kube.core.list_node, what=f"list the nodes of {region}")
    deployments = await kube_call(kube, kube.apps.list_deployment_for_all_namespaces,
                                  what=f"list the deployments of {region}")
    for item in [*nodes.items, *deployments.items]:
        annotations = item.metadata.annotations or {}
        if RUN not in annotations:
            continue
        where = (f"{region}/Node//{item.metadata.name}" if item.metadata.namespace is None
                 else f"{region}/Deployment/{item.metadata.namespace}/{item.metadata.name}")
        try:
            snapshot = Snapshot.from_json(json.loads(annotations.get(SNAPSHOT) or "null") or {})
        except (ValueError, DrillError):
            errors.append(f"{where}: it carries run {annotations[RUN]}'s mark with no readable snapshot "
                          f"(annotation {SNAPSHOT}); remove the annotations {RUN} and {SNAPSHOT} by hand "
                          "once the object is as it should be")
            continue
        found.append(Mark(annotations[RUN], snapshot, where))
    policies = await kube_call(kube, kube.networking.list_network_policy_for_all_namespaces,
                               label_selector=RUN, what=f"list drill's NetworkPolicies in {region}")
    for policy in policies.items:
        meta = policy.metadata
        key = f"{region}/NetworkPolicy/{meta.namespace}/{meta.name}"
        snapshot = Snapshot(key=key, kind="networkpolicy",
                            ref={"region": region, "namespace": meta.namespace, "name": meta.name},
                            fields={"exists": False}, caused={"exists": [True]})
        found.append(Mark(meta.labels[RUN], snapshot, key))
    return found


# Azure.

_CHILD_REF = {"tm-profile": "tm-endpoint", "vmss": "vmss-instance", "cosmos": "cosmos-account"}
"""The kind of the children whose marks an Azure holder keeps."""


def _holder(snapshot: Snapshot) -> tuple[str, dict[str, str], str]:
    """Where a snapshot's mark lives: (holder kind, holder ref, child key)."""
    ref = snapshot.ref
    if snapshot.kind == "tm-endpoint":
        return "tm-profile", {k: ref[k] for k in ("subscription", "resourceGroup", "profile")}, \
            f"{ref['endpointType']}/{ref['endpoint']}"
    if snapshot.kind == "vmss-instance":
        return "vmss", {k: ref[k] for k in ("subscription", "resourceGroup", "scaleSet")}, ref["instance"]
    if snapshot.kind == "cosmos-account":
        return "cosmos", dict(ref), ""
    return "kube", {"key": snapshot.key}, ""


def _by_holder(snapshots: Iterable[Snapshot]) -> dict[tuple[str, str], list[Snapshot]]:
    groups: dict[tuple[str, str], list[Snapshot]] = {}
    for snapshot in snapshots:
        kind, ref, _ = _holder(snapshot)
        groups.setdefault((kind, json.dumps(ref, sort_keys=True)), []).append(snapshot)
    return groups


def _child_ref(holder: str, ref: dict[str, str], child: str) -> dict[str, str]:
    if holder == "tm-profile":
        kind, _, name = child.partition("/")
        return {**ref, "endpointType": kind, "endpoint": name}
    if holder == "vmss":
        return {**ref, "instance": child}
    return dict(ref)


def _holder_id(holder: str, ref: dict[str, str]) -> str:
    base = f"/subscriptions/{ref['subscription']}/resourceGroups/{ref['resourceGroup']}/providers/"
    if holder == "tm-profile":
        return base + f"Microsoft.Network/trafficManagerProfiles/{ref['profile']}"
    if holder == "vmss":
        return base + f"Microsoft.Compute/virtualMachineScaleSets/{ref['scaleSet']}"
    return base + f"Microsoft.DocumentDB/databaseAccounts/{ref['account']}"


def _child_key(holder: str, ref: dict[str, str], child: str) -> str:
    if holder == "tm-profile":
        return f"{_holder_id(holder, ref)}/{child}"
    if holder == "vmss":
        return f"{_holder_id(holder, ref)}/virtualMachines/{child}"
    return _holder_id(holder, ref)


def _azure_holders(targets: Targets) -> list[tuple[str, dict[str, str]]]:
    env = targets.env
    if env.azure is None:
        return []
    holders: list[tuple[str, dict[str, str]]] = []
    try:
        profile = traffic_manager_profile(env)
        holders.append(("tm-profile", {"subscription": profile.subscription,
                                       "resourceGroup": profile.resource_group, "profile": profile.name}))
    except DrillError:
        pass  # the environment names no profile: no fault of drill's can have changed one
    default = env.azure.subscription
    for region in env.regions.values():
        for pool in region.node_pools:
            subscription = pool.subscription or default
            if subscription:
                holders.append(("vmss", {"subscription": subscription, "resourceGroup": pool.resource_group,
                                         "scaleSet": pool.scale_set}))
    cosmos = env.cosmos
    subscription = (cosmos.subscription if cosmos is not None else None) or default
    if cosmos is not None and cosmos.resource_group and subscription:
        holders.append(("cosmos", {"subscription": subscription, "resourceGroup": cosmos.resource_group,
                                   "account": cosmos.account}))
    return holders


async def _read_tags(targets: Targets, holder: str, ref: dict[str, str]) -> dict[str, str]:
    azure = targets.azure
    what = f"read the tags of {_holder_id(holder, ref)}"
    if holder == "tm-profile":
        client = azure.traffic_manager(ref["subscription"])
        found: Any = await call(azure, lambda: client.profiles.get(ref["resourceGroup"], ref["profile"]),
                                what=what, role=READER_ROLE)
    elif holder == "vmss":
        compute = azure.compute(ref["subscription"])
        found = await call(azure, lambda: compute.virtual_machine_scale_sets.get(ref["resourceGroup"],
                                                                                 ref["scaleSet"]),
                           what=what, role=READER_ROLE)
    else:
        cosmos = azure.cosmos_db(ref["subscription"])
        found = await call(azure, lambda: cosmos.database_accounts.get(ref["resourceGroup"], ref["account"]),
                           what=what, role=READER_ROLE)
    return dict(found.tags or {})


async def _write_tags(targets: Targets, holder: str, ref: dict[str, str], tags: dict[str, str]) -> None:
    azure = targets.azure
    what = f"tag {_holder_id(holder, ref)}"
    body = {"tags": tags}
    if holder == "tm-profile":
        client = azure.traffic_manager(ref["subscription"])
        await call(azure, lambda: client.profiles.update(ref["resourceGroup"], ref["profile"], body),
                   what=what, role=TRAFFIC_MANAGER_ROLE)
    elif holder == "vmss":
        compute = azure.compute(ref["subscription"])
        poller = await call(azure, lambda: compute.virtual_machine_scale_sets.begin_update(
            ref["resourceGroup"], ref["scaleSet"], body), what=what, role=VM_ROLE)
        await outcome(poller.result(), what=what, role=VM_ROLE)
    else:
        cosmos = azure.cosmos_db(ref["subscription"])
        poller = await call(azure, lambda: cosmos.database_accounts.begin_update(
            ref["resourceGroup"], ref["account"], body), what=what, role="DocumentDB Account Contributor")
        await outcome(poller.result(), what=what, role="DocumentDB Account Contributor")


def tag_entries(tags: dict[str, str]) -> dict[str, Any]:
    """The children's snapshots a resource's tags hold, by child (``{}`` when none or unreadable)."""
    chunks = sorted((int(k[len(SNAPSHOT_TAG):]), v) for k, v in tags.items()
                    if k.startswith(SNAPSHOT_TAG) and k[len(SNAPSHOT_TAG):].isdigit())
    try:
        found = json.loads("".join(v for _, v in chunks) or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def tags_with(tags: dict[str, str], run_id: str, entries: dict[str, Any]) -> dict[str, str]:
    """``tags`` with drill's replaced by ``run_id``'s ``entries`` (none: no drill tag at all), each value
    within Azure's 256 characters. Raises ValueError when the result exceeds Azure's 50 tags."""
    kept = {k: v for k, v in tags.items() if k != RUN_TAG and not k.startswith(SNAPSHOT_TAG)}
    if not entries:
        return kept
    text = json.dumps(entries, separators=(",", ":"), sort_keys=True)
    chunks = [text[i:i + MAX_TAG_VALUE] for i in range(0, len(text), MAX_TAG_VALUE)]
    result = {**kept, RUN_TAG: run_id, **{f"{SNAPSHOT_TAG}{i}": c for i, c in enumerate(chunks)}}
    if len(result) > MAX_TAGS:
        ours = len(result) - len(kept)
        raise ValueError(f"it would carry {len(result)} tags ({len(kept)} of its own and {ours} of drill's), "
                         f"more than Azure's {MAX_TAGS}")
    return result


async def _mark_azure(targets: Targets, run_id: str, group: list[Snapshot]) -> bool:
    holder, ref, _ = _holder(group[0])
    tags = await _read_tags(targets, holder, ref)
    if tags.get(RUN_TAG) not in (None, run_id):
        return False
    entries = tag_entries(tags)
    for snapshot in group:
        entries[_holder(snapshot)[2]] = [snapshot.fields, snapshot.caused]
    try:
        marked = tags_with(tags, run_id, entries)
    except ValueError as exc:
        raise FaultError(f"cannot mark {_holder_id(holder, ref)}: {exc}; nothing was changed") from exc
    await _write_tags(targets, holder, ref, marked)
    return True


async def _unmark_azure(targets: Targets, run_id: str, group: list[Snapshot]) -> None:
    holder, ref, _ = _holder(group[0])
    tags = await _read_tags(targets, holder, ref)
    if tags.get(RUN_TAG) != run_id:
        return
    entries = tag_entries(tags)
    for snapshot in group:
        entries.pop(_holder(snapshot)[2], None)
    await _write_tags(targets, holder, ref, tags_with(tags, run_id, entries))


def _decode_tags(holder: str, ref: dict[str, str], tags: dict[str, str]) -> list[Mark]:
    run_id = tags.get(RUN_TAG)
    if not run_id:
        return []
    where = _holder_id(holder, ref)
    entries = tag_entries(tags)
    if not entries:
        raise DrillError(f"it carries run {run_id}'s mark ({RUN_TAG}) with no readable snapshot "
                         f"({SNAPSHOT_TAG}* tags); remove drill's tags by hand once it is as it should be")
    marks = []
    for child, value in entries.items():
        fields, caused = value if isinstance(value, list) and len(value) == 2 else ({}, {})
        snapshot = Snapshot(key=_child_key(holder, ref, child), kind=_CHILD_REF[holder],
                            ref=_child_ref(holder, ref, child), fields=dict(fields), caused=dict(caused))
        marks.append(Mark(run_id, snapshot, where))
    return marks
