"""us-outage on flawed Traffic Manager settings must FAIL, naming the broken promise.

Each design gets a lab of its own (tests/integration/topologies) at a higher time scale: the
drills are long (minutes of TTL or detection), and what they must show is a bound broken by minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import FLAWED_TIME_SCALE, SCENARIOS, drill_run, flawed_lab, unchanged

from drills.environment import load_environment

pytestmark = pytest.mark.lab


def test_a_ttl_of_five_minutes_breaks_the_users_promise(tmp_path: Path, runs: Path) -> None:
    with flawed_lab("ttl-300s", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        assert env.time_scale == FLAWED_TIME_SCALE
        with unchanged(env):
            run = drill_run(runs, str(SCENARIOS / "us-outage.yaml"), "--env", str(lab.environment_file))
    assert (run.code, run.record["verdict"]) == (1, "failed"), run.output
    # Traffic Manager itself detects the outage as fast as ever; resolvers keep the dead answer.
    assert run.expectation("dns.failover_time < 3m")["passed"]
    client = run.expectation("dns.client_failover_time < 4m")
    assert not client["passed"]
    assert client["value"] == pytest.approx( run.metric("dns.failover_time")["value"] + 300.0, abs=0.01)
    assert "dns.client_failover_time < 4m" in run.record["reason"]
    assert run.record["rollback"][0]["outcome"] == "reverted"
    print(f"measured: ttl 300s: dns.failover_time {run.metric('dns.failover_time')['value']} s, "
          f"client_failover_time {client['value']} s, "
          f"users.downtime {run.metric('users.downtime')['value']} s; "
          f"failed: {sorted(run.failed_expectations())}")


def test_slow_probing_with_nine_tolerated_failures_breaks_the_rto(tmp_path: Path, runs: Path) -> None:
    with flawed_lab("slow-probing", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        with unchanged(env):
            run = drill_run(runs, str(SCENARIOS / "us-outage.yaml"), "--env", str(lab.environment_file))
    assert (run.code, run.record["verdict"]) == (1, "failed"), run.output
    failover = run.expectation("dns.failover_time < 3m")
    assert not failover["passed"]
    # Degraded on the 10th failed probe, 30 s apart, each timing out after 5 s: [275 s, 305 s).
    error = run.metric("dns.failover_time")["error"]
    assert 275.0 - error <= failover["value"] < 305.0 + 5.0 + error
    assert {"dns.failover_time < 3m", "users.downtime < 4m"} <= run.failed_expectations()
    print(f"measured: slow probing: dns.failover_time {failover['value']} ± {error} s; "
          f"failed: {sorted(run.failed_expectations())}")
