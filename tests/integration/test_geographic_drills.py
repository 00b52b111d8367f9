"""Geography on a lab: a drill measures failover per vantage point (each region's users, named by the
environment the lab wrote), passes a Performance design, and fails plain Geographic routing, whose
US users are never moved, naming the expectation on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from drillrun import TEST_SCENARIOS, TOPOLOGIES, Finished, drill_run, unchanged

from drills.environment import load_environment
from drills.labprocess import start_lab

pytestmark = pytest.mark.lab

SCALE = 60.0
"""The scenario's bounds are minutes and a sound design meets them by more than a minute."""

SCENARIO = str(TEST_SCENARIOS / "geo-outage.yaml")
US_RTO = "dns.failover_time.us < 3m"
US_LAST = "dns.client_failover_time.us < 4m"
US_USERS = "users.downtime.us < 4m"


def _run(topology: str, tmp_path: Path) -> tuple[Finished, dict[str, dict[str, Any]]]:
    with start_lab(topology=TOPOLOGIES / f"{topology}.yaml", time_scale=SCALE,
                   directory=tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        assert env.traffic_manager.vantage_points == {"us": "198.51.100.0/24", "eu": "203.0.113.0/24"}
        with unchanged(env):
            run = drill_run(tmp_path / "runs", SCENARIO, "--env", str(lab.environment_file), "--trials", "1")
    return run, run.record["metrics"]


def test_performance_routing_moves_the_us_users_and_never_the_european_ones(tmp_path: Path) -> None:
    run, metrics = _run("performance-routing", tmp_path)
    assert run.record["verdict"] == "passed", run.output
    us, eu = metrics["dns.failover_time.us"], metrics["dns.failover_time.eu"]
    assert us["value"] is not None
    assert 35.0 - us["error"] <= us["value"] <= 45.0 + us["error"] + 0.5 * SCALE
    assert (eu["value"], eu["note"]) == (0.0, "us never answered: nothing to fail over from")
    # The users' own view, per vantage point: Europe's users were never served from the US.
    assert metrics["users.failover_time.eu"]["value"] == 0.0
    assert metrics["users.failover_time.us"]["value"] is not None
    assert metrics["users.downtime.us"]["value"] > 0.0


def test_geographic_routing_without_a_fallback_fails_naming_the_us_users(tmp_path: Path) -> None:
    run, metrics = _run("geographic-no-fallback", tmp_path)
    record = run.record
    assert (run.code, record["verdict"]) == (1, "failed"), run.output
    failed = run.failed_expectations()
    assert {US_RTO, US_LAST, US_USERS} <= failed
    assert "dns.failover_time.eu < 3m" not in failed
    assert metrics["dns.failover_time.us"]["value"] is None
    assert "still pointed at us" in metrics["dns.failover_time.us"]["note"]
    rto = run.expectation(US_RTO)
    assert "the design allows it never to happen while the faults last" in rto["note"]
    design = {d["expect"]: d for d in record["design"]["expectations"]}
    assert design[US_RTO]["breaks"]
    assert "Geographic routing with no fallback" in design[US_RTO]["reasoning"]
