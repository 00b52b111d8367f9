"""The dns probe: its samples against a real name server on loopback, its signals and its metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from probeservers import TARGETS, DnsStub, dns_stub, environment, targets_for
from pydantic import ValidationError

from drills.targets import Targets
from probes.base import Marks, Metric, Probe, Sample
from probes.dns import DnsProbe

PERIOD = 1.0


def probe(targets: Targets, **spec: object) -> DnsProbe:
    return DnsProbe("dns", DnsProbe.Spec.model_validate(spec), targets, every=PERIOD)


@pytest.fixture
def offline() -> Iterator[Targets]:
    """Targets for probes whose metrics and signals are computed, with nothing to ask."""
    with targets_for(environment(nameservers=["127.0.0.1:9"])) as found:
        yield found


def samples(answers: list[str | None], *, ttl: int = 30, duration: float = 0.1) -> list[Sample]:
    """One sample per second with these answers, as the runner records them."""
    return [Sample(probe="dns", t=float(i), real=0.0, duration=duration,
                   values={"answer": a, "ttl": ttl if a else None, "rcode": "NOERROR" if a else None})
            for i, a in enumerate(answers)]


US, EU = "us", "eu"


def measure(targets: Targets, answers: list[str | None], incident: float | None, recovery: float | None,
            ended: float) -> dict[str, Metric]:
    marks = Marks(incident_start=incident, recovery_start=recovery, ended=ended)
    return probe(targets).metrics(samples(answers), marks)


def test_the_probe_fits_the_protocol(offline: Targets) -> None:
    assert isinstance(probe(offline), Probe)


def test_spec_refuses_unknown_keys_and_bad_subnets() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DnsProbe.Spec.model_validate({"answer": "us"})
    with pytest.raises(ValidationError, match="not a subnet"):
        DnsProbe.Spec.model_validate({"vantage_points": {"paris": "somewhere"}})
    assert DnsProbe.Spec.model_validate({"timeout": "500ms"}).timeout == 0.5


# metrics on synthetic samples


def test_failover_from_the_baseline_to_the_answer_that_stayed(offline: Targets) -> None:
    found = measure(offline, [US] * 10 + [EU] * 10, 3.5, None, 20.0)
    # The change lies between t=9 (last us) and the end of the t=10 query (10.1): 5.5 .. 6.6 after 3.5.
    assert found["failover_time"].value == pytest.approx(6.05)
    assert found["failover_time"].error == pytest.approx(0.55)
    assert found["failover_time"].unit == "s"
    assert found["client_failover_time"].value == pytest.approx(36.05)
    assert found["client_failover_time"].error == pytest.approx(0.55)
    # The value already holds the TTL: the note says so rather than asking the reader to add it.
    assert found["client_failover_time"].note == "includes the 30 s TTL a resolver may have cached us for"
    assert found["flaps"].value == 0


def test_a_lost_answer_widens_the_error_rather_than_moving_the_failover(offline: Targets) -> None:
    answers = [US] * 10 + [None, None] + [EU] * 8
    found = measure(offline, answers, 3.5, None, 20.0)
    # Known between t=9 (last us) and 12.1 (first eu seen).
    assert found["failover_time"].value == pytest.approx((9 + 12.1) / 2 - 3.5)
    assert found["failover_time"].error == pytest.approx((12.1 - 9) / 2)


def test_flaps_count_every_change_beyond_the_first_and_failover_waits_for_the_last(offline: Targets) -> None:
    answers = [US] * 5 + [EU, US, EU, US] + [EU] * 6
    found = measure(offline, answers, 2.0, None, 15.0)
    assert found["flaps"].value == 4  # five changes, one of them expected
    assert found["flaps"].unit == "count"
    assert found["failover_time"].value == pytest.approx((8 + 9.1) / 2 - 2.0)


def test_never_failing_over_is_unmeasured_and_says_why(offline: Targets) -> None:
    found = measure(offline, [US] * 20, 5.0, 15.0, 20.0)
    assert found["failover_time"].value is None
    assert not found["failover_time"].measured
    assert "stayed us" in found["failover_time"].note
    assert found["client_failover_time"].value is None


def test_failed_queries_never_say_the_answer_stayed(offline: Targets) -> None:
    """Observation 7 of issue 8: the name server died after the incident; the probe saw no answer."""
    found = measure(offline, [US] * 5 + [None] * 15, 5.0, 15.0, 20.0)
    assert not found["failover_time"].measured
    assert "stayed" not in found["failover_time"].note
    assert "no answer was seen" in found["failover_time"].note


def test_an_answer_that_came_back_before_recovery_is_no_failover(offline: Targets) -> None:
    answers = [US] * 5 + [EU] * 5 + [US] * 10
    found = measure(offline, answers, 2.0, 18.0, 20.0)
    assert found["failover_time"].value is None
    assert "did not stay away" in found["failover_time"].note


def test_failback_from_recovery_start_to_the_baseline_for_good(offline: Targets) -> None:
    answers = [US] * 5 + [EU] * 10 + [US] * 5
    found = measure(offline, answers, 2.0, 12.0, 20.0)
    assert found["failover_time"].value == pytest.approx((4 + 5.1) / 2 - 2.0)
    assert found["failback_time"].value == pytest.approx((14 + 15.1) / 2 - 12.0)
    assert found["failback_time"].error == pytest.approx(0.55)
    assert found["flaps"].value == 0


def test_failback_and_the_runners_return_to_the_baseline_agree(offline: Targets) -> None:
    # The runner sees the steady state return when the probe is steady AND answers the baseline it
    # saw before the faults; failback_time is the first baseline answer that stayed. A stable eu
    # answer is steady but not returned; the return follows the failback by two periods.
    dns = probe(offline)
    taken = samples([US] * 5 + [EU] * 10 + [None] + [US] * 5)
    found = dns.metrics(taken, Marks(incident_start=2.0, recovery_start=12.0, ended=21.0))
    # Between t=15 (no answer: no evidence) and the t=16 query's end, counted from 14 (last eu).
    assert found["failback_time"].value == pytest.approx((14 + 16.1) / 2 - 12.0)
    assert found["failback_time"].error == pytest.approx((16.1 - 14) / 2)
    baseline = dns.signals(taken[:5])
    assert baseline == {"answer": US, "steady": True}
    returned = [s.t for i, s in enumerate(taken) if i >= 5 and dns.signals(taken[:i + 1]) == baseline]
    assert dns.signals(taken[:15])["steady"] is True  # steady on eu, which is not the baseline
    assert returned[0] == 18.0
    assert returned[0] - (found["failback_time"].value + 12.0) <= 2 * PERIOD + found["failback_time"].error


def test_failback_is_unmeasured_until_the_baseline_returns(offline: Targets) -> None:
    answers = [US] * 5 + [EU] * 15
    found = measure(offline, answers, 2.0, 12.0, 20.0)
    assert found["failback_time"].value is None
    assert "had not returned to us" in found["failback_time"].note
    nothing_undone = measure(offline, answers, 2.0, None, 20.0)
    assert nothing_undone["failback_time"].value is None


def test_without_a_baseline_nothing_is_measured(offline: Targets) -> None:
    answers = [None] * 5 + [EU] * 5
    found = measure(offline, answers, 3.0, None, 10.0)
    assert found["failover_time"].value is None
    assert "no answer was seen before" in found["failover_time"].note


def test_without_an_incident_only_flaps_are_counted(offline: Targets) -> None:
    found = measure(offline, [US, EU, US], None, None, 3.0)
    assert found["failover_time"].value is None
    assert found["flaps"].value == 2


def per_vp(answers: dict[str, list[str | None]]) -> list[Sample]:
    count = len(next(iter(answers.values())))
    out = []
    for i in range(count):
        vps = {vp: {"answer": seen[i], "ttl": 30} for vp, seen in answers.items()}
        first = next(iter(vps.values()))
        out.append(Sample(probe="dns", t=float(i), real=0.0, duration=0.0,
                          values={**first, "vantage_points": vps}))
    return out


def test_several_vantage_points_break_down_and_the_slowest_is_the_failover(offline: Targets) -> None:
    dns = probe(offline, vantage_points={"paris": "203.0.113.0/24", "tokyo": "198.51.100.0/24",
                                         "lima": "192.0.2.0/24"})
    found = dns.metrics(per_vp({"paris": [US] * 4 + [EU] * 6, "tokyo": [US] * 7 + [EU] * 3,
                                "lima": [EU] * 10}),
                        Marks(incident_start=2.0, recovery_start=None, ended=10.0))
    assert found["failover_time.paris"].value == pytest.approx(1.5)
    assert found["failover_time.tokyo"].value == pytest.approx(4.5)
    assert found["failover_time.lima"].value is None
    assert found["failover_time"].value == pytest.approx(4.5)
    assert "tokyo" in found["failover_time"].note
    assert "unmeasured at lima" in found["failover_time"].note


# every routing method: the failed region is the incident's


def failed_us(incident: float, recovery: float | None, ended: float) -> Marks:
    return Marks(incident_start=incident, recovery_start=recovery, ended=ended,
                 failed_regions=frozenset({US}))


def test_priority_failover_and_failback_with_the_failed_region_known(offline: Targets) -> None:
    found = probe(offline).metrics(samples([US] * 5 + [EU] * 10 + [US] * 5), failed_us(2.0, 12.0, 20.0))
    # Last us at 4, first eu at 5 (+0.1); back to us between 14 and 15.1.
    assert found["failover_time"].value == pytest.approx((4 + 5.1) / 2 - 2.0)
    assert found["failover_time"].note == "from us"
    assert found["client_failover_time"].value == pytest.approx((4 + 5.1) / 2 - 2.0 + 30)
    assert found["failback_time"].value == pytest.approx((14 + 15.1) / 2 - 12.0)
    assert found["flaps"].value == 0


def test_weighted_routing_alternates_and_fails_over_when_us_stops_answering(offline: Targets) -> None:
    # Weighted: answers alternate us/eu at random; us is degraded after the incident (t=4) and the last
    # us answer comes at t=9; recovery at 16, us answers again from t=18.
    answers = [US, EU, EU, US, EU, US, US, EU, EU, US, EU, EU, EU, EU, EU, EU, EU, EU, US, EU, US, EU]
    marks = failed_us(4.0, 16.0, 22.0)
    found = probe(offline).metrics(samples(answers), marks)
    assert found["failover_time"].value == pytest.approx((9 + 10.1) / 2 - 4.0)
    assert found["failover_time"].error == pytest.approx(0.55)
    # Failback: the answers are the baseline's again when us is answered again (t=17 eu, t=18 us).
    assert found["failback_time"].value == pytest.approx((17 + 18.1) / 2 - 16.0)
    # Alternation between us and eu, both answers of the baseline, is no flap.
    assert found["flaps"].value == 0
    # Not told which region failed: us answered before and no longer at the end, so it is inferred.
    inferred = probe(offline).metrics(samples(answers), Marks(incident_start=4.0, recovery_start=16.0,
                                                              ended=22.0))
    assert inferred["failover_time"].value == found["failover_time"].value


def test_the_failed_region_never_answered_is_a_failover_of_zero(offline: Targets) -> None:
    # Europe is the primary, the US is killed: no answer ever pointed at us.
    found = probe(offline).metrics(samples([EU] * 20), failed_us(5.0, 15.0, 20.0))
    assert (found["failover_time"].value, found["failover_time"].error) == (0.0, 0.0)
    assert found["failover_time"].note == "us never answered: nothing to fail over from"
    assert (found["client_failover_time"].value, found["client_failover_time"].note) == (
        0.0, "no resolver cached us")
    assert found["failback_time"].value == 0.0
    assert "the answer was eu when recovery started" in found["failback_time"].note
    # Not told which region failed: nothing was seen to stop, so nothing is claimed.
    unknown = measure(offline, [EU] * 20, 5.0, 15.0, 20.0)["failover_time"]
    assert unknown.value is None
    assert "the run did not say which region failed" in unknown.note


def test_a_failed_region_still_answered_at_the_end_is_unmeasured(offline: Targets) -> None:
    found = probe(offline).metrics(samples([US] * 5 + [EU] * 5 + [US] * 10), failed_us(2.0, 18.0, 20.0))
    assert found["failover_time"].value is None
    assert "still pointed at us" in found["failover_time"].note


def test_vantage_points_each_fail_over_from_the_failed_region(offline: Targets) -> None:
    # Performance or Geographic routing: paris is sent to eu all along, tokyo to us until t=6.
    dns = probe(offline, vantage_points={"paris": "203.0.113.0/24", "tokyo": "198.51.100.0/24"})
    found = dns.metrics(per_vp({"paris": [EU] * 10, "tokyo": [US] * 7 + [EU] * 3}),
                        failed_us(2.0, None, 10.0))
    assert found["failover_time.paris"].value == 0.0
    assert found["failover_time.tokyo"].value == pytest.approx(4.5)
    assert found["failover_time"].value == pytest.approx(4.5)
    assert "slowest vantage point: tokyo" in found["failover_time"].note


def test_a_sample_that_straddles_recovery_is_no_evidence_of_the_incident(offline: Targets) -> None:
    # The loop stalled: the sample taken at t=15 sent its question late and saw us back after the
    # recovery started at 15.5; it says nothing of the incident window.
    taken = samples([US] * 5 + [EU] * 11 + [US] * 4)
    taken[15] = Sample("dns", 15.0, 0.0, {"answer": US, "ttl": 30, "rcode": "NOERROR"}, duration=2.0)
    found = probe(offline).metrics(taken, Marks(incident_start=2.0, recovery_start=15.5, ended=20.0))
    assert found["failover_time"].value == pytest.approx((4 + 5.1) / 2 - 2.0)
    # Back between the recovery start (eu before it) and the end of the t=16 query.
    assert found["failback_time"].value == pytest.approx((15.5 + 16.1) / 2 - 15.5)


def test_signals_answer_and_steady(offline: Targets) -> None:
    dns = probe(offline)
    assert dns.signals([]) == {"answer": None, "steady": False}
    assert dns.signals(samples([US, US, US])) == {"answer": US, "steady": True}
    assert dns.signals(samples([US, US, EU])) == {"answer": EU, "steady": False}
    assert dns.signals(samples([US, None, US]))["steady"] is False


# samples against a real name server


@pytest.fixture
async def stub() -> AsyncIterator[DnsStub]:
    async with dns_stub() as found:
        yield found


async def test_a_sample_reports_the_region_ttl_and_round_trip(stub: DnsStub) -> None:
    with targets_for(environment(nameservers=[f"127.0.0.1:{stub.port}"], scale=60.0)) as targets:
        began = time.monotonic()
        values = await probe(targets).sample()
        took = time.monotonic() - began
    assert values["answer"] == "us"
    assert values["target"] == TARGETS["us"]
    assert values["ttl"] == 30
    assert values["rcode"] == "NOERROR"
    assert values["error"] is None
    assert isinstance(values["rtt"], float)
    # The round trip is real seconds: within the real time the sample took, not 60 times it.
    assert 0 < values["rtt"] <= took


async def test_failures_are_values(stub: DnsStub) -> None:
    with targets_for(environment(nameservers=[f"127.0.0.1:{stub.port}"], scale=10.0)) as targets:
        stub.target = None
        nxdomain = await probe(targets).sample()
        stub.target = "elsewhere.example.net"
        unknown = await probe(targets).sample()
        stub.mode = "drop"
        lost = await probe(targets, timeout="1s").sample()  # 100 ms real at scale 10
    assert (nxdomain["answer"], nxdomain["rcode"]) == (None, "NXDOMAIN")
    assert unknown["answer"] == "elsewhere.example.net"
    assert (lost["answer"], lost["rcode"], lost["rtt"]) == (None, None, None)
    assert "no answer within 1s" in str(lost["error"])


async def test_a_query_no_name_server_answered_is_a_blind_sample_with_no_signal(stub: DnsStub) -> None:
    with targets_for(environment(nameservers=[f"127.0.0.1:{stub.port}"], scale=10.0)) as targets:
        dns = probe(targets, timeout="1s")  # 100 ms real at scale 10
        answered = await dns.sample()
        stub.target = None
        nxdomain = await dns.sample()
        stub.mode = "drop"
        lost = await dns.sample()
    assert Sample("dns", 0.0, 0.0, answered).blind is None
    assert Sample("dns", 0.0, 0.0, nxdomain).blind is None  # an answer, if not a region
    failed = Sample("dns", 3.0, 0.0, lost)
    assert failed.blind is not None
    assert "no answer within 1s" in failed.blind
    assert lost["answer"] is None
    recent = [Sample("dns", float(i), 0.0, answered) for i in range(3)] + [failed]
    assert dns.signals(recent) == {"answer": None, "steady": False}


async def test_vantage_points_send_their_subnet_and_get_their_answer(stub: DnsStub) -> None:
    stub.by_subnet = {"203.0.113.0/24": TARGETS["eu"]}
    with targets_for(environment(nameservers=[f"127.0.0.1:{stub.port}"])) as targets:
        dns = probe(targets, vantage_points={"paris": "203.0.113.7/24", "boston": "198.51.100.0/24"})
        values = await dns.sample()
        assert dns.signals([Sample("dns", 0.0, 0.0, values)])["answer.paris"] == "eu"
    vps = values["vantage_points"]
    assert isinstance(vps, dict)
    assert (vps["paris"]["answer"], vps["boston"]["answer"]) == ("eu", "us")
    assert sorted(subnet or "" for _, subnet in stub.queries) == ["198.51.100.0/24", "203.0.113.0/24"]


async def test_the_first_name_server_that_replies_gives_the_answer() -> None:
    async with dns_stub() as silent, dns_stub() as live:
        silent.mode = "drop"
        env = environment(nameservers=[f"127.0.0.1:{silent.port}", f"127.0.0.1:{live.port}"], scale=10.0)
        with targets_for(env) as targets:
            values = await probe(targets, timeout="2s").sample()  # the silent one holds it 200 ms real
    assert values["answer"] == "us"
    assert values["servers"] == {f"127.0.0.1:{silent.port}": None, f"127.0.0.1:{live.port}": "us"}


async def test_a_run_measures_the_failover_and_failback_the_name_server_made(stub: DnsStub) -> None:
    """Sampled as the runner samples (every period, without awaiting), the metrics hold the truth."""
    scale = 100.0
    with targets_for(environment(nameservers=[f"127.0.0.1:{stub.port}"], scale=scale)) as targets:
        dns, clock = probe(targets), targets.clock
        taken: list[Sample] = []

        async def take() -> None:
            t = clock.now()
            values = await dns.sample()
            taken.append(Sample("dns", t, clock.real(t), values, duration=clock.now() - t))

        truth: dict[str, float] = {}

        def switch(key: str, target: str) -> None:
            stub.target = target
            truth[key] = clock.now()

        loop = asyncio.get_running_loop()
        loop.call_later(clock.to_real(20.3), switch, "failover", TARGETS["eu"])
        loop.call_later(clock.to_real(40.7), switch, "failback", TARGETS["us"])
        tasks = []
        for tick in range(60):
            await clock.sleep_until(tick * PERIOD)
            tasks.append(asyncio.create_task(take()))
        await asyncio.gather(*tasks)
        marks = Marks(incident_start=10.0, recovery_start=35.0, ended=clock.now())
        found = dns.metrics(sorted(taken, key=lambda s: s.t), marks)
    failover, failback = found["failover_time"], found["failback_time"]
    assert failover.value is not None
    assert failback.value is not None
    assert abs(failover.value - (truth["failover"] - 10.0)) <= failover.error
    assert abs(failback.value - (truth["failback"] - 35.0)) <= failback.error
    assert failover.error < PERIOD  # half a period plus half a query, with slack for a busy machine
    assert found["flaps"].value == 0


# vantage points by name, from the environment


@pytest.fixture
def placed() -> Iterator[Targets]:
    """Targets whose environment names each region's users' subnet, as a lab's does."""
    env = environment(nameservers=["127.0.0.1:9"])
    tm = env.traffic_manager.model_copy(update={"vantage_points": {"us": "198.51.100.0/24",
                                                                    "eu": "203.0.113.0/24"}})
    with targets_for(env.model_copy(update={"traffic_manager": tm})) as found:
        yield found


def test_vantage_names_take_the_environments_subnets(placed: Targets) -> None:
    dns = probe(placed, vantage=["us", "eu"], vantage_points={"paris": "192.0.2.0/24"})
    assert [(vp.name, vp.option.address if vp.option else None) for vp in dns._vantage_points] == [
        ("paris", "192.0.2.0"), ("us", "198.51.100.0"), ("eu", "203.0.113.0")]
    with pytest.raises(ValueError, match=r"'asia' is not one of the environment's \(trafficManager"
                                         r"\.vantagePoints: eu, us\)"):
        probe(placed, vantage=["us", "asia"])
    with pytest.raises(ValueError, match="'us' is both named in 'vantage' and given a subnet"):
        probe(placed, vantage=["us"], vantage_points={"us": "192.0.2.0/24"})
    with pytest.raises(ValidationError, match="repeated: us"):
        DnsProbe.Spec.model_validate({"vantage": ["us", "us"]})


def test_users_never_moved_at_one_vantage_point_leave_the_failover_unmeasured(offline: Targets) -> None:
    # Geographic routing without a fallback: the US users' answer stays on the dead US endpoint.
    dns = probe(offline, vantage_points={"us": "198.51.100.0/24", "eu": "203.0.113.0/24"})
    found = dns.metrics(per_vp({"us": [US] * 10, "eu": [EU] * 10}), failed_us(2.0, None, 10.0))
    assert found["failover_time.us"].value is None
    assert "still pointed at us" in found["failover_time.us"].note
    assert (found["failover_time.eu"].value, found["failover_time.eu"].note) == (
        0.0, "us never answered: nothing to fail over from")
    assert found["failover_time"].value is None
    assert found["failover_time"].note.startswith("not every user moved: at us the answer still pointed")
    assert found["client_failover_time"].value is None
