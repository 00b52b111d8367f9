"""The zone scenarios on flawed workload designs must FAIL, naming the broken promise."""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import SCENARIOS, drill_run, flawed_lab, unchanged

from drills.environment import load_environment

pytestmark = pytest.mark.lab


def test_web_in_one_zone_does_not_survive_losing_it(tmp_path: Path, runs: Path) -> None:
    with flawed_lab("web-in-one-zone", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        with unchanged(env):
            run = drill_run(runs, str(SCENARIOS / "zone-cordon.yaml"), "--env", str(lab.environment_file),
                            "--trials", "1")
    assert (run.code, run.record["verdict"]) == (1, "failed"), run.output
    assert run.failed_expectations() == {"web_us.min_ready >= 2", "web_us.time_to_restore < 1m"}
    assert run.metric("web_us.min_ready")["value"] == 0
    assert [r["outcome"] for r in run.record["rollback"]] == ["reverted", "reverted"]
    restore = run.metric("web_us.time_to_restore")
    print(f"measured: web in one zone: min_ready 0, time_to_restore {restore['value']} ({restore['note']})")


def test_a_budget_that_allows_no_disruption_blocks_the_drain(tmp_path: Path, runs: Path) -> None:
    with flawed_lab("pdb-blocks-drain", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        with unchanged(env):
            run = drill_run(runs, str(SCENARIOS / "drain-nodes.yaml"), "--env", str(lab.environment_file),
                            "--trials", "1")
    assert (run.code, run.record["verdict"]) == (1, "failed"), run.output
    reason = run.record["reason"]
    assert reason.startswith("step drain-zone-1 (drain-nodes in us) failed: "
                             "drain-nodes in us: timed out after")
    assert "PodDisruptionBudget" in reason
    assert "shop/web" in reason
    failed = next(e for e in run.record["timeline"] if e["event"] == "fault_failed")
    assert failed["step"] == "drain-zone-1"
    # The budget held while the drain tried, and the undo uncordoned the zone.
    assert run.metric("web_us.min_ready")["value"] == 3
    assert run.record["rollback"][0]["outcome"] == "reverted"
    print(f"measured: pdb blocks drain: {reason[:160]}")
