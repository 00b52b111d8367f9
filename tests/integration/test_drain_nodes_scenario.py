"""The shipped drain-nodes scenario passes on a lab of the sound design: the drain of zone-1
completes with web's budget (minAvailable 2) respected, and the lab is as it was afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import SCENARIOS, drill_run, unchanged

from drills.environment import Environment
from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab


def test_drain_nodes_passes_with_the_budget_respected(lab: LabProcess, lab_env: Environment,
                                                      runs: Path) -> None:
    with unchanged(lab_env):
        run = drill_run(runs, str(SCENARIOS / "drain-nodes.yaml"), "--env", str(lab.environment_file),
                        "--trials", "1")
    assert (run.code, run.record["verdict"]) == (0, "passed"), run.output
    # web's zone-1 replica was evicted (the budget allowed one), so exactly one was missing for a while.
    assert run.metric("web_us.min_ready")["value"] == 2
    assert run.metric("web_us.ready_by_zone.zone-1")["value"] == 0
    applied = next(e for e in run.record["timeline"] if e["event"] == "fault_applied")
    assert applied["step"] == "drain-zone-1"
    assert "drain" in applied["detail"]
    assert "zone-1" in applied["detail"]
    assert run.record["rollback"][0]["outcome"] == "reverted"
    restore = run.metric("web_us.time_to_restore")
    print(f"measured: drain took {applied['t'] - run.record['incident_start_t']:.1f} s, "
          f"time_to_restore {restore['value']} ± {restore['error']} s")
