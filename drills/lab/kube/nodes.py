"""Node lifecycle: machines that stop and start, NotReady after the grace period, taints, eviction.

A node's VM is either running or stopped (:meth:`NodeLifecycle.stop` / :meth:`NodeLifecycle.start`).
A stopped node's kubelet stops posting status, but nothing in the API shows it until the node monitor
grace period has passed (40 s): then, as the node lifecycle controller does, the node's conditions turn
Unknown, the ``node.kubernetes.io/unreachable`` taints (NoSchedule and NoExecute) are added and the
node's pods are marked not Ready. The taint manager then evicts every pod on a node whose NoExecute
taints it does not tolerate, at once or after its ``tolerationSeconds``; a pod that states no toleration
for ``not-ready``/``unreachable`` gets the defaults the ``DefaultTolerationSeconds`` admission plugin
would have given it (the topology's node failure timeout, 300 s by default). A cordoned node carries the
``node.kubernetes.io/unschedulable:NoSchedule`` taint, as TaintNodesByCondition keeps it.

Events, as the components write them: the node controller's ``RegisteredNode`` for each node it
finds, ``NodeNotReady`` on the node and on each of its pods it marks not Ready; the kubelet's
``NodeReady`` when its node is Ready again, ``NodeNotSchedulable``/``NodeSchedulable`` when it is cordoned
or uncordoned. An Unknown condition keeps the ``lastHeartbeatTime`` of the kubelet's last report.

Also here: the node and toleration helpers the scheduler and the workload controllers share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import condition_status, delete_pod, set_condition
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.store import NODES, PODS, Change, Obj, Store
from drills.lab.kube.workqueue import Retries, earliest
from drills.lab.topology import ZONE_LABEL

NODE_MONITOR_GRACE_S = 40.0
"""How long the node lifecycle controller waits for a silent kubelet (kube-controller-manager default)."""

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

_PRESSURES = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}
_NODE_CONDITIONS = (*_PRESSURES, "Ready")


def is_ready(node: Obj) -> bool:
    """The node's Ready condition is True."""
    return condition_status(node, "Ready") == "True"


def zone_of(node: Obj) -> str | None:
    """The node's ``topology.kubernetes.io/zone`` label."""
    return (node["metadata"].get("labels") or {}).get(ZONE_LABEL)


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    """Some toleration matches the taint (key, value, effect), as the scheduler matches them."""
    return any(_matches(t, taint) for t in tolerations)


def effective_tolerations(pod: Obj, default_seconds: float) -> list[Obj]:
    """The pod's tolerations plus the ones ``DefaultTolerationSeconds`` adds when it states none."""
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    for key in (NOT_READY, UNREACHABLE):
        probe = {"key": key, "effect": "NoExecute"}
        if not tolerates(tolerations, probe):
            tolerations.append(default_toleration(key, default_seconds))
    return tolerations


def default_toleration(key: str, seconds: float) -> Obj:
    """The toleration the admission plugin adds for ``not-ready`` or ``unreachable``."""
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": int(seconds)}


def post_ready(conditions: list[Obj], stamp: str) -> None:
    """Set a node's conditions as a healthy kubelet posts them."""
    for type_, (reason, message) in _PRESSURES.items():
        set_condition(conditions, type_, "False", reason=reason, message=message, now=stamp,
                      updated="lastHeartbeatTime")
    set_condition(conditions, "Ready", "True", reason="KubeletReady",
                  message="kubelet is posting ready status", now=stamp, updated="lastHeartbeatTime")


class NodeLifecycle:
    """The VMs' power state, the node lifecycle controller and the taint manager of one cluster."""

    def __init__(self, store: Store, *, clock: LabClock, failure_timeout_s: float,
                 grace_s: float = NODE_MONITOR_GRACE_S) -> None:
        self._store = store
        self._clock = clock
        self._failure_timeout_s = failure_timeout_s
        self._grace_s = grace_s
        self._stopped: dict[str, float] = {}
        self._booted: dict[str, float] = {}
        self._taint_since: dict[tuple[str, str], float] = {}
        """When each NoExecute taint (node, key) was added, in lab seconds."""
        self._registered: set[str] = set()
        self._events = EventRecorder(store, clock=clock, component="node-controller")
        self._kubelet_events = EventRecorder(store, clock=clock, component="kubelet", node_uid_is_name=True)
        self._retries = Retries(store, clock=clock, component="node-controller")
        store.on_change(self._observe)

    def stop(self, name: str) -> None:
        """Power the node's VM off; raises :class:`~drills.lab.kube.store.NotFound` for no such node."""
        self._store.get(NODES, None, name)
        self._stopped.setdefault(name, self._clock.now())

    def start(self, name: str) -> None:
        """Power the node's VM on (nothing happens if it runs)."""
        self._store.get(NODES, None, name)
        if self._stopped.pop(name, None) is not None:
            self._booted[name] = self._clock.now()

    def running(self, name: str) -> bool:
        """Whether the node's VM runs (a node this controller never stopped runs)."""
        return name not in self._stopped

    def boot(self, name: str) -> float:
        """Lab time the node's VM last started (0 for a node running since the lab began)."""
        return self._booted.get(name, 0.0)

    def reconcile(self, now: float) -> float | None:
        """One pass over every node and the pods on tainted nodes; returns when to look again."""
        wake: list[float] = []
        for node in list(self._store.iter(NODES)):
            self._retries.sync(node, lambda node=node: self._sync(node, now, wake))
        wake.extend(self._evict(now))
        return earliest(min(wake, default=None), self._retries.due())

    def _sync(self, node: Obj, now: float, wake: list[float]) -> None:
        name = node["metadata"]["name"]
        if name not in self._registered:
            self._registered.add(name)
            self._events.event(node, "Normal", "RegisteredNode",
                               f"Node {name} event: Registered Node {name} in Controller")
        stopped_at = self._stopped.get(name)
        # Each step looks before it writes: a pass that finds nothing to do copies nothing.
        if stopped_at is None:
            if not _posting_ready(node):
                self._post_ready(name)
        elif now >= stopped_at + self._grace_s:
            self._mark_unknown(node)
        else:
            wake.append(stopped_at + self._grace_s)
        if bool((node.get("spec") or {}).get("unschedulable")) != _has_taint(node, UNSCHEDULABLE):
            self._sync_unschedulable_taint(name)

    def _post_ready(self, name: str) -> None:
        """The kubelet posts Ready and the controller lifts the unreachable taints."""
        stamp = rfc3339(self._clock.wall())

        def change(node: Obj) -> None:
            post_ready(node.setdefault("status", {}).setdefault("conditions", []), stamp)
            _remove_taints(node, lambda t: t.get("key") in (UNREACHABLE, NOT_READY))

        before = self._store.get(NODES, None, name)
        after = self._store.mutate(NODES, None, name, change)
        if not is_ready(before) and is_ready(after):
            self._kubelet_events.event(after, "Normal", "NodeReady", f"Node {name} status is now: NodeReady",
                                       host=name)

    def _mark_unknown(self, node: Obj) -> None:
        """What the node lifecycle controller does about a silent kubelet, and MarkPodsNotReady."""
        name = node["metadata"]["name"]
        stamp = rfc3339(self._clock.wall())

        def change(obj: Obj) -> None:
            conditions = obj.setdefault("status", {}).setdefault("conditions", [])
            heartbeats = {c.get("type"): c.get("lastHeartbeatTime") for c in conditions}
            for type_ in _NODE_CONDITIONS:
                set_condition(conditions, type_, "Unknown", reason="NodeStatusUnknown",
                              message="Kubelet stopped posting node status.", now=stamp)
            for condition in conditions:
                # The controller changes what it knows, not when the kubelet last reported.
                if heartbeats.get(condition.get("type")):
                    condition["lastHeartbeatTime"] = heartbeats[condition.get("type")]
            taints = obj.setdefault("spec", {}).setdefault("taints", [])
            for effect in ("NoSchedule", "NoExecute"):
                if not any(t.get("key") == UNREACHABLE and t.get("effect") == effect for t in taints):
                    taint: Obj = {"key": UNREACHABLE, "effect": effect}
                    if effect == "NoExecute":
                        taint["timeAdded"] = stamp
                    taints.append(taint)

        if condition_status(node, "Ready") != "Unknown" or not all(
                _has_taint(node, UNREACHABLE, effect) for effect in ("NoSchedule", "NoExecute")):
            if condition_status(node, "Ready") != "Unknown":
                self._events.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            self._store.mutate(NODES, None, name, change)
        for pod in list(self._store.iter(PODS)):
            if (pod.get("spec") or {}).get("nodeName") == name and condition_status(pod, "Ready") == "True":
                marked = self._store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                            lambda p: _mark_pod_not_ready(p, stamp))
                self._events.event(marked, "Warning", "NodeNotReady", "Node is not ready")

    def _sync_unschedulable_taint(self, name: str) -> None:
        def change(node: Obj) -> None:
            cordoned = bool((node.get("spec") or {}).get("unschedulable"))
            taints = node.setdefault("spec", {}).setdefault("taints", [])
            has = any(t.get("key") == UNSCHEDULABLE for t in taints)
            if cordoned and not has:
                taints.append({"key": UNSCHEDULABLE, "effect": "NoSchedule",
                               "timeAdded": rfc3339(self._clock.wall())})
            elif not cordoned and has:
                _remove_taints(node, lambda t: t.get("key") == UNSCHEDULABLE)
            if not node["spec"].get("taints"):
                node["spec"].pop("taints", None)

        node = self._store.mutate(NODES, None, name, change)
        if self.running(name):
            # The kubelet reports the change of its node's schedulability in its next status update.
            cordoned = bool((node.get("spec") or {}).get("unschedulable"))
            status = "NodeNotSchedulable" if cordoned else "NodeSchedulable"
            self._kubelet_events.event(node, "Normal", status, f"Node {name} status is now: {status}",
                                       host=name)

    def _observe(self, change: Change) -> None:
        """Note when NoExecute taints appear, as the change commits: tolerations count from then."""
        if change.resource is not NODES:
            return
        name = change.object["metadata"]["name"]
        present = set() if change.type == "DELETED" else {
            t["key"] for t in (change.object.get("spec") or {}).get("taints") or []
            if t.get("effect") == "NoExecute"}
        for key in [k for k in self._taint_since if k[0] == name and k[1] not in present]:
            del self._taint_since[key]
        for key in present:
            self._taint_since.setdefault((name, key), self._clock.now())

    def _evict(self, now: float) -> list[float]:
        """The taint manager: evict pods from NoExecute-tainted nodes when their tolerance runs out."""
        tainted: dict[str, list[Obj]] = {}
        for node in self._store.iter(NODES):
            taints = [t for t in (node.get("spec") or {}).get("taints") or []
                      if t.get("effect") == "NoExecute"]
            if taints:
                tainted[node["metadata"]["name"]] = taints
        wake: list[float] = []
        for pod in list(self._store.iter(PODS)):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name not in tainted or pod["metadata"].get("deletionTimestamp"):
                continue
            due = self._retries.sync(pod, lambda pod=pod, node=node_name: self._evict_pod(
                pod, node, tainted[node], now))
            if due is not None:
                wake.append(due)
        return wake

    def _evict_pod(self, pod: Obj, node: str, taints: list[Obj], now: float) -> float | None:
        """Evict the pod if its tolerance ran out; else when it will."""
        due = self._eviction_time(pod, node, taints)
        if due is None or now < due:
            return due
        delete_pod(self._store, pod, clock=self._clock, reason="DeletionByTaintManager",
                   message="Taint manager: deleting due to NoExecute taint")
        return None

    def _eviction_time(self, pod: Obj, node: str, taints: list[Obj]) -> float | None:
        tolerations = effective_tolerations(pod, self._failure_timeout_s)
        due: float | None = None
        for taint in taints:
            matching = [t for t in tolerations if _matches(t, taint)]
            since = self._taint_since.get((node, taint["key"]), self._clock.now())
            if not matching:
                return since
            # As the taint manager: the shortest stated tolerationSeconds wins; none stated is forever.
            limits = [float(t["tolerationSeconds"]) for t in matching
                      if t.get("tolerationSeconds") is not None]
            if limits:
                at = since + max(0.0, min(limits))
                due = at if due is None else min(due, at)
        return due



def _posting_ready(node: Obj) -> bool:
    """The node shows what a healthy kubelet posts, and no unreachable taint."""
    return is_ready(node) and all(condition_status(node, t) == "False" for t in _PRESSURES) and \
        not _has_taint(node, UNREACHABLE) and not _has_taint(node, NOT_READY)


def _has_taint(node: Obj, key: str, effect: str | None = None) -> bool:
    return any(t.get("key") == key and effect in (None, t.get("effect"))
               for t in (node.get("spec") or {}).get("taints") or [])


def _matches(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if toleration.get("operator", "Equal") == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _remove_taints(node: Obj, unwanted: Callable[[Obj], bool]) -> None:
    spec = node.setdefault("spec", {})
    kept = [t for t in spec.get("taints") or [] if not unwanted(t)]
    if kept:
        spec["taints"] = kept
    else:
        spec.pop("taints", None)


def _mark_pod_not_ready(pod: Obj, stamp: str) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    set_condition(conditions, "Ready", "False", reason="NodeNotReady", message="", now=stamp)
    for cs in pod["status"].get("containerStatuses") or []:
        cs["ready"] = False
