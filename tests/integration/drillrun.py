"""Helpers for whole drills against labs: running ``drill`` as a user does, and checking the lab is
as it was.

:func:`drill` runs one command through :func:`drills.cli.main` and, for ``run``, hands back the
run's record. :func:`snapshot` captures what a drill may change in a lab (nodes' unschedulable,
deployments' replicas, network policies, PodDisruptionBudgets), so that a test can compare before
and after: every drill must leave the lab as it found it. :func:`world_snapshot` adds the nodes' taints
and the Azure side (:func:`azure_state`): everything any fault changes, in both regions;
:func:`settled_world` waits for a world coming back (a VM booting) to equal one. :func:`flawed_lab`
starts a lab with one of the flawed designs in ``topologies/``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.cosmosdb import CosmosDBManagementClient
from azure.mgmt.trafficmanager import TrafficManagerManagementClient
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.cli import main
from drills.environment import Environment
from drills.lab.groundtruth import read as read_ground_truth
from drills.labprocess import LabProcess, start_lab

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
TEST_SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TOPOLOGIES = Path(__file__).resolve().parent / "topologies"

FLAWED_TIME_SCALE = 60.0
"""The flawed designs' labs run at the shared labs' scale (tests/conftest.py): their drills are long
(a 5-minute TTL, 5 minutes of detection), but faster clocks leave a loaded machine's stalls of a few
hundred milliseconds worth tens of lab seconds."""


@dataclass(frozen=True)
class Finished:
    """A finished ``drill run``: its exit code, record and directory, and what it printed."""

    code: int
    record: dict[str, Any]
    run_dir: Path
    output: str

    def metric(self, name: str) -> dict[str, Any]:
        return self.record["metrics"][name]

    def expectation(self, text: str) -> dict[str, Any]:
        return next(e for e in self.record["expectations"] if e["expect"] == text)

    def failed_expectations(self) -> set[str]:
        return {e["expect"] for e in self.record["expectations"] if not e["passed"]}


def drill_run(runs: Path, *args: str) -> Finished:
    """``drill run ARGS --runs-dir RUNS``; the run it made (there must be exactly one new)."""
    before = set(runs.iterdir()) if runs.exists() else set()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["run", *args, "--runs-dir", str(runs)])
    # Directories only: the runs dir also holds the history index (history.sqlite).
    made = sorted(p for p in set(runs.iterdir()) - before if p.is_dir()) if runs.exists() else []
    output = out.getvalue() + err.getvalue()
    assert len(made) == 1, f"expected one run directory, got {made}; drill said:\n{output}"
    record = json.loads((made[0] / "run.json").read_text())
    assert record["exit_code"] == code
    return Finished(code=code, record=record, run_dir=made[0], output=output)


LabState = dict[str, Any]


class _LabToken:
    """A synchronous credential holding the lab's ARM token (drill's own is asynchronous)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._path.read_text().strip(), int(time.time()) + 3600)


def azure_state(env: Environment) -> dict[str, Any]:
    """What the Azure faults may change in a lab, read through the real SDKs: each Traffic Manager
    endpoint's status, the Cosmos DB account's write and read locations and failover priorities, each
    node pool instance's power state."""
    tm = env.traffic_manager
    assert env.cosmos is not None
    with _arm_clients(env) as (traffic_manager, cosmos, compute):
        profile = traffic_manager.profiles.get(tm.resource_group, tm.profile)
        account = cosmos.database_accounts.get(env.cosmos.resource_group, env.cosmos.account)
        power = {}
        for name, region in env.regions.items():
            for pool in region.node_pools:
                for vm in compute.virtual_machine_scale_set_vms.list(pool.resource_group, pool.scale_set,
                                                                    expand="instanceView"):
                    codes = [s.code for s in vm.instance_view.statuses if s.code.startswith("PowerState/")]
                    power[f"{name}/{vm.instance_id}"] = codes
        return {
            "endpoints": {e.name: getattr(e.properties.endpoint_status, "value", e.properties.endpoint_status)
                          for e in profile.properties.endpoints},
            "write": [loc.location_name for loc in account.write_locations],
            "read": sorted(loc.location_name for loc in account.read_locations),
            "failover": {p.location_name: p.failover_priority for p in account.failover_policies},
            "power": power,
        }


def azure_tags(env: Environment) -> dict[str, dict[str, str]]:
    """The tags of the Azure resources a drill may mark (Traffic Manager profile, node pools' scale
    sets, Cosmos DB account), by resource id, read through the real SDKs."""
    tm = env.traffic_manager
    assert env.cosmos is not None
    assert env.cosmos.resource_group is not None
    with _arm_clients(env) as (traffic_manager, cosmos, compute):
        resources = [traffic_manager.profiles.get(tm.resource_group, tm.profile),
                     cosmos.database_accounts.get(env.cosmos.resource_group, env.cosmos.account)]
        resources += [compute.virtual_machine_scale_sets.get(pool.resource_group, pool.scale_set)
                      for region in env.regions.values() for pool in region.node_pools]
        return {r.id: dict(r.tags or {}) for r in resources}


@contextmanager
def _arm_clients(env: Environment) -> Iterator[tuple[TrafficManagerManagementClient, CosmosDBManagementClient,
                                                     ComputeManagementClient]]:
    """The lab's Traffic Manager, Cosmos DB and Compute management clients, with its token."""
    assert env.azure is not None
    assert env.lab is not None
    assert env.lab.arm_token_file is not None
    credential = _LabToken(env.lab.arm_token_file)
    options = {"base_url": env.azure.arm_endpoint, "connection_verify": env.azure.ca_file,
               "credential_scopes": [f"{env.azure.arm_endpoint}/.default"]}
    subscription = env.azure.subscription
    with TrafficManagerManagementClient(credential, subscription, **options) as traffic_manager, \
            CosmosDBManagementClient(credential, subscription, **options) as cosmos, \
            ComputeManagementClient(credential, subscription, **options) as compute:
        yield traffic_manager, cosmos, compute


def snapshot(env: Environment) -> LabState:
    """What a drill may change, per region: nodes' unschedulable, deployments' replicas, network
    policies, PodDisruptionBudgets."""
    state: LabState = {}
    for name, region in env.regions.items():
        api = k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
        try:
            core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
            policy, net = k8s.PolicyV1Api(api), k8s.NetworkingV1Api(api)
            state[name] = {
                "unschedulable": {n.metadata.name: bool(n.spec.unschedulable)
                                  for n in core.list_node().items},
                "replicas": {f"{d.metadata.namespace}/{d.metadata.name}": d.spec.replicas
                             for d in apps.list_deployment_for_all_namespaces().items},
                "network_policies": sorted(f"{p.metadata.namespace}/{p.metadata.name}"
                                           for p in net.list_network_policy_for_all_namespaces().items),
                "pdbs": {f"{p.metadata.namespace}/{p.metadata.name}":
                         (str(p.spec.min_available), str(p.spec.max_unavailable))
                         for p in policy.list_pod_disruption_budget_for_all_namespaces().items},
            }
        finally:
            api.close()
    return state


def world_snapshot(env: Environment) -> LabState:
    """Everything any fault may change, in both regions, read through the real clients: per region what
    :func:`snapshot` reads plus each node's taints (``key:effect``; when they were added is not state),
    and under ``"azure"`` what :func:`azure_state` reads (endpoint statuses, Cosmos DB locations and
    failover priorities, scale set instances' power states). Two equal snapshots mean a drill, or its
    recovery, left the lab as it found it."""
    state = snapshot(env)
    for name, region in env.regions.items():
        api = k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
        try:
            nodes = k8s.CoreV1Api(api).list_node().items
            state[name]["taints"] = {n.metadata.name: sorted(f"{t.key}:{t.effect}"
                                                             for t in n.spec.taints or []) for n in nodes}
        finally:
            api.close()
    state["azure"] = azure_state(env)
    return state


def settled_world(env: Environment, expected: LabState, *, timeout: float = 20.0) -> LabState:
    """The world snapshot once it equals ``expected``, or the last one read after ``timeout`` real
    seconds. Undoing some faults takes the lab's own time to show (a started VM boots, then its node
    turns Ready and loses its taints): the world must come back, not be back at the first look. The
    lab offers no watch across Kubernetes and ARM, so this looks again every 0.1 s."""
    deadline = time.monotonic() + timeout
    while (state := world_snapshot(env)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return state


@contextmanager
def unchanged(env: Environment) -> Iterator[LabState]:
    """Assert that the lab is as it was once the block is done."""
    before = snapshot(env)
    assert not any(any(r["unschedulable"].values()) for r in before.values()), "the lab starts cordoned"
    yield before
    assert snapshot(env) == before


@contextmanager
def flawed_lab(topology: str, directory: Path) -> Iterator[LabProcess]:
    """A lab of the flawed design ``topologies/<topology>.yaml``."""
    with start_lab(topology=TOPOLOGIES / f"{topology}.yaml", time_scale=FLAWED_TIME_SCALE,
                   directory=directory) as lab:
        yield lab


def ground_truth(env: Environment) -> list[dict[str, Any]]:
    """The lab's ground-truth log."""
    assert env.lab is not None
    return read_ground_truth(Path(env.lab.ground_truth))
