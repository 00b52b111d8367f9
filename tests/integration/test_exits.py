"""Every way out of ``drill run``, as a user meets it: a reporter that raises, a burst of Ctrl-C, a lab
that dies under the drill. Each runs ``drill`` as a process of its own and checks its exit code, what
it printed, its run directory and the lab it ran on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from drillrun import ROOT, TEST_SCENARIOS, snapshot, unchanged

from drills.cli import main
from drills.environment import Environment, load_environment
from drills.journal import read_journal
from drills.labprocess import LabProcess, start_lab

pytestmark = pytest.mark.lab

BURST = 30
"""Signals in the burst: what a stuck key, or a script's kill loop, sends."""
BURST_GAP_S = 0.05
"""Real seconds between two signals of the burst: closer than a burst's window (one press), and
spread so that the burst lasts through the rollback and the record to the process's exit."""


class Drill:
    """``drill run`` in a process of its own, read line by line (plain lines: stdout is a pipe)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "drills", "run", *args], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env)
        self.seen: list[str] = []

    def until(self, text: str) -> None:
        """Read until a line containing ``text`` (fails if the process ends first)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line)
            if text in line:
                return
        pytest.fail(f"drill ended before printing {text!r}:\n{''.join(self.seen)}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """The exit code and everything printed."""
        assert self.process.stdout is not None
        self.seen.append(self.process.stdout.read())
        return self.process.wait(timeout=timeout), "".join(self.seen)


def _one_run(runs: Path) -> Path:
    made = [p for p in runs.iterdir() if p.is_dir()]  # not the history index
    assert len(made) == 1, made
    return made[0]


@contextmanager
def _plugin_site(folder: Path) -> Iterator[dict[str, str]]:
    """A distribution installed in ``folder`` (a module and its dist-info) that registers a reporter
    whose render raises; the environment of a process that sees it on its path."""
    (folder / "exploding_reporter.py").write_text(
        "class Exploding:\n"
        "    filename = 'exploding.txt'\n"
        "    def render(self, run, run_dir):\n"
        "        raise RuntimeError('the reporter has a bug')\n")
    info = folder / "exploding_reporter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exploding-reporter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[drill.reporters]\nexploding = exploding_reporter:Exploding\n")
    yield {**os.environ, "PYTHONPATH": str(folder)}


def test_a_reporter_that_raises_is_reported_and_the_others_still_run(
        lab: LabProcess, tmp_path: Path, runs: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    with _plugin_site(site) as env:
        drill = Drill(str(TEST_SCENARIOS / "quiet.yaml"), "--env", str(lab.environment_file), "--trials", "1",
                      "--runs-dir", str(runs), env=env)
        code, output = drill.finish()
    run_dir = _one_run(runs)
    record = json.loads((run_dir / "run.json").read_text())
    # The exit code is the run's verdict's (it passes unless a loaded machine blinds its probe); the
    # reporter's bug does not make it "the design failed".
    assert code == record["exit_code"], output
    assert "reporter" not in record["reason"]
    assert "Traceback" not in output
    line = next(line for line in output.splitlines() if "exploding" in line and "failed" in line)
    assert "RuntimeError: the reporter has a bug" in line
    assert (run_dir / "report.md").is_file()
    assert (run_dir / "junit.xml").is_file()
    assert not (run_dir / "exploding.txt").exists()
    log = (run_dir / "reporters.log").read_text()
    assert "Traceback" in log
    assert "raise RuntimeError('the reporter has a bug')" in log
    assert [e.event for e in read_journal(run_dir / "events.jsonl")][-1] == "run_ended"


def test_a_burst_of_sigints_rolls_back_and_exits_2(
        lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env):
        drill = Drill(str(TEST_SCENARIOS / "long-wait.yaml"), "--env", str(lab.environment_file),
                      "--trials", "1", "--runs-dir", str(runs))
        drill.until(" fault_applied ")
        for _ in range(BURST):  # spread over the rollback and the record, until drill exits
            if drill.process.poll() is not None:
                break
            drill.process.send_signal(signal.SIGINT)
            time.sleep(BURST_GAP_S)
        code, output = drill.finish()
    # Died by the signal would be -2; a burst is one press: roll back, exit 2, nothing abandoned.
    assert code == 2, output
    record = json.loads((_one_run(runs) / "run.json").read_text())
    assert (record["verdict"], record["reason"]) == ("aborted", "interrupted by SIGINT")
    assert record["rollback"][0]["outcome"] == "reverted"
    assert "abandon" not in output.replace("press Ctrl-C again to abandon", "")
    assert output.count("SIGINT: stopping the drill and rolling back") == 1
    assert "no longer waiting for the steady state" not in output


def test_sighup_is_handled_like_sigterm(lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env):
        drill = Drill(str(TEST_SCENARIOS / "long-wait.yaml"), "--env", str(lab.environment_file),
                      "--trials", "1", "--runs-dir", str(runs))
        drill.until(" fault_applied ")
        drill.process.send_signal(signal.SIGHUP)
        code, output = drill.finish()
    assert code == 2, output
    record = json.loads((_one_run(runs) / "run.json").read_text())
    assert (record["verdict"], record["reason"]) == ("aborted", "interrupted by SIGHUP")
    assert record["rollback"][0]["outcome"] == "reverted"


def test_a_lab_killed_mid_drill_exits_3_saying_what_to_undo_by_hand(tmp_path: Path, runs: Path) -> None:
    with start_lab(time_scale=60.0, directory=tmp_path / "lab") as own:
        env = load_environment(own.environment_file)
        before = snapshot(env)
        drill = Drill(str(TEST_SCENARIOS / "long-wait.yaml"), "--env", str(own.environment_file),
                      "--trials", "1", "--runs-dir", str(runs))
        drill.until(" fault_applied ")
        assert own.pid is not None
        os.killpg(own.pid, signal.SIGKILL)
        started = time.monotonic()
        drill.process.send_signal(signal.SIGTERM)
        code, output = drill.finish()
        took = time.monotonic() - started
    assert code == 3, output
    run_dir = _one_run(runs)
    # The same lines as 'rollback: manual' prints, for the fault whose revert failed...
    kubeconfig = env.regions["us"].kubeconfig
    assert "kill-us-ingress: scale" in output
    assert f"undo with: kubectl --kubeconfig {kubeconfig} --context {env.regions['us'].context} " in output
    # ...and the command that finishes the job once the lab is back.
    assert f"drill recover {run_dir.name} --runs-dir {runs}" in output
    assert before["us"]["replicas"]  # the snapshot was real
    print(f"measured: {took:.1f} s from SIGTERM to exit 3 with the lab dead")


def test_ctrl_c_three_times_abandons_a_hung_rollback_and_recover_finishes_it(tmp_path: Path,
                                                                             runs: Path) -> None:
    with start_lab(time_scale=60.0, directory=tmp_path / "lab") as own:
        assert own.pid is not None
        env = load_environment(own.environment_file)
        before = snapshot(env)
        drill = Drill(str(TEST_SCENARIOS / "long-wait.yaml"), "--env", str(own.environment_file),
                      "--trials", "1", "--runs-dir", str(runs))
        drill.until(" fault_applied ")
        os.killpg(own.pid, signal.SIGSTOP)  # the API server hangs: the rollback's revert waits on it
        try:
            drill.process.send_signal(signal.SIGINT)
            drill.until("rollback_started")
            time.sleep(PRESS_GAP_S)
            drill.process.send_signal(signal.SIGINT)
            drill.until("press Ctrl-C again to abandon the rollback and leave faults in place")
            time.sleep(PRESS_GAP_S)
            drill.process.send_signal(signal.SIGINT)
            drill.until("finish the rollback with:")
        finally:
            os.killpg(own.pid, signal.SIGCONT)
        code, output = drill.finish()
        run_dir = _one_run(runs)
        assert code == 3, output
        assert "abandoning the rollback" in output
        assert f"drill recover {run_dir.name} --runs-dir {runs}" in output
        assert "kill-us-ingress: scale the ingress controller" in output
        assert "undo with: kubectl " in output
        # The journal leaves the fault pending: recover finds it and the lab is as it was.
        assert main(["recover", run_dir.name, "--runs-dir", str(runs)]) == 0
        assert snapshot(env) == before


PRESS_GAP_S = 1.2
"""Between two deliberate presses: more than a burst's second (drills.runner.interrupts.BURST_S)."""
