"""Phase sweeps on a lab: a design whose verdict depends on where in Traffic Manager's probe cycle the
outage lands must FAIL every time, naming its worst trial and phase, and each trial must agree with
the lab's ground truth and Traffic Manager's semantics.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from drillrun import FLAWED_TIME_SCALE, SCENARIOS, drill_run, flawed_lab, ground_truth, unchanged

from drills.environment import load_environment
from reports.base import format_value

pytestmark = pytest.mark.lab


def test_five_tolerated_failures_break_the_rto_in_the_first_third_of_the_probe_cycle(
        tmp_path: Path, runs: Path) -> None:
    """Probing every 30 s, 10 s timeout, 5 tolerated failures: the endpoint is Degraded at the timeout
    of the 6th failed probe, the first of them at the first deadline after the ingress died: 160 to
    190 s after the outage, 190 - 30 * phase for an outage at ``phase`` of the probe cycle. One outage
    passes two times in three; the sweep's four trials, a quarter of the cycle apart, always put one in
    the failing first third, and the drill fails naming its worst trial. Seed 1 aims at phases 0.13,
    0.38, 0.63 and 0.88."""
    with flawed_lab("five-tolerated-failures", tmp_path / "lab") as lab:
        env = load_environment(lab.environment_file)
        with unchanged(env):
            began = time.monotonic()
            run = drill_run(runs, str(SCENARIOS / "us-outage.yaml"), "--env", str(lab.environment_file),
                            "--seed", "1")
            took = time.monotonic() - began
    record = run.record
    assert (run.code, record["verdict"]) == (1, "failed"), run.output
    assert record["sweep"] == {"trials": 4, "run": 4, "seed": 1, "probe_interval": 30.0, "endpoint": "us"}
    trials = record["trials"]
    truth_log = ground_truth(env)
    started = _real(record["started_at"])
    truths = []
    for trial in trials:
        # Placed where aimed: the fault starts after the moment chosen by the event loop's lateness,
        # tens of milliseconds on a loaded machine (0.06 of the cycle is 30 ms at this scale).
        assert 0 <= trial["phase"] - trial["target_phase"] < 0.1, trial
        incident = started + trial["incident_start"] / FLAWED_TIME_SCALE
        moved = next(e["real"] for e in truth_log if e["event"] == "dns_answer" and e["answer"] == "eu"
                     and e["real"] >= incident)
        truth = (moved - incident) * FLAWED_TIME_SCALE
        truths.append(truth)
        # Traffic Manager as Azure's: the first probe to fail is a deadline after the incident, and the
        # endpoint is Degraded at the timeout of the 6th; never sooner. On a loaded machine a stall of
        # the lab's process (a quarter of a real second is 15 s here) may make it later, and the drill
        # must then measure what happened.
        assert truth >= 30.0 * (1 - trial["phase"]) + 5 * 30.0 + 10.0 - 1.0, (trial, truth)
        failover = trial["metrics"]["dns.failover_time"]
        assert abs(failover["value"] - truth) <= failover["error"] + 0.1, (trial, truth)
    # The sweep put a trial in the failing first third of the cycle, and the drill failed.
    early = [t for t in trials if t["phase"] < 1 / 3]
    assert early
    assert all(t["metrics"]["dns.failover_time"]["value"] > 180.0 for t in early)
    failed = run.expectation("dns.failover_time < 3m")
    assert not failed["passed"]
    # The value shown is the worst trial's, and the reason names that trial and its phase.
    worst = failed["worst_trial"]
    values = [t["metrics"]["dns.failover_time"]["value"] for t in trials]
    assert failed["value"] == values[worst - 1] == max(values)
    assert run.metric("dns.failover_time")["trials"]["max"] == max(values)
    assert failed["worst_phase"] == trials[worst - 1]["phase"]
    # The design review knows the settings allow up to 190 s; the trials show it happening.
    assert "expectation 'dns.failover_time < 3m' failed: the design allows up to 190 s" in record["reason"]
    assert (f"in trial {worst} of 4 (phase {failed['worst_phase']:.2f} of the 30s probe cycle): "
            f"measured {format_value(failed['value'], 's', run.metric('dns.failover_time')['error'])}"
            in record["reason"])
    assert [(r["trial"], r["outcome"]) for r in record["rollback"]] == [(k, "reverted") for k in (1, 2, 3, 4)]
    measured = ", ".join(f"{t['phase']:.2f}: {t['metrics']['dns.failover_time']['value']} s "
                         f"(truth {truth:.1f} s)" for t, truth in zip(trials, truths, strict=True))
    print(f"measured: five tolerated failures, 4 trials in {took:.1f} s real: dns.failover_time by phase "
          f"{measured}")


def _real(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
