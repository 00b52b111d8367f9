"""No blind verdicts (issue 8, observation 7): a lab killed in the middle of us-outage leaves every probe
blind, every expectation unmeasured saying so, and the run failed; none is "ok" from blind samples."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import ROOT, SCENARIOS

from drills.environment import load_environment
from drills.labprocess import start_lab

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab

TIME_SCALE = 120.0
"""Twice the shared labs' scale: once the lab is dead nothing is timed but drill's own waits."""


def test_a_lab_killed_mid_drill_leaves_every_expectation_unmeasured_and_the_run_failed(
        tmp_path: Path, spawn: Callable[..., Spawned]) -> None:
    runs = tmp_path / "runs"
    with start_lab(time_scale=TIME_SCALE, directory=tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        assert env.lab is not None
        assert env.lab.pid is not None
        drill = spawn([sys.executable, "-m", "drills", "run", str(SCENARIOS / "us-outage.yaml"), "--env",
                       str(lab.environment_file), "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        drill.wait_for(r" fault_applied \[kill-us-ingress\]", timeout=60)
        os.kill(env.lab.pid, signal.SIGKILL)
        code = drill.finish(timeout=60)
    output = "\n".join(drill.lines)
    [run_dir] = [p for p in runs.iterdir() if p.is_dir()]
    record = json.loads((run_dir / "run.json").read_text())
    assert code != 0, output
    assert record["verdict"] != "passed"
    # Every probe of the dead lab went blind, and says from when and why.
    for name, probe in record["probes"].items():
        assert probe["blind"], f"probe {name} was never blind: {probe}"
        assert record["trials"][0]["blind"][name] == probe["blind"]
    # Every expectation depends on the dead lab's probes: each is unmeasured, with the blind reason.
    assert len(record["expectations"]) == 5
    for expectation in record["expectations"]:
        assert not expectation["passed"], expectation
        assert expectation["value"] is None, expectation
        assert "was blind from" in expectation["note"], expectation
    floor = next(e for e in record["expectations"] if e["expect"] == "web_eu.min_ready >= 3")
    assert "probe web_eu was blind from" in floor["note"]
    failover = next(e for e in record["expectations"] if e["expect"] == "dns.failover_time < 3m")
    assert "stayed" not in failover["note"]
    assert "probe web_eu was blind from" in (run_dir / "report.md").read_text()
    assert "probe web_eu was blind from" in output
    assert "blind web_eu:" in output
