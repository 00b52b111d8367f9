"""The DaemonSet controller: one pod on every node a daemon set's template accepts.

Each pod is bound directly to its node, with the tolerations Kubernetes gives daemon pods, so that they
stay on cordoned and unreachable nodes. Pods on nodes the template no longer accepts, and the extra ones
on a node, are deleted. Each pod it creates or deletes is a ``SuccessfulCreate`` or ``SuccessfulDelete``
event on the daemon set (source ``daemonset-controller``); a daemon set being deleted is left to the
garbage collector.
"""

from __future__ import annotations

import copy
from collections import defaultdict

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import condition_status, delete_pod, put_status
from drills.lab.kube.nodes import NOT_READY, UNREACHABLE, UNSCHEDULABLE, tolerates
from drills.lab.kube.ownership import (
    by_controller,
    create_named,
    created_at,
    is_active,
    pod_from_template,
    without_zeros,
)
from drills.lab.kube.scheduler import affinity_matches
from drills.lab.kube.store import DAEMONSETS, NODES, PODS, Obj, Store
from drills.lab.kube.workqueue import Retries

_DAEMON_TOLERATIONS = (
    {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
)


class DaemonSetController:
    """DaemonSets: one pod per node the template accepts."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component="daemonset-controller")

    def reconcile(self, now: float) -> float | None:
        """Place a pod on every node that lacks one, remove the extra and misplaced ones."""
        nodes = list(self._store.iter(NODES))
        pods = by_controller(self._store.iter(PODS))
        for ds in list(self._store.iter(DAEMONSETS)):
            if not ds["metadata"].get("deletionTimestamp"):  # being deleted: left to the garbage collector
                owned = pods.get(ds["metadata"]["uid"], [])
                self._retries.sync(ds, lambda ds=ds, owned=owned: self._sync(ds, nodes, owned))
        return self._retries.due()

    def _sync(self, ds: Obj, nodes: list[Obj], owned: list[Obj]) -> None:
        probe = pod_from_template(ds)
        probe["spec"]["tolerations"] = _daemon_tolerations(probe)
        wanted = {n["metadata"]["name"] for n in nodes if _daemon_fits(probe, n)}
        on_node: dict[str, list[Obj]] = defaultdict(list)
        for pod in owned:
            if is_active(pod):
                on_node[pod["spec"].get("nodeName") or ""].append(pod)
        misscheduled = 0
        for node, pods in on_node.items():
            surplus = pods if node not in wanted else sorted(pods, key=created_at)[1:]
            misscheduled += len(pods) if node not in wanted else 0
            for pod in surplus:
                delete_pod(self._store, pod, clock=self._clock)
                self._retries.recorder.event(ds, "Normal", "SuccessfulDelete",
                                             f"Deleted pod: {pod['metadata']['name']}")
        for node in sorted(wanted - on_node.keys()):
            pod = copy.deepcopy(probe)
            pod["spec"]["nodeName"] = node
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                            "lastTransitionTime": rfc3339(self._clock.wall())}]
            created = create_named(self._store, pod, ds["metadata"]["name"])
            self._retries.recorder.event(ds, "Normal", "SuccessfulCreate",
                                         f"Created pod: {created['metadata']['name']}")
            on_node[node].append(created)
        scheduled = [pods[0] for node, pods in on_node.items() if node in wanted and pods]
        ready = sum(1 for p in scheduled if condition_status(p, "Ready") == "True")

        put_status(self._store, DAEMONSETS, ds, {
            "currentNumberScheduled": len(scheduled), "desiredNumberScheduled": len(wanted),
            "numberMisscheduled": misscheduled, "numberReady": ready,
            **without_zeros({"numberAvailable": ready, "numberUnavailable": len(wanted) - ready,
                             "updatedNumberScheduled": len(scheduled),
                             "observedGeneration": ds["metadata"].get("generation", 1)})})


def _daemon_tolerations(pod: Obj) -> list[Obj]:
    tolerations = list(pod["spec"].get("tolerations") or [])
    for extra in _DAEMON_TOLERATIONS:
        if not tolerates(tolerations, extra):
            tolerations.append(dict(extra))
    return tolerations


def _daemon_fits(pod: Obj, node: Obj) -> bool:
    if not affinity_matches(pod, node):
        return False
    return all(tolerates(pod["spec"]["tolerations"], t) for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") in ("NoSchedule", "NoExecute"))
