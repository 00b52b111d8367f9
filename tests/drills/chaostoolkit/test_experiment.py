"""The mapping of a scenario to a Chaos Toolkit experiment: what is exported, what is left out and
said, what is refused with a clear message; and that Chaos Toolkit accepts what drill writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InvalidExperiment
from chaoslib.experiment import ensure_experiment_is_valid

from drills.chaostoolkit.experiment import ExportRefused, experiment
from drills.chaostoolkit.probes import holds
from drills.cli import main
from drills.plugins import installed
from drills.runner.session import Where, validate
from probes.base import SignalValue

REPO = Path(__file__).resolve().parents[3]


def _export(file: Path, environment: str | None = None) -> dict[str, Any]:
    plugins = installed()
    scenario, _ = validate(file, Where(), plugins=plugins)
    return experiment(scenario, environment=environment)


def _calls(activities: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["name"], a["provider"]["func"]) for a in activities]


@pytest.fixture(scope="module")
def us_outage() -> dict[str, Any]:
    return _export(REPO / "scenarios" / "us-outage.yaml")


def test_the_hypothesis_is_every_probes_steady_state(us_outage: dict[str, Any]) -> None:
    probes = us_outage["steady-state-hypothesis"]["probes"]
    assert [(p["name"], p["provider"]["arguments"]["signal"]) for p in probes] == [
        ("dns is steady", "steady"), ("users is steady", "steady"), ("web_eu is steady", "steady")]
    assert [p["tolerance"] for p in probes] == [True, True, True]
    assert probes[2]["provider"]["arguments"]["spec"] == {"cluster": "eu", "namespace": "shop",
                                                          "deployment": "web"}


def test_a_floor_over_the_incident_is_left_out_not_checked_before_and_after() -> None:
    # zone-loss's key promise: web keeps 2 replicas while the zone is lost. The hypothesis is checked
    # before and after the method only, when all 3 are up: as `ready >= 2` it would pass a design that
    # drops to 0 during the incident.
    exported = _export(REPO / "scenarios" / "zone-loss.yaml")
    names = [p["name"] for p in exported["steady-state-hypothesis"]["probes"]]
    assert names == ["users is steady", "web_us is steady"]
    left = {o["item"]: o["why"] for o in exported["extensions"][0]["not_exported"]}
    assert "the lowest value during the incident" in left["expectation: web_us.min_ready >= 2"]
    assert "never during it" in left["expectation: web_us.min_ready >= 2"]
    assert set(left) == {"expectation: users.downtime < 10s", "expectation: web_us.min_ready >= 2",
                         "expectation: web_us.time_to_restore < 1m"}


def test_what_needs_the_whole_timeline_is_left_out_and_said(us_outage: dict[str, Any]) -> None:
    [drill] = us_outage["extensions"]
    assert [o["item"] for o in drill["not_exported"]] == [
        "expectation: dns.failover_time < 3m", "expectation: dns.client_failover_time < 4m",
        "expectation: users.downtime < 4m", "expectation: web_eu.min_ready >= 3",
        "expectation: users.error_rate_after_failover < 5%", "guard: users.error_rate > 80% for 8m"]
    assert "needs the whole timeline" in drill["not_exported"][0]["why"]
    assert "Not exported: expectation: dns.failover_time < 3m" in us_outage["description"]
    assert "drill-partial" in us_outage["tags"]


def test_the_method_is_the_steps_and_the_rollbacks_the_undos(us_outage: dict[str, Any]) -> None:
    assert _calls(us_outage["method"]) == [("kill-us-ingress: kill-ingress in us", "apply_fault"),
                                           ("step-2: wait until dns.answer == eu", "wait_until"),
                                           ("step-3: wait 2m00s", "wait")]
    fault, until, pause = (a["provider"]["arguments"] for a in us_outage["method"])
    assert (fault["fault"], fault["params"]["cluster"]) == ("kill-ingress", "us")
    assert (until["probe"], until["signal"], until["op"], until["bound"], until["timeout"]) == (
        "dns", "answer", "==", "eu", 600.0)
    assert pause == {"seconds": 120.0}
    assert _calls(us_outage["rollbacks"]) == [("undo kill-us-ingress", "revert_fault")]


def test_undo_steps_revert_in_the_method_and_rollbacks_run_newest_first() -> None:
    exported = _export(REPO / "scenarios" / "planned-failover.yaml")
    method = _calls(exported["method"])
    assert ("step-6: undo move-data", "revert_fault") in method
    assert method.index(("step-6: undo move-data", "revert_fault")) < method.index(
        ("step-8: undo move-traffic", "revert_fault"))
    undone = [a["provider"]["arguments"]["step"] for a in exported["rollbacks"]]
    assert undone == ["move-data", "move-traffic"]


def test_the_environment_file_is_the_configurations_default_when_given(us_outage: dict[str, Any]) -> None:
    assert us_outage["configuration"]["drill_environment"] == {"type": "env", "key": "DRILL_ENVIRONMENT"}
    given = _export(REPO / "scenarios" / "us-outage.yaml", environment="/srv/drill/staging.yaml")
    assert given["configuration"]["drill_environment"]["default"] == "/srv/drill/staging.yaml"


def test_chaos_toolkit_accepts_the_experiment_once_the_environment_is_named(
        us_outage: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILL_ENVIRONMENT", raising=False)
    with pytest.raises(InvalidExperiment, match="DRILL_ENVIRONMENT"):
        ensure_experiment_is_valid(json.loads(json.dumps(us_outage)))
    monkeypatch.setenv("DRILL_ENVIRONMENT", "/srv/drill/staging.yaml")
    ensure_experiment_is_valid(json.loads(json.dumps(us_outage)))


@pytest.mark.parametrize(("op", "bound", "value", "expected"), [
    (">=", 3.0, 3, True), (">=", 3.0, 2, False), ("<", 5.0, 5.0, False), ("<", 5.0, 4.9, True),
    ("==", "eu", "EU", True), ("==", "eu", None, False), ("==", "true", True, True)])
def test_the_tolerance_judges_as_drill_judges(op: str, bound: float | str, value: SignalValue,
                                              expected: bool) -> None:
    assert holds(op, bound, value) is expected


_PARALLEL = """\
apiVersion: drill/v1
name: two-zones
probes:
  web: {kind: replicas, cluster: us, namespace: shop, deployment: web}
steps:
  - id: both
    parallel:
      - fault: cordon-zone
        cluster: us
        zone: zone-1
      - fault: cordon-zone
        cluster: us
        zone: zone-2
expect:
  - web.min_ready >= 1
"""


def test_a_parallel_step_is_refused_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "two-zones.yaml"
    file.write_text(_PARALLEL)
    with pytest.raises(ExportRefused, match=r"two-zones.yaml: scenario two-zones: step both is a 'parallel' "
                                            r"step.*write its branches as steps one after another"):
        _export(file)


def test_a_manual_rollback_is_refused_by_the_command_without_a_traceback(tmp_path: Path) -> None:
    file = tmp_path / "manual.yaml"
    file.write_text((REPO / "scenarios" / "us-outage.yaml").read_text() + "rollback: manual\n")
    done = subprocess.run([sys.executable, "-m", "drills", "export", str(file), "--to", "chaostoolkit"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("drill: ")
    assert "has 'rollback: manual', but a Chaos Toolkit experiment always runs its rollbacks" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_output_file_that_cannot_be_written_is_named_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nodir" / "x.json"
    assert main(["export", str(REPO / "scenarios" / "us-outage.yaml"), "--to", "chaostoolkit",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err
    assert "Traceback" not in err


def test_the_rollbacks_run_even_when_the_experiment_fails_or_is_interrupted(
        us_outage: dict[str, Any]) -> None:
    # Chaos Toolkit's default strategy skips the rollbacks of a failed or interrupted experiment (a
    # probe raising, SIGTERM from `drill abort`): the faults would stay in place.
    assert us_outage["runtime"] == {"rollbacks": {"strategy": "always"},
                                    "hypothesis": {"strategy": "default"}}


def test_the_scenarios_path_is_relative_to_the_experiment_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "experiments" / "us-outage.json"
    out.parent.mkdir()
    scenario = REPO / "scenarios" / "us-outage.yaml"
    monkeypatch.chdir(REPO)
    assert main(["export", "scenarios/us-outage.yaml", "--to", "chaostoolkit", "-o", str(out)]) == 0
    written = json.loads(out.read_text())
    relative = written["configuration"]["drill_scenario"]
    assert (out.parent / relative).resolve() == scenario
    assert written["extensions"][0]["scenario"] == relative
