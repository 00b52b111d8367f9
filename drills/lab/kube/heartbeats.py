"""The kubelets' heartbeats: node Leases renewed while the VMs run, and periodic node status reports.

As a kubelet does, each running node holds a Lease named after it in namespace ``kube-node-lease``
(``holderIdentity`` the node, ``leaseDurationSeconds`` 40, owned by the Node) and renews its
``renewTime`` every 10 s (a quarter of the duration); a stopped node's lease is left as it was. The
kubelet also reports the node's status: at once when a condition changes (the node lifecycle controller
writes what a healthy kubelet posts, :mod:`drills.lab.kube.nodes`), and otherwise every
``nodeStatusReportFrequency`` (5 min), which moves the conditions' ``lastHeartbeatTime``. When a VM
(re)starts its kubelet records ``Starting``.

The node lifecycle controller's verdict on a silent node keeps the lab's timing (Unknown 40 s after the
VM stopped, :data:`~drills.lab.kube.nodes.NODE_MONITOR_GRACE_S`): the lease's last renewal is then
40-50 s old, as a real controller, which looks every 5 s, finds it 40-45 s (or 50-55 s) old.

Renewals run on their own timer and do not wake the other controllers (no controller reads leases), so
they cost the lab a few small writes every 10 lab seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import Machines
from drills.lab.kube.ownership import epoch_seconds
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.store import LEASES, NODES, AlreadyExists, NotFound, Obj, Store

NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_LEASE_DURATION_S = 40
"""The node lease's ``leaseDurationSeconds`` (the kubelet's ``nodeLeaseDurationSeconds`` default)."""
NODE_LEASE_RENEW_S = NODE_LEASE_DURATION_S / 4
"""How often the kubelet renews its lease (a quarter of its duration: 10 s)."""
NODE_STATUS_REPORT_S = 300.0
"""How often the kubelet reports an unchanged node status (``nodeStatusReportFrequency``: 5 min)."""


def micro_time(moment: datetime) -> str:
    """Kubernetes' ``MicroTime`` format (microseconds, ``Z``), as lease times are written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeHeartbeats:
    """Every kubelet's lease renewals, status reports and ``Starting`` events in one cluster."""

    def __init__(self, store: Store, *, clock: LabClock, machines: Machines) -> None:
        self._store = store
        self._clock = clock
        self._machines = machines
        self._events = EventRecorder(store, clock=clock, component="kubelet", node_uid_is_name=True)
        self._started: dict[str, float] = {}
        """The boot (lab time) each node's kubelet announced with ``Starting``."""
        self._timer: asyncio.TimerHandle | None = None

    def reconcile(self, now: float) -> float | None:
        """Announce new boots, renew their leases at once, report stale statuses; returns the next report."""
        wall = self._clock.wall()
        due: list[float] = []
        for node in list(self._store.iter(NODES)):
            name = node["metadata"]["name"]
            if not self._machines.running(name):
                continue
            boot = self._machines.boot(name)
            if self._started.get(name) != boot:
                self._started[name] = boot
                self._events.event(node, "Normal", "Starting", "Starting kubelet.", host=name)
                self._renew(node)
            due.append(self._report(node, now, wall))
        if self._timer is None:
            self._timer = self._clock.call_later(NODE_LEASE_RENEW_S, self._tick)
        return min(due, default=None)

    def close(self) -> None:
        """Stop renewing."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        for node in list(self._store.iter(NODES)):
            if self._machines.running(node["metadata"]["name"]):
                self._renew(node)
        self._timer = self._clock.call_later(NODE_LEASE_RENEW_S, self._tick)

    def _renew(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        stamp = micro_time(self._clock.wall())
        try:
            self._store.mutate(LEASES, NODE_LEASE_NAMESPACE, name,
                               lambda lease: lease.setdefault("spec", {}).update(
                                   holderIdentity=name, renewTime=stamp))
        except NotFound:
            lease: Obj = {
                "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE, "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": NODE_LEASE_DURATION_S,
                         "renewTime": stamp}}
            with contextlib.suppress(AlreadyExists):
                self._store.create(LEASES, lease)

    def _report(self, node: Obj, now: float, wall: datetime) -> float:
        """Move the heartbeat of a Ready node's conditions when the last report is 5 min old."""
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") != "True":
            return now + NODE_STATUS_REPORT_S  # the lifecycle controller posts the status first
        age = wall.timestamp() - epoch_seconds(ready.get("lastHeartbeatTime"))
        if age < NODE_STATUS_REPORT_S:
            return now + NODE_STATUS_REPORT_S - age
        stamp = rfc3339(wall)

        def report(obj: Obj) -> None:
            for condition in obj["status"]["conditions"]:
                condition["lastHeartbeatTime"] = stamp

        self._store.mutate(NODES, None, node["metadata"]["name"], report)
        return now + NODE_STATUS_REPORT_S

