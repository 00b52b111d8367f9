"""The scheduler: cordoned zones, zone spread (soft and hard), node affinity, taints, readiness and
resource requests against allocatable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from drills.lab.kube.cluster import Cluster
from drills.lab.kube.disruption import is_healthy
from drills.lab.kube.kubelet import condition_status, delete_pod
from drills.lab.kube.nodes import zone_of
from drills.lab.kube.scheduler import place
from drills.lab.kube.store import DEPLOYMENTS, EVENTS, NODES, PODS, Obj
from drills.lab.topology import DEFAULT, Disruption, Topology, Workload

SCALE = 1000.0
PATIENCE = 3.0 * SCALE
"""How long (lab seconds) a wait may take before the test fails: 3 s real, for a loaded machine."""
ALL_ZONES = {"zone-1": 1, "zone-2": 1, "zone-3": 1}

MakeCluster = Callable[..., Awaitable[Cluster]]


def _with_web(**changes: object) -> Topology:
    web = dict(namespace="shop", name="web", replicas=3, role="app", pdb=Disruption(min_available=2))
    ingress = DEFAULT.ingress
    return Topology(workloads=[Workload(**{**web, **changes}), ingress])


def _web(cluster: Cluster, *, live: bool = True) -> list[Obj]:
    return [p for p in cluster.store.iter(PODS, "shop") if p["metadata"]["labels"].get("app") == "web"
            and not (live and p["metadata"].get("deletionTimestamp"))]


def _ready_by_zone(cluster: Cluster) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in _web(cluster):
        if is_healthy(pod):
            zone = _zone(cluster, pod) or ""
            counts[zone] = counts.get(zone, 0) + 1
    return dict(sorted(counts.items()))


def _zone(cluster: Cluster, pod: Obj) -> str | None:
    return next(zone_of(n) for n in cluster.store.iter(NODES)
                if n["metadata"]["name"] == pod["spec"]["nodeName"])


def _cordon(cluster: Cluster, zone: str, *, on: bool = True) -> None:
    def change(node: Obj) -> None:
        if on:
            node["spec"]["unschedulable"] = True
        else:
            node["spec"].pop("unschedulable", None)

    for name in cluster.node_names(zone):
        cluster.store.mutate(NODES, None, name, change)


async def test_a_pod_deleted_in_a_cordoned_zone_comes_back_in_another_zone(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    assert _ready_by_zone(cluster) == ALL_ZONES
    _cordon(cluster, "zone-1")
    victim = next(p for p in _web(cluster) if _zone(cluster, p) == "zone-1")
    delete_pod(cluster.store, victim, clock=cluster.clock)

    await cluster.until(lambda: sum(_ready_by_zone(cluster).values()) == 3, within=PATIENCE)

    by_zone = _ready_by_zone(cluster)
    assert "zone-1" not in by_zone
    assert sorted(by_zone.values()) == [1, 2]


async def test_scaling_up_spreads_two_per_zone_one_per_node(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()

    def scale(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = 6

    cluster.store.mutate(DEPLOYMENTS, "shop", "web", scale)
    await cluster.until(lambda: _ready_by_zone(cluster) == {"zone-1": 2, "zone-2": 2, "zone-3": 2},
                        within=PATIENCE)
    assert len({p["spec"]["nodeName"] for p in _web(cluster)}) == 6  # the node with fewest pods wins


async def test_a_workload_pinned_to_one_zone_stays_there(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(_with_web(zones=["zone-2"]))
    assert _ready_by_zone(cluster) == {"zone-2": 3}
    terms = _web(cluster)[0]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-2"]}]}]


async def test_hard_spread_leaves_the_pod_pending_while_a_zone_is_cordoned(make_cluster: MakeCluster) -> None:
    """Kubernetes does the same: a cordoned zone still counts as a domain (nodeTaintsPolicy defaults to
    Ignore), with no pod left in it, so a second pod in either other zone would make the skew 2 > 1."""
    cluster = await make_cluster(_with_web(when_unsatisfiable="DoNotSchedule"))
    _cordon(cluster, "zone-1")
    victim = next(p for p in _web(cluster) if _zone(cluster, p) == "zone-1")
    delete_pod(cluster.store, victim, clock=cluster.clock)

    def pending() -> Obj | None:
        return next((p for p in _web(cluster) if condition_status(p, "PodScheduled") == "False"), None)

    await cluster.until(lambda: pending() is not None, within=PATIENCE)
    pod = pending()
    assert pod is not None
    assert not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["reason"] == "Unschedulable"
    assert condition["message"].startswith("0/6 nodes are available: 2 node(s) were unschedulable, "
                                           "4 node(s) didn't match pod topology spread constraints.")
    events = [e for e in cluster.store.list(EVENTS, "shop")
              if e["involvedObject"]["name"] == pod["metadata"]["name"]]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "FailedScheduling")]

    _cordon(cluster, "zone-1", on=False)
    await cluster.until(lambda: _ready_by_zone(cluster) == ALL_ZONES, within=PATIENCE)


def _node(name: str, zone: str, *, ready: bool = True, taints: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def _pod(name: str, *, node: str | None = None, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"tolerations": tolerations or [], "topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}}, "spec": spec}


def test_not_ready_and_untolerated_tainted_nodes_are_never_chosen() -> None:
    taint = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    nodes = [_node("a", "zone-1", taints=[taint]), _node("b", "zone-2", ready=False), _node("c", "zone-3")]
    placed = [_pod("p1", node="c"), _pod("p2", node="c")]

    chosen, reasons = place(_pod("new"), nodes, placed)
    assert chosen is not None
    assert chosen["metadata"]["name"] == "c"  # the only fit, however loaded its zone
    assert reasons == {"node(s) had untolerated taint {dedicated: batch}": 1, "node(s) were not ready": 1}

    tolerant = _pod("new", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "batch",
                                         "effect": "NoSchedule"}])
    chosen, _ = place(tolerant, nodes, placed)
    assert chosen is not None
    assert chosen["metadata"]["name"] == "a"  # the soft spread now prefers the empty zone


async def test_a_pod_whose_requests_fit_no_node_stays_pending_with_the_schedulers_event(
        make_cluster: MakeCluster) -> None:
    """Nodes of 2 cores keep 1900m allocatable (AKS reserves 100m); each holds one 1200m web pod, so the
    seventh fits nowhere: Pending, PodScheduled=False/Unschedulable, worded as Kubernetes words it."""
    topology = Topology.model_validate({
        "regions": {"us": {"priority": 1, "nodeSize": {"cpu": 2, "memory": "8Gi"}}},
        "workloads": [{"namespace": "shop", "name": "web", "replicas": 6, "role": "app",
                       "resources": {"cpu": "1200m", "memory": "256Mi"}},
                      DEFAULT.ingress.model_dump(by_alias=True)]})
    cluster = await make_cluster(topology)
    nodes = list(cluster.store.iter(NODES))
    assert {(n["status"]["capacity"]["cpu"], n["status"]["allocatable"]["cpu"]) for n in nodes} == {
        ("2", "1900m")}
    assert {n["metadata"]["name"] for n in nodes} == {p["spec"]["nodeName"] for p in _web(cluster)}

    def scale(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = 7

    cluster.store.mutate(DEPLOYMENTS, "shop", "web", scale)

    def pending() -> Obj | None:
        return next((p for p in _web(cluster) if condition_status(p, "PodScheduled") == "False"), None)

    await cluster.until(lambda: pending() is not None, within=PATIENCE)
    pod = pending()
    assert pod is not None
    assert not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    message = ("0/6 nodes are available: 6 Insufficient cpu. preemption: 0/6 nodes are available: "
               "6 Preemption is not helpful for scheduling.")
    assert (condition["reason"], condition["message"]) == ("Unschedulable", message)
    events = [(e["type"], e["reason"], e["message"]) for e in cluster.store.list(EVENTS, "shop")
              if e["involvedObject"]["name"] == pod["metadata"]["name"]]
    assert events == [("Warning", "FailedScheduling", message)]

    def scale_down(deployment: Obj) -> None:
        deployment["spec"]["replicas"] = 5

    cluster.store.mutate(DEPLOYMENTS, "shop", "web", scale_down)
    await cluster.until(lambda: pending() is None and len(_web(cluster)) == 5, within=PATIENCE)


def _sized(name: str, zone: str, *, cpu: str, memory: str) -> Obj:
    node = _node(name, zone)
    node["status"]["allocatable"] = {"cpu": cpu, "memory": memory, "pods": "110"}
    return node


def _asking(pod: Obj, *, cpu: str, memory: str) -> Obj:
    pod["spec"]["containers"] = [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]
    return pod


def test_requests_count_every_bound_pod_terminating_ones_too() -> None:
    nodes = [_sized("a", "zone-1", cpu="1", memory="1Gi"), _sized("b", "zone-2", cpu="2", memory="512Mi")]
    leaving = _asking(_pod("old", node="a"), cpu="600m", memory="100Mi")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-22T03:18:00Z"
    new = _asking(_pod("new"), cpu="500m", memory="600Mi")

    chosen, reasons = place(new, nodes, [], bound=[leaving])
    assert chosen is None  # a: 600m + 500m > 1 core while the old pod terminates; b: 600Mi > 512Mi
    assert reasons == {"Insufficient cpu": 1, "Insufficient memory": 1}
    chosen, _ = place(new, nodes, [])  # the old pod gone
    assert chosen is not None
    assert chosen["metadata"]["name"] == "a"
    both_short = _asking(_pod("big"), cpu="3", memory="2Gi")
    _, reasons = place(both_short, nodes, [])
    assert reasons == {"Insufficient cpu": 2, "Insufficient memory": 2}
