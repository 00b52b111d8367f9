"""The JSON Schema of the format: committed up to date, valid draft 2020-12, and agreeing with the
loader on good and bad files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from drills.plugins import Plugins
from drills.scenario.schema import REGENERATE, main, render, scenario_schema

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "scenarios" / "schema.json"

GOOD = """
    apiVersion: drill/v1
    name: us-outage
    probes:
      dns: {kind: dns, every: 1s}
      users: {kind: http, path: /, every: 500ms}
      web_eu: {kind: replicas, cluster: eu, namespace: shop, deployment: web}
    steps:
      - {fault: kill-ingress, cluster: us, id: kill}
      - {fault: delete-pods, cluster: eu, namespace: shop, selector: app=web, share: 50%, timeout: 2m}
      - wait: dns.answer == eu
        timeout: 10m
      - wait: 5m
      - parallel:
          - {fault: cordon-zone, cluster: eu, zone: zone-1}
          - wait: 30s
      - undo: kill
    expect:
      - dns.failover_time < 3m
      - web_eu.min_ready >= 3
    guards:
      - users.error_rate > 80% for 8m
    rollback: auto
    """


def _yaml(text: str) -> Any:
    yaml = YAML(typ="safe")
    yaml.version = (1, 2)
    return yaml.load(textwrap.dedent(text))


def _validator(plugins: Plugins) -> Draft202012Validator:
    schema = scenario_schema(plugins)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_the_committed_schema_is_current() -> None:
    assert COMMITTED.is_file(), f"scenarios/schema.json is missing: run `{REGENERATE}`"
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "scenarios/schema.json is stale (the format or an installed fault or probe changed): "
        f"run `{REGENERATE}`")


def test_the_command_writes_a_deterministic_file(tmp_path: Path, fake_plugins: Plugins,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("drills.plugins.installed", lambda: fake_plugins)
    target = tmp_path / "out" / "schema.json"
    assert main([str(target)]) == 0
    text = target.read_text(encoding="utf-8")
    assert text == render(fake_plugins)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_each_fault_and_probe_kind_brings_its_own_keys(fake_plugins: Plugins) -> None:
    defs = scenario_schema(fake_plugins)["$defs"]
    assert sorted(defs["faultStep"]["properties"]["fault"]["enum"]) == ["cordon-zone", "delete-pods",
                                                                        "kill-ingress"]
    assert sorted(defs["fault.delete-pods"]["properties"]) == ["cluster", "fault", "id", "namespace",
                                                               "selector", "share", "timeout"]
    assert defs["fault.delete-pods"]["required"] == ["fault", "cluster", "namespace", "selector"]
    assert sorted(defs["probe.replicas"]["properties"]) == ["cluster", "deployment", "every", "kind",
                                                            "namespace"]


def test_a_good_scenario_validates(fake_plugins: Plugins) -> None:
    errors = list(_validator(fake_plugins).iter_errors(_yaml(GOOD)))
    assert errors == []


@pytest.mark.parametrize(("change", "path"), [
    ({"expcet": []}, []),
    ({"apiVersion": "drill/v2"}, ["apiVersion"]),
    ({"probes": {"dns": {"kind": "dns", "every": "fast"}}}, ["probes", "dns"]),
    ({"probes": {"dns": {"kind": "ping"}}}, ["probes", "dns"]),
    ({"probes": {"users": {"kind": "http", "pth": "/"}}}, ["probes", "users"]),
    ({"probes": {"Users": {"kind": "http"}}}, ["probes"]),
    ({"steps": [{"fault": "kill-ingress", "cluster": "us", "clustr": "eu"}]}, ["steps", 0]),
    ({"steps": [{"fault": "kill-ingres", "cluster": "us"}]}, ["steps", 0]),
    ({"steps": [{"wait": "5 minutes"}]}, ["steps", 0]),
    ({"steps": [{"wait": "dns.answer == eu", "timout": "5m"}]}, ["steps", 0]),
    ({"steps": [{"wait": "1m", "fault": "kill-ingress", "cluster": "us"}]}, ["steps", 0]),
    ({"steps": []}, ["steps"]),
    ({"expect": ["dns.failover_time"]}, ["expect", 0]),
    ({"guards": ["users.error_rate > 80% for ever"]}, ["guards", 0]),
    ({"rollback": "later"}, ["rollback"]),
])
def test_what_the_loader_refuses_the_schema_flags(fake_plugins: Plugins, change: dict[str, Any],
                                                  path: list[str | int]) -> None:
    document = {**_yaml(GOOD), **change}
    errors = list(_validator(fake_plugins).iter_errors(document))
    assert errors, f"the schema accepts {change}"
    assert any(list(e.absolute_path)[:len(path)] == path for e in errors), [e.message for e in errors]


def test_with_no_plugins_the_schema_still_describes_the_format() -> None:
    validator = _validator(Plugins())
    minimal = {"apiVersion": "drill/v1", "name": "x", "steps": [{"wait": "1m"}]}
    assert list(validator.iter_errors(minimal)) == []
