"""Faults left in place on purpose (``rollback: manual``) or by a runner that died (``kill -9`` of a
real ``drill run``): ``drill recover`` undoes them and the lab is as it was found."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import FLAWED_TIME_SCALE, ROOT, SCENARIOS, TEST_SCENARIOS, drill_run, snapshot, unchanged
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.cli import main
from drills.environment import Environment, load_environment
from drills.journal import read_journal
from drills.labprocess import LabProcess, start_lab
from drills.recover import needs_recovery

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab


def test_manual_rollback_leaves_the_faults_with_exit_3_and_recover_undoes_them(
        lab: LabProcess, lab_env: Environment, runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(lab_env) as before:
        run = drill_run(runs, str(TEST_SCENARIOS / "manual-rollback.yaml"), "--env",
                        str(lab.environment_file))
        assert (run.code, run.record["verdict"]) == (3, "passed"), run.output
        assert "ROLLBACK IS MANUAL" in run.output
        assert "undo with: kubectl" in run.output
        assert run.record["rollback"][0]["outcome"] == "manual"
        cordoned = [n for n, off in snapshot(lab_env)["us"]["unschedulable"].items() if off]
        assert cordoned
        assert not any(before["us"]["unschedulable"][n] for n in cordoned)
        assert needs_recovery(run.run_dir)

        assert main(["recover", "--runs-dir", str(runs), run.run_dir.name]) == 0
        assert "reverted  cordon-zone in us" in capsys.readouterr().out
    assert not needs_recovery(run.run_dir)


def test_recover_after_kill_9_of_a_real_drill_run_restores_the_lab(
        lab: LabProcess, lab_env: Environment, runs: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    with unchanged(lab_env):
        drill = spawn([sys.executable, "-m", "drills", "run", str(SCENARIOS / "zone-cordon.yaml"), "--env",
                       str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        drill.wait_for(r" fault_applied \[cordon-zone-1\]", timeout=60)
        drill.kill()  # SIGKILL: no rollback, no run_ended
        [run_dir] = list(runs.iterdir())
        assert any(snapshot(lab_env)["us"]["unschedulable"].values())
        journal = [e.event for e in read_journal(run_dir / "events.jsonl")]
        assert "fault_applied" in journal
        assert "run_ended" not in journal
        assert needs_recovery(run_dir)
        left = snapshot(lab_env)

        # A new drill on this environment refuses to start over what the crashed run left...
        code = main(["run", str(SCENARIOS / "zone-cordon.yaml"), "--env", str(lab.environment_file),
                     "--runs-dir", str(runs), "--trials", "1"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"refusing to start: run {run_dir.name} in {runs}" in err
        assert f"drill recover {run_dir.name}" in err
        assert "--force" in err
        assert list(runs.iterdir()) == [run_dir]
        assert snapshot(lab_env) == left
        # ...unless forced, which it says loudly.
        forced = drill_run(runs, str(TEST_SCENARIOS / "manual-rollback.yaml"), "--env",
                           str(lab.environment_file), "--force")
        assert f"WARNING: --force: starting although run {run_dir.name} may have left faults" in forced.output
        capsys.readouterr()

        assert main(["recover", "--runs-dir", str(runs)]) == 0
        out = capsys.readouterr().out
        assert "reverted  cordon-zone in us" in out
    assert not needs_recovery(run_dir)
    assert main(["recover", "--runs-dir", str(runs)]) == 0
    assert "nothing to recover" in capsys.readouterr().out


def test_recover_refuses_a_new_lab_started_where_the_runs_lab_was(
        tmp_path: Path, runs: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lab"
    with start_lab(time_scale=FLAWED_TIME_SCALE, directory=folder) as first:
        drill = spawn([sys.executable, "-m", "drills", "run", str(SCENARIOS / "zone-cordon.yaml"), "--env",
                       str(first.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        drill.wait_for(r" fault_applied \[cordon-zone-1\]", timeout=60)
        drill.kill()
    [run_dir] = list(runs.iterdir())
    # The run's lab died with its cordon; another is started in the same folder (the same environment
    # file, contexts and node names), where an operator cordons a node of the zone the run cordoned.
    with start_lab(time_scale=FLAWED_TIME_SCALE, directory=folder) as second:
        env = load_environment(second.environment_file)
        node = "aks-us-zone-1-0"
        us = env.regions["us"]
        with k8s_config.new_client_from_config(config_file=us.kubeconfig, context=us.context) as api:
            k8s.CoreV1Api(api).patch_node(node, {"spec": {"unschedulable": True}})
        before = snapshot(env)
        assert before["us"]["unschedulable"][node]

        assert main(["recover", "--runs-dir", str(runs)]) == 2
        out = capsys.readouterr().out
        assert f"run {run_dir.name}: refused: region eu: the cluster's UID (kube-system namespace) was" in out
        assert "region us: the cluster's UID (kube-system namespace) was" in out
        assert "/virtualMachineScaleSets/aks-nodepool1-us-vmss: its unique id was" in out  # new VMs too
        assert "the environment was recreated or this is another cluster: nothing was undone" in out
        assert snapshot(env) == before  # the operator's cordon stays
    assert needs_recovery(run_dir)


def test_recover_from_another_working_directory_finds_the_run(
        lab: LabProcess, lab_env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # As a user has it: no --runs-dir, no $DRILL_RUNS_DIR; the run started in one folder...
    monkeypatch.delenv("DRILL_RUNS_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with unchanged(lab_env):
        scenario = TEST_SCENARIOS / "manual-rollback.yaml"
        assert main(["run", str(scenario), "--env", str(lab.environment_file)]) == 3
        assert any(snapshot(lab_env)["us"]["unschedulable"].values())
        capsys.readouterr()
        # ...and recovered from another.
        monkeypatch.chdir(tmp_path / "b")
        assert main(["recover"]) == 0
        assert "reverted  cordon-zone in us" in capsys.readouterr().out
    [run_dir] = [p for p in (tmp_path / "state" / "drill" / "runs").iterdir() if p.is_dir()]
    [started] = [e for e in read_journal(run_dir / "events.jsonl") if e.event == "run_started"]
    assert started.fields["run_dir"] == str(run_dir)
    assert not (tmp_path / "a" / "drill-runs").exists()
