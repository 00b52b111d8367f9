"""Pod lifecycle on the nodes: the kubelets of one cluster, and graceful pod deletion.

A kubelet acts only while its node's VM runs. A pod bound to a running node starts at once and
becomes Running and Ready ``start delay`` lab seconds later (image pull, start, readiness probe, all in
one); a pod marked for deletion exits ``termination time`` later (never later than its grace period)
and is then removed. While a node is stopped nothing happens to its pods: they stay as they were, or
stuck Terminating, as in Kubernetes. When the VM starts again the kubelet restarts the node's
containers (restart count + 1, Ready after the start delay again) and removes at once the pods whose
grace period ran out while it was away.

The kubelet records its events on the pods: ``Pulling`` when a node first needs an image, then, as the
pod becomes Ready, ``Pulled`` (or "already present on machine"), ``Created`` and ``Started`` for each
container, and ``Killing`` when it stops a pod's containers.

Graceful deletion (:func:`delete_pod`) is what the API server does with a pod DELETE: a bound pod gets
``deletionTimestamp`` (now + grace) and the kubelet finishes the job; an unbound pod goes at once.
Also here: the condition and status helpers every controller uses.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube import deletion
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.store import NODES, PODS, Change, NotFound, Obj, Resource, Store
from drills.lab.kube.workqueue import Retries, earliest

DEFAULT_GRACE_S = 30
"""A pod's ``terminationGracePeriodSeconds`` when its spec states none (the Kubernetes default)."""


class Machines(Protocol):
    """The power state of the nodes' VMs, as the kubelet sees it."""

    def running(self, name: str) -> bool:
        """Whether the node's VM runs."""
        ...

    def boot(self, name: str) -> float:
        """Lab time the VM last started; a change means the containers died and must start again."""
        ...


def set_condition(conditions: list[Obj], type_: str, status: str, *, reason: str, message: str,
                  now: str, updated: str | None = None) -> None:
    """Set one condition in place; its timestamps move only when its status, reason or message does.

    ``updated`` names the field that records the latest update (``lastHeartbeatTime`` on nodes,
    ``lastUpdateTime`` on deployments). Keeping the stamps still when nothing changed is what lets a
    reconcile pass that finds nothing to do write nothing (the store ignores a no-op mutation).
    """
    old = next((c for c in conditions if c.get("type") == type_), None)
    if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
            status, reason, message):
        return
    new: Obj = {"type": type_, "status": status}
    if updated:
        new[updated] = now
    same_status = old is not None and old.get("status") == status
    new["lastTransitionTime"] = old.get("lastTransitionTime", now) if old is not None and same_status else now
    new["reason"], new["message"] = reason, message
    if old is None:
        conditions.append(new)
    else:
        conditions[conditions.index(old)] = new


def condition_status(obj: Obj, type_: str) -> str | None:
    """The status (``True``/``False``/``Unknown``) of one of an object's conditions, None if absent."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def put_status(store: Store, resource: Resource, obj: Obj, status: Obj) -> None:
    """Write an object's status unless it already is that: a pass with nothing to do copies nothing."""
    if obj.get("status") != status:
        store.mutate(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                     lambda o: o.__setitem__("status", status))


def delete_pod(store: Store, pod: Obj, *, clock: LabClock, reason: str | None = None,
               message: str = "") -> None:
    """Delete a pod gracefully, as the API does: a bound pod is marked, an unbound one goes at once.

    ``reason`` adds the ``DisruptionTarget`` condition that evictions carry.
    """
    meta = pod["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        if not (pod.get("spec") or {}).get("nodeName"):
            store.delete(PODS, namespace, name)
            return
        store.mutate(PODS, namespace, name, lambda p: _mark_deleted(p, clock, reason, message))
    except NotFound:
        return


@dataclass
class _Run:
    """One start of a pod's containers on one boot of its node."""

    boot: float
    ready_at: float
    started_at: float
    pulled: frozenset[str] = frozenset()
    """The images this start pulled (the node had not had them)."""
    ready: bool = False


class Kubelet:
    """Every node's kubelet: starts, readies and removes the pods bound to running nodes."""

    def __init__(self, store: Store, *, clock: LabClock, machines: Machines,
                 start_delay_s: Callable[[Obj], float], termination_s: float) -> None:
        self._store = store
        self._clock = clock
        self._machines = machines
        self._start_delay_s = start_delay_s
        self._termination_s = termination_s
        self._runs: dict[str, _Run] = {}
        self._exits: dict[str, tuple[float, float]] = {}
        self._bound_at: dict[str, float] = {}
        self._deleted_at: dict[str, float] = {}
        self._next_ip: dict[str, int] = {}
        self._images: set[tuple[str, str]] = set()
        """The (node, image) pairs pulled so far."""
        self._events = EventRecorder(store, clock=clock, component="kubelet", node_uid_is_name=True)
        self._retries = Retries(store, clock=clock, component="kubelet")
        store.on_change(self._observe)

    def reconcile(self, now: float) -> float | None:
        """One pass over every bound pod; returns the next lab time something is due."""
        nodes = {n["metadata"]["name"]: n for n in self._store.iter(NODES)}
        wake: list[float] = []
        seen: set[str] = set()
        for pod in list(self._store.iter(PODS)):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                if pod["metadata"].get("deletionTimestamp"):
                    deletion.remove(self._store, PODS, pod)
                continue
            node = nodes.get(node_name)
            if node is None or not self._machines.running(node_name):
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            due = self._retries.sync(pod, lambda pod=pod, node=node: self._step(pod, node, now))
            if due is not None:
                wake.append(due)
        self._runs = {k: v for k, v in self._runs.items() if k in seen}
        self._exits = {k: v for k, v in self._exits.items() if k in seen}
        return earliest(min(wake, default=None), self._retries.due())

    def _step(self, pod: Obj, node: Obj, now: float) -> float | None:
        if pod["metadata"].get("deletionTimestamp"):
            return self._terminate(pod, now)
        return self._run(pod, node, now)

    def _observe(self, change: Change) -> None:
        """Note the instant a pod is bound or marked deleted, as a kubelet's watch would see it.

        Timing from the commit, not from the pass that acts on it, keeps start delays exact however
        long the pass takes.
        """
        if change.resource is not PODS:
            return
        uid = change.object["metadata"]["uid"]
        if change.type == "DELETED":
            self._bound_at.pop(uid, None)
            self._deleted_at.pop(uid, None)
            return
        if (change.object.get("spec") or {}).get("nodeName"):
            self._bound_at.setdefault(uid, self._clock.now())
        if change.object["metadata"].get("deletionTimestamp"):
            self._deleted_at.setdefault(uid, self._clock.now())

    def _terminate(self, pod: Obj, now: float) -> float | None:
        meta = pod["metadata"]
        boot = self._machines.boot(pod["spec"]["nodeName"])
        exit_ = self._exits.get(meta["uid"])
        if exit_ is None or exit_[0] != boot:
            since = max(self._deleted_at.get(meta["uid"], now), boot)
            exit_ = (boot, since + self._exit_delay(pod))
            self._exits[meta["uid"]] = exit_
            if (pod.get("status") or {}).get("phase") == "Running":
                for container in _containers(pod):
                    self._container_event(pod, container, "Normal", "Killing",
                                          f"Stopping container {container['name']}")
        if now >= exit_[1]:
            deletion.remove(self._store, PODS, pod)
            return None
        return exit_[1]

    def _exit_delay(self, pod: Obj) -> float:
        """How long the containers take to exit: none left if the grace period already ran out."""
        meta = pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds", DEFAULT_GRACE_S))
        deadline = datetime.fromisoformat(meta["deletionTimestamp"].replace("Z", "+00:00"))
        if grace <= 0 or deadline <= self._clock.wall():
            return 0.0
        return min(self._termination_s, grace)

    def _run(self, pod: Obj, node: Obj, now: float) -> float | None:
        meta = pod["metadata"]
        boot = self._machines.boot(node["metadata"]["name"])
        run = self._runs.get(meta["uid"])
        if run is None or run.boot != boot:
            since = max(self._bound_at.get(meta["uid"], now), boot)
            run = _Run(boot, since + self._start_delay_s(pod), now, self._pull(pod, node))
            self._runs[meta["uid"]] = run
            self._start(pod, node)
        if run.ready:
            return None
        if now < run.ready_at:
            return run.ready_at
        ready = self._store.mutate(PODS, meta["namespace"], meta["name"], self._ready)
        run.ready = True
        self._started_events(ready, run, now)
        return None

    def _pull(self, pod: Obj, node: Obj) -> frozenset[str]:
        """The images the node does not have yet: ``Pulling`` them (the pull ends as the pod readies)."""
        name = node["metadata"]["name"]
        pulled = set()
        for container in _containers(pod):
            image = str(container.get("image", ""))
            if (name, image) not in self._images:
                self._images.add((name, image))
                pulled.add(image)
                self._container_event(pod, container, "Normal", "Pulling", f'Pulling image "{image}"')
        return frozenset(pulled)

    def _started_events(self, pod: Obj, run: _Run, now: float) -> None:
        took = max(0.0, now - run.started_at)
        for container in _containers(pod):
            image, name = str(container.get("image", "")), container["name"]
            if image in run.pulled:
                size = 20_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16) * 8
                pulled = (f'Successfully pulled image "{image}" in {took:.3f}s ({took:.3f}s including '
                          f"waiting). Image size: {size} bytes.")
            else:
                pulled = f'Container image "{image}" already present on machine'
            self._container_event(pod, container, "Normal", "Pulled", pulled)
            self._container_event(pod, container, "Normal", "Created", f"Created container: {name}")
            self._container_event(pod, container, "Normal", "Started", f"Started container {name}")

    def _container_event(self, pod: Obj, container: Obj, type_: str, reason: str, message: str) -> None:
        self._events.event(pod, type_, reason, message, host=pod["spec"]["nodeName"],
                           field_path=f"spec.containers{{{container['name']}}}")

    def _start(self, pod: Obj, node: Obj) -> None:
        """The containers are (re)starting: not Ready until the start delay has passed."""
        stamp = rfc3339(self._clock.wall())
        host_ip = _internal_ip(node)
        pod_ip = (pod.get("status") or {}).get("podIP") or self._allocate_ip(node)

        def change(p: Obj) -> None:
            status = p.setdefault("status", {})
            restarted = status.get("phase") == "Running"
            status.update({"hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip,
                           "podIPs": [{"ip": pod_ip}]})
            status.setdefault("startTime", stamp)
            status.setdefault("qosClass", "Burstable")
            conditions = status.setdefault("conditions", [])
            names = [c["name"] for c in _containers(p)]
            unready = f"containers with unready status: [{' '.join(names)}]"
            set_condition(conditions, "PodReadyToStartContainers", "True", reason="", message="", now=stamp)
            set_condition(conditions, "Initialized", "True", reason="", message="", now=stamp)
            for type_ in ("Ready", "ContainersReady"):
                set_condition(conditions, type_, "False", reason="ContainersNotReady", message=unready,
                              now=stamp)
            old = {cs["name"]: cs for cs in status.get("containerStatuses") or []}
            statuses = []
            for c in _containers(p):
                previous = old.get(c["name"], {})
                cs: Obj = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                           "restartCount": previous.get("restartCount", 0), "started": False,
                           "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}
                if restarted:
                    cs["restartCount"] += 1
                    cs["lastState"] = {"terminated": {"exitCode": 255, "reason": "Unknown",
                                                      "finishedAt": stamp}}
                    cs["state"] = {"running": {"startedAt": stamp}}
                    cs["started"] = True
                statuses.append(cs)
            status["containerStatuses"] = statuses
            status["phase"] = "Running" if restarted else "Pending"

        self._store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], change)

    def _ready(self, pod: Obj) -> None:
        stamp = rfc3339(self._clock.wall())
        status = pod.setdefault("status", {})
        status["phase"] = "Running"
        conditions = status.setdefault("conditions", [])
        set_condition(conditions, "Ready", "True", reason="", message="", now=stamp)
        set_condition(conditions, "ContainersReady", "True", reason="", message="", now=stamp)
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = cs["started"] = True
            cs["imageID"] = f"{cs['image']}@sha256:{hashlib.sha256(cs['image'].encode()).hexdigest()}"
            cs["containerID"] = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
            if "running" not in cs.get("state", {}):
                cs["state"] = {"running": {"startedAt": stamp}}

    def _allocate_ip(self, node: Obj) -> str:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR") or "10.244.255.0/24"
        n = self._next_ip.get(name, 2)
        self._next_ip[name] = n % 250 + 2
        return cidr.rsplit(".", 1)[0] + f".{n}"


def _containers(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _internal_ip(node: Obj) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    return "10.224.0.4"


def _mark_deleted(pod: Obj, clock: LabClock, reason: str | None, message: str) -> None:
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        return
    grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
    meta["deletionTimestamp"] = rfc3339(clock.wall() + timedelta(seconds=grace))
    meta["deletionGracePeriodSeconds"] = grace
    if reason:
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
        set_condition(conditions, "DisruptionTarget", "True", reason=reason, message=message,
                      now=rfc3339(clock.wall()))
