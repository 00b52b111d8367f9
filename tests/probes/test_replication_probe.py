"""The replication probe's signals and metrics on synthetic samples (exact numbers), and its set-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probeservers import environment, targets_for

from drills.environment import Environment
from drills.errors import DrillError
from drills.targets import Targets
from probes.base import Marks, Probe, Sample
from probes.replication import ReplicationProbe, replication_metrics

COSMOS = {"account": "shop-db", "endpoint": "https://shop-db.documents.azure.com:443/", "database": "shop",
          "container": "canary", "locations": {"us": "East US", "eu": "West Europe"},
          "keyEnv": "TEST_COSMOS_KEY"}


def cosmos_environment(**cosmos: Any) -> Environment:
    base = environment(nameservers=["127.0.0.1:9"]).model_dump(by_alias=True, exclude={"path"})
    return Environment.model_validate({**base, "cosmos": {**COSMOS, **cosmos}})


@pytest.fixture
def targets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Targets]:
    monkeypatch.setenv("TEST_COSMOS_KEY", "a2V5")
    with targets_for(cosmos_environment()) as found:
        yield found


def sample(t: float, **values: Any) -> Sample:
    return Sample("data", t=t, real=0.0, values={"write_region": "us", "error": None, **values})


def test_the_probe_fits_the_protocol_and_refuses_what_it_cannot_measure(targets: Targets,
                                                                       tmp_path: Path) -> None:
    probe = ReplicationProbe("data", ReplicationProbe.Spec(), targets, every=1.0)
    assert isinstance(probe, Probe)
    with pytest.raises(DrillError, match="maps no location to asia"):
        ReplicationProbe("data", ReplicationProbe.Spec(regions=["asia"]), targets, every=1.0)
    with targets_for(cosmos_environment(keyEnv="TEST_COSMOS_KEY_UNSET")) as other, \
            pytest.raises(DrillError, match="TEST_COSMOS_KEY_UNSET"):
        ReplicationProbe("data", ReplicationProbe.Spec(), other, every=1.0)


def test_signals_give_the_write_region_each_regions_lag_and_steady(targets: Targets) -> None:
    probe = ReplicationProbe("data", ReplicationProbe.Spec(steady_lag="10s"), targets, every=1.0)
    healthy = [sample(1.0, writes=[[1, 0.5, 0.6, "us"]], seen={"eu": [[1, 0.4, 0.1]]}, behind={"eu": 0.3}),
               sample(2.0, writes=[[2, 1.5, 1.6, "us"]], seen={"eu": []}, behind={"eu": 0.6})]
    assert probe.signals(healthy) == {"write_region": "us", "lag.eu": 0.6, "steady": True}
    stuck = [*healthy, sample(3.0, writes=[], failed=[[3, 2.5, 3.0, "timed out"]], behind={"eu": 12.0})]
    assert probe.signals(stuck) == {"write_region": "us", "lag.eu": 12.0, "steady": False}
    assert probe.signals([])["write_region"] is None


async def test_an_account_that_cannot_be_read_is_a_blind_sample_with_no_signal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_COSMOS_KEY", "a2V5")
    # Nothing listens on port 9 of loopback: every request is refused at once.
    with targets_for(cosmos_environment(endpoint="https://127.0.0.1:9/")) as targets:
        probe = ReplicationProbe("data", ReplicationProbe.Spec(timeout="2s"), targets, every=1.0)
        try:
            values = await probe.sample()
        finally:
            await probe.aclose()
    failed = Sample("data", 2.0, 0.0, values)
    assert failed.blind is not None
    assert values["write_region"] is None
    healthy = sample(1.0, writes=[[1, 0.5, 0.6, "us"]], seen={"eu": [[1, 0.4, 0.1]]}, behind={"eu": 0.3})
    # No lag from the older sample, no write region: the latest saw nothing.
    assert probe.signals([healthy, failed]) == {"write_region": None, "steady": False}


def _run() -> list[Sample]:
    """Canaries 1-4 before the incident at t=10 (lags in eu 1, 2, 3, 4), 5-6 acknowledged after it and
    lost in the forced failover, 7 failed, 8-9 written in eu."""
    return [
        sample(2.0, writes=[[1, 1.0, 1.2, "us"], [2, 2.0, 2.2, "us"]], seen={"eu": [[1, 1.0, 0.5]]}),
        sample(4.0, writes=[[3, 3.0, 3.2, "us"]], seen={"eu": [[2, 2.0, 0.5], [3, 3.0, 0.25]]}),
        sample(9.0, writes=[[4, 4.0, 4.2, "us"]], seen={"eu": [[4, 4.0, 1.0]]}),
        sample(11.0, writes=[[5, 10.0, 10.2, "us"], [6, 10.5, 10.7, "us"]]),
        sample(14.0, write_region="eu", failed=[[7, 11.0, 13.0, "timed out"]],
               audit={"region": "eu", "found": [1, 2, 3, 4], "missing": [5, 6], "left": 0}),
        sample(16.0, write_region="eu", writes=[[8, 14.0, 15.0, "eu"], [9, 15.0, 15.5, "eu"]]),
    ]


def test_metrics_from_canaries_audits_and_write_attempts() -> None:
    metrics = replication_metrics(_run(), Marks(incident_start=10.0, recovery_start=None, ended=20.0),
                                  regions=["eu", "us"])
    assert metrics["lag_p50.eu"].value == pytest.approx(2.5)
    assert metrics["lag_p99.eu"].value == pytest.approx(3.97)
    assert (metrics["lag_max.eu"].value, metrics["lag_max.eu"].error) == (4.0, 1.0)
    # the canaries' lags lie in [0.5, 1.5], [1.5, 2.5], [2.75, 3.25], [3, 5]: their median in [2.125, 2.875];
    # plus the median's rank interval over four canaries (from 1 to 4: 1.5)
    assert metrics["lag_p50.eu"].error == pytest.approx(0.375 + 1.5)
    assert "before the incident" in metrics["lag_p50.eu"].note
    assert metrics["lag_p50.us"].value is None
    lost = metrics["lost_writes"]
    assert (lost.value, lost.unit, lost.error) == (2.0, "count", 0.0)
    assert "from 00:10.2 to 00:10.7" in lost.note
    # 5 and 6 lost (acknowledged at 10.2 and 10.7); 4, kept, at 4.2: the loss window is 0.5 s to 6.5 s
    rpo = metrics["rpo"]
    assert (rpo.value, rpo.unit, rpo.error) == (pytest.approx(3.5), "s", pytest.approx(3.0))
    # after the incident: 5, 6 (acknowledged), 7 (failed), 8, 9: 4 of 5 acknowledged
    assert (metrics["write_availability"].value, metrics["write_availability"].unit) == (80.0, "%")
    # failed from 7's sending (11) to 8's (14)
    assert (metrics["write_downtime"].value, metrics["write_downtime"].error) == (3.0, 3.0)
    # 8 is the first write acknowledged in eu (at 15); the attempt before it was sent at 11
    failover = metrics["write_failover_time"]
    assert (failover.value, failover.error) == (pytest.approx(3.0), pytest.approx(2.0))


def test_a_later_audit_that_finds_a_canary_clears_it_and_unaudited_ones_are_said() -> None:
    run = _run()
    run.append(sample(18.0, write_region="us",
                      audit={"region": "us", "found": [5], "missing": [6], "left": 3}))
    lost = replication_metrics(run, Marks(incident_start=10.0, recovery_start=17.0, ended=20.0),
                               regions=["eu"])["lost_writes"]
    assert lost.value == 1.0
    assert "3 canaries were not yet audited" in lost.note


def test_without_a_failover_nothing_is_lost_and_lag_counts_every_canary() -> None:
    run = _run()[:3]
    metrics = replication_metrics(run, Marks(incident_start=None, recovery_start=None, ended=10.0),
                                  regions=["eu"])
    assert (metrics["lost_writes"].value, metrics["lag_max.eu"].value) == (0.0, 4.0)
    assert (metrics["rpo"].value, metrics["rpo"].error) == (0.0, 0.0)
    assert metrics["write_availability"].value == 100.0
    assert metrics["write_failover_time"].value is None


def test_a_failover_that_lost_nothing_has_no_window_wider_than_the_gap_between_canaries() -> None:
    run = _run()
    run[4] = sample(14.0, write_region="eu", failed=[[7, 11.0, 13.0, "timed out"]],
                    audit={"region": "eu", "found": [1, 2, 3, 4, 5, 6], "missing": [], "left": 0})
    rpo = replication_metrics(run, Marks(incident_start=10.0, recovery_start=None, ended=20.0),
                              regions=["eu"])["rpo"]
    # acknowledgements at 1.2, 2.2, 3.2, 4.2, 10.2, 10.7, 15, 15.5: gaps 1, 1, 1, 6, 0.5, 4.3, 0.5: median 1
    assert (rpo.value, rpo.error) == (0.0, pytest.approx(0.5))
    assert "no acknowledged canary was lost" in rpo.note
