"""The http probe: requests through DNS to real loopback servers, its signals and its metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from probeservers import TARGETS, DnsStub, Service, dns_stub, environment, service, targets_for
from pydantic import ValidationError

from drills.targets import Targets
from probes.base import Marks, Metric, Probe, Sample
from probes.http import HttpProbe

PERIOD = 0.5


def probe(targets: Targets, **spec: object) -> HttpProbe:
    return HttpProbe("users", HttpProbe.Spec.model_validate(spec), targets, every=PERIOD)


@pytest.fixture
def offline() -> Iterator[Targets]:
    with targets_for(environment(nameservers=["127.0.0.1:9"])) as found:
        yield found


def samples(outcomes: str, *, latency: float = 0.1, region: str = "us") -> list[Sample]:
    """One sample per period: ``o`` ok, ``x`` failed; ``u``/``e`` ok from us/eu."""
    out = []
    for i, c in enumerate(outcomes):
        ok = c in "oue"
        served = {"u": "us", "e": "eu"}.get(c, region)
        out.append(Sample("users", t=i * PERIOD, real=0.0, duration=latency,
                          values={"ok": ok, "status": 200 if ok else 503, "latency": latency * (i + 1),
                                  "region": served if ok else None}))
    return out


def measure(targets: Targets, outcomes: str, *, incident: float | None = None, recovery: float | None = None,
            ended: float | None = None) -> dict[str, Metric]:
    taken = samples(outcomes)
    end = ended if ended is not None else len(outcomes) * PERIOD
    return probe(targets).metrics(taken, Marks(incident_start=incident, recovery_start=recovery, ended=end))


def test_the_probe_fits_the_protocol(offline: Targets) -> None:
    assert isinstance(probe(offline), Probe)


def test_spec_checks_its_values() -> None:
    with pytest.raises(ValidationError):
        HttpProbe.Spec.model_validate({"connection": "keep"})
    with pytest.raises(ValidationError):
        HttpProbe.Spec.model_validate({"timeout": 10})
    spec = HttpProbe.Spec.model_validate({"timeout": "5s", "path": "/healthz"})
    assert (spec.timeout, spec.path, spec.connection) == (5.0, "/healthz", "new")


def test_in_flight_bound_follows_the_timeout_and_the_period(offline: Targets) -> None:
    assert probe(offline, timeout="5s").max_in_flight == 12  # 10 periods of 0.5 s, plus 2
    assert probe(offline, timeout="60s").max_in_flight == 48
    assert probe(offline, max_in_flight=5).max_in_flight == 5


# metrics on synthetic samples


def test_availability_and_error_rate_with_their_error(offline: Targets) -> None:
    found = measure(offline, "ooooxxoooo")
    assert (found["availability"].value, found["availability"].unit) == (80.0, "%")
    assert found["error_rate"].value == 20.0
    assert found["availability"].error == pytest.approx(10.0)  # two changes over ten samples


def test_latency_percentiles_over_the_successful_samples(offline: Targets) -> None:
    found = measure(offline, "ooooxo")  # ok latencies 0.1, 0.2, 0.3, 0.4 and 0.6
    assert found["latency_p50"].value == pytest.approx(0.3)
    assert found["latency_p99"].value == pytest.approx(0.4 + 0.2 * 0.96)
    assert found["latency_p50"].unit == "s"
    assert found["latency_p50"].error is not None
    nothing = measure(offline, "xxx")
    assert nothing["latency_p50"].value is None


def test_downtime_is_the_longest_run_of_failures(offline: Targets) -> None:
    found = measure(offline, "ooxoooxxxooo")
    # Failed samples at t=3.0..4.0, next ok at 4.5: 1.5 s, each end uncertain by a period.
    assert found["downtime"].value == pytest.approx(1.5)
    assert found["downtime"].error == pytest.approx(0.5)
    assert "3 failed samples from t=3.0s" in found["downtime"].note


def test_downtime_still_running_at_the_end_lasts_until_the_end(offline: Targets) -> None:
    found = measure(offline, "oooxx", ended=3.0)
    assert found["downtime"].value == pytest.approx(1.5)
    assert "still failing" in found["downtime"].note


def test_no_failure_is_zero_downtime_within_a_period(offline: Targets) -> None:
    found = measure(offline, "oooooo")
    assert (found["downtime"].value, found["downtime"].error) == (0.0, PERIOD)


def test_failover_of_the_serving_region(offline: Targets) -> None:
    found = measure(offline, "uuuuxxeeexe", incident=1.0)
    # Not served by eu at t=2.5 (failed); served by eu from t=3.0 (plus its 0.1 s duration) on, never
    # again by us: a later failure does not undo it.
    assert found["failover_time"].value == pytest.approx((2.5 + 3.1) / 2 - 1.0)
    assert found["failover_time"].error == pytest.approx((3.1 - 2.5) / 2)
    assert measure(offline, "uuuuuu", incident=1.0)["failover_time"].value is None
    assert measure(offline, "uuuuuu")["failover_time"].value is None


def test_failover_counts_failed_samples_as_not_served_yet(offline: Targets) -> None:
    # The flawed-design report (TTL 300 s): served by us, then the incident at 1.2, failures at
    # 1.5 .. 4.5 while resolvers keep the dead answer, then eu from 5.0 on. Users were not served by eu
    # at 4.5 (a failed request), and were at 5.0 .. 5.1: 3.3 .. 3.9 after the incident, not the
    # 0 .. 3.9 (1.95 +- 1.95, value equal to its error) that ignoring the failures gives.
    found = measure(offline, "uuuxxxxxxxeeee", incident=1.2)
    assert found["failover_time"].value == pytest.approx((4.5 + 5.1) / 2 - 1.2)
    assert found["failover_time"].error == pytest.approx((5.1 - 4.5) / 2)
    assert found["failover_time"].unit == "s"
    assert found["failover_time"].note == "from us"


def test_failover_is_unmeasured_without_an_incident_or_a_move(offline: Targets) -> None:
    # No fault applied: nothing to fail over from, even though the serving region changed.
    unfaulted = measure(offline, "uuueee")["failover_time"]
    assert (unfaulted.value, unfaulted.note) == (None, "no fault was applied")
    # The fault applied, DNS never moved: users failed until the end, never served by eu.
    stuck = measure(offline, "uuuxxxxxx", incident=1.2)["failover_time"]
    assert stuck.value is None
    assert "other than us" in stuck.note
    # No successful sample before the incident: no region to fail over from.
    assert measure(offline, "xxxeee", incident=1.2)["failover_time"].value is None


def test_latency_error_says_it_is_a_distribution_free_interval(offline: Targets) -> None:
    found = measure(offline, "o" * 20)  # latencies 0.1 .. 2.0 s
    p99 = found["latency_p99"]
    assert p99.value == pytest.approx(1.9 + 0.1 * 0.81)
    # Ranks floor(19.8 - 1.96 sqrt(0.198)) = 18 .. 20: the interval reaches down to the 18th, 1.8 s.
    assert p99.error == pytest.approx(1.981 - 1.8)
    assert "distribution-free 95% interval" in p99.note
    assert "distribution-free 95% interval" in found["latency_p50"].note


def test_downtime_with_lost_samples_widens_its_error(offline: Targets) -> None:
    # Samples at 2.0 and 2.5 were lost (the runner records nothing for them): the failure began
    # somewhere after the good sample at 1.5 and before the failed one at 3.0.
    taken = [s for s in samples("ooooooxxxooo") if s.t not in (2.0, 2.5)]
    found = probe(offline).metrics(taken, Marks(incident_start=1.2, recovery_start=None, ended=6.0))
    assert found["downtime"].value == pytest.approx(1.5)
    assert found["downtime"].error == pytest.approx(1.5)


def test_signals(offline: Targets) -> None:
    http = probe(offline)
    assert http.signals([]) == {"ok": None, "error_rate": None, "region": None, "steady": False}
    assert http.signals(samples("xoxoooo")) == {"ok": True, "error_rate": pytest.approx(200 / 7),
                                                "region": "us", "steady": True}
    assert http.signals(samples("oooox"))["steady"] is False
    assert http.signals(samples("oooox"))["region"] is None


# requests to real servers


SCALE = 100.0
"""Fast enough that a 30 s TTL expires in 0.3 real seconds."""
ROOMY = "120s"
"""A timeout of 1.2 real seconds at scale 100: a first request on a busy machine fits."""


@dataclass
class World:
    dns: DnsStub
    web: Service
    targets: Targets


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with dns_stub() as stub, service() as web:
        env = environment(nameservers=[f"127.0.0.1:{stub.port}"], port=web.port, scale=SCALE)
        with targets_for(env) as targets:
            yield World(stub, web, targets)


async def test_a_good_sample(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY)
    values = await http.sample()
    await http.aclose()
    assert values["ok"] is True, values
    assert (values["status"], values["region"], values["resolved"], values["address"]) == (
        200, "us", "us", "127.0.0.1")
    assert isinstance(values["latency"], float)
    assert values["error"] is None


async def test_an_error_status_is_a_failed_sample(world: World) -> None:
    world.web.us.mode = "fail"
    http = probe(world.targets, timeout=ROOMY)
    values = await http.sample()
    await http.aclose()
    assert (values["ok"], values["status"], values["error"]) == (False, 503, "HTTP 503")


async def test_a_hanging_server_times_out_within_the_scenario_timeout(world: World) -> None:
    world.web.us.mode = "hang"
    http = probe(world.targets, timeout="15s")  # 150 ms real
    started = asyncio.get_running_loop().time()
    values = await http.sample()
    elapsed = asyncio.get_running_loop().time() - started
    await http.aclose()
    assert values["ok"] is False
    assert "timeout" in str(values["error"])
    assert 0.15 <= elapsed < 1.5


async def test_samples_past_the_in_flight_bound_fail_without_starting(world: World) -> None:
    world.web.us.mode = "hang"
    http = probe(world.targets, timeout="30s", max_in_flight=2)
    found = await asyncio.gather(*(http.sample() for _ in range(3)))
    await http.aclose()
    assert [v["ok"] for v in found] == [False, False, False]
    assert sum(1 for v in found if str(v["error"]).startswith("not started")) == 1
    assert len(world.web.us.peers) == 2


async def test_dns_failure_is_a_failed_sample(world: World) -> None:
    world.dns.target = None
    http = probe(world.targets, timeout=ROOMY)
    values = await http.sample()
    await http.aclose()
    assert values["ok"] is False
    assert "NXDOMAIN" in str(values["error"])


async def test_users_follow_dns_only_when_the_cached_answer_expires(world: World) -> None:
    """Until the 30 s TTL of the cached answer expires, the old region keeps the users."""
    http = probe(world.targets, timeout=ROOMY)
    first = await http.sample()
    world.dns.target = TARGETS["eu"]
    cached = await http.sample()
    await world.targets.clock.sleep(world.dns.ttl)  # the TTL itself is the subject: nothing to await
    fresh = await http.sample()
    await http.aclose()
    assert (first["region"], cached["region"], fresh["region"]) == ("us", "us", "eu")
    assert world.dns.queries_for() == 2


async def test_a_new_connection_per_sample_by_default(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY)
    for _ in range(3):
        await http.sample()
    await http.aclose()
    assert len(set(world.web.us.peers)) == 3


async def test_a_long_lived_client_stays_until_its_connection_breaks(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY, connection="reuse")
    await http.sample()
    world.dns.target = TARGETS["eu"]
    await world.targets.clock.sleep(world.dns.ttl)  # past the TTL: a new client would move
    stayed = await http.sample()
    await world.web.stop("us")
    broken = await http.sample()
    moved = await http.sample()
    await http.aclose()
    assert len(set(world.web.us.peers)) == 1
    assert stayed["region"] == "us"
    assert broken["ok"] is False
    assert moved["region"] == "eu"
