"""The replicas probe's signals and metrics on synthetic samples, and its pod selector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from probeservers import environment, targets_for, write_kubeconfig
from pydantic import ValidationError

from drills.errors import DrillError
from drills.targets import Targets
from probes.base import JSONValue, Marks, Metric, Probe, Sample
from probes.replicas import ReplicasProbe, pod_selector

PERIOD = 1.0


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[Targets]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig")
    with targets_for(environment(nameservers=["127.0.0.1:9"], kubeconfig=kubeconfig)) as found:
        yield found


def probe(targets: Targets, cluster: str = "eu") -> ReplicasProbe:
    spec = ReplicasProbe.Spec(cluster=cluster, namespace="shop", deployment="web")
    return ReplicasProbe("web", spec, targets, every=PERIOD)


def sample(t: float, ready: int | None, low: int | None = None, *, desired: int = 3,
           zones: tuple[int, int, int] = (1, 1, 1), low_zones: tuple[int, int, int] | None = None) -> Sample:
    if ready is None:
        values: dict[str, JSONValue] = {"ready": None, "desired": None, "by_zone": {}, "low": None,
                                     "low_by_zone": {}, "error": "the watches are starting"}
    else:
        names = ("zone-1", "zone-2", "zone-3")
        values = {"ready": ready, "desired": desired, "by_zone": dict(zip(names, zones, strict=True)),
                  "low": ready if low is None else low,
                  "low_by_zone": dict(zip(names, low_zones or zones, strict=True)), "error": None}
    return Sample("web", t=t, real=0.0, values=values)


def measure(targets: Targets, samples: list[Sample], incident: float | None) -> dict[str, Metric]:
    return probe(targets).metrics(samples, Marks(incident_start=incident, recovery_start=None, ended=20.0))


def test_the_probe_fits_the_protocol(targets: Targets) -> None:
    assert isinstance(probe(targets), Probe)


def test_an_unknown_cluster_is_refused_naming_the_regions(targets: Targets) -> None:
    with pytest.raises(DrillError, match="its regions: eu, us"):
        probe(targets, cluster="asia")
    with pytest.raises(ValidationError):
        ReplicasProbe.Spec.model_validate({"cluster": "eu", "namespace": "shop"})


def test_min_ready_counts_a_dip_between_samples(targets: Targets) -> None:
    found = measure(targets, [sample(0, 3), sample(1, 3), sample(2, 3, low=1), sample(3, 3)], incident=0.5)
    minimum = found["min_ready"]
    assert (minimum.value, minimum.unit, minimum.error) == (1.0, "count", 0.0)


def test_min_ready_looks_after_the_incident_only(targets: Targets) -> None:
    found = measure(targets, [sample(0, 0), sample(1, 3), sample(2, 2), sample(3, 3)], incident=0.5)
    assert found["min_ready"].value == 2.0


def test_time_to_restore_from_the_incident_to_ready_again(targets: Targets) -> None:
    samples = [sample(t, ready) for t, ready in enumerate((3, 3, 2, 2, 2, 3, 3))]
    found = measure(targets, samples, incident=1.5)
    # Restored between t=4 (still 2) and t=5 (3 again): 3.0 after 1.5, give or take half a period.
    assert (found["time_to_restore"].value, found["time_to_restore"].error) == (3.0, 0.5)


def test_a_dip_and_return_between_two_samples_is_restored_between_them(targets: Targets) -> None:
    found = measure(targets, [sample(0, 3), sample(1, 3), sample(2, 3, low=2), sample(3, 3)], incident=0.5)
    assert (found["time_to_restore"].value, found["time_to_restore"].error) == (1.0, 0.5)


def test_never_dropping_restores_in_no_time(targets: Targets) -> None:
    found = measure(targets, [sample(t, 3) for t in range(5)], incident=1.0)
    assert found["time_to_restore"].value == 0.0
    assert "never dropped" in found["time_to_restore"].note


def test_never_coming_back_is_unmeasured(targets: Targets) -> None:
    found = measure(targets, [sample(0, 3), sample(1, 2), sample(2, 1), sample(3, 2)], incident=0.5)
    assert found["time_to_restore"].value is None
    assert "2/3" in found["time_to_restore"].note


def test_blind_samples_are_left_out(targets: Targets) -> None:
    found = measure(targets, [sample(0, 3), sample(1, None), sample(2, 3)], incident=0.5)
    assert found["min_ready"].value == 3.0
    nothing = measure(targets, [sample(0, None), sample(1, None)], incident=0.5)
    assert nothing["min_ready"].value is None


def test_blind_samples_after_the_incident_say_a_dip_may_be_missed(targets: Targets) -> None:
    samples = [sample(0, 3), sample(1, 3), sample(2, None), sample(3, None), sample(4, 2), sample(5, 3)]
    found = measure(targets, samples, incident=0.5)
    assert found["min_ready"].value == 2.0
    assert "2 blind samples" in found["min_ready"].note
    assert "2 blind samples" in found["ready_by_zone.zone-1"].note
    # Restored between t=4 (2 ready) and t=5 (3 again): 4.0 after 0.5, give or take half a period.
    restore = found["time_to_restore"]
    assert (restore.value, restore.error) == (4.0, 0.5)
    assert "2 blind samples" in restore.note
    seen_throughout = measure(targets, [sample(0, 3), sample(1, None), sample(2, 3)], incident=1.5)
    assert "blind" not in seen_throughout["min_ready"].note


async def test_a_sample_without_its_watches_is_blind_and_gives_no_counts(targets: Targets) -> None:
    web = probe(targets)  # its kubeconfig names an API server nobody runs
    try:
        values = await web.sample()
    finally:
        await web.aclose()
    failed = Sample("web", 0.0, 0.0, values)
    assert failed.blind == "the watches are starting"
    assert (values["ready"], values["low"], values["by_zone"]) == (None, None, {})
    assert web.signals([sample(0, 3), failed]) == {"ready": None, "desired": None, "steady": False}


def test_without_a_fault_a_drop_has_no_time_to_restore(targets: Targets) -> None:
    dropped = measure(targets, [sample(0, 3), sample(1, 2), sample(2, 3)], incident=None)
    assert dropped["time_to_restore"].value is None
    assert "no fault was applied" in dropped["time_to_restore"].note
    assert "2/3 at 00:01.0" in dropped["time_to_restore"].note
    assert dropped["min_ready"].value == 2.0
    assert "over the whole run" in dropped["min_ready"].note
    steady = measure(targets, [sample(t, 3) for t in range(3)], incident=None)
    assert (steady["time_to_restore"].value, steady["time_to_restore"].error) == (0.0, 0.0)
    assert "no fault was applied" in steady["time_to_restore"].note


def test_ready_by_zone_is_each_zone_floor_after_the_incident(targets: Targets) -> None:
    samples = [sample(0, 3), sample(1, 2, zones=(0, 1, 1)),
               sample(2, 3, zones=(0, 2, 1), low_zones=(0, 1, 1)), sample(3, 3, zones=(0, 2, 1))]
    found = measure(targets, samples, incident=0.5)
    assert {k: m.value for k, m in found.items() if k.startswith("ready_by_zone.")} == {
        "ready_by_zone.zone-1": 0.0, "ready_by_zone.zone-2": 1.0, "ready_by_zone.zone-3": 1.0}


def test_signals(targets: Targets) -> None:
    web = probe(targets)
    assert web.signals([]) == {"ready": None, "desired": None, "steady": False}
    assert web.signals([sample(0, 3)]) == {"ready": 3, "desired": 3, "steady": True, "ready.zone-1": 1,
                                           "ready.zone-2": 1, "ready.zone-3": 1}
    assert web.signals([sample(0, 2, zones=(0, 1, 1))])["steady"] is False
    assert web.signals([sample(0, None)])["steady"] is False


def test_pod_selector_from_the_deployment() -> None:
    deployment = {"spec": {"selector": {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [{"key": "track", "operator": "In", "values": ["stable", "canary"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]}}}
    assert pod_selector(deployment) == "app=web,tier=front,track in (stable,canary),!legacy"
