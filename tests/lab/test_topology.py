"""Topology files: Traffic Manager's own limits on the monitor settings and the TTL (docs/protocol-facts.md),
names the lab turns into DNS names, each mistake reported at its place before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.errors import SourceErrors
from drills.lab.topology import MAX_TTL_S, Topology, load_topology


def _load(tmp_path: Path, text: str) -> Topology:
    path = tmp_path / "topology.yaml"
    path.write_text(text, encoding="utf-8")
    return load_topology(path)


@pytest.mark.parametrize(("text", "where", "message"), [
    ("trafficManager:\n  monitor: {interval: 20s}\n", "2:23", "Traffic Manager probes every 10s or 30s"),
    ("trafficManager:\n  monitor: {interval: 10s, timeout: 10s}\n", "2:12",
     "with interval 10s the timeout must be 5s to 9s"),
    ("trafficManager:\n  monitor: {interval: 30s, timeout: 11s}\n", "2:12",
     "with interval 30s the timeout must be 5s to 10s"),
    ("trafficManager:\n  monitor: {timeout: 4s}\n", "2:12", "the timeout must be 5s to 9s"),
    ("trafficManager:\n  monitor: {timeout: 5500ms}\n", "2:22",
     "the monitor timeout is a whole number of seconds, not 5.5s"),
    ("trafficManager:\n  monitor: {toleratedFailures: 10}\n", "2:32", "less than or equal to 9"),
    ("trafficManager:\n  monitor: {toleratedFailures: -1}\n", "2:32", "greater than or equal to 0"),
    ("trafficManager:\n  monitor: {path: healthz}\n", "2:19", "an absolute URL path like /healthz"),
    ("trafficManager:\n  monitor: {protocol: HTTPS}\n", "2:23", "probes HTTP only"),
    ("trafficManager:\n  monitor:\n    expectedStatusCodeRanges: [{min: 300, max: 200}]\n", "3:32",
     "a status code range runs from min to max: 300 is above 200"),
    ("trafficManager:\n  monitor:\n    expectedStatusCodeRanges: [{min: 200, max: 600}]\n", "3:48",
     "less than or equal to 599"),
    ("trafficManager:\n  monitor:\n    expectedStatusCodeRanges: [{min: 99, max: 200}]\n", "3:38",
     "greater than or equal to 100"),
    ("workloads:\n  - {namespace: shop, name: web, replicas: 3, role: app, healthPath: ready}\n"
     "  - {namespace: i, name: i, replicas: 1, role: ingress}\n", "2:70",
     "the health path is an absolute URL path like /healthz, not 'ready'"),
    ("regions:\n  eu:\n    workloads:\n      - {namespace: shop, name: wbe, replicas: 2}\n", "4:9",
     "no workload shop/wbe to override (there are shop/web, ingress-nginx/ingress-nginx-controller)"),
    ("regions:\n  eu:\n    workloads:\n      - {namespace: ingress-nginx, name: ingress-nginx-controller, "
     "capacity: 10}\n", "4:9", "capacity (requests/s per Ready pod) is the app's"),
    ("regions:\n  eu:\n    workloads:\n      - {namespace: shop, name: web, resources: {cpu: lots}}\n",
     "4:55", "cpu is a Kubernetes quantity like 500m, 2, 512Mi or 16Gi, not 'lots'"),
    ("regions:\n  eu: {nodeSize: {memory: 0Gi}}\n", "2:27", "memory must be more than 0, not '0Gi'"),
    ("regions:\n  eu: {load: -5}\n", "2:14", "greater than or equal to 0"),
    ("workloads:\n  - {namespace: shop, name: web, replicas: 3, role: app, capacity: 0}\n"
     "  - {namespace: i, name: i, replicas: 1, role: ingress}\n", "2:68", "greater than 0"),
    ("workloads:\n  - {namespace: shop, name: web, replicas: 3, role: app}\n"
     "  - {namespace: i, name: i, replicas: 1, role: ingress, capacity: 100}\n", "3:5",
     "capacity (requests/s per Ready pod) is the app's"),
    ("trafficManager:\n  ttl: 500ms\n", "2:8", "the TTL is a whole number of seconds, not 0.5s"),
    ("trafficManager:\n  ttl: 596524h\n", "2:8", f"the TTL must be at most {MAX_TTL_S}s"),
    ("regions:\n  US East: {priority: 3}\n", "2:3", "region name 'US East' must be a DNS label"),
    ("regions:\n  us: {zones: [a, b, a]}\n", "2:15", "each zone is listed once; repeated: a"),
    ("nodeFailureTimeout: 90500ms\n", "1:21", "the node failure timeout (a pod's tolerationSeconds) is a "
                                               "whole number of seconds, not 90.5s"),
])
def test_a_setting_azure_or_the_lab_cannot_take_is_refused_at_its_place(
        tmp_path: Path, text: str, where: str, message: str) -> None:
    with pytest.raises(SourceErrors) as caught:
        _load(tmp_path, text)
    assert len(caught.value.errors) == 1
    error = str(caught.value.errors[0])
    assert error.startswith(f"{tmp_path / 'topology.yaml'}:{where}: "), error
    assert message in error


@pytest.mark.parametrize(("text", "interval", "timeout", "tolerated", "ttl"), [
    ("trafficManager:\n  ttl: 0s\n  monitor: {interval: 10s, timeout: 5s, toleratedFailures: 0}\n",
     10.0, 5.0, 0, 0.0),
    ("trafficManager:\n  ttl: 2147483647s\n  monitor: {interval: 30s, timeout: 10s, toleratedFailures: 9}\n",
     30.0, 10.0, 9, float(MAX_TTL_S)),
    ("trafficManager:\n  monitor: {interval: 10s, timeout: 9s}\n", 10.0, 9.0, 3, 30.0),
])
def test_the_edges_of_every_range_are_accepted(tmp_path: Path, text: str, interval: float, timeout: float,
                                               tolerated: int, ttl: float) -> None:
    topology = _load(tmp_path, text)
    monitor = topology.traffic_manager.monitor
    assert (monitor.interval, monitor.timeout, monitor.tolerated_failures) == (interval, timeout, tolerated)
    assert topology.traffic_manager.ttl == ttl


def test_expected_status_code_ranges_decide_a_probes_success(tmp_path: Path) -> None:
    default = _load(tmp_path, "{}\n").traffic_manager.monitor
    assert [default.succeeds(s) for s in (200, 204, 302, 404)] == [True, False, False, False]
    ranged = _load(tmp_path, "trafficManager:\n  monitor:\n    expectedStatusCodeRanges:\n"
                             "      - {min: 200, max: 299}\n      - {min: 301, max: 301}\n"
                   ).traffic_manager.monitor
    assert [ranged.succeeds(s) for s in (199, 200, 204, 299, 300, 301, 302, 404)] == [
        False, True, True, True, False, True, False, False]


def test_a_regions_overrides_change_only_that_region(tmp_path: Path) -> None:
    topology = _load(tmp_path, "regions:\n  eu:\n    load: 300\n    nodeSize: {cpu: 8, memory: 32Gi}\n"
                               "    workloads:\n"
                               "      - {namespace: shop, name: web, replicas: 2, capacity: 75,\n"
                               "         resources: {cpu: 1, memory: 1Gi}}\n")
    eu, us = topology.app_in("eu"), topology.app_in("us")
    assert (eu.replicas, eu.capacity, eu.resources.cpu, eu.resources.memory) == (2, 75.0, "1", "1Gi")
    assert (us.replicas, us.capacity, us.resources.cpu, us.resources.memory) == (3, None, "100m", "128Mi")
    assert (topology.regions["eu"].node_size.cpu, topology.regions["us"].node_size.cpu) == ("8", "4")
    assert (topology.regions["eu"].load, topology.regions["us"].load, topology.total_load) == (300, 100, 400)
    assert topology.regions["eu"].priority == 2  # the rest of the region is the default's


def test_the_default_regions_users_are_in_the_documentation_ranges(tmp_path: Path) -> None:
    topology = _load(tmp_path, "trafficManager: {routing: Performance}\n")
    assert {name: r.subnets for name, r in topology.regions.items()} == {
        "us": ["198.51.100.0/24"], "eu": ["203.0.113.0/24"]}
    assert topology.regions["eu"].mapped == ["203.0.113.0/24"]  # Geographic: its own users by default
    assert topology.traffic_manager.geographic_fallback == "none"


@pytest.mark.parametrize(("text", "message"), [
    ("trafficManager: {routing: Geographic}\nregions:\n  eu: {geography: [198.51.100.0/24, WORLD]}\n",
     "topology.yaml:3:20: region eu's geography: 198.51.100.0/24 is also region us's: Geographic routing "
     "maps each geography to exactly one endpoint"),
    ("trafficManager: {routing: Geographic}\nregions:\n  us: {geography: [WORLD]}\n"
     "  eu: {geography: [world]}\n", "topology.yaml:4:20: region eu's geography: WORLD is also region us's"),
    ("regions:\n  eu:\n    subnets: [203.0.113.0/24, 198.51.0.0/16]\n",
     "topology.yaml:3:31: region eu's subnets: 198.51.0.0/16 overlaps 198.51.100.0/24, which is also "
     "region us's: a user is in one region"),
    ("regions:\n  eu: {subnets: [203.0.113.0/33]}\n",
     "'203.0.113.0/33' is not a subnet like 198.51.100.0/24"),
])
def test_a_subnet_two_regions_claim_is_refused_at_its_place(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourceErrors) as caught:
        _load(tmp_path, text)
    assert message in str(caught.value)


def test_a_geography_may_hold_another_when_the_routing_is_not_geographic(tmp_path: Path) -> None:
    # Performance routing never reads the mapping: only the users' own subnets must not overlap.
    topology = _load(tmp_path, "trafficManager: {routing: Performance}\nregions:\n"
                               "  eu: {geography: [198.51.100.0/24]}\n")
    assert topology.regions["eu"].mapped == ["198.51.100.0/24"]
@pytest.mark.parametrize(("text", "message"), [
    ("cosmos:\n  lag: {p50: 400ms, p99: 80ms}\n", "the lag's p99 (0.08s) cannot be below its p50 (0.4s)"),
    ("cosmos:\n  lag: {p50: 0s, p99: 1s}\n", "a lag with p50 0s is always 0s"),
    ("cosmos:\n  lag: {p50: 80}\n", "expected a duration with a unit"),
    ("cosmos:\n  consistency: Linearizable\n", "'Strong', 'BoundedStaleness', 'Session', 'ConsistentPrefix'"),
    ("cosmos:\n  account: Shop_DB\n", "a Cosmos DB account name is 3-44 lower-case letters"),
    ("cosmos:\n  container: a/b\n", "a Cosmos DB database or container id has no '/'"),
    ("cosmos:\n  partitionKey: pk\n", "the partition key is one top-level path like /pk, not 'pk'"),
    ("cosmos:\n  locations: {asia: Japan East}\n",
     "cosmos locations name regions the topology does not have: asia"),
    ("cosmos:\n  locations: {eu: East US}\n", "each region needs its own Cosmos location; shared: East US"),
    ("cosmos:\n  failoverPriorities: [eu]\n",
     "cosmos failoverPriorities lists every region once (us, eu), not eu"),
    ("cosmos:\n  failoverPriorities: [eu, eu]\n", "lists every region once (us, eu), not eu, eu"),
])
def test_a_cosmos_setting_the_lab_cannot_take_is_refused_with_what_it_takes(
        tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SourceErrors) as caught:
        _load(tmp_path, text)
    assert len(caught.value.errors) == 1
    assert message in str(caught.value.errors[0])


def test_cosmos_defaults_to_a_session_account_written_in_the_first_traffic_manager_region(
        tmp_path: Path) -> None:
    topology = _load(tmp_path, "regions:\n  us: {priority: 2}\n  eu: {priority: 1}\n  ap: {priority: 3}\n")
    cosmos = topology.cosmos
    assert (cosmos.account, cosmos.database, cosmos.container, cosmos.partition_key) == (
        "shop-db", "shop", "canary", "/pk")
    assert cosmos.consistency == "Session"
    assert (cosmos.lag.p50, cosmos.lag.p99) == (0.08, 0.4)
    assert [topology.cosmos_location(r) for r in ("us", "eu", "ap")] == ["East US", "West Europe", "ap"]
    assert topology.cosmos_failover_order() == ["eu", "us", "ap"]


def test_cosmos_settings_in_a_file_replace_the_defaults(tmp_path: Path) -> None:
    topology = _load(tmp_path, "cosmos:\n  consistency: Strong\n  lag: {p50: 2s, p99: 30s}\n"
                               "  locations: {us: West US 2}\n  failoverPriorities: [eu, us]\n")
    assert topology.cosmos.consistency == "Strong"
    assert (topology.cosmos.lag.p50, topology.cosmos.lag.p99) == (2.0, 30.0)
    assert [topology.cosmos_location(r) for r in ("us", "eu")] == ["West US 2", "West Europe"]
    assert topology.cosmos_failover_order() == ["eu", "us"]
