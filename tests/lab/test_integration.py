"""The lab driven as users drive real clusters: kubectl and the kubernetes client, DNS through dnspython.

Every test reaches a lab process only through its environment file, as ``drill run --env`` does. They
share the module's lab and leave it as they found it (uncordon, scale back, start nodes); the test of
two labs side by side starts its own second one. Timings are checked in lab seconds against what the
topology predicts, with a tolerance for the scheduling of two processes on a shared machine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachineScaleSetVMInstanceIDs
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from drills.environment import Environment, load_environment
from drills.lab.groundtruth import read
from drills.lab.kube.nodes import NODE_MONITOR_GRACE_S
from drills.lab.topology import DEFAULT, ZONE_LABEL
from drills.labprocess import start_lab

if TYPE_CHECKING:
    from conftest import Spawned
    from kubectlrun import Kubectl

pytestmark = pytest.mark.lab

TOLERANCE_REAL_S = 0.1
"""Real seconds a lab instant may stray from its prediction: loop lateness in the lab and in the test,
under a full test run on two cores (6 lab seconds at scale 60, against windows of 10 lab seconds and more)."""

POLL_PERIOD_S = 0.02
"""Real seconds between the DNS poller's queries."""

Clients = dict[str, k8s.ApiClient]


@pytest.fixture(scope="module")
def clients(lab_env: Environment) -> Iterator[Clients]:
    """A kubernetes client per region, from the environment's kubeconfig and contexts."""
    made = {name: k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
            for name, region in lab_env.regions.items()}
    yield made
    for api_client in made.values():
        api_client.close()


def test_get_nodes_shows_six_ready_nodes_in_three_zones_per_region(kubectl: Kubectl, clients: Clients,
                                                                   lab_env: Environment) -> None:
    for name, region in lab_env.regions.items():
        table = kubectl("get", "nodes", context=region.context).stdout.splitlines()
        assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        rows = [line.split() for line in table[1:]]
        assert [row[1] for row in rows] == ["Ready"] * 6
        nodes = k8s.CoreV1Api(clients[name]).list_node().items
        assert sorted(n.metadata.name for n in nodes) == sorted(row[0] for row in rows)
        assert all(_ready(n) for n in nodes)
        zones = Counter(n.metadata.labels[ZONE_LABEL] for n in nodes)
        assert zones == {"zone-1": 2, "zone-2": 2, "zone-3": 2}


def test_new_pods_avoid_a_cordoned_zone(kubectl: Kubectl, clients: Clients) -> None:
    core = k8s.CoreV1Api(clients["us"])
    victim = _web(core)[0]
    zone = _zones(core)[victim.spec.node_name]
    selector = f"{ZONE_LABEL}={zone}"
    try:
        cordoned = kubectl("cordon", "-l", selector).stdout
        assert cordoned.count(" cordoned") == 2
        rows = [line.split() for line in kubectl("get", "nodes", "-l", selector).stdout.splitlines()[1:]]
        assert [row[1] for row in rows] == ["Ready,SchedulingDisabled"] * 2
        core.delete_namespaced_pod(victim.metadata.name, "shop")
        pods = _watch_pods(core, lambda pods: len(_serving(pods)) == 3 and victim.metadata.name not in pods,
                           timeout=5, what="web back to 3 ready pods")
        zones = _zones(core)
        replacement = next(p for p in _serving(pods) if p.metadata.creation_timestamp
                           >= victim.metadata.creation_timestamp and p.metadata.uid != victim.metadata.uid)
        assert zones[replacement.spec.node_name] != zone
    finally:
        kubectl("uncordon", "-l", selector)


def test_a_drain_waits_on_the_pdb_until_replacements_are_ready(kubectl: Kubectl, clients: Clients,
                                                              lab_env: Environment,
                                                              spawn: Callable[..., Spawned]) -> None:
    core = k8s.CoreV1Api(clients["us"])
    first, second, _ = _web(core)
    nodes = sorted(_zones(core))
    began = time.time()
    try:
        # With every node cordoned the replacement of an evicted pod cannot start: the budget
        # (minAvailable 2 of 3) then forbids a second eviction, for the client and for kubectl.
        kubectl("cordon", *nodes)
        _evict(core, first.metadata.name)
        with pytest.raises(ApiException) as refused:
            _evict(core, second.metadata.name)
        assert refused.value.status == 429
        assert "disruption budget" in refused.value.body
        drain = spawn(kubectl.command("drain", second.spec.node_name, "--ignore-daemonsets", "--timeout=60s"),
                      env=kubectl.env)
        drain.wait_for(r"Cannot evict pod as it would violate the pod's disruption budget")
        kubectl("uncordon", *(n for n in nodes if n != second.spec.node_name))
        drain.wait_for(rf"node/{second.spec.node_name} drained", timeout=30)
        assert drain.finish() == 0
        pods = _watch_pods(core, lambda pods: len(_serving(pods)) == 3, timeout=5, what="web back to 3")
        assert second.spec.node_name not in {p.spec.node_name for p in _serving(pods)}
    finally:
        kubectl("uncordon", *nodes)
    # The budget held throughout: never fewer than 2 web pods ready.
    assert lab_env.lab is not None
    counts = [line["ready"] for line in read(Path(lab_env.lab.ground_truth))
              if line["event"] == "replicas" and line["region"] == "us" and line["deployment"] == "web"
              and line["real"] >= began]
    assert counts
    assert min(counts) == 2


def test_a_stopped_zones_web_pods_come_back_in_the_other_zones_after_the_node_failure_timeout(
        kubectl: Kubectl, clients: Clients, lab_env: Environment) -> None:
    core = k8s.CoreV1Api(clients["us"])
    zone = _zones(core)[_web(core)[0].spec.node_name]
    stopped = sorted(n for n, z in _zones(core).items() if z == zone)
    # Their VMs, powered off and on through Azure's compute API, as the environment names the node pool.
    pool = lab_env.regions["us"].node_pools[0]
    instances = VirtualMachineScaleSetVMInstanceIDs(instance_ids=[
        n.spec.provider_id.rsplit("/", 1)[-1] for n in core.list_node().items if n.metadata.name in stopped])
    compute = _compute(lab_env)
    topology = DEFAULT
    app = topology.app
    expected_s = NODE_MONITOR_GRACE_S + topology.node_failure_timeout + app.start_delay
    before = time.time()
    try:
        powering_off = compute.virtual_machine_scale_sets.begin_power_off(pool.resource_group, pool.scale_set,
                                                                          instances)
        after = time.time()  # the VMs stop when the request is taken, before the operation completes
        _watch_pods(core, lambda pods: len(_serving(pods)) == 3
                    and all(p.spec.node_name not in stopped for p in _serving(pods)),
                    timeout=expected_s * 1.5 / lab_env.time_scale + 5, what="web ready outside the zone")
        rows = [line.split() for line in kubectl("get", "nodes", "-l", f"{ZONE_LABEL}={zone}").stdout
                .splitlines()[1:]]
        assert [row[1] for row in rows] == ["NotReady"] * 2
        powering_off.result()
    finally:
        scale_sets = compute.virtual_machine_scale_sets
        scale_sets.begin_start(pool.resource_group, pool.scale_set, instances).result()
        compute.close()
    _watch_nodes(core, lambda nodes: all(_ready(n) for n in nodes), timeout=5, what="every node Ready")

    lab_time = _lab_time(lab_env)
    truth = _truth(lab_env, since=before)
    not_ready = [line for line in truth if line["event"] == "node" and line["node"] in stopped
                 and not line["ready"]]
    back = next(line for line in truth if line["event"] == "replicas" and line["region"] == "us"
                and line["deployment"] == app.name and line["ready"] == app.replicas
                and line["by_zone"].get(zone, 0) == 0)
    tolerance = TOLERANCE_REAL_S * lab_env.time_scale
    for line in not_ready:  # the node monitor grace period after the VMs stopped
        assert lab_time(before) + NODE_MONITOR_GRACE_S - tolerance <= line["lab"]
        assert line["lab"] <= lab_time(after) + NODE_MONITOR_GRACE_S + tolerance
    # then the pods' tolerationSeconds (the node failure timeout) and a replacement's start
    assert lab_time(before) + expected_s - tolerance <= back["lab"]
    assert back["lab"] <= lab_time(after) + expected_s + tolerance


def test_dns_fails_over_to_eu_within_the_monitor_window_and_back(clients: Clients,
                                                                lab_env: Environment) -> None:
    apps = k8s.AppsV1Api(clients["us"])
    ingress = lab_env.regions["us"].ingress
    replicas = apps.read_namespaced_deployment_scale(ingress.deployment, ingress.namespace).spec.replicas
    profile = DEFAULT.traffic_manager
    monitor = profile.monitor
    scale = lab_env.time_scale
    n, interval, timeout = monitor.tolerated_failures, monitor.interval, monitor.timeout
    with DnsPoller(lab_env, period_s=POLL_PERIOD_S) as poller:
        baseline = poller.wait_for("us", timeout=5)
        assert (baseline.cname_ttl, baseline.address_ttl) == (int(profile.ttl), 300)
        try:
            killed = time.time()
            _scale(apps, ingress.deployment, ingress.namespace, 0)
            killed_done = time.time()
            failed_over = poller.wait_for("eu", after=killed_done,
                                          timeout=((n + 1) * interval + timeout) / scale + 5)
            restored = time.time()
            _scale(apps, ingress.deployment, ingress.namespace, replicas)
            restored_done = time.time()
            failed_back = poller.wait_for("us", after=restored_done,
                                          timeout=(DEFAULT.ingress.start_delay + interval) / scale + 5)
        finally:
            _scale(apps, ingress.deployment, ingress.namespace, replicas)
    samples = poller.samples

    truth = _truth(lab_env, since=killed)
    answers = [line for line in truth if line["event"] == "dns_answer"]
    assert [(a["previous"], a["answer"]) for a in answers] == [("us", "eu"), ("eu", "us")]
    moved, moved_back = answers
    lab_time = _lab_time(lab_env)
    tolerance = TOLERANCE_REAL_S * scale
    # docs/protocol-facts.md: a hanging endpoint is Degraded within [N*I + T, (N+1)*I + T) of the failure.
    assert lab_time(killed) + n * interval + timeout - tolerance <= moved["lab"]
    assert moved["lab"] < lab_time(killed_done) + (n + 1) * interval + timeout + tolerance
    # One successful probe brings it back, at most an interval after the controller's pods are Ready.
    start = DEFAULT.ingress.start_delay
    assert lab_time(restored) + start - tolerance <= moved_back["lab"]
    assert moved_back["lab"] < lab_time(restored_done) + start + interval + tolerance
    # The endpoint's status changed at the same instant as the answer.
    statuses = [(line["status"], line["real"]) for line in truth
                if line["event"] == "endpoint_status" and line["endpoint"] == "us"]
    assert [s for s, _ in statuses] == ["Degraded", "Online"]
    assert abs(statuses[0][1] - moved["real"]) < 0.001
    # The ground truth agrees with what the poller saw, within the poller's period + 10 ms.
    for line, seen in ((moved, failed_over), (moved_back, failed_back)):
        before_change = max((s for s in samples if s.received < seen.sent), key=lambda s: s.sent)
        assert before_change.region == line["previous"]
        assert before_change.sent - 0.010 <= line["real"] <= seen.received + 0.010
        assert seen.received - line["real"] <= POLL_PERIOD_S + 0.010


def test_two_labs_side_by_side_do_not_interfere(clients: Clients, lab_env: Environment,
                                                tmp_path: Path) -> None:
    first_servers = {name: c.configuration.host for name, c in clients.items()}
    with start_lab(time_scale=lab_env.time_scale, directory=tmp_path / "second") as second:
        other = load_environment(second.environment_file)
        other_clients = {name: k8s_config.new_client_from_config(config_file=r.kubeconfig, context=r.context)
                         for name, r in other.regions.items()}
        try:
            other_servers = {name: c.configuration.host for name, c in other_clients.items()}
            assert set(first_servers.values()).isdisjoint(other_servers.values())
            assert other.traffic_manager.nameservers != lab_env.traffic_manager.nameservers
            _interfere(lab_env, other, clients, other_clients)
        finally:
            for api_client in other_clients.values():
                api_client.close()


def _interfere(mine: Environment, theirs: Environment, clients: Clients, other_clients: Clients) -> None:
    """Kill the second lab's US ingress; the first lab must not notice anything."""
    ingress = theirs.regions["us"].ingress
    began = time.time()
    with DnsPoller(mine, period_s=POLL_PERIOD_S) as watched, DnsPoller(theirs, period_s=POLL_PERIOD_S) as hit:
        first_us = watched.wait_for("us", timeout=5)
        hit.wait_for("us", timeout=5)
        _scale(k8s.AppsV1Api(other_clients["us"]), ingress.deployment, ingress.namespace, 0)
        monitor = DEFAULT.traffic_manager.monitor
        hit.wait_for("eu", timeout=((monitor.tolerated_failures + 1) * monitor.interval + monitor.timeout)
                     / theirs.time_scale + 5)
        reply = httpx.get(f"http://{first_us.address}:{mine.service.port}/", timeout=2)
        assert (reply.status_code, reply.headers["x-drill-region"]) == (200, "us")
    assert {s.region for s in watched.samples} == {"us"}
    apps = k8s.AppsV1Api(clients["us"])
    assert apps.read_namespaced_deployment_scale(ingress.deployment, ingress.namespace).spec.replicas == \
        DEFAULT.ingress.replicas
    changes = [line for line in _truth(mine, since=began)
               if line["event"] in ("dns_answer", "endpoint_status")]
    assert changes == []


@dataclass(frozen=True)
class DnsSample:
    """One answer the poller got: when it asked and heard back (Unix seconds), and what it said."""

    sent: float
    received: float
    region: str | None
    address: str | None
    cname_ttl: int | None
    address_ttl: int | None


class DnsPoller:
    """Asks an environment's Traffic Manager name server for its FQDN every ``period_s``, in a thread
    (so that the test's blocking client calls never delay a query)."""

    def __init__(self, env: Environment, *, period_s: float) -> None:
        host, _, port = env.traffic_manager.nameservers[0].rpartition(":")
        self._server = (host, int(port))
        self._env = env
        self._period_s = period_s
        self.samples: list[DnsSample] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dns poller", daemon=True)

    def __enter__(self) -> DnsPoller:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)

    def wait_for(self, region: str, *, after: float = 0.0, timeout: float) -> DnsSample:
        """The first sample sent after ``after`` that answers ``region``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((s for s in self.samples if s.sent >= after and s.region == region), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = Counter(s.region for s in self.samples if s.sent >= after)
                    raise AssertionError(f"DNS never answered {region} within {timeout:.1f} s (saw {seen})")
                self._changed.wait(remaining)

    def _run(self) -> None:
        fqdn = self._env.traffic_manager.fqdn
        next_at = time.monotonic()
        while not self._stop.is_set():
            query = dns.message.make_query(fqdn, "A")
            sent = time.time()
            reply = dns.query.udp(query, self._server[0], port=self._server[1], timeout=2)
            received = time.time()
            sample = self._sample(reply, self._target(reply), sent, received)
            with self._changed:
                self.samples.append(sample)
                self._changed.notify_all()
            next_at += self._period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _target(self, reply: dns.message.Message) -> dns.message.Message | None:
        """The answer for the CNAME's target: Traffic Manager answers the CNAME alone, and a resolver asks
        for the target next (after the sample's time is taken: the first answer is what moves)."""
        cname = next((r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME), None)
        if cname is None:
            return None
        query = dns.message.make_query(cname[0].target, "A")
        return dns.query.udp(query, self._server[0], port=self._server[1], timeout=2)

    def _sample(self, reply: dns.message.Message, target: dns.message.Message | None, sent: float,
                received: float) -> DnsSample:
        cname = next((r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME), None)
        address = next((r for r in target.answer if r.rdtype == dns.rdatatype.A), None) if target else None
        region = self._env.region_of_target(str(cname[0].target)) if cname is not None else None
        return DnsSample(sent=sent, received=received, region=region,
                         address=address[0].address if address is not None else None,
                         cname_ttl=cname.ttl if cname is not None else None,
                         address_ttl=address.ttl if address is not None else None)


def _ready(obj: Any) -> bool:
    """A node or pod whose Ready condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in (obj.status.conditions or []))


def _serving(pods: dict[str, k8s.V1Pod]) -> list[k8s.V1Pod]:
    """Ready pods that are not terminating."""
    return [p for p in pods.values() if _ready(p) and p.metadata.deletion_timestamp is None]


def _web(core: k8s.CoreV1Api) -> list[k8s.V1Pod]:
    """The serving web pods once there are 3 (a previous test may have left one starting)."""
    pods = _watch_pods(core, lambda pods: len(_serving(pods)) == 3, timeout=5, what="3 web pods ready")
    return sorted(_serving(pods), key=lambda p: p.metadata.name)


def _zones(core: k8s.CoreV1Api) -> dict[str, str]:
    return {n.metadata.name: n.metadata.labels[ZONE_LABEL] for n in core.list_node().items}


def _watch_pods(core: k8s.CoreV1Api, predicate: Callable[[dict[str, k8s.V1Pod]], bool], *, timeout: float,
                what: str) -> dict[str, k8s.V1Pod]:
    return _watch_until(core.list_namespaced_pod, predicate, timeout=timeout, what=what, namespace="shop",
                        label_selector="app=web")


def _watch_nodes(core: k8s.CoreV1Api, predicate: Callable[[list[k8s.V1Node]], bool], *, timeout: float,
                 what: str) -> None:
    _watch_until(core.list_node, lambda nodes: predicate(list(nodes.values())), timeout=timeout, what=what)


def _watch_until(list_fn: Callable[..., Any], predicate: Callable[[dict[str, Any]], bool], *, timeout: float,
                 what: str, **selectors: str) -> dict[str, Any]:
    """List, then follow a watch until ``predicate`` holds for the objects as they are; those objects."""
    deadline = time.monotonic() + timeout
    listed = list_fn(**selectors)
    objects = {o.metadata.name: o for o in listed.items}
    version = listed.metadata.resource_version
    while not predicate(objects):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{what}: not within {timeout:.1f} s")
        stream = k8s_watch.Watch()
        for event in stream.stream(list_fn, resource_version=version,
                                   timeout_seconds=max(1, round(remaining)), _request_timeout=remaining + 5,
                                   **selectors):
            obj = event["object"]
            version = obj.metadata.resource_version
            if event["type"] == "DELETED":
                objects.pop(obj.metadata.name, None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                objects[obj.metadata.name] = obj
            if predicate(objects) or time.monotonic() >= deadline:
                stream.stop()
    return objects


def _evict(core: k8s.CoreV1Api, name: str) -> None:
    core.create_namespaced_pod_eviction(name, "shop", k8s.V1Eviction(
        metadata=k8s.V1ObjectMeta(name=name, namespace="shop")))


def _scale(apps: k8s.AppsV1Api, name: str, namespace: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})


def _compute(env: Environment) -> ComputeManagementClient:
    """The synchronous compute client on the lab's ARM endpoint, with the token its file names."""
    assert env.azure is not None
    assert env.lab is not None
    assert env.lab.arm_token_file is not None
    token_file = Path(env.lab.arm_token_file)

    class LabToken:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(token_file.read_text().strip(), int(time.time()) + 3600)

    endpoint = env.azure.arm_endpoint
    return ComputeManagementClient(LabToken(), env.azure.subscription, base_url=endpoint,  # type: ignore[arg-type]
                                   credential_scopes=[f"{endpoint}/.default"],
                                   connection_verify=env.azure.ca_file)


def _truth(env: Environment, *, since: float) -> list[dict[str, Any]]:
    """The lab's ground-truth lines from real time ``since`` on."""
    assert env.lab is not None
    return [line for line in read(Path(env.lab.ground_truth)) if line["real"] >= since]


def _lab_time(env: Environment) -> Callable[[float], float]:
    """Converts a real instant to the lab's clock, from the lab's own record of when it started."""
    assert env.lab is not None
    started = next(line for line in read(Path(env.lab.ground_truth)) if line["event"] == "lab_started")
    return lambda real: started["lab"] + (real - started["real"]) * env.time_scale
