"""The blast radius of a whole scenario (issue 8, observation 5): limits hold for every fault in effect
at once, not one fault at a time, and a breach refuses the drill before anything is touched."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from drillrun import TEST_SCENARIOS, drill_run, ground_truth, unchanged
from ruamel.yaml import YAML

from drills.cli import main
from drills.environment import Environment, load_environment
from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab

EVERYTHING = TEST_SCENARIOS / "everything-at-once.yaml"


def limited(lab_env: Environment, folder: Path, limits: dict[str, Any]) -> Path:
    """A copy of the lab's environment file with ``limits``."""
    yaml = YAML()  # round trip: the regions stay in the file's order
    data = yaml.load(Path(lab_env.path).read_text())
    data["limits"] = limits
    path = folder / "limited.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def test_six_small_cordons_and_both_ingresses_are_refused_before_anything_is_touched(
        lab: LabProcess, lab_env: Environment, runs: Path, tmp_path: Path) -> None:
    env_file = limited(lab_env, tmp_path, {"maxNodes": 2, "maxPods": 1})
    began = time.time()
    with unchanged(lab_env):
        run = drill_run(runs, str(EVERYTHING), "--env", str(env_file), "--trials", "1")
    assert (run.code, run.record["verdict"]) == (2, "aborted"), run.output
    reason = run.record["reason"]
    assert reason.startswith("blast radius: refused"), reason
    assert ("at the worst moment (steps cordon-us-1, cordon-us-2, cordon-us-3, cordon-eu-1, cordon-eu-2, "
            "cordon-eu-3, kill-us-ingress, kill-eu-ingress in effect together) the drill would affect "
            "12 nodes (us 6, eu 6), more than limits.maxNodes of 2 and 4 pods (us 2, eu 2), more than "
            "limits.maxPods of 1; ") in reason
    assert "the front door of every region (us, eu) at once" in reason
    assert reason.endswith("nothing was touched")
    assert run.record["incident_start"] is None
    assert run.record["rollback"] == []
    blast = run.record["blast_radius"]
    assert blast["refused"] is True
    assert blast["nodes"] == {"us": 6, "eu": 6}
    assert blast["pods"] == {"us": 2, "eu": 2}
    assert blast["limits"]["maxNodes"] == 2
    assert {r["rule"]: r["passed"] for r in blast["rules"]} == {
        "maxNodes": False, "maxPods": False, "protectedNamespaces": True, "allowedFaults": True,
        "allowAllRegionsDown": False}
    # Not one cordon, not one scale, not even undone: the lab saw no change at all.
    changes = [e for e in ground_truth(lab_env) if e["real"] >= began
               and ((e["event"] == "node" and e["unschedulable"])
                    or (e["event"] == "replicas" and e["namespace"] == "ingress-nginx" and e["ready"] == 0))]
    assert changes == []


def test_plan_shows_the_worst_moment_against_the_limits(
        lab: LabProcess, lab_env: Environment, tmp_path: Path) -> None:
    env_file = limited(lab_env, tmp_path, {"maxNodes": 2, "maxPods": 1, "allowedFaults": ["cordon-zone"]})
    out = io.StringIO()
    with unchanged(lab_env), redirect_stdout(out):
        code = main(["plan", str(EVERYTHING), "--env", str(env_file)])
    text = out.getvalue()
    assert code == 2, text
    assert ("blast radius at the worst moment (steps cordon-us-1, cordon-us-2, cordon-us-3, cordon-eu-1, "
            "cordon-eu-2, cordon-eu-3, kill-us-ingress, kill-eu-ingress in effect together):") in text
    assert "  REFUSED limits.maxNodes: 12 nodes (us 6, eu 6), limit 2" in text
    assert "  REFUSED limits.maxPods: 4 pods (us 2, eu 2), limit 1" in text
    assert "  PASS    limits.protectedNamespaces: no fault changes an object in kube-system" in text
    assert ("  REFUSED limits.allowedFaults: steps kill-us-ingress, kill-eu-ingress are kill-ingress, "
            "which the environment does not allow (allowed: cordon-zone)") in text
    assert "  REFUSED limits.allowAllRegionsDown: " in text
    assert ("a run would be REFUSED before touching anything (limits.maxNodes, limits.maxPods, "
            "limits.allowedFaults, limits.allowAllRegionsDown)") in text
    assert text.rstrip().endswith("nothing was changed.")


def test_the_same_scenario_within_generous_limits_plans_as_passing(
        lab: LabProcess, lab_env: Environment, tmp_path: Path) -> None:
    env_file = limited(lab_env, tmp_path, {"maxNodes": 12, "maxPods": 4, "allowAllRegionsDown": True})
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["plan", str(EVERYTHING), "--env", str(env_file)])
    text = out.getvalue()
    assert code == 0, text
    assert "  PASS    limits.maxNodes: 12 nodes (us 6, eu 6), limit 12" in text
    assert "  PASS    limits.maxPods: 4 pods (us 2, eu 2), limit 4" in text
    assert load_environment(env_file).limits.allow_all_regions_down
