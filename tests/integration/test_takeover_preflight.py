"""Pre-flight: us-outage refuses to kill the US ingress while Europe could not take over."""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import SCENARIOS, drill_run, flawed_lab, unchanged

from drills.environment import load_environment

pytestmark = pytest.mark.lab


def test_us_outage_refuses_when_europes_ingress_cannot_schedule(tmp_path: Path, runs: Path) -> None:
    with flawed_lab("eu-ingress-unschedulable", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        with unchanged(env):
            run = drill_run(runs, str(SCENARIOS / "us-outage.yaml"), "--env", str(lab.environment_file))
    assert (run.code, run.record["verdict"]) == (2, "aborted"), run.output
    reason = run.record["reason"]
    assert reason.startswith("pre-flight: a region expected to take over is not healthy, so the drill would "
                             "cause an outage; nothing was touched (--force runs anyway): eu: endpoint "
                             "eu.endpoints.drill.test (")
    assert "does not answer the monitor's HTTP /healthz within its 5s timeout (3 tries)" in reason
    assert "ingress-nginx/ingress-nginx-controller has 0 of 2 replicas ready" in reason
    assert "us:" not in reason
    assert run.record["incident_start"] is None
    assert run.record["rollback"] == []
    # Nothing was injected, so the design review's windows (what the faults would do) judge nothing.
    assert not any("one of them is wrong" in e["note"] for e in run.record["expectations"]), \
        run.record["expectations"]
