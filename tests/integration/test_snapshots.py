"""Overlapping faults on one object, and crashed runs: the objects a drill touched end as they were
before it, from the run's snapshots (journaled) or from the marks it left on the objects themselves."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import ROOT, TEST_SCENARIOS, azure_state, azure_tags, drill_run, snapshot, unchanged
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess
from drills.marks import RUN, RUN_TAG, SNAPSHOT

if TYPE_CHECKING:
    from conftest import Spawned
    from kubectlrun import Kubectl

pytestmark = pytest.mark.lab


def marks(env: Environment) -> dict[str, str]:
    """Every mark of a run left in the lab, by where it is: Kubernetes annotations and labels, Azure
    tags, read as a person would (kubectl's view, the SDKs')."""
    found: dict[str, str] = {}
    for name, region in env.regions.items():
        api = k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
        try:
            core, apps, net = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.NetworkingV1Api(api)
            for item in [*core.list_node().items, *apps.list_deployment_for_all_namespaces().items,
                         *net.list_network_policy_for_all_namespaces().items]:
                meta = item.metadata
                run = (meta.annotations or {}).get(RUN) or (meta.labels or {}).get(RUN)
                if run:
                    found[f"{name}/{meta.namespace or ''}/{meta.name}"] = run
        finally:
            api.close()
    for resource, tags in azure_tags(env).items():
        if RUN_TAG in tags:
            found[resource] = tags[RUN_TAG]
    return found


def test_overlapping_faults_end_with_the_object_as_it_was_before_the_drill(
        lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env) as before:
        run = drill_run(runs, str(TEST_SCENARIOS / "overlapping-kill.yaml"), "--env",
                        str(lab.environment_file), "--trials", "1")
        after = snapshot(lab_env)
        ingress = "ingress-nginx/ingress-nginx-controller"
        assert after["us"]["replicas"][ingress] == before["us"]["replicas"][ingress], run.output
        assert run.code == 0, run.output
        key = f"us/Deployment/{ingress}"
        assert run.record["restored"] == [{"object": key, "outcome": "unchanged",
                                           "detail": "as before the drill", "trial": 1}]
        # b's record (0 replicas, what a left) is not written back once undoing a put the ingress back:
        # the rollback never takes the US front door away again.
        reverted = {e["step"]: e["detail"] for e in run.record["timeline"] if e["event"] == "fault_reverted"}
        assert reverted["b"] == ("kill-ingress in us: not reverted from its record: what it changed is "
                                 "already as before the drill"), reverted
        assert marks(lab_env) == {}


def test_a_change_made_by_someone_else_during_the_drill_is_reported_and_left(
        lab: LabProcess, lab_env: Environment, runs: Path, tmp_path: Path, kubectl: Kubectl,
        spawn: Callable[..., Spawned]) -> None:
    ingress = "ingress-nginx/ingress-nginx-controller"
    before = snapshot(lab_env)["us"]["replicas"][ingress]
    scenario = tmp_path / "kill-and-hold.yaml"
    scenario.write_text("apiVersion: drill/v1\nname: kill-and-hold\nprobes:\n"
                        "  web_us: {kind: replicas, cluster: us, namespace: shop, deployment: web}\n"
                        "steps:\n  - {id: k, fault: kill-ingress, cluster: us}\n  - wait: 3m\n")
    try:
        drill = spawn([sys.executable, "-m", "drills", "run", str(scenario), "--env",
                       str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        drill.wait_for(r" fault_applied \[k\]", timeout=60)
        kubectl("-n", "ingress-nginx", "scale", "deployment/ingress-nginx-controller", "--replicas=3")
        assert drill.process.wait(timeout=60) == 0, "\n".join(drill.lines)
        [run_dir] = [p for p in runs.iterdir() if p.is_dir()]
        record = json.loads((run_dir / "run.json").read_text())
        assert record["restored"][0]["outcome"] == "drift", record["restored"]
        assert "replicas is 3 (before the drill 2; this run set 0)" in record["restored"][0]["detail"]
        reverted = [e["detail"] for e in record["timeline"] if e["event"] == "fault_reverted"]
        assert reverted == ["kill-ingress in us: not reverted from its record: changed by someone "
                            f"else during the drill, left as it is: us/Deployment/{ingress}: replicas is 3 "
                            "(before the drill 2; this run set 0)"], reverted
        assert snapshot(lab_env)["us"]["replicas"][ingress] == 3  # the operator's change stands
        assert any("DRIFT: us/Deployment/" in line for line in drill.lines), drill.lines
        assert f"| `us/Deployment/{ingress}` | **drift** | 1 |" in (run_dir / "report.md").read_text()
        assert marks(lab_env) == {}
    finally:
        kubectl("-n", "ingress-nginx", "scale", "deployment/ingress-nginx-controller", f"--replicas={before}")


def test_recover_of_a_killed_run_ends_overlapping_faults_as_before_the_drill(
        lab: LabProcess, lab_env: Environment, runs: Path, tmp_path: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "overlapping-kill.yaml"
    text = (TEST_SCENARIOS / "overlapping-kill.yaml").read_text()
    scenario.write_text(text.replace("wait: 5s", "wait: 1h"))
    with unchanged(lab_env):
        drill = spawn([sys.executable, "-m", "drills", "run", str(scenario), "--env",
                       str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        drill.wait_for(r" fault_reverted \[a\]", timeout=60)
        drill.kill()
        assert main(["recover", "--runs-dir", str(runs)]) == 0
        out = capsys.readouterr().out
        # b's record (0 replicas) is not written back: undoing a already put the ingress back.
        assert "not reverted from its record: what it changed is already as before the drill" in out
        assert "ok        us/Deployment/ingress-nginx/ingress-nginx-controller: as before the drill" in out
    assert marks(lab_env) == {}


@pytest.mark.parametrize("killed_after", ["cordon", "isolate", "zone-down"])
def test_recover_env_restores_a_killed_run_with_its_runs_dir_deleted(
        killed_after: str, lab: LabProcess, lab_env: Environment, runs: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    before = (snapshot(lab_env), azure_state(lab_env))
    drill = spawn([sys.executable, "-m", "drills", "run", str(TEST_SCENARIOS / "marked-faults.yaml"), "--env",
                   str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
    drill.wait_for(rf" fault_applied \[{killed_after}\]", timeout=60)
    [run_dir] = list(runs.iterdir())
    if killed_after == "cordon":  # a live run's marks are its own business: recover leaves them
        assert main(["recover", "--env", str(lab.environment_file), "--runs-dir", str(runs)]) == 2
        assert f"run {run_dir.name}: still running here" in capsys.readouterr().out
    drill.kill()  # SIGKILL: no rollback, no journal entry more
    left = marks(lab_env)
    assert set(left.values()) == {run_dir.name}
    if killed_after != "cordon":  # the deleted pods' deployment is verified, so marked
        assert "us/shop/web" in left
    assert (snapshot(lab_env), azure_state(lab_env)) != before
    shutil.rmtree(runs)

    if killed_after == "cordon":  # a new drill refuses to start over the leftovers
        refused = drill_run(runs, str(TEST_SCENARIOS / "overlapping-kill.yaml"), "--env",
                            str(lab.environment_file), "--trials", "1")
        assert refused.code == 2, refused.output
        assert run_dir.name in refused.record["reason"]
        assert f"drill recover --env {lab.environment_file}" in refused.record["reason"]
        assert not any(e["event"] == "fault_applied" for e in refused.record["timeline"])
        forced = drill_run(runs, str(TEST_SCENARIOS / "overlapping-kill.yaml"), "--env",
                           str(lab.environment_file), "--trials", "1", "--force")
        assert forced.code == 0, forced.output
        assert f"--force: starting over the leftovers of other runs, which may still be in place: run " \
               f"{run_dir.name} marked" in forced.output
        assert set(marks(lab_env).values()) == {run_dir.name}

    assert main(["recover", "--env", str(lab.environment_file), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"run {run_dir.name}, from the marks in lab:" in out
    assert "restored  us/Node//" in out
    assert (snapshot(lab_env), azure_state(lab_env)) == before
    assert marks(lab_env) == {}
    assert main(["recover", "--env", str(lab.environment_file), "--runs-dir", str(runs)]) == 0
    assert "nothing to recover" in capsys.readouterr().out


@pytest.mark.parametrize("route", ["journal", "marks"])
def test_recover_reports_drift_and_leaves_it(
        route: str, lab: LabProcess, lab_env: Environment, runs: Path, kubectl: Kubectl,
        capsys: pytest.CaptureFixture[str]) -> None:
    ingress = "ingress-nginx/ingress-nginx-controller"
    before = snapshot(lab_env)["us"]["replicas"][ingress]
    left = drill_run(runs, str(TEST_SCENARIOS / "manual-kill.yaml"), "--env", str(lab.environment_file),
                     "--trials", "1")
    assert left.code == 3, left.output
    assert snapshot(lab_env)["us"]["replicas"][ingress] == 0
    kubectl("-n", "ingress-nginx", "scale", "deployment/ingress-nginx-controller", "--replicas=3")
    argv = ["recover", "--runs-dir", str(runs)]
    if route == "marks":
        shutil.rmtree(runs)
        argv += ["--env", str(lab.environment_file)]
    try:
        assert main(argv) == 0
        out = capsys.readouterr().out
        if route == "journal":
            # The pending undo's record (2 replicas) is not written over the operator's 3.
            assert "not reverted from its record: changed by someone else during the drill" in out
        assert f"DRIFT     us/Deployment/{ingress}: changed by someone else during the drill" in out
        assert "replicas is 3 (before the drill 2; this run set 0)" in out
        assert snapshot(lab_env)["us"]["replicas"][ingress] == 3
        assert marks(lab_env) == {}
    finally:
        kubectl("-n", "ingress-nginx", "scale", "deployment/ingress-nginx-controller", f"--replicas={before}")


def test_recover_env_that_cannot_restore_a_mark_exits_3_and_keeps_it(
        lab: LabProcess, lab_env: Environment, runs: Path, kubectl: Kubectl,
        capsys: pytest.CaptureFixture[str]) -> None:
    node = snapshot(lab_env)["us"]["unschedulable"]
    name = sorted(node)[0]
    mark = json.dumps({"key": f"us/Node//{name}", "kind": "volume", "ref": {"region": "us", "name": name},
                       "fields": {"size": 1}, "caused": {"size": [2]}})
    kubectl("annotate", "node", name, f"{RUN}=20261201T000000Z-newer-drill-0001", f"{SNAPSHOT}={mark}")
    try:
        assert main(["recover", "--env", str(lab.environment_file), "--runs-dir", str(runs)]) == 3
        out = capsys.readouterr().out
        assert f"FAILED    us/Node//{name}: drill knows no object kind 'volume'" in out
        assert marks(lab_env) == {f"us//{name}": "20261201T000000Z-newer-drill-0001"}
    finally:
        kubectl("annotate", "node", name, f"{RUN}-", f"{SNAPSHOT}-")
