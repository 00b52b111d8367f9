"""What kubectl and the official Python client see of a running lab cluster's nodes, pods and events:
node leases and heartbeats, the components' events, pods as a real API server returns them, and
timestamps that are never in the future of the real clock however long the lab has run.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
from kubectlrun import AsyncKubectl
from kubernetes import client
from pyclient import call

from drills.lab.clock import LabClock
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.heartbeats import NODE_LEASE_NAMESPACE
from drills.lab.kube.kubelet import condition_status
from drills.lab.kube.nodes import NODE_MONITOR_GRACE_S
from drills.lab.kube.store import LEASES, NODES, PODS, RESOURCES, Store
from drills.lab.topology import DEFAULT

SCALE = 60.0
SIMULATED_S = 1800.0
"""The real time the test makes pass in an instant: 30 real minutes, 30 lab hours at scale 60."""
PATIENCE = 5.0 * SCALE
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class SkewedTime:
    """The real clocks as the lab reads them: started :data:`SIMULATED_S` ago, moved forward at will."""

    def __init__(self) -> None:
        self.skew = 0.0

    def real(self) -> float:
        return time.time() - SIMULATED_S + self.skew

    def monotonic(self) -> float:
        return time.monotonic() + self.skew


@pytest.fixture
def skewed() -> SkewedTime:
    return SkewedTime()


@pytest.fixture
async def cluster(skewed: SkewedTime) -> AsyncIterator[Cluster]:
    cluster = Cluster("us", DEFAULT, clock=LabClock(SCALE, real=skewed.real, monotonic=skewed.monotonic))
    await cluster.start()
    await cluster.settled(within=PATIENCE)
    yield cluster
    await cluster.close()


@pytest.fixture
def store(cluster: Cluster) -> Store:
    """The API server fixtures serve the running cluster's store."""
    return cluster.store


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


def _stamps(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _stamps(item)
    elif isinstance(value, list):
        for item in value:
            yield from _stamps(item)
    elif isinstance(value, str) and _STAMP.match(value):
        yield value


def _all_stamps(store: Store) -> list[float]:
    """Every timestamp in every object the store holds, in Unix seconds."""
    return [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
            for resource in RESOURCES for obj in store.iter(resource) for s in _stamps(obj)]


def _heartbeat(store: Store, node: str) -> str:
    ready = next(c for c in store.get(NODES, None, node)["status"]["conditions"] if c["type"] == "Ready")
    return str(ready["lastHeartbeatTime"])


def _renewed(store: Store, node: str) -> str:
    return str(store.get(LEASES, NODE_LEASE_NAMESPACE, node)["spec"]["renewTime"])


async def test_after_30_real_minutes_at_scale_60_nothing_is_in_the_future(
        cluster: Cluster, skewed: SkewedTime, kubectl: AsyncKubectl) -> None:
    store = cluster.store
    [cordoned, stopped, *_] = cluster.node_names()
    code, before, err = await kubectl("describe", "node", stopped)
    assert code == 0, err
    assert re.search(rf"Normal\s+RegisteredNode\s+.*node-controller\s+Node {stopped} event: Registered Node "
                     rf"{stopped} in Controller", before), before
    assert re.search(r"Normal\s+Starting\s+.*kubelet\s+Starting kubelet\.", before), before

    heartbeat = _heartbeat(store, cordoned)
    skewed.skew = SIMULATED_S  # 30 real minutes pass: 30 lab hours
    renewed = _renewed(store, stopped)
    await cluster.until(lambda: _renewed(store, stopped) > renewed, within=PATIENCE)
    code, _, err = await kubectl("cordon", cordoned)
    assert code == 0, err
    [victim] = [p for p in store.iter(PODS, "shop") if p["spec"].get("nodeName") == stopped
                and p["metadata"]["labels"].get("app") == "web"]
    code, _, err = await kubectl("delete", "pod", "-n", "shop", victim["metadata"]["name"], "--wait=false")
    assert code == 0, err
    await cluster.until(lambda: store.find(PODS, "shop", victim["metadata"]["name"]) is None, within=PATIENCE)
    await cluster.settled(within=PATIENCE)
    cluster.stop_node(stopped)
    await cluster.until(lambda: condition_status(store.get(NODES, None, stopped), "Ready") == "Unknown",
                        within=NODE_MONITOR_GRACE_S + PATIENCE)

    now = time.time()
    stamps = _all_stamps(store)
    assert stamps
    assert max(stamps) <= now, f"{max(stamps) - now:.0f} s in the future"

    code, events, err = await kubectl("get", "events", "-A")
    assert code == 0, err
    code, new_events, err = await kubectl("events", "-A")
    assert code == 0, err
    code, node, err = await kubectl("describe", "node", stopped)
    assert code == 0, err
    code, cordoned_node, err = await kubectl("describe", "node", cordoned)
    assert code == 0, err
    on_stopped = next(p["metadata"]["name"] for p in store.iter(PODS, "shop")
                      if p["spec"].get("nodeName") == stopped)
    code, pods, err = await kubectl("describe", "pod", "-n", "shop", on_stopped)
    assert code == 0, err
    for text in (events, new_events, node, cordoned_node, pods):
        assert "<invalid>" not in text
    for reason in ("Scheduled", "Pulled", "Created", "Started", "Killing", "NodeNotReady",
                   "NodeNotSchedulable"):
        assert re.search(rf"\s{reason}\s", events), (reason, events)

    # The stopped node: its lease as the kubelet last renewed it, heartbeats kept, the controller's events.
    assert "Failed to get lease" not in node
    assert re.search(rf"Lease:\s+HolderIdentity:\s+{stopped}\s+AcquireTime:\s+<unset>\s+"
                     r"RenewTime:\s+\w{3}, ", node), node
    assert "01 Jan 0001" not in node
    assert re.search(r"Ready\s+Unknown\s.*NodeStatusUnknown\s+Kubelet stopped posting node status\.",
                     node), node
    assert re.search(rf"Normal\s+NodeNotReady\s+.*node-controller\s+Node {stopped} status is now: "
                     r"NodeNotReady", node), node
    assert re.search(rf"Normal\s+NodeNotSchedulable\s+.*kubelet\s+Node {cordoned} status is now: "
                     r"NodeNotSchedulable", cordoned_node), cordoned_node
    assert _heartbeat(store, cordoned) > heartbeat  # the running kubelet reported its status again
    lease = store.get(LEASES, NODE_LEASE_NAMESPACE, cordoned)
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseDurationSeconds"]) == (cordoned, 40)
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

    # The pods: QoS class, conditions, the service account volume, the kubelet's and controllers' events.
    assert re.search(r"QoS Class:\s+Burstable\n", pods), pods
    assert re.search(r"PodReadyToStartContainers\s+True", pods), pods
    assert re.search(r"kube-api-access-\w{5}:\s+Type:\s+Projected", pods), pods
    assert "node.kubernetes.io/unreachable:NoExecute op=Exists for 300s" in pods
    assert re.search(r"Warning\s+NodeNotReady\s+.*node-controller\s+Node is not ready", pods), pods
    assert re.search(r"Normal\s+Started\s+.*kubelet\s+spec\.containers\{web\}: Started container web",
                     pods), pods
    assert re.search(r"Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned shop/", pods), pods


async def test_pods_and_nodes_as_the_python_client_reads_them(cluster: Cluster,
                                                               core: client.CoreV1Api) -> None:
    pods = (await call(core.list_namespaced_pod, "shop")).items
    assert pods
    for pod in pods:
        volumes = [v for v in pod.spec.volumes if v.name.startswith("kube-api-access-")]
        assert len(volumes) == 1
        assert volumes[0].projected is not None
        sources = volumes[0].projected.sources
        assert sources[0].service_account_token.path == "token"
        assert sources[1].config_map.name == "kube-root-ca.crt"
        assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
        for container in pod.spec.containers:
            assert [(m.name, m.mount_path, m.read_only) for m in container.volume_mounts] == [
                (volumes[0].name, "/var/run/secrets/kubernetes.io/serviceaccount", True)]
        assert (pod.spec.service_account_name, pod.spec.service_account) == ("default", "default")
        assert (pod.spec.priority, pod.spec.preemption_policy, pod.spec.enable_service_links) == (
            0, "PreemptLowerPriority", True)
        assert sorted((t.key, t.effect, t.toleration_seconds) for t in pod.spec.tolerations) == [
            ("node.kubernetes.io/not-ready", "NoExecute", 300),
            ("node.kubernetes.io/unreachable", "NoExecute", 300)]
        assert pod.status.qos_class == "Burstable"
        assert {c.type for c in pod.status.conditions} == {
            "PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"}
        assert all(c.last_transition_time is not None for c in pod.status.conditions)
        assert pod.status.host_ip
        assert pod.status.pod_ip
        assert pod.status.pod_ips
        assert pod.status.start_time
        for status in pod.status.container_statuses:
            assert status.image_id
            assert status.container_id.startswith("containerd://")
            assert status.started
    nodes = (await call(core.list_node)).items
    for node in nodes:
        assert all(c.last_heartbeat_time is not None and c.last_heartbeat_time.year > 1
                   for c in node.status.conditions)
