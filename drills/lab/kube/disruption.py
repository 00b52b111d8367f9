"""PodDisruptionBudgets: how many of a budget's pods may be disrupted now, and evictions.

The Eviction API asks the budgets that select a pod before deleting it: a healthy pod may go only
while every such budget still allows a disruption, else the API answers 429 and the client
(``kubectl drain``) retries. An unhealthy pod may go while the budget's healthy count is at or
above what it needs (the default ``IfHealthyBudget`` policy). The disruption controller keeps each
budget's status up to date.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import put_status, set_condition
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import PDBS, PODS, Obj, Store, TooManyRequests
from drills.lab.kube.workqueue import Retries


@dataclass(frozen=True)
class Budget:
    """A budget's status, as the disruption controller reports it."""

    expected_pods: int
    current_healthy: int
    desired_healthy: int

    @property
    def disruptions_allowed(self) -> int:
        return max(0, self.current_healthy - self.desired_healthy)


def is_healthy(pod: Obj) -> bool:
    """Ready and not terminating: a pod that serves."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def budget(store: Store, pdb: Obj) -> Budget:
    """The status of one budget, computed from the pods it selects now."""
    spec = pdb.get("spec") or {}
    selector = LabelSelector.from_object(spec.get("selector"))
    pods = [p for p in store.iter(PODS, pdb["metadata"]["namespace"], labels=selector)
            if not p["metadata"].get("deletionTimestamp")]
    healthy = sum(1 for p in pods if is_healthy(p))
    expected = len(pods)
    if spec.get("minAvailable") is not None:
        desired = _count(spec["minAvailable"], expected)
    else:
        desired = max(0, expected - _count(spec.get("maxUnavailable", 0), expected))
    return Budget(expected_pods=expected, current_healthy=healthy, desired_healthy=desired)


def check_eviction(store: Store, pod: Obj) -> None:
    """Raise :class:`TooManyRequests` if evicting ``pod`` now would break a budget selecting it."""
    labels = pod["metadata"].get("labels") or {}
    for pdb in store.iter(PDBS, pod["metadata"]["namespace"]):
        if not LabelSelector.from_object((pdb.get("spec") or {}).get("selector")).matches(labels):
            continue
        status = budget(store, pdb)
        allowed = status.disruptions_allowed > 0 if is_healthy(pod) else \
            status.current_healthy >= status.desired_healthy
        if not allowed:
            raise TooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.")


def _count(value: int | str, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        # Kubernetes rounds a percentage of minAvailable up.
        return -(-int(value[:-1]) * total // 100)
    return int(value)


class DisruptionController:
    """Keeps every budget's status (what ``kubectl get pdb`` shows) in step with its pods."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._retries = Retries(store, clock=clock, component="controllermanager")

    def reconcile(self, now: float) -> float | None:
        """Recompute every budget's status from the pods it selects."""
        for pdb in list(self._store.iter(PDBS)):
            self._retries.sync(pdb, lambda pdb=pdb: self._sync(pdb))
        return self._retries.due()

    def _sync(self, pdb: Obj) -> None:
        status = budget(self._store, pdb)
        generation = pdb["metadata"].get("generation", 1)
        conditions = copy.deepcopy((pdb.get("status") or {}).get("conditions") or [])
        allowed = status.disruptions_allowed > 0
        set_condition(conditions, "DisruptionAllowed", "True" if allowed else "False",
                      reason="SufficientPods" if allowed else "InsufficientPods", message="",
                      now=rfc3339(self._clock.wall()))
        for c in conditions:
            c["observedGeneration"] = generation
        put_status(self._store, PDBS, pdb, {
            "observedGeneration": generation, "currentHealthy": status.current_healthy,
            "desiredHealthy": status.desired_healthy, "expectedPods": status.expected_pods,
            "disruptionsAllowed": status.disruptions_allowed, "conditions": conditions})
