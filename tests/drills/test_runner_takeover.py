"""Which regions a scenario expects to take over, which the pre-flight then checks."""

from __future__ import annotations

from pathlib import Path

from drills.environment import Environment
from drills.runner.takeover import takeover_regions
from drills.scenario import load_scenario

ENV = Environment.model_validate({
    "apiVersion": "drill/v1", "kind": "Environment", "name": "test",
    "regions": {name: {"context": name, "ingress": {"namespace": "i", "deployment": "i"}, "endpoint": name,
                       "target": f"{name}.t"} for name in ("us", "eu", "asia")},
    "trafficManager": {"fqdn": "shop.trafficmanager.net", "nameservers": ["127.0.0.1:53"]}})


def _regions(tmp_path: Path, steps: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(f"apiVersion: drill/v1\nname: s\nprobes:\n  dns: {{kind: dns}}\nsteps:\n{steps}")
    return takeover_regions(load_scenario(path, regions=set(ENV.regions), variables={}), ENV)


def test_every_region_but_the_one_whose_front_door_goes_takes_over(tmp_path: Path) -> None:
    assert _regions(tmp_path, "  - {fault: kill-ingress, cluster: us}\n") == ["eu", "asia"]


def test_a_wait_naming_a_region_expects_it_to_take_over(tmp_path: Path) -> None:
    steps = ("  - {fault: cordon-zone, cluster: us, zone: zone-1}\n"
             "  - parallel:\n      - {wait: dns.answer == EU, timeout: 1m}\n")
    assert _regions(tmp_path, steps) == ["eu"]


def test_a_scenario_that_takes_no_front_door_out_expects_no_takeover(tmp_path: Path) -> None:
    assert _regions(tmp_path, "  - {fault: cordon-zone, cluster: us, zone: zone-1}\n  - wait: 1m\n") == []
