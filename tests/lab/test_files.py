"""The lab's environment file states the Traffic Manager settings the design review predicts from."""

from __future__ import annotations

from pathlib import Path

from drills.environment import load_environment
from drills.lab.files import LabAddresses, RegionAddress, write_cosmos_key, write_environment
from drills.lab.topology import load_topology


def test_the_environment_file_carries_the_topologys_ttl_routing_and_monitor(tmp_path: Path) -> None:
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text("trafficManager:\n  ttl: 300s\n  monitor: {interval: 30s, timeout: 10s, "
                             "toleratedFailures: 5, path: /health,\n"
                             "    expectedStatusCodeRanges: [{min: 200, max: 204}]}\n")
    addresses = LabAddresses(regions=(RegionAddress("us", "127.0.0.11", 6443),
                                      RegionAddress("eu", "127.0.0.12", 6443)),
                             service_port=8080, dns_address="127.0.0.53", dns_port=5353,
                             arm_url="https://127.0.0.53:8443")
    path = tmp_path / "environment.yaml"
    write_environment(path, addresses, topology=load_topology(topology_file),
                      kubeconfig=tmp_path / "kubeconfig", ground_truth=tmp_path / "ground-truth.jsonl", pid=1,
                      ca=tmp_path / "ca.crt", arm_token=tmp_path / "arm.token")
    tm = load_environment(path).traffic_manager
    assert (tm.ttl, tm.routing) == (300.0, "Priority")
    assert tm.monitor is not None
    assert (tm.monitor.protocol, tm.monitor.path, tm.monitor.interval, tm.monitor.timeout,
            tm.monitor.tolerated_failures) == ("HTTP", "/health", 30.0, 10.0, 5)
    assert [(r.min, r.max) for r in tm.monitor.expected_status_code_ranges] == [(200, 204)]


def test_the_environment_file_names_the_labs_azure_resources_and_where_its_token_is(tmp_path: Path) -> None:
    addresses = LabAddresses(regions=(RegionAddress("us", "127.0.0.11", 6443),
                                      RegionAddress("eu", "127.0.0.12", 6443)),
                             service_port=8080, dns_address="127.0.0.53", dns_port=5353,
                             arm_url="https://127.0.0.53:8443")
    path = tmp_path / "environment.yaml"
    write_environment(path, addresses, topology=load_topology(None), kubeconfig=tmp_path / "kubeconfig",
                      ground_truth=tmp_path / "ground-truth.jsonl", pid=1, ca=tmp_path / "ca.crt",
                      arm_token=tmp_path / "arm.token")
    env = load_environment(path)
    assert env.azure is not None
    assert env.azure.arm_endpoint == "https://127.0.0.53:8443"
    assert env.azure.ca_file == str(tmp_path / "ca.crt")
    assert env.lab is not None
    assert env.lab.arm_token_file == str(tmp_path / "arm.token")
    assert (env.traffic_manager.resource_group, env.traffic_manager.profile) == ("drill-lab", "shop")
    pools = {name: [(p.resource_group, p.scale_set) for p in r.node_pools] for name, r in env.regions.items()}
    assert pools == {"us": [("MC_drill-lab_aks-us_eastus", "aks-nodepool1-us-vmss")],
                     "eu": [("MC_drill-lab_aks-eu_westeurope", "aks-nodepool1-eu-vmss")]}


def test_the_environment_file_names_the_cosmos_account_its_global_endpoint_and_key_file(
        tmp_path: Path) -> None:
    topology_file = tmp_path / "topology.yaml"
    topology_file.write_text("cosmos:\n  account: orders\n  database: shop\n  container: canary\n"
                             "  locations: {eu: North Europe}\n")
    addresses = LabAddresses(regions=(RegionAddress("us", "127.0.0.11", 6443, cosmos_port=8081),
                                      RegionAddress("eu", "127.0.0.12", 6443, cosmos_port=8082)),
                             service_port=8080, dns_address="127.0.0.53", dns_port=5353,
                             arm_url="https://127.0.0.53:8443", cosmos_port=8443)
    path = tmp_path / "environment.yaml"
    write_cosmos_key(tmp_path / "cosmos.key", "a2V5")
    write_environment(path, addresses, topology=load_topology(topology_file),
                      kubeconfig=tmp_path / "kubeconfig", ground_truth=tmp_path / "ground-truth.jsonl", pid=1,
                      ca=tmp_path / "ca.crt", arm_token=tmp_path / "arm.token",
                      cosmos_key=tmp_path / "cosmos.key")
    env = load_environment(path)
    assert env.cosmos is not None
    assert env.lab is not None
    assert (env.cosmos.account, env.cosmos.endpoint, env.cosmos.database, env.cosmos.container) == (
        "orders", "https://127.0.0.11:8443/", "shop", "canary")
    assert env.cosmos.locations == {"us": "East US", "eu": "North Europe"}
    assert env.cosmos.resource_group == "drill-lab"
    assert env.lab.cosmos_key_file == str((tmp_path / "cosmos.key").resolve())
    assert (tmp_path / "cosmos.key").read_text() == "a2V5\n"
    assert (tmp_path / "cosmos.key").stat().st_mode & 0o777 == 0o600
