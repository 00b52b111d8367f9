"""Two drills against one environment: the second is refused, naming the holder, and the first goes on
until ``drill abort --env`` from another terminal stops it through the lock; it rolls back and the
lab is as it was."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from drillrun import ROOT, TEST_SCENARIOS, snapshot, unchanged

from drills.cli import main
from drills.environment import Environment
from drills.labprocess import LabProcess
from drills.lock import holders

if TYPE_CHECKING:
    from conftest import Spawned

pytestmark = pytest.mark.lab


def test_a_second_drill_is_refused_and_drill_abort_stops_the_first(
        lab: LabProcess, lab_env: Environment, runs: Path, spawn: Callable[..., Spawned],
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario = str(TEST_SCENARIOS / "held-for-long.yaml")
    with unchanged(lab_env):
        first = spawn([sys.executable, "-m", "drills", "run", scenario, "--env", str(lab.environment_file),
                       "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        first.wait_for(r" fault_applied \[cordon-zone-1\]", timeout=60)
        [run_dir] = list(runs.iterdir())

        second = spawn([sys.executable, "-m", "drills", "run", scenario, "--env", str(lab.environment_file),
                        "--runs-dir", str(runs), "--trials", "1"], cwd=ROOT)
        assert second.finish(timeout=60) == 2, "\n".join(second.lines)
        refusal = "\n".join(second.lines)
        holder = (rf"drill: environment lab is held by \S+@\S+ \(pid {first.process.pid}\) \(run "
                  rf"{run_dir.name}, scenario held-for-long, since \S+Z, renewed \d+ s ago\)")
        assert re.search(holder, refusal), refusal
        assert "nothing was touched" in refusal
        assert list(runs.iterdir()) == [run_dir]  # the refused drill left no run behind
        assert first.process.poll() is None  # and the first one goes on, its cordon in place
        assert any(snapshot(lab_env)["us"]["unschedulable"].values())

        # From another terminal (or machine): through the environment's lock.
        assert main(["abort", "--env", str(lab.environment_file)]) == 0
        said = capsys.readouterr().out
        assert f"asked run {run_dir.name} (scenario held-for-long, held by " in said
        assert "to stop through its lock in eu, us" in said
        assert first.finish(timeout=60) == 2, "\n".join(first.lines)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["verdict"] == "aborted"
    assert record["reason"].startswith("abort requested through the environment lock (by ")
    assert record["rollback"][0]["outcome"] == "reverted"
    held = [e for e in record["timeline"] if e["event"] == "lock_held"]
    assert len(held) == 1
    assert "lease drill/drill-lock held in eu, us as " in held[0]["detail"]
    assert asyncio.run(holders(lab_env)) == []  # released on the way out

    assert main(["abort", "--env", str(lab.environment_file)]) == 2
    assert "no live drill holds environment lab's lock" in capsys.readouterr().err
