"""The http probe's user population against a lab whose US ingress dies, judged by the lab's ground truth.

Each simulated user's downtime follows from two instants the lab records and the user's TTL phase the
probe records: its requests fail from the outage (the US ingress has no ready pod: requests hang until
the probe's timeout) until its first cache refresh after Traffic Manager's answer moved to Europe. The
distribution of those expected downtimes over users must match the one the probe measured, within the
metric's stated error plus a period, the outage start known to lie between the scale-down and the
ground truth's record of no ready ingress pod.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from driver import Driver

from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.lab.groundtruth import read
from drills.labprocess import LabProcess, start_lab
from drills.targets import Targets
from probes.base import Marks, Sample
from probes.http import HttpProbe
from probes.population import user_outcomes
from probes.timeline import percentile

pytestmark = pytest.mark.lab

SCALE = 60.0
"""Lab seconds a real second: the outage takes about 90 lab seconds, 1.5 real ones."""
PERIOD = 1.0
TTL_S = 30.0
"""The default topology's Traffic Manager TTL."""
USERS = 100
AMBIGUOUS_S = 0.5
"""A refresh this close to the instant the answer moved may have got either answer (the question
and the change race on a loaded machine): such users are allowed either outcome."""


@pytest.fixture(scope="module")
def private_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """A lab of its own: this test kills its US ingress."""
    with start_lab(time_scale=SCALE, directory=tmp_path_factory.mktemp("population-lab")) as process:
        yield process


@pytest.fixture
async def targets(private_lab: LabProcess) -> AsyncIterator[Targets]:
    env = load_environment(private_lab.environment_file)
    found = Targets(env, ScenarioClock(env.time_scale))
    yield found
    found.close()


def _all_served_by(region: str) -> Any:
    def check(samples: list[Sample]) -> bool:
        if not samples:
            return False
        outcomes = samples[-1].values.get("outcomes")
        return (samples[-1].values.get("failed") == 0 and isinstance(outcomes, list)
                and all(o.get("region") == region for o in outcomes))
    return check


async def test_the_downtime_distribution_matches_the_ground_truth(targets: Targets) -> None:
    spec = HttpProbe.Spec.model_validate({"users": USERS, "seed": 2024})
    probe = HttpProbe("users", spec, targets, every=PERIOD)
    kube = targets.kube("us")
    async with Driver(probe, targets.clock, period=PERIOD) as driver:
        await driver.until(_all_served_by("us"))
        incident = targets.clock.now()
        await kube.call(kube.apps.patch_namespaced_deployment_scale, "ingress-nginx-controller",
                        "ingress-nginx", {"spec": {"replicas": 0}})
        await driver.until(lambda samples: samples[-1].t > incident and _all_served_by("eu")(samples))
        ended = targets.clock.now()
    # Leaving the driver waited for the samples still in flight (requests hanging on the dead US).
    samples = [s for s in driver.samples if s.t <= ended]
    found = probe.metrics(samples, Marks(incident_start=incident, recovery_start=None, ended=ended,
                                         failed_regions=frozenset({"us"})))

    dead, moved = _ground_truth(targets.env, targets.clock, after=incident)
    first = next(s for s in samples if "population" in s.values)
    phases = first.values["population"]["ttl_phase"]  # type: ignore[index]
    low, high = [], []
    for user, phase in enumerate(phases):
        refresh = _first_refresh_after(samples, user, phase, moved)
        # The outage began between the scale-down and the ground truth's record of no ready ingress
        # pod (the lab counts pods a moment after they stop serving; seconds on a loaded machine).
        low.append(refresh - dead)
        # A refresh that raced the change may have kept the US answer for one more TTL.
        high.append(refresh - incident + (TTL_S if refresh - moved < AMBIGUOUS_S else 0.0))

    first_failed = min(s.t for s in samples if s.t > incident and s.values.get("failed"))
    print(f"incident {incident:.2f}, ingress dead {dead:.2f}, first failed sample {first_failed:.2f}, "
          f"answer moved {moved:.2f}")
    assert found["users_affected"].value == 100.0
    for key, q in (("downtime_p50", 50.0), ("downtime_p99", 99.0), ("downtime_max", 100.0)):
        metric = found[key]
        assert metric.value is not None
        assert metric.error is not None
        lo, hi = percentile(low, q), percentile(high, q)
        assert lo is not None
        assert hi is not None
        # The measured run starts at the first failed sample, up to a period after the ingress died;
        # each refresh happens at a sample, the probe's instant a little after the recorded one.
        slack = metric.error + PERIOD
        print(f"{key}: measured {metric.value:.2f} +- {metric.error:.2f} s, "
              f"ground truth {lo:.2f} .. {hi:.2f} s")
        assert lo - slack <= metric.value <= hi + slack, (key, metric, lo, hi)
    spread = found["downtime_max"].value - found["downtime_p50"].value  # type: ignore[operator]
    assert spread > TTL_S / 4, "users' caches expire at every phase of the TTL, so their downtimes spread"


def _first_refresh_after(samples: list[Sample], user: int, phase: float, moved: float) -> float:
    """The sample instant at which ``user`` first asked the name servers after ``moved``, by the cache's
    rule: the first answer kept for ``phase`` of the TTL, each later one for the TTL, a question asked
    at the first request after the expiry; a question that failed (recorded as the user's outcome:
    no address) is asked again at the next request, as a stub resolver does."""
    expiry = -math.inf
    filled = False
    for sample in samples:
        if sample.t < expiry:
            continue
        outcome = user_outcomes(sample.values)[user]
        if str(outcome.get("error")).startswith("not started"):
            continue  # the probe was too far behind to take this sample: nobody asked
        if outcome.get("address") is None:  # the question failed
            expiry = -math.inf
            continue
        if sample.t >= moved:
            return sample.t
        expiry = sample.t + TTL_S * (1.0 if filled else phase)
        filled = True
    return math.inf


def _ground_truth(env: Environment, clock: ScenarioClock, *, after: float) -> tuple[float, float]:
    """Scenario instants, after ``after``, at which the US ingress lost its last ready pod and the
    answer moved to Europe."""
    assert env.lab is not None
    path = Path(env.lab.ground_truth)
    if not path.is_absolute():
        path = Path(env.path).parent / path
    origin = clock.real(0.0)
    events = [(e, (e["real"] - origin) * clock.time_scale) for e in read(path)]
    dead = next(t for e, t in events if t > after and e["event"] == "replicas" and e["region"] == "us"
                and e["deployment"] == "ingress-nginx-controller" and e["ready"] == 0)
    moved = next(t for e, t in events if t > after and e["event"] == "dns_answer" and e["answer"] == "eu")
    return dead, moved
