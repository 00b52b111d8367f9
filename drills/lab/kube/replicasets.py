"""The ReplicaSet controller: a ReplicaSet's pods and its status.

It keeps ``replicas`` live pods: a pod being deleted does not count, exactly as in Kubernetes, so a pod
stuck Terminating on a lost node is replaced. Scaling down deletes unscheduled pods first, then pending
ones, then not Ready ones, then those sharing a node with more siblings, then the newest. Every pod it
creates gets what admission would add: the default ``not-ready``/``unreachable`` tolerations with the
topology's node failure timeout. Each pod it creates or deletes is a ``SuccessfulCreate`` or
``SuccessfulDelete`` event on the ReplicaSet; a ReplicaSet being deleted makes no new pods.
"""

from __future__ import annotations

from collections import Counter

from drills.lab.clock import LabClock
from drills.lab.kube.kubelet import condition_status, delete_pod, put_status
from drills.lab.kube.nodes import effective_tolerations
from drills.lab.kube.ownership import (
    adopt,
    by_controller,
    create_named,
    created_at,
    epoch_seconds,
    is_active,
    pod_from_template,
    without_zeros,
)
from drills.lab.kube.store import PODS, REPLICASETS, Obj, Store
from drills.lab.kube.workqueue import Retries

COMPONENT = "replicaset-controller"


class ReplicaSetController:
    """ReplicaSets: their pods and status."""

    def __init__(self, store: Store, *, clock: LabClock, failure_timeout_s: float) -> None:
        self._store = store
        self._clock = clock
        self._failure_timeout_s = failure_timeout_s
        self._retries = Retries(store, clock=clock, component=COMPONENT)
        self._events = self._retries.recorder

    def reconcile(self, now: float) -> float | None:
        """Create or delete pods until each ReplicaSet has its size, then report its status."""
        adopt(self._store, list(self._store.iter(REPLICASETS)), PODS)
        pods = by_controller(self._store.iter(PODS))
        for rs in list(self._store.iter(REPLICASETS)):
            self._retries.sync(rs, lambda rs=rs: self._sync(rs, pods.get(rs["metadata"]["uid"], [])))
        return self._retries.due()

    def _sync(self, rs: Obj, owned: list[Obj]) -> None:
        active = [p for p in owned if is_active(p)]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        if rs["metadata"].get("deletionTimestamp"):
            want = len(active)  # being deleted: its pods are the garbage collector's now
        if len(active) < want:
            active += [self._create_pod(rs) for _ in range(want - len(active))]
        elif len(active) > want:
            doomed = _deletion_order(active)[:len(active) - want]
            for pod in doomed:
                delete_pod(self._store, pod, clock=self._clock)
                self._events.event(rs, "Normal", "SuccessfulDelete",
                                   f"Deleted pod: {pod['metadata']['name']}")
            gone = {p["metadata"]["uid"] for p in doomed}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        ready = sum(1 for p in active if condition_status(p, "Ready") == "True")
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        labeled = sum(1 for p in active
                      if template_labels.items() <= (p["metadata"].get("labels") or {}).items())

        put_status(self._store, REPLICASETS, rs, {"replicas": len(active), **without_zeros({
            "fullyLabeledReplicas": labeled, "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1)})})

    def _create_pod(self, rs: Obj) -> Obj:
        pod = pod_from_template(rs)
        pod["spec"]["tolerations"] = effective_tolerations(pod, self._failure_timeout_s)
        created = create_named(self._store, pod, rs["metadata"]["name"])
        self._events.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a ReplicaSet gives them up (Kubernetes' ActivePods ranking, most of it)."""
    per_node = Counter(p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName"))
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def rank(pod: Obj) -> tuple[bool, int, bool, int, float, int, float]:
        status = pod.get("status") or {}
        node = pod["spec"].get("nodeName")
        ready = condition_status(pod, "Ready") == "True"
        ready_since = next((c.get("lastTransitionTime") for c in status.get("conditions") or []
                            if c.get("type") == "Ready"), None)
        restarts = sum(int(cs.get("restartCount", 0)) for cs in status.get("containerStatuses") or [])
        return (bool(node), phase_rank.get(status.get("phase", "Pending"), 0), ready,
                -per_node[node] if node else 0, -epoch_seconds(ready_since) if ready else 0.0, -restarts,
                -created_at(pod))

    return sorted(pods, key=rank)
