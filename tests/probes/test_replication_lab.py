"""The replication probe against a lab whose replication lags (p50 5 s, p99 10 s), through the real
``azure-cosmos`` client, judged by the lab's ground truth: a forced outage of the write region loses exactly
the acknowledged writes Europe had not applied (none under Strong consistency), and each canary's measured
lag agrees with the lab's commit and apply times within the error the probe states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from driver import Driver

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.faults.cosmos import RegionOutage
from drills.lab.groundtruth import read
from drills.labprocess import LabProcess, start_lab
from drills.targets import Targets
from probes.base import Marks, Sample
from probes.replication import ReplicationProbe
from probes.timeline import percentile

pytestmark = pytest.mark.lab

SCALE = 60.0
CANARIES_BEFORE = 10
"""Canaries seen in Europe before the outage: enough for percentiles, few enough to stay fast."""
CLOCKS_S = 0.05
"""Scenario seconds the lab's clock and the run's may disagree on one interval (about a real millisecond)."""


@pytest.fixture(scope="module", params=["Session", "Strong"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    topology = tmp_path_factory.mktemp("topology") / "topology.yaml"
    topology.write_text(f"cosmos:\n  consistency: {request.param}\n  lag: {{p50: 5s, p99: 10s}}\n")
    with start_lab(topology=topology, time_scale=SCALE, directory=tmp_path_factory.mktemp("lab")) as process:
        yield process


def seen_in_eu(samples: list[Sample]) -> int:
    return sum(len((s.values.get("seen") or {}).get("eu", [])) for s in samples)  # type: ignore[union-attr]


def truth(env: Environment) -> tuple[dict[str, tuple[int, float]], dict[int, float], list[dict[str, Any]]]:
    """Each write's LSN and commit (lab seconds), each LSN's apply in West Europe, the losses."""
    assert env.lab is not None
    events = read(Path(env.lab.ground_truth))
    writes = {e["id"]: (e["lsn"], e["lab"]) for e in events if e["event"] == "cosmos_write"}
    applied: dict[int, float] = {}
    for e in events:
        if e["event"] == "cosmos_apply" and e["location"] == "West Europe":
            first, last = e["lsns"]
            for lsn in range(first, last + 1):
                applied.setdefault(lsn, e["lab"])
    return writes, applied, [e for e in events if e["event"] == "cosmos_lost"]


async def test_a_forced_outage_loses_exactly_the_unreplicated_acknowledged_writes_and_lag_matches_the_truth(
        lab_env: Environment) -> None:
    targets = Targets(lab_env, ScenarioClock(lab_env.time_scale))
    clock = targets.clock
    probe = ReplicationProbe("data", ReplicationProbe.Spec(), targets, every=1.0)
    outage = RegionOutage(RegionOutage.Params(region="us"))
    try:
        async with Driver(probe, clock) as driver:
            await driver.until(lambda samples: seen_in_eu(samples) >= CANARIES_BEFORE)
            undo = await outage.prepare(targets)
            incident = clock.now()
            await outage.inject(targets, undo)
            await driver.until(lambda samples: any(w[3] == "eu" for s in samples for w in s.values["writes"]))
            recovery = clock.now()
            await outage.revert(targets, undo)
            reverted = clock.now()
            await driver.until(lambda samples: samples[-1].t > reverted
                               and samples[-1].values.get("write_region") == "us"
                               and probe.ledger.audit_left == 0)
            ended = clock.now()
            samples = list(driver.samples)
    finally:
        await targets.aclose()
    metrics = probe.metrics(samples, Marks(incident_start=incident, recovery_start=recovery, ended=ended))
    writes, applied, losses = truth(lab_env)

    lost_ids = {f"{probe._prefix}-{seq}" for seq in probe.ledger.lost}
    assert metrics["lost_writes"].value == sum(e["acknowledged"] for e in losses) == len(lost_ids)
    assert lost_ids <= {i for e in losses for i in e["ids"]}

    acked = {w[0]: w for s in samples for w in s.values["writes"]}  # type: ignore[union-attr]
    measured, true_lags = [], []
    for s in samples:
        for seq, lag, error in (s.values.get("seen") or {}).get("eu", []):  # type: ignore[union-attr]
            if acked[seq][2] >= incident:
                continue
            lsn, committed = writes[f"{probe._prefix}-{seq}"]
            true_lag = applied[lsn] - committed
            assert abs(lag - true_lag) <= error + CLOCKS_S, (seq, lag, error, true_lag)
            measured.append(lag)
            true_lags.append(true_lag)
    assert len(measured) >= CANARIES_BEFORE
    p50 = metrics["lag_p50.eu"]
    assert p50.value is not None
    assert p50.error is not None
    assert abs(p50.value - (percentile(true_lags, 50) or 0.0)) <= p50.error + CLOCKS_S
    assert metrics["write_failover_time"].value is not None
