"""One region's Kubernetes: its store, the objects the topology seeds, and controllers that act on them.

The controllers are level-triggered, as Kubernetes' are: each reconcile pass looks at the whole (small)
world and moves it one step toward what the objects ask for. A pass runs after any change (the store's
change listener wakes one task; a burst of changes makes one pass) and at the next instant a controller
said something is due (a pod's start delay, the node monitor grace period, a toleration running out).
Passes repeat until one changes nothing.

The ground-truth log, when given, gets a ``node`` line whenever a node's readiness or schedulability
changes and a ``replicas`` line whenever a deployment's ready pods (Ready and not terminating, as
endpoints count them) change in number or in their spread over zones, stamped as the change commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drills.errors import LabError
from drills.lab import resources
from drills.lab.clock import LabClock, rfc3339
from drills.lab.groundtruth import GroundTruth
from drills.lab.kube import services
from drills.lab.kube.admission import PodAdmission
from drills.lab.kube.daemonsets import DaemonSetController
from drills.lab.kube.deployments import DeploymentController
from drills.lab.kube.disruption import DisruptionController, is_healthy
from drills.lab.kube.endpoints import EndpointsController
from drills.lab.kube.exposure import exposure, seed
from drills.lab.kube.garbage import GarbageCollector
from drills.lab.kube.heartbeats import NodeHeartbeats
from drills.lab.kube.kubelet import Kubelet
from drills.lab.kube.loadbalancers import LoadBalancerController
from drills.lab.kube.namespaces import NamespaceController
from drills.lab.kube.nodes import NodeLifecycle, is_ready, post_ready, zone_of
from drills.lab.kube.ownership import controller_of
from drills.lab.kube.quantity import parse_quantity
from drills.lab.kube.replicasets import ReplicaSetController
from drills.lab.kube.scheduler import Scheduler
from drills.lab.kube.shapes import count, mapping
from drills.lab.kube.store import (
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    SERVICES,
    Change,
    Obj,
    Resource,
    Store,
)
from drills.lab.topology import REGION_LABEL, ZONE_LABEL, DaemonSet, NodeSize, Resources, Topology, Workload

_log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0"
DAEMON_START_DELAY_S = 5.0
"""From binding to Ready for pods the topology gives no start delay (daemon sets, bare pods)."""

_DUE_LATE_S = 1e-3
"""Timers fire this many lab seconds after a due instant, so the pass they wake always finds it due
(the event loop may run a timer up to its clock resolution early)."""
_RETRY_S = 1.0
"""After a controller fails, the lab seconds before the next pass retries it."""


class Controller(Protocol):
    """One reconcile loop's step over the whole cluster."""

    def reconcile(self, now: float) -> float | None:
        """Move the world one step; return the lab time something will next be due, if any."""
        ...


@dataclass(frozen=True)
class ReconcileStats:
    """What the controllers cost so far, in real seconds."""

    passes: int
    busy_s: float
    longest_s: float


class Cluster:
    """One region: a store, seeded from the topology, and its controllers."""

    def __init__(self, name: str, topology: Topology, *, clock: LabClock,
                 ground_truth: GroundTruth | None = None,
                 keep_out: Callable[[Resource, Obj], bool] | None = None, address: str | None = None) -> None:
        """``keep_out`` names the objects of the design the region is not seeded with (a team's
        manifests state them instead); ``address`` is the region's front door, which its load balancer
        Services and Ingresses publish (:mod:`drills.lab.kube.loadbalancers`)."""
        if name not in topology.regions:
            raise LabError(f"the topology has no region {name!r} (it has {', '.join(topology.regions)})")
        self.name = name
        self.topology = topology
        self.clock = clock
        self.store = Store(clock)
        self.store.admit(PODS, PodAdmission(default_toleration_s=topology.node_failure_timeout))
        self._keep_out = keep_out
        self._nodes = NodeLifecycle(self.store, clock=clock, failure_timeout_s=topology.node_failure_timeout)
        self._heartbeats = NodeHeartbeats(self.store, clock=clock, machines=self._nodes)
        self._controllers: list[Controller] = [
            self._nodes,
            self._heartbeats,
            NamespaceController(self.store, clock=clock),
            GarbageCollector(self.store, clock=clock),
            DeploymentController(self.store, clock=clock),
            ReplicaSetController(self.store, clock=clock, failure_timeout_s=topology.node_failure_timeout),
            DaemonSetController(self.store, clock=clock),
            Scheduler(self.store, clock=clock),
            Kubelet(self.store, clock=clock, machines=self._nodes, start_delay_s=self._start_delay,
                    termination_s=topology.termination_time),
            DisruptionController(self.store, clock=clock),
            # Last: the endpoints a pass leaves are those of the pods as the other controllers left them.
            EndpointsController(self.store, clock=clock),
        ]
        if address is not None:
            self._controllers.append(LoadBalancerController(self.store, clock=clock, address=address))
        self._wake = asyncio.Event()
        self._power_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        self._failing: set[str] = set()
        """Controllers whose last pass raised (logged once until one succeeds)."""
        self._passes = 0
        self._busy_s = 0.0
        self._longest_s = 0.0
        self.store.on_change(self._changed)
        self._recorder = _Recorder(self, ground_truth) if ground_truth is not None else None
        if self._recorder is not None:
            self.store.on_change(self._recorder)

    async def start(self) -> None:
        """Seed the topology's objects (those already there are kept) and start the controllers."""
        self._seed()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lab-{self.name}-controllers")
        self._wake.set()

    async def close(self) -> None:
        """Stop the controllers, their timer and the ground-truth lines; the store stays readable."""
        self._closed = True
        if self._recorder is not None:
            self._recorder.active = False  # the log may be closed next, while the store still changes
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._heartbeats.close()

    def stop_node(self, name: str) -> None:
        """The node's VM stops: its kubelet stops reporting. Raises ``NotFound`` for no such node."""
        self._nodes.stop(name)
        self._power_changed()

    def start_node(self, name: str) -> None:
        """The node's VM starts again. Raises ``NotFound`` for no such node."""
        self._nodes.start(name)
        self._power_changed()

    def node_running(self, name: str) -> bool:
        """Whether the node's VM runs (an unknown node's does not)."""
        return self.store.find(NODES, None, name) is not None and self._nodes.running(name)

    def on_power(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a node's VM stops or starts."""
        self._power_listeners.append(listener)

    def _power_changed(self) -> None:
        for listener in self._power_listeners:
            listener()
        self._wake.set()

    async def until(self, predicate: Callable[[], bool], *, within: float) -> float:
        """Wait until ``predicate`` holds, checked as each change commits; returns that lab instant.

        Raises :class:`TimeoutError` when it has not held within ``within`` lab seconds.
        """
        if predicate():
            return self.clock.now()
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, self.clock.to_real(within))
        finally:
            self._waiters.remove(waiter)

    async def settled(self, *, within: float = 600.0) -> float:
        """Wait until every deployment and daemon set reports all its pods updated and Ready."""
        return await self.until(self._settled, within=within)

    def node_names(self, zone: str | None = None) -> list[str]:
        """The nodes' names, of one zone if given."""
        return [n["metadata"]["name"] for n in self.store.iter(NODES) if zone is None or zone_of(n) == zone]

    @property
    def stats(self) -> ReconcileStats:
        """Reconcile passes so far and the real time they took."""
        return ReconcileStats(self._passes, self._busy_s, self._longest_s)

    def _changed(self, change: Change) -> None:
        # No controller reads events or leases: the kubelets' lease renewals do not cost a pass each.
        if change.resource not in (EVENTS, LEASES) and not self._closed:
            self._wake.set()
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                if predicate():
                    future.set_result(self.clock.now())
            except Exception as exc:  # the waiter gets it; the store's commit must not
                future.set_exception(exc)

    def _settled(self) -> bool:
        for deployment in self.store.iter(DEPLOYMENTS):
            want = count(mapping(deployment.get("spec")).get("replicas", 1), 1)
            status = mapping(deployment.get("status"))
            counts = [status.get(field, 0) for field in ("replicas", "updatedReplicas", "readyReplicas")]
            if status.get("observedGeneration") != deployment["metadata"].get("generation") or \
                    counts != [want] * 3:
                return False
        for daemon in self.store.iter(DAEMONSETS):
            status = mapping(daemon.get("status"))
            if "desiredNumberScheduled" not in status or \
                    status["numberReady"] != status["desiredNumberScheduled"]:
                return False
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            began = time.perf_counter()
            due: list[float] = []
            for controller in self._controllers:
                name = type(controller).__name__
                try:
                    at = controller.reconcile(self.clock.now())
                    self._failing.discard(name)
                except Exception:
                    # A controller's bug must not stop the others: log it (once, not on every pass)
                    # and try again soon.
                    if name not in self._failing:
                        _log.exception("%s: %s failed", self.name, name)
                        self._failing.add(name)
                    at = self.clock.now() + _RETRY_S
                if at is not None:
                    due.append(at)
            spent = time.perf_counter() - began
            self._passes += 1
            self._busy_s += spent
            self._longest_s = max(self._longest_s, spent)
            self._arm(min(due, default=None))
            await asyncio.sleep(0)  # let the API server and the rest of the lab in between passes

    def _arm(self, at: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is not None:
            self._timer = self.clock.call_later(at - self.clock.now() + _DUE_LATE_S, self._wake.set)

    def _start_delay(self, pod: Obj) -> float:
        """The start delay of the topology workload the pod belongs to (through its ReplicaSet)."""
        ref = controller_of(pod)
        namespace = pod["metadata"]["namespace"]
        if ref is None or ref.get("kind") != "ReplicaSet":
            return DAEMON_START_DELAY_S
        rs = self.store.find(REPLICASETS, namespace, ref["name"])
        owner = controller_of(rs) if rs is not None else None
        if owner is None or owner.get("kind") != "Deployment":
            return DAEMON_START_DELAY_S
        workload = next((w for w in self.topology.workloads
                         if (w.namespace, w.name) == (namespace, owner["name"])), None)
        return workload.start_delay if workload is not None else _readiness_delay(pod)

    def _seed(self) -> None:
        # "drill": the namespace deploy/rbac/ creates, where drills keep their lock (drills/lock.py).
        names = ["default", "kube-system", "kube-public", "kube-node-lease", "drill"]
        workloads = self.topology.workloads_in(self.name)
        names += [w.namespace for w in workloads]
        names += [d.namespace for d in self.topology.daemon_sets]
        for ns in dict.fromkeys(names):
            self._create(NAMESPACES, {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                                      "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        region = self.topology.regions[self.name]
        index = list(self.topology.regions).index(self.name)
        number = 0
        for zone in region.zones:
            for i in range(region.nodes_per_zone):
                self._create(NODES, _node(self.name, index, zone, i, number, rfc3339(self.clock.wall()),
                                          size=region.node_size))
                number += 1
        for workload in workloads:
            self._create(DEPLOYMENTS, _deployment(workload))
            if workload.pdb is not None:
                spec: Obj = {"selector": {"matchLabels": {"app": workload.name}}}
                if workload.pdb.min_available is not None:
                    spec["minAvailable"] = workload.pdb.min_available
                else:
                    spec["maxUnavailable"] = workload.pdb.max_unavailable
                self._create(PDBS, {"metadata": {"name": workload.name, "namespace": workload.namespace,
                                                 "labels": {"app": workload.name}}, "spec": spec})
        for daemon in self.topology.daemon_sets:
            self._create(DAEMONSETS, _daemon_set(daemon))
        for resource, obj in [*((SERVICES, s) for s in services.system_services()),
                              *exposure(self.topology.app, self.topology.ingress)]:
            self._create(resource, obj)

    def _create(self, resource: Resource, obj: Obj) -> None:
        if self._keep_out is not None and self._keep_out(resource, obj):
            return
        seed(self.store, [(resource, obj)])


class _Recorder:
    """Writes node and replica changes to the ground-truth log as the store commits them."""

    def __init__(self, cluster: Cluster, truth: GroundTruth) -> None:
        self._cluster = cluster
        self._store = cluster.store
        self._truth = truth
        self._zones = list(cluster.topology.regions[cluster.name].zones)
        self._nodes: dict[str, tuple[bool, bool]] = {}
        self._node_zone: dict[str, str | None] = {}
        self._replicas: dict[tuple[str, str], tuple[int, dict[str, int]]] = {}
        self._deployment_of_rs: dict[str, str | None] = {}
        self.active = True

    def __call__(self, change: Change) -> None:
        if not self.active:
            return
        if change.resource is NODES:
            self._node(change)
        elif change.resource is PODS:
            deployment = self._deployment(change.object)
            if deployment is not None:
                self._count(change.object["metadata"]["namespace"], deployment)
        elif change.resource is DEPLOYMENTS and change.type == "ADDED":
            self._count(change.object["metadata"]["namespace"], change.object["metadata"]["name"])

    def _node(self, change: Change) -> None:
        node = change.object
        name = node["metadata"]["name"]
        if change.type == "DELETED":
            self._nodes.pop(name, None)
            self._node_zone.pop(name, None)
            return
        self._node_zone[name] = zone_of(node)
        state = (is_ready(node), bool((node.get("spec") or {}).get("unschedulable")))
        if self._nodes.get(name) != state:
            self._nodes[name] = state
            self._truth.record("node", region=self._cluster.name, node=name, ready=state[0],
                               unschedulable=state[1])

    def _deployment(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        uid = ref["uid"]
        if uid not in self._deployment_of_rs:
            rs = self._store.find(REPLICASETS, pod["metadata"]["namespace"], ref["name"])
            owner = controller_of(rs) if rs is not None and rs["metadata"]["uid"] == uid else None
            is_deployment = owner is not None and owner.get("kind") == "Deployment"
            self._deployment_of_rs[uid] = owner["name"] if owner is not None and is_deployment else None
        return self._deployment_of_rs[uid]

    def _count(self, namespace: str, deployment: str) -> None:
        by_zone: Counter[str] = Counter({z: 0 for z in self._zones})
        for pod in self._store.iter(PODS, namespace):
            if is_healthy(pod) and self._deployment(pod) == deployment:
                zone = self._node_zone.get(pod["spec"].get("nodeName", "")) or "unknown"
                by_zone[zone] += 1
        state = (sum(by_zone.values()), dict(sorted(by_zone.items())))
        if self._replicas.get((namespace, deployment)) != state:
            self._replicas[(namespace, deployment)] = state
            self._truth.record("replicas", region=self._cluster.name, namespace=namespace,
                               deployment=deployment, ready=state[0], by_zone=state[1])


def allocatable(size: NodeSize) -> tuple[str, str]:
    """CPU and memory a node of ``size`` offers pods, as AKS reserves them: CPU 60m for the first core,
    40m for the second, 20m each for cores 3-4, 10m each above; memory 25% of the first 4 GiB, 20% of
    the next 4, 10% of the next 8, 6% of the next 112, 2% above, plus 750Mi for the eviction threshold."""
    cores = parse_quantity(size.cpu)
    reserved_m = 60 * min(cores, 1) + 40 * min(max(cores - 1, 0), 1) + 20 * min(max(cores - 2, 0), 2) \
        + 10 * max(cores - 4, 0)
    gib = parse_quantity(size.memory) / 2**30
    reserved_gib = 0.75 * 1000 / 1024
    for band, share in ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (float("inf"), 0.02)):
        reserved_gib += share * min(max(gib, 0), band)
        gib -= band
    cpu_m = max(int(cores * 1000 - reserved_m), 0)
    memory_ki = max(int((parse_quantity(size.memory) - reserved_gib * 2**30) / 1024), 0)
    return f"{cpu_m}m", f"{memory_ki}Ki"


def _readiness_delay(pod: Obj) -> float:
    """A pod the topology says nothing of (a team's manifests run it) is Ready once its first container's
    readiness probe may first succeed (``initialDelaySeconds``), else after the default start delay."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    delay = (containers[0].get("readinessProbe") or {}).get("initialDelaySeconds")
    if isinstance(delay, int | float) and not isinstance(delay, bool) and delay >= 0:
        return float(delay)
    return DAEMON_START_DELAY_S


def _node(region: str, region_index: int, zone: str, i: int, number: int, stamp: str, *,
          size: NodeSize) -> Obj:
    name = f"aks-{region}-{zone}-{i}"
    conditions: list[Obj] = []
    post_ready(conditions, stamp)
    capacity = {"cpu": size.cpu, "ephemeral-storage": "129886128Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": size.memory, "pods": "110"}
    cpu, memory = allocatable(size)
    allocatable_ = {**capacity, "cpu": cpu, "ephemeral-storage": "119703055367", "memory": memory}
    return {
        "metadata": {"name": name, "labels": {
            ZONE_LABEL: zone, REGION_LABEL: region, "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "agentpool": "nodepool1", "kubernetes.azure.com/role": "agent"}},
        "spec": {"podCIDR": f"10.244.{number}.0/24", "podCIDRs": [f"10.244.{number}.0/24"],
                 # As AKS writes it: the node resource group in lower case, the instance id last.
                 "providerID": f"azure:///subscriptions/{resources.SUBSCRIPTION}/resourceGroups/"
                               f"{resources.node_resource_group(region).lower()}/providers/Microsoft.Compute/"
                               f"virtualMachineScaleSets/{resources.scale_set(region)}/virtualMachines/{number}"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": f"10.{224 + region_index}.0.{4 + number}"},
                          {"type": "Hostname", "address": name}],
            "capacity": capacity, "allocatable": allocatable_, "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64",
                         "bootID": f"{number:08x}-0000-4000-8000-{region_index:012x}",
                         "containerRuntimeVersion": "containerd://1.7.25-1",
                         "kernelVersion": "5.15.0-1079-azure",
                         "kubeProxyVersion": KUBELET_VERSION, "kubeletVersion": KUBELET_VERSION,
                         "machineID": f"{region_index:04x}{number:028x}", "operatingSystem": "linux",
                         "osImage": "Ubuntu 22.04.5 LTS",
                         "systemUUID": f"{number:08x}-{region_index:04x}-4000-8000-000000000000"},
        },
    }


def _container(namespace: str, name: str, port: int, *, health_path: str, start_delay_s: float,
               resources: Resources) -> Obj:
    """One container; its readiness probe's initial delay is the start delay (whole seconds, rounded
    up), so that a client reading the Deployment learns how long a pod takes to become Ready."""
    return {"name": name, "image": f"registry.drill.test/{namespace}/{name}:1.0",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": health_path, "port": port, "scheme": "HTTP"},
                               "initialDelaySeconds": math.ceil(start_delay_s),
                               "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                               "failureThreshold": 3},
            "resources": {"requests": {"cpu": resources.cpu, "memory": resources.memory}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def _deployment(workload: Workload) -> Obj:
    labels = {"app": workload.name}
    container = _container(workload.namespace, workload.name, 80 if workload.role == "ingress" else 8080,
                           health_path=workload.health_path, start_delay_s=workload.start_delay,
                           resources=workload.resources)
    pod_spec: Obj = {"containers": [container],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                     "dnsPolicy": "ClusterFirst",
                     "schedulerName": "default-scheduler", "securityContext": {}}
    if workload.spread == "zone":
        pod_spec["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": ZONE_LABEL, "whenUnsatisfiable": workload.when_unsatisfiable,
            "labelSelector": {"matchLabels": dict(labels)}}]
    if workload.zones:
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": ZONE_LABEL, "operator": "In", "values": list(workload.zones)}]}]}}}
    return {
        "metadata": {"name": workload.name, "namespace": workload.namespace, "labels": dict(labels)},
        "spec": {"replicas": workload.replicas, "selector": {"matchLabels": dict(labels)},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                 "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec}},
    }


def _daemon_set(daemon: DaemonSet) -> Obj:
    labels = {"app": daemon.name}
    return {
        "metadata": {"name": daemon.name, "namespace": daemon.namespace, "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)},
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 "revisionHistoryLimit": 10,
                 "template": {"metadata": {"labels": dict(labels)}, "spec": {
                     "containers": [_container(daemon.namespace, daemon.name, 9100, health_path="/healthz",
                                               start_delay_s=DAEMON_START_DELAY_S,
                                               resources=Resources())],
                     "tolerations": [{"operator": "Exists"}], "restartPolicy": "Always",
                     "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                     "schedulerName": "default-scheduler", "securityContext": {}}}},
    }
