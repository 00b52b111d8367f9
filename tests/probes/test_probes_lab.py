"""The probes against a lab, reached through its environment file as a run reaches it, judged by its ground
truth."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from driver import Driver

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.lab.groundtruth import read
from drills.targets import Targets
from probes.base import Marks, Sample
from probes.dns import DnsProbe
from probes.http import HttpProbe
from probes.replicas import ReplicasProbe

pytestmark = pytest.mark.lab

PERIOD = 1.0


@pytest.fixture
async def targets(lab_env: Environment) -> AsyncIterator[Targets]:
    found = Targets(lab_env, ScenarioClock(lab_env.time_scale))
    yield found
    found.close()


def ready(count: int) -> Callable[[list[Sample]], bool]:
    return lambda samples: bool(samples) and samples[-1].values.get("ready") == count


async def test_dns_and_http_see_the_primary_region(targets: Targets) -> None:
    dns = DnsProbe("dns", DnsProbe.Spec(), targets, every=PERIOD)
    http = HttpProbe("users", HttpProbe.Spec.model_validate({"timeout": "60s"}), targets, every=PERIOD)
    answer = await dns.sample()
    served = await http.sample()
    await http.aclose()
    assert (answer["answer"], answer["rcode"]) == ("us", "NOERROR")
    assert (served["ok"], served["failed"]) == (100, 0)
    assert {(o["region"], o["resolved"]) for o in served["outcomes"]} == {("us", "us")}  # type: ignore[union-attr]


async def test_replicas_see_a_deleted_pod_come_back(targets: Targets, lab_env: Environment) -> None:
    kube = targets.kube("eu")
    spec = ReplicasProbe.Spec(cluster="eu", namespace="shop", deployment="web")
    async with Driver(ReplicasProbe("web", spec, targets, every=PERIOD), targets.clock) as driver:
        await driver.until(ready(3))
        pods = await kube.call(kube.core.list_namespaced_pod, "shop", label_selector="app=web")
        victim = pods.items[0]
        node = await kube.call(kube.core.read_node, victim.spec.node_name)
        zone = node.metadata.labels["topology.kubernetes.io/zone"]
        incident = targets.clock.now()
        await kube.call(kube.core.delete_namespaced_pod, victim.metadata.name, "shop")
        await driver.until(lambda samples: any(s.t > incident and s.values.get("low") == 2 for s in samples))
        await driver.until(ready(3))
        found = driver.probe.metrics(driver.samples, Marks(incident_start=incident, recovery_start=None,
                                                           ended=targets.clock.now()))
    assert found["min_ready"].value == 2
    assert found[f"ready_by_zone.{zone}"].value == 0
    restore = found["time_to_restore"]
    assert restore.value is not None
    assert restore.error is not None
    truth = _restored_at(lab_env, targets.clock, after=incident) - incident
    print(f"time_to_restore {restore.value:.2f} +- {restore.error:.2f} s, ground truth {truth:.2f} s")
    # The watch delivers a change some milliseconds after it happened: 50 ms real of slack on a busy machine.
    assert abs(restore.value - truth) <= restore.error + 0.05 * targets.clock.time_scale


async def test_a_missing_deployment_leaves_the_probe_blind_and_saying_why(targets: Targets) -> None:
    spec = ReplicasProbe.Spec(cluster="eu", namespace="shop", deployment="no-such-thing")
    async with Driver(ReplicasProbe("web", spec, targets, every=PERIOD), targets.clock) as driver:
        await driver.until(lambda samples: bool(samples) and "404" in str(samples[-1].values.get("error")))
        assert driver.samples[-1].values["ready"] is None
        assert driver.probe.signals(driver.samples)["steady"] is False
        started = time.monotonic()
    assert time.monotonic() - started < 2.0  # closing stops the watches at once


def _restored_at(env: Environment, clock: ScenarioClock, *, after: float) -> float:
    """Scenario time at which the lab's ground truth says web in eu was whole again after ``after``."""
    assert env.lab is not None
    path = Path(env.lab.ground_truth)
    if not path.is_absolute():
        path = Path(env.path).parent / path
    origin = clock.real(0.0)
    events: list[dict[str, Any]] = [e for e in read(path) if e["event"] == "replicas" and e["region"] == "eu"
                                    and e["namespace"] == "shop" and e["deployment"] == "web"]
    for event in events:
        t = (event["real"] - origin) * clock.time_scale
        if t > after and event["ready"] == 3:
            return t
    raise AssertionError(f"the ground truth has no restore after t={after}: {events[-3:]}")
