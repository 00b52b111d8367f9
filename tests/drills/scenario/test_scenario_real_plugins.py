"""The format with drill's own faults and probes: the design's example, and every shipped scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from drills.errors import SourceErrors
from drills.lab.topology import DEFAULT
from drills.scenario import FaultStep, load_scenario

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
LAB_REGIONS = set(DEFAULT.regions)
LAB_VARIABLES = {"name": "lab", "fqdn": DEFAULT.traffic_manager.fqdn}

DESIGN_EXAMPLE = """\
apiVersion: drill/v1
name: us-outage
description: The US ingress dies; users must be served from Europe within 3 minutes.
probes:
  dns:    {kind: dns, every: 1s}
  users:  {kind: http, path: /, every: 500ms}
  web_eu: {kind: replicas, cluster: eu, namespace: shop, deployment: web}
steps:
  - fault: kill-ingress
    cluster: us
  - wait: dns.answer == eu
    timeout: 10m
  - wait: 5m
expect:
  - dns.failover_time < 3m
  - users.downtime < 4m
  - web_eu.min_ready >= 3
guards:
  - users.error_rate > 80% for 8m
"""


def test_the_design_example_loads_with_the_real_plugins(tmp_path: Path) -> None:
    path = tmp_path / "us-outage.yaml"
    path.write_text(DESIGN_EXAMPLE)
    scenario = load_scenario(path, regions=LAB_REGIONS, variables=LAB_VARIABLES)
    assert {name: spec.kind for name, spec in scenario.probes.items()} == {
        "dns": "dns", "users": "http", "web_eu": "replicas"}
    (kill,) = scenario.fault_steps()
    assert isinstance(kill, FaultStep)
    assert (kill.fault, kill.region) == ("kill-ingress", "us")


def test_misspelt_real_names_get_the_real_close_match(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text(DESIGN_EXAMPLE.replace("cluster: us", "cluster: us\n    zone: zone-1")
                    .replace("users.downtime", "users.downtme").replace("kind: replicas", "kind: replica"))
    with pytest.raises(SourceErrors) as info:
        load_scenario(path, regions=LAB_REGIONS, variables=LAB_VARIABLES)
    assert [str(e).removeprefix(f"{path}:") for e in info.value.errors] == [
        "7:18: unknown probe kind 'replica' (did you mean 'replicas'?)",
        "11:5: unknown key 'zone' (kill-ingress takes 'cluster', 'fault' and 'id')",
        "17:11: probe 'users' has no metric 'downtme' (did you mean 'downtime'?)",
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_scenario_validates_against_the_loader_and_the_schema(path: Path) -> None:
    load_scenario(path, regions=LAB_REGIONS, variables=LAB_VARIABLES)
    schema = json.loads((ROOT / "scenarios" / "schema.json").read_text())
    yaml = YAML(typ="safe")
    yaml.version = (1, 2)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(yaml.load(path.read_text()))]
    assert errors == []



AZURE_SCENARIO = """\
apiVersion: drill/v1
name: planned-failover
probes:
  tm: {kind: traffic-manager}
  dns: {kind: dns}
steps:
  - {id: disable-us, fault: disable-endpoint, region: us}
  - wait: tm.status.us == Disabled
  - {id: zone-down, fault: zone-down, cluster: eu, zone: zone-1}
  - {fault: disable-endpoint, endpoint: other}
expect:
  - tm.time_to_online.us < 1m
"""


def test_the_azure_faults_and_probe_load_with_the_real_plugins_and_fit_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "planned-failover.yaml"
    path.write_text(AZURE_SCENARIO)
    scenario = load_scenario(path, regions=LAB_REGIONS, variables=LAB_VARIABLES)
    assert scenario.probes["tm"].every == 5.0  # the kind's own default: it polls ARM
    assert scenario.probes["dns"].every == 1.0
    assert [(s.id, s.fault, s.region) for s in scenario.fault_steps()] == [
        ("disable-us", "disable-endpoint", "us"), ("zone-down", "zone-down", "eu"),
        ("step-4", "disable-endpoint", "")]
    schema = json.loads((ROOT / "scenarios" / "schema.json").read_text())
    yaml = YAML(typ="safe")
    yaml.version = (1, 2)
    assert [e.message for e in Draft202012Validator(schema).iter_errors(yaml.load(AZURE_SCENARIO))] == []


def test_an_azure_faults_region_must_be_one_of_the_environments(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(AZURE_SCENARIO.replace("region: us", "region: uss").replace("zone: zone-1}", "}"))
    with pytest.raises(SourceErrors) as info:
        load_scenario(path, regions=LAB_REGIONS, variables=LAB_VARIABLES)
    assert [str(e).removeprefix(f"{path}:") for e in info.value.errors] == [
        "7:55: region 'uss' is not a region of this environment (did you mean 'us'?)",
        "9:5: missing required key 'zone'",
    ]
