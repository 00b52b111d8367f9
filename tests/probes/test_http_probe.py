"""The http probe: requests through DNS to real loopback servers, its signals and its metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import pytest
from probeservers import FQDN, TARGETS, DnsStub, Service, dns_stub, environment, service, targets_for
from pydantic import ValidationError

from drills.targets import Targets
from probes.base import Marks, Metric, Probe, Sample
from probes.http import HttpProbe
from probes.population import user_outcomes

PERIOD = 0.5


def probe(targets: Targets, **spec: object) -> HttpProbe:
    return HttpProbe("users", HttpProbe.Spec.model_validate(spec), targets, every=PERIOD)


@pytest.fixture
def offline() -> Iterator[Targets]:
    with targets_for(environment(nameservers=["127.0.0.1:9"])) as found:
        yield found


def rows(*per_sample: str, latency: float = 0.1) -> list[Sample]:
    """One sample per period; each string gives every user's outcome: ``u``/``e``/``o`` served by
    us/eu/us, ``x`` failed. Each distinct character is one real request, of latency ``latency`` times
    the sample's number (1-based)."""
    out = []
    for i, row in enumerate(per_sample):
        kinds = sorted(set(row), key=row.index)
        outcomes: list[dict[str, object]] = []
        for c in kinds:
            ok = c != "x"
            outcomes.append({"ok": ok, "status": 200 if ok else 503,
                             "latency": latency * (i + 1) if ok else None,
                             "region": {"u": "us", "e": "eu", "o": "us"}.get(c),
                             "error": None if ok else "HTTP 503"})
        failed = row.count("x")
        out.append(Sample("users", t=i * PERIOD, real=0.0, duration=latency,
                          values={"ok": len(row) - failed, "failed": failed, "outcomes": outcomes,
                                  "by_user": "".join(str(kinds.index(c)) for c in row), "refreshed": []}))
    return out


def samples(outcomes: str, *, latency: float = 0.1) -> list[Sample]:
    """One user: one sample per character."""
    return rows(*outcomes, latency=latency)


def columns(*per_user: str) -> list[Sample]:
    """Several users, each given as its own series (one character per sample)."""
    return rows(*("".join(chars) for chars in zip(*per_user, strict=True)))


def marks(incident: float | None = None, recovery: float | None = None, ended: float = 10.0,
          failed: frozenset[str] = frozenset()) -> Marks:
    return Marks(incident_start=incident, recovery_start=recovery, ended=ended, failed_regions=failed)


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
    with pytest.raises(ValidationError, match="not a subnet"):
        HttpProbe.Spec.model_validate({"vantage_points": {"paris": "somewhere"}})
    with pytest.raises(ValidationError):
        HttpProbe.Spec.model_validate({"users": 0})
    spec = HttpProbe.Spec.model_validate({"timeout": "5s", "path": "/healthz"})
    assert (spec.timeout, spec.path, spec.connection, spec.users, spec.requests_per_address) == (
        5.0, "/healthz", "new", 100, 3)


def test_in_flight_bound_follows_the_timeout_and_the_period(offline: Targets) -> None:
    assert probe(offline, timeout="5s").max_in_flight == 12  # 10 periods of 0.5 s, plus 2
    assert probe(offline, timeout="60s").max_in_flight == 48
    assert probe(offline, max_in_flight=5).max_in_flight == 5


def test_the_population_is_seeded_and_stratified(offline: Targets) -> None:
    one = probe(offline, users=10, seed=7,
                vantage_points={"paris": "203.0.113.0/24", "ny": "198.51.100.0/24"})
    again = probe(offline, users=10, seed=7)
    assert one.population.phases == again.population.phases
    # One user in each tenth of the TTL.
    assert sorted(int(p * 10) for p in one.population.phases) == list(range(10))
    assert one.population.vantage_points[:3] == ("paris", "ny", "paris")
    assert probe(offline, users=10, seed=8).population.phases != one.population.phases


# metrics on synthetic samples: one user reads as the single synthetic user always did


def test_availability_and_error_rate_with_their_error(offline: Targets) -> None:
    found = measure(offline, "ooooxxoooo")
    assert (found["availability"].value, found["availability"].unit) == (80.0, "%")
    assert found["error_rate"].value == 20.0
    assert found["availability"].error == pytest.approx(10.0)  # two changes over ten samples
    assert found["users_affected"].value == 100.0
    assert found["error_rate_max"].value == 100.0


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
    assert "3 failed requests from 00:03.0" in found["downtime"].note


def test_downtime_still_running_at_the_end_lasts_until_the_end(offline: Targets) -> None:
    found = measure(offline, "oooxx", ended=3.0)
    assert found["downtime"].value == pytest.approx(1.5)
    assert "still failing" in found["downtime"].note


def test_no_failure_is_zero_downtime_within_a_period(offline: Targets) -> None:
    found = measure(offline, "oooooo")
    assert (found["downtime"].value, found["downtime"].error) == (0.0, PERIOD)
    assert found["users_affected"].value == 0.0


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
    assert "from us" in found["failover_time"].note


def test_failover_is_unmeasured_without_an_incident_or_a_move(offline: Targets) -> None:
    # No fault applied: nothing to fail over from, even though the serving region changed.
    unfaulted = measure(offline, "uuueee")["failover_time"]
    assert (unfaulted.value, unfaulted.note) == (None, "no fault was applied")
    # The fault applied, DNS never moved: users failed until the end, never served by eu.
    stuck = measure(offline, "uuuxxxxxx", incident=1.2)["failover_time"]
    assert stuck.value is None
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


def test_latency_on_a_lab_is_marked_as_the_labs_and_elsewhere_is_not() -> None:
    lab = environment(nameservers=["127.0.0.1:9"]).proven_lab()
    with targets_for(lab) as targets:
        on_lab = measure(targets, "o" * 20)
    for key in ("latency_p50", "latency_p99"):
        assert on_lab[key].note.endswith("; real round trips to the lab on this machine, not a rehearsal of "
                                         "production latency"), on_lab[key].note
    with targets_for(environment(nameservers=["127.0.0.1:9"])) as targets:
        assert "lab" not in measure(targets, "o" * 20)["latency_p50"].note


def test_downtime_with_lost_samples_widens_its_error(offline: Targets) -> None:
    # Samples at 2.0 and 2.5 were lost (the runner records nothing for them): the failure began
    # somewhere after the good sample at 1.5 and before the failed one at 3.0.
    taken = [s for s in samples("ooooooxxxooo") if s.t not in (2.0, 2.5)]
    found = probe(offline).metrics(taken, Marks(incident_start=1.2, recovery_start=None, ended=6.0))
    assert found["downtime"].value == pytest.approx(1.5)
    assert found["downtime"].error == pytest.approx(1.5)


# metrics over a population


def test_downtime_percentiles_over_users(offline: Targets) -> None:
    # Five users: down 0, 0.5, 1.0, 1.5 and 2.5 s (from the first failed sample to the next good one).
    taken = columns("uuuuuuuuuu",
                    "uuxuuuuuuu",
                    "uuxxuuuuuu",
                    "uuxxxuuuuu",
                    "uuxxxxxuuu")
    found = probe(offline).metrics(taken, marks(ended=5.0))
    assert found["downtime_p50"].value == pytest.approx(1.0)
    assert found["downtime_p99"].value == pytest.approx(1.5 + 1.0 * 0.96)
    assert found["downtime_max"].value == pytest.approx(2.5)
    assert found["downtime"].value == found["downtime_max"].value
    assert found["downtime_max"].error == pytest.approx(PERIOD)
    assert "user 4: 5 failed requests from 00:01.0" in found["downtime"].note
    assert found["users_affected"].value == pytest.approx(80.0)
    # 1 + 2 + 3 + 5 failed requests of 50.
    assert found["error_rate"].value == pytest.approx(22.0)
    assert found["error_rate_max"].value == pytest.approx(80.0)  # at t=1.0 and 1.5, four of five failed
    # Instants in notes read as the timeline's t.
    assert found["error_rate_max"].note == "the most users failing in one sample (at 00:01.0)"
    assert found["users_affected"].note == "4 of 5 users saw a failed request"


def test_failover_is_when_the_last_user_left_the_failed_region(offline: Targets) -> None:
    # The us region fails at t=1.0; users move as their caches expire, at 2.0, 3.0 and 4.0.
    taken = columns("uuuuxeeeeeee",
                    "uuuuxxeeeeee",
                    "uuuuxxxxeeee")
    found = probe(offline).metrics(taken, marks(incident=1.0, ended=6.0, failed=frozenset({"us"})))
    failover = found["failover_time"]
    # The last user: failed at 3.5, served by eu at 4.0 (plus 0.1).
    assert failover.value == pytest.approx((3.5 + 4.1) / 2 - 1.0)
    assert failover.error == pytest.approx(0.3)
    assert "the last of 3 users, from us" in failover.note
    assert "median user 1.8s" in failover.note


def test_failover_with_weighted_routing_where_users_were_in_both_regions(offline: Targets) -> None:
    # Weighted routing: before the incident users are served by us and eu; us fails at 1.0.
    taken = columns("eeeeeeeeee",
                    "uuuuxxeeee",
                    "uuuuuxxxee")
    found = probe(offline).metrics(taken, marks(incident=1.0, ended=5.0, failed=frozenset({"us"})))
    assert found["failover_time"].value == pytest.approx((3.5 + 4.1) / 2 - 1.0)
    # Not told which region failed: us, served before and not at the end, is inferred.
    inferred = probe(offline).metrics(taken, marks(incident=1.0, ended=5.0))
    assert inferred["failover_time"].value == found["failover_time"].value


def test_a_failed_region_that_never_served_is_a_failover_of_zero(offline: Targets) -> None:
    # Europe is the primary; the US is killed: nobody was served by it, nothing to move.
    taken = columns("eeeeeeee", "eeeeeeee")
    found = probe(offline).metrics(taken, marks(incident=1.0, ended=4.0, failed=frozenset({"us"})))
    assert (found["failover_time"].value, found["failover_time"].error) == (0.0, 0.0)
    assert "us never served users" in found["failover_time"].note
    # Not told: nothing was seen to stop, so nothing is claimed.
    assert probe(offline).metrics(taken, marks(incident=1.0, ended=4.0))["failover_time"].value is None


def test_a_user_who_never_moved_leaves_failover_unmeasured(offline: Targets) -> None:
    taken = columns("uuuxeeee", "uuuxxxxx")
    found = probe(offline).metrics(taken, marks(incident=1.0, ended=4.0, failed=frozenset({"us"})))
    assert found["failover_time"].value is None
    assert "1 of 2 users were not served from a region other than us" in found["failover_time"].note


def test_the_error_rate_after_failover_counts_from_the_last_users_move_to_recovery(offline: Targets) -> None:
    # us fails at 1.0; the last user is served by eu from 2.0 (interval ends 2.1). Europe then sheds a
    # share of the requests, as a region short of capacity does, until recovery starts at 5.0.
    taken = columns("uuxeexeeexxuuu",
                    "uuxxeeexeeeuuu")
    found = probe(offline).metrics(taken, marks(incident=1.0, recovery=5.0, ended=7.0,
                                                failed=frozenset({"us"})))
    after = found["error_rate_after_failover"]
    # Samples from t=2.5 (the first at or after 2.1) whose request ended by 5.0: t=2.5 .. 4.5, five of
    # them, 2 users each: failures at 2.5 (user 1), 3.5 (user 2), 4.5 (user 1): 3 of 10 requests.
    assert after.value == pytest.approx(30.0)
    assert after.unit == "%"
    # Shares by sample 0.5, 0, 0.5, 0, 0.5: four changes of half a user each over five samples.
    assert after.error == pytest.approx(100.0 * 2.0 / 10)
    assert "3 of 10 user requests from 00:02.1" in after.note


def test_the_error_rate_after_failover_is_unmeasured_while_a_user_has_not_moved(offline: Targets) -> None:
    taken = columns("uuuxeeee", "uuuxxxxx")
    found = probe(offline).metrics(taken, marks(incident=1.0, ended=4.0, failed=frozenset({"us"})))
    assert found["error_rate_after_failover"].value is None
    assert "not every user moved" in found["error_rate_after_failover"].note


def test_signals(offline: Targets) -> None:
    http = probe(offline)
    assert http.signals([]) == {"ok": None, "error_rate": None, "region": None, "steady": False}
    assert http.signals(samples("xoxoooo")) == {"ok": 100.0, "error_rate": pytest.approx(200 / 7),
                                                "region": "us", "steady": True}
    assert http.signals(samples("oooox"))["steady"] is False
    assert http.signals(samples("oooox"))["region"] is None
    mixed = rows("uuuu", "uuxe", "uexe")
    assert http.signals(mixed) == {"ok": 75.0, "error_rate": pytest.approx(100 * 2 / 12), "region": "eu",
                                   "steady": False}


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


def by_user(values: Mapping[str, object]) -> list[Mapping[str, object]]:
    return list(user_outcomes(values))  # type: ignore[arg-type]


async def test_a_good_sample(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY, seed=3)
    clock = world.targets.clock
    began, real_began = clock.now(), time.monotonic()
    values = await http.sample()
    real_took = time.monotonic() - real_began
    between = (clock.now() - began, )
    second = await http.sample()
    between = (*between, clock.now() - began)  # the instants each sample had ended by
    await http.aclose()
    assert (values["ok"], values["failed"]) == (100, 0), values
    # One question for every user's empty cache (asked again by the few users whose phase ran out, or
    # repeated after a stub resolver's timeout on a busy machine), not one per user; one real request
    # shared by a hundred users while the server answers every request alike.
    assert world.dns.queries_for() <= 4
    assert len(world.web.us.peers) == 2
    outcomes = values["outcomes"]
    assert isinstance(outcomes, list)
    assert len(outcomes) == 1
    assert {(o["status"], o["region"], o["resolved"], o["address"]) for o in outcomes} == {
        (200, "us", "us", "127.0.0.1")}
    # A round trip is real seconds, not lab time: within the real time the sample took, not 100 times it.
    assert all(0 < o["latency"] <= real_took for o in outcomes), (outcomes, real_took)
    assert values["by_user"] == "0" * 100
    assert values["refreshed"] == list(range(100))
    population = values["population"]
    assert isinstance(population, dict)
    assert population["seed"] == 3
    assert population["ttl_phase"] == list(http.population.phases)
    # Only the users whose phase of the 30 s TTL had passed asked again: the soonest to expire.
    refreshed = second["refreshed"]
    assert isinstance(refreshed, list)
    by_phase = sorted(range(100), key=lambda u: http.population.phases[u])
    assert sorted(refreshed) == sorted(by_phase[:len(refreshed)])
    assert all(http.population.phases[u] * 30 <= between[1] for u in refreshed)
    assert second["ok"] == 100
    assert "population" not in second
    assert len(json.dumps(second, separators=(",", ":"))) < 600


async def test_one_user_makes_one_request(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY, users=1)
    values = await http.sample()
    await http.aclose()
    assert (values["ok"], values["by_user"], len(world.web.us.peers)) == (1, "0", 1)


async def test_an_error_status_is_a_failed_sample(world: World) -> None:
    world.web.us.mode = "fail"
    http = probe(world.targets, timeout=ROOMY, users=4)
    values = await http.sample()
    await http.aclose()
    assert (values["ok"], values["failed"]) == (0, 4)
    assert {(o["status"], o["error"]) for o in by_user(values)} == {(503, "HTTP 503")}


async def test_a_server_shedding_load_fails_some_users_not_all(world: World) -> None:
    world.web.us.mode = "shed"  # every other request 503
    http = probe(world.targets, timeout=ROOMY, users=9, seed=1)
    first = await http.sample()
    second = await http.sample()
    values = await http.sample()
    await http.aclose()
    # One request a sample while the outcomes agree: served, then shed, which varies...
    assert (first["failed"], second["failed"]) == (0, 9)
    # ...so three requests (ok, shed, ok), each user taking one of them.
    assert (values["ok"] + values["failed"], len(world.web.us.peers)) == (9, 5)
    assert sorted(o["ok"] for o in values["outcomes"]) == [False, True, True]
    assert sorted(set(str(values["by_user"]))) == ["0", "1", "2"]  # this seed draws each request
    assert 0 < values["failed"] < 9


async def test_a_hanging_server_times_out_within_the_scenario_timeout(world: World) -> None:
    world.web.us.mode = "hang"
    http = probe(world.targets, timeout="15s", users=10)  # 150 ms real
    started = asyncio.get_running_loop().time()
    values = await http.sample()
    elapsed = asyncio.get_running_loop().time() - started
    await http.aclose()
    assert values["failed"] == 10
    assert all("timeout" in str(o["error"]) for o in by_user(values))
    assert 0.15 <= elapsed < 1.5


async def test_samples_past_the_in_flight_bound_fail_without_starting(world: World) -> None:
    world.web.us.mode = "hang"
    http = probe(world.targets, timeout="30s", max_in_flight=2, users=1)
    found = await asyncio.gather(*(http.sample() for _ in range(3)))
    await http.aclose()
    assert [v["failed"] for v in found] == [1, 1, 1]
    assert sum(1 for v in found if str(by_user(v)[0]["error"]).startswith("not started")) == 1
    assert len(world.web.us.peers) == 2


async def test_dns_failure_is_a_failed_sample(world: World) -> None:
    world.dns.target = None
    http = probe(world.targets, timeout=ROOMY, users=5)
    values = await http.sample()
    await http.aclose()
    assert values["failed"] == 5
    assert len(values["outcomes"]) == 1
    assert "NXDOMAIN" in str(by_user(values)[0]["error"])


async def test_no_name_server_answering_anyone_is_a_blind_sample_with_no_signal(world: World) -> None:
    world.dns.mode = "drop"
    http = probe(world.targets, timeout="30s", users=5)  # 0.3 s real at scale 100
    try:
        values = await http.sample()
    finally:
        await http.aclose()
    failed = Sample("users", 1.0, 0.0, values)
    assert failed.blind is not None
    assert "no answer" in failed.blind or "timeout" in failed.blind
    assert "ok" not in values
    assert "failed" not in values
    assert not user_outcomes(values)
    healthy = Sample("users", 0.0, 0.0, {"ok": 5, "failed": 0, "outcomes": [{"ok": True, "region": "us"}],
                                         "by_user": "00000"})
    assert http.signals([healthy, failed]) == {"ok": None, "error_rate": None, "region": None,
                                               "steady": False}


async def test_users_follow_dns_each_when_its_cached_answer_expires(world: World) -> None:
    """Each user keeps the old region until its own cached answer expires: at its phase of the TTL."""
    http = probe(world.targets, timeout=ROOMY, users=4, seed=5)
    phases = http.population.phases
    soonest, next_one = sorted(phases)[:2]  # 0.20 and 0.49 of the 30 s TTL: 6.0 s and 14.6 s
    began = world.targets.clock.now()
    first = await http.sample()
    world.dns.target = TARGETS["eu"]
    cached = await http.sample()
    # Between the first user's expiry and the next one's (the TTL itself is the subject).
    await world.targets.clock.sleep_until(began + (soonest + next_one) / 2 * world.dns.ttl)
    moved = await http.sample()
    await world.targets.clock.sleep(world.dns.ttl)
    fresh = await http.sample()
    await http.aclose()
    assert [o["region"] for o in by_user(first)] == ["us"] * 4
    assert [o["region"] for o in by_user(cached)] == ["us"] * 4
    assert [o["region"] for o in by_user(moved)] == ["eu" if p == soonest else "us" for p in phases]
    assert moved["refreshed"] == [phases.index(soonest)]
    assert [o["region"] for o in by_user(fresh)] == ["eu"] * 4


async def test_vantage_points_send_their_client_subnet(world: World) -> None:
    world.dns.by_subnet = {"203.0.113.0/24": TARGETS["eu"]}
    http = probe(world.targets, timeout=ROOMY, users=4,
                 vantage_points={"paris": "203.0.113.0/24", "ny": "198.51.100.0/24"})
    values = await http.sample()
    await http.aclose()
    assert sorted(world.dns.queries) == [(FQDN, "198.51.100.0/24"), (FQDN, "203.0.113.0/24")]
    assert [o["region"] for o in by_user(values)] == ["eu", "us", "eu", "us"]
    assert values["population"]["vantage_point"] == ["paris", "ny", "paris", "ny"]  # type: ignore[index]


async def test_a_new_connection_per_request_by_default(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY, users=1)
    for _ in range(3):
        await http.sample()
    await http.aclose()
    assert len(set(world.web.us.peers)) == 3


async def test_long_lived_clients_stay_until_their_connection_breaks(world: World) -> None:
    http = probe(world.targets, timeout=ROOMY, connection="reuse", users=1)
    await http.sample()
    world.dns.target = TARGETS["eu"]
    await world.targets.clock.sleep(world.dns.ttl)  # past the TTL: a new client would move
    stayed = await http.sample()
    await world.web.stop("us")
    broken = await http.sample()
    moved = await http.sample()
    await http.aclose()
    assert len(set(world.web.us.peers)) == 1
    assert by_user(stayed)[0]["region"] == "us"
    assert broken["failed"] == 1
    assert by_user(moved)[0]["region"] == "eu"


async def test_metrics_are_recomputed_from_the_samples_as_written(world: World) -> None:
    """What samples.jsonl holds is enough: the metrics of the JSON round trip are the same."""
    http = probe(world.targets, timeout=ROOMY, users=20, seed=4)
    taken = []
    for i in range(4):
        if i == 2:
            world.web.us.mode = "fail"
        t = world.targets.clock.now()
        values = await http.sample()
        taken.append(Sample("users", t, 0.0, values, duration=world.targets.clock.now() - t))
    await http.aclose()
    written = [Sample(s.probe, s.t, s.real, json.loads(json.dumps(s.values)), s.duration) for s in taken]
    marks = Marks(incident_start=None, recovery_start=None, ended=world.targets.clock.now())
    assert http.metrics(written, marks) == http.metrics(taken, marks)
    assert http.metrics(written, marks)["users_affected"].value == 100.0


# per vantage point


def test_metrics_over_users_break_down_per_vantage_point(offline: Targets) -> None:
    # Users 0 and 2 are at us, 1 and 3 at eu (in turn). Performance routing: the US users fail for two
    # samples when the US dies at t=1, then Europe serves them; Europe's users never notice.
    users = probe(offline, users=4, vantage_points={"us": "198.51.100.0/24", "eu": "203.0.113.0/24"})
    taken = columns("uuxxee", "eeeeee", "uuxxee", "eeeeee")
    found = users.metrics(taken, marks(incident=1.0, ended=3.0, failed=frozenset({"us"})))
    assert (found["downtime.us"].value, found["downtime.eu"].value) == (1.0, 0.0)
    assert found["error_rate.us"].value == pytest.approx(100 * 2 / 6)
    assert (found["error_rate.eu"].value, found["users_affected.eu"].value) == (0.0, 0.0)
    assert found["failover_time.us"].value == pytest.approx((1.5 + 2.1) / 2 - 1.0)
    assert (found["failover_time.eu"].value, found["failover_time.eu"].note) == (
        0.0, "us never served users: nothing to fail over from")
    assert found["failover_time"].value == found["failover_time.us"].value
    assert "latency_p50.us" not in found  # requests are shared by users: not broken down


def test_users_never_moved_at_one_vantage_point_have_no_failover(offline: Targets) -> None:
    # Geographic routing without a fallback: the US users keep being sent to the dead US region.
    users = probe(offline, users=2, vantage_points={"us": "198.51.100.0/24", "eu": "203.0.113.0/24"})
    found = users.metrics(columns("uuxxxx", "eeeeee"), marks(incident=1.0, ended=3.0,
                                                              failed=frozenset({"us"})))
    assert found["failover_time.us"].value is None
    assert found["failover_time"].value is None
    assert found["downtime.us"].value == 2.0  # from its first failure until sampling stopped
    assert found["downtime.eu"].value == 0.0
