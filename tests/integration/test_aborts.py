"""Drills that stop early: a guard trips, SIGTERM arrives, the file is bad, the environment refuses.

Whatever stops a drill, the lab is left as it was found, and the exit code says why (2: could not
run or aborted).
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from drillrun import ROOT, SCENARIOS, TEST_SCENARIOS, drill_run, unchanged
from ruamel.yaml import YAML

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab


def test_a_guard_that_trips_aborts_the_drill_and_rolls_back(
        lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env):
        run = drill_run(runs, str(TEST_SCENARIOS / "guard-trips.yaml"), "--env", str(lab.environment_file))
    assert (run.code, run.record["verdict"]) == (2, "aborted"), run.output
    guard = run.record["guards"][0]
    assert guard["guard"] == "users.error_rate > 10% for 20s"
    assert guard["tripped"]
    # It tripped once errors had been over 10% for 20 s, long before the 30-minute wait was over.
    tripped_after = guard["t"] - run.record["incident_start_t"]
    assert 20.0 <= tripped_after < 120.0
    assert "guard 'users.error_rate > 10% for 20s' tripped" in run.record["reason"]
    assert run.record["rollback"][0]["outcome"] == "reverted"
    events = [e["event"] for e in run.record["timeline"]]
    assert events.index("guard_tripped") < events.index("rollback_started") < events.index("fault_reverted")
    print(f"measured: guard tripped {tripped_after:.1f} s after the incident started")


def test_sigterm_in_the_middle_of_a_drill_rolls_it_back(
        lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env):
        process = subprocess.Popen(
            [sys.executable, "-m", "drills", "run", str(SCENARIOS / "us-outage.yaml"), "--env",
             str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # plain lines: stdout is not a terminal
            seen.append(line)
            if " fault_applied " in line:
                process.send_signal(signal.SIGTERM)
                break
        output = "".join(seen) + process.stdout.read()
        code = process.wait(timeout=60)
    assert code == 2, output
    record = json.loads(next(p for p in runs.iterdir() if p.is_dir()).joinpath("run.json").read_text())
    assert (record["verdict"], record["reason"]) == ("aborted", "interrupted by SIGTERM")
    assert record["rollback"][0]["outcome"] == "reverted"
    assert "SIGTERM: stopping the drill and rolling back" in output


def test_a_bad_file_is_refused_before_any_lab_starts(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = TEST_SCENARIOS / "broken.yaml"
    assert main(["run", str(broken), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:4:20: unknown key 'evry' (did you mean 'every'?)" in err
    assert f"{broken}:6:12: unknown fault 'kill-ingres' (did you mean 'kill-ingress'?)" in err
    assert "Traceback" not in err
    assert not runs.exists()


def _real_environment(lab_env: Environment, folder: Path, *, server: str | None = None) -> Path:
    """The lab's environment file as if it were a real environment (no ``lab:`` section)."""
    yaml = YAML(typ="safe")
    data = yaml.load(Path(lab_env.path).read_text())
    data.pop("lab")
    data["name"] = "staging"
    if server is not None:
        kubeconfig = yaml.load(Path(next(iter(lab_env.regions.values())).kubeconfig or "").read_text())
        for cluster in kubeconfig["clusters"]:
            cluster["cluster"]["server"] = server
        with (folder / "kubeconfig").open("w") as f:
            yaml.dump(kubeconfig, f)
        for region in data["regions"].values():
            region["kubeconfig"] = str(folder / "kubeconfig")
    path = folder / "staging.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def test_a_real_environment_is_refused_without_a_terminal_to_confirm_on(
        lab_env: Environment, tmp_path: Path, runs: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with unchanged(lab_env):
        code = main(["run", str(SCENARIOS / "us-outage.yaml"), "--env",
                     str(_real_environment(lab_env, tmp_path)), "--runs-dir", str(runs)])
    assert code == 2
    assert "refusing to inject faults into environment 'staging'" in capsys.readouterr().err
    assert not runs.exists()


def test_an_unreachable_environment_is_refused_before_anything_is_touched(
        lab_env: Environment, tmp_path: Path, runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A port nothing listens on: the API server is gone.
    env = _real_environment(lab_env, tmp_path, server="https://127.0.0.1:9")
    code = main(["run", str(SCENARIOS / "zone-cordon.yaml"), "--env", str(env), "--yes",
                 "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "environment staging" in err
    assert "cannot be reached; nothing was touched" in err
    assert not runs.exists() or not any(runs.iterdir())



def test_credentials_the_api_server_refuses_are_one_line_per_region(
        lab_env: Environment, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The lab's kubeconfig with a wrong bearer token: each API server answers 401.
    yaml = YAML(typ="safe")
    kubeconfig = yaml.load(Path(next(iter(lab_env.regions.values())).kubeconfig or "").read_text())
    for user in kubeconfig["users"]:
        user["user"]["token"] = "not-the-token"
    with (tmp_path / "kubeconfig").open("w") as f:
        yaml.dump(kubeconfig, f)
    data = yaml.load(Path(lab_env.path).read_text())
    for region in data["regions"].values():
        region["kubeconfig"] = str(tmp_path / "kubeconfig")
    env = tmp_path / "wrong-token.yaml"
    with env.open("w") as f:
        yaml.dump(data, f)
    code = main(["plan", str(SCENARIOS / "zone-cordon.yaml"), "--env", str(env)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert lines[0] == f"drill: environment {data['name']} ({env}) cannot be reached; nothing was touched:"
    assert len(lines) == 1 + len(lab_env.regions), err
    for line, (name, region) in zip(lines[1:], sorted(lab_env.regions.items()), strict=True):
        assert line.startswith(f"  region {name}: the API server at https://"), line
        assert line.endswith(f"did not accept the credentials of kube context {region.context!r}: "
                             "401 Unauthorized"), line
    assert "problems" not in err
