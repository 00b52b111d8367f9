"""The design review: the windows the settings allow, with exact numbers, and the verdicts they give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drills.design import UNKNOWN_TM, ExpectationReview, Window, detection, review
from drills.designfacts import DeploymentFacts, DesignFacts
from drills.environment import Environment, Monitor
from drills.scenario import Scenario, load_scenario

US_OUTAGE = """
apiVersion: drill/v1
name: us-outage
probes:
  dns: {kind: dns, every: 1s}
  users: {kind: http, path: /, every: 500ms}
  web_eu: {kind: replicas, cluster: eu, namespace: shop, deployment: web}
steps:
  - {id: kill, fault: kill-ingress, cluster: us}
  - wait: 5m
expect:
  - dns.failover_time < 3m
  - dns.client_failover_time < 4m
  - users.downtime < 4m
  - web_eu.min_ready >= 3
  - dns.failback_time < 1m
  - dns.flaps == 0
"""

ZONE = """
apiVersion: drill/v1
name: zone
probes:
  web: {kind: replicas, cluster: us, namespace: shop, deployment: web}
steps:
  - {id: gone, fault: delete-pods, cluster: us, namespace: shop, selector: app=web, zone: zone-1}
  - {id: drain, fault: drain-nodes, cluster: us, zone: zone-2}
expect:
  - web.min_ready >= 2
  - web.time_to_restore < 30s
"""


def _scenario(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return load_scenario(path, regions={"us", "eu"}, variables={"name": "lab", "fqdn": "x"})


def _env(**tm: Any) -> Environment:
    region = {"context": "c", "ingress": {"namespace": "ingress-nginx", "deployment": "ingress"},
              "endpoint": "e", "target": "t"}
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "test",
        "regions": {"us": {**region, "target": "us.t"}, "eu": {**region, "target": "eu.t"}},
        "trafficManager": {"fqdn": "shop.trafficmanager.net", "nameservers": ["127.0.0.1:53"], **tm}})


def _deployment(region: str, name: str, replicas: int, by_zone: dict[str, int], *,
                start_delay: float | None = 20.0, floor: int | None = None,
                namespace: str = "shop") -> DeploymentFacts:
    return DeploymentFacts(region=region, namespace=namespace, name=name, replicas=replicas, ready=replicas,
                           by_zone=by_zone, start_delay=start_delay, node_failure_timeout=300.0, floor=floor)


FLAWED = {"ttl": "30s", "monitor": {"interval": "30s", "timeout": "10s", "toleratedFailures": 5}}
WEB_EU = _deployment("eu", "web", 3, {"zone-1": 1, "zone-2": 1, "zone-3": 1})
INGRESS_US = _deployment("us", "ingress", 2, {"zone-1": 1, "zone-2": 1}, namespace="ingress-nginx")
FACTS = DesignFacts(deployments={WEB_EU.key: WEB_EU, INGRESS_US.key: INGRESS_US},
                    removed={"kill": {INGRESS_US.key: 2}})


def _by_expect(reviews: list[ExpectationReview]) -> dict[str, ExpectationReview]:
    return {r.expect: r for r in reviews}


def test_detection_is_n_intervals_plus_the_timeout_when_the_probe_hangs_and_without_it_when_refused() -> None:
    monitor = Monitor.model_validate({"interval": "30s", "timeout": "10s", "toleratedFailures": 5})
    assert detection(monitor, "hang") == (160.0, 190.0)
    assert detection(monitor, "refused") == (150.0, 180.0)
    fastest = Monitor.model_validate({"interval": "10s", "timeout": "5s", "toleratedFailures": 0})
    assert detection(fastest, "hang") == (5.0, 15.0)


def test_thirty_second_probing_with_five_tolerated_failures_breaks_a_three_minute_rto(tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, US_OUTAGE), _env(**FLAWED), FACTS))
    failover = reviews["dns.failover_time < 3m"]
    assert failover.window == Window(160.0, 190.0, True, "s")
    assert failover.window.text == "[160 s, 190 s)"
    assert (failover.breaks, failover.verdict) == (True, "the design allows up to 190 s")
    assert failover.reasoning == ("kill-ingress makes the probe hang: Degraded on the 6th failed probe, "
                                  "5 x 30s + 10s timeout = 160s, up to one 30s interval later by the phase "
                                  "of the probe cycle")
    client = reviews["dns.client_failover_time < 4m"]
    assert (client.window, client.breaks) == (Window(190.0, 220.0, True, "s"), False)
    assert client.reasoning.endswith("; then a resolver may keep the old answer for the 30s TTL, which the "
                                     "window [190 s, 220 s) includes")
    users = reviews["users.downtime < 4m"]
    assert (users.window, users.breaks) == (Window(160.0, 220.0, True, "s"), False)
    web = reviews["web_eu.min_ready >= 3"]
    assert (web.window, web.breaks) == (Window(3.0, 3.0, False, "count"), False)
    failback = reviews["dns.failback_time < 1m"]
    assert (failback.window, failback.breaks) == (Window(20.0, 50.0, True, "s"), False)
    assert reviews["dns.flaps == 0"].window is None


def test_the_default_settings_hold_the_promises(tmp_path: Path) -> None:
    env = _env(ttl="30s", monitor={"interval": "10s", "timeout": "5s", "toleratedFailures": 3})
    reviews = _by_expect(review(_scenario(tmp_path, US_OUTAGE), env, FACTS))
    assert reviews["dns.failover_time < 3m"].window == Window(35.0, 45.0, True, "s")
    assert reviews["users.downtime < 4m"].window == Window(35.0, 75.0, True, "s")
    assert not any(r.breaks for r in reviews.values())


def test_a_window_ending_exactly_at_the_bound_breaks_only_when_the_end_is_reached(tmp_path: Path) -> None:
    # 5 x 30s + 30s = 180s is never reached (the window is open there): '< 3m' holds; a closed window
    # (min_ready) reaching the bound breaks '<'.
    scenario = _scenario(tmp_path, US_OUTAGE.replace("dns.failover_time < 3m", "dns.failover_time < 180s"))
    env = _env(ttl="30s", monitor={"interval": "30s", "timeout": "10s", "toleratedFailures": 4})
    reviews = _by_expect(review(scenario, env, FACTS))
    assert reviews["dns.failover_time < 180s"].window == Window(130.0, 160.0, True, "s")
    assert not reviews["dns.failover_time < 180s"].breaks
    assert Window(130.0, 180.0, True, "s").can_break(scenario.expect[0]) is None
    assert Window(130.0, 180.0, False, "s").can_break(scenario.expect[0]) == 180.0


def test_settings_the_environment_does_not_state_are_unknown_not_a_failure(tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, US_OUTAGE), _env(), FACTS))
    failover = reviews["dns.failover_time < 3m"]
    assert (failover.window, failover.breaks, failover.reasoning) == (None, False, UNKNOWN_TM)
    ttl_missing = _by_expect(review(_scenario(tmp_path, US_OUTAGE), _env(monitor=FLAWED["monitor"]), FACTS))
    assert ttl_missing["users.downtime < 4m"].reasoning == ("unknown: the environment does not state the "
                                                            "Traffic Manager TTL")


def test_a_zone_losing_its_pods_leaves_replicas_minus_that_zone_and_a_drain_no_fewer_than_the_budget(
        tmp_path: Path) -> None:
    web = _deployment("us", "web", 4, {"zone-1": 2, "zone-2": 2}, start_delay=20.0, floor=3)
    facts = DesignFacts(deployments={web.key: web},
                        removed={"gone": {web.key: 2}, "drain": {web.key: 2}})
    reviews = _by_expect(review(_scenario(tmp_path, ZONE), _env(), facts))
    ready = reviews["web.min_ready >= 2"]
    assert ready.window == Window(2.0, 4.0, False, "count")
    assert ready.reasoning == ("delete-pods (gone) takes 2 of its 4 pods: 2 of 4 stay ready until "
                               "replacements start")
    assert not ready.breaks
    restore = reviews["web.time_to_restore < 30s"]
    assert (restore.window, restore.breaks) == (Window(20.0, None, True, "s"), False)


def test_a_zone_holding_most_replicas_breaks_min_ready(tmp_path: Path) -> None:
    web = _deployment("us", "web", 3, {"zone-1": 3}, start_delay=40.0)
    facts = DesignFacts(deployments={web.key: web}, removed={"gone": {web.key: 3}, "drain": {web.key: 0}})
    reviews = _by_expect(review(_scenario(tmp_path, ZONE), _env(), facts))
    ready = reviews["web.min_ready >= 2"]
    assert (ready.window, ready.breaks, ready.verdict) == (Window(0.0, 3.0, False, "count"), True,
                                                           "the design allows as few as 0")
    restore = reviews["web.time_to_restore < 30s"]
    assert (restore.breaks, restore.verdict) == (True, "the design allows no less than 40 s")


def test_a_budget_that_allows_no_eviction_keeps_every_pod_and_says_the_drain_cannot_finish(
        tmp_path: Path) -> None:
    web = _deployment("us", "web", 3, {"zone-1": 1, "zone-2": 2}, floor=3)
    facts = DesignFacts(deployments={web.key: web}, removed={"gone": {web.key: 0}, "drain": {web.key: 2}})
    ready = _by_expect(review(_scenario(tmp_path, ZONE), _env(), facts))["web.min_ready >= 2"]
    assert ready.window == Window(3.0, 3.0, False, "count")
    assert ready.reasoning == ("no fault takes pods of us/shop/web away: 3 stay ready; drain-nodes (drain) "
                               "cannot finish: the PodDisruptionBudget of us/shop/web keeps all 3 ready, so "
                               "no eviction is allowed")


def test_a_budget_keeps_a_drain_above_what_the_zone_holds(tmp_path: Path) -> None:
    web = _deployment("us", "web", 4, {"zone-1": 1, "zone-2": 3}, floor=2)
    facts = DesignFacts(deployments={web.key: web}, removed={"gone": {web.key: 0}, "drain": {web.key: 3}})
    ready = _by_expect(review(_scenario(tmp_path, ZONE), _env(), facts))["web.min_ready >= 2"]
    assert (ready.window, ready.breaks) == (Window(2.0, 4.0, False, "count"), False)
    assert ready.reasoning == ("drain-nodes (drain) takes 3 of its 4 pods, its PodDisruptionBudget keeps 2 "
                               "ready (the drain waits for replacements before evicting more): 2 of 4 stay "
                               "ready until replacements start")


CORDON = """
apiVersion: drill/v1
name: zone-cordon
probes:
  web: {kind: replicas, cluster: us, namespace: shop, deployment: web}
steps:
  - {id: cordon, fault: cordon-zone, cluster: us, zone: zone-1}
  - {id: gone, fault: delete-pods, cluster: us, namespace: shop, selector: app=web, zone: zone-1}
expect:
  - web.min_ready >= 2
  - web.time_to_restore < 1m
"""


def test_pods_pinned_to_the_cordoned_zone_cannot_be_replaced_while_the_faults_last(tmp_path: Path) -> None:
    web = DeploymentFacts(region="us", namespace="shop", name="web", replicas=3, ready=3,
                          by_zone={"zone-1": 3}, start_delay=20.0, node_failure_timeout=300.0, floor=2,
                          allowed_zones=("zone-1",))
    facts = DesignFacts(deployments={web.key: web}, removed={"cordon": {}, "gone": {web.key: 3}},
                        zones={"us": ("zone-1", "zone-2", "zone-3")})
    reviews = _by_expect(review(_scenario(tmp_path, CORDON), _env(), facts))
    ready = reviews["web.min_ready >= 2"]
    assert ready.window == Window(0.0, 3.0, False, "count")
    assert ready.verdict == "the design allows as few as 0"
    restore = reviews["web.time_to_restore < 1m"]
    assert restore.window is not None
    assert restore.window.text == "never (while the faults last)"
    assert restore.breaks
    assert restore.verdict == "the design allows it never to happen while the faults last"
    assert restore.reasoning.endswith("its pods may run only in zone-1, which the faults cordon: "
                                      "replacements cannot start until the faults are undone")
    spread = DeploymentFacts(region="us", namespace="shop", name="web", replicas=3, ready=3,
                             by_zone={"zone-1": 1, "zone-2": 1, "zone-3": 1}, start_delay=20.0,
                             node_failure_timeout=300.0, floor=2)
    facts = DesignFacts(deployments={web.key: spread}, removed={"cordon": {}, "gone": {web.key: 1}},
                        zones={"us": ("zone-1", "zone-2", "zone-3")})
    restore = _by_expect(review(_scenario(tmp_path, CORDON), _env(), facts))["web.time_to_restore < 1m"]
    assert (restore.window, restore.breaks) == (Window(20.0, None, True, "s"), False)


GEO_OUTAGE = """
apiVersion: drill/v1
name: geo-outage
probes:
  dns: {kind: dns, every: 1s, vantage: [us, eu]}
  users: {kind: http, every: 500ms, vantage: [us, eu]}
steps:
  - {id: kill, fault: kill-ingress, cluster: us}
  - wait: 3m
expect:
  - dns.failover_time < 3m
  - dns.failover_time.us < 3m
  - dns.failover_time.eu < 3m
  - dns.client_failover_time.us < 4m
  - users.downtime.us < 4m
  - users.downtime.eu < 10s
"""

DEFAULTS = {"ttl": "30s", "monitor": {"interval": "10s", "timeout": "5s", "toleratedFailures": 3},
            "vantagePoints": {"us": "198.51.100.0/24", "eu": "203.0.113.0/24"}}


def test_geographic_routing_without_a_fallback_never_moves_the_failed_regions_users(tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, GEO_OUTAGE), _env(routing="Geographic", **DEFAULTS),
                                FACTS))
    for expect in ("dns.failover_time < 3m", "dns.failover_time.us < 3m", "dns.client_failover_time.us < 4m",
                   "users.downtime.us < 4m"):
        stranded = reviews[expect]
        assert stranded.window is not None
        assert stranded.window.text == "never (while the faults last)"
        assert (stranded.breaks, stranded.verdict) == (
            True, "the design allows it never to happen while the faults last")
        assert stranded.reasoning.startswith("Geographic routing with no fallback (the environment states no "
                                             "geographicFallback: a plain Geographic profile has none): us's "
                                             "users are mapped to the us endpoint alone")
    for expect in ("dns.failover_time.eu < 3m", "users.downtime.eu < 10s"):
        assert (reviews[expect].window, reviews[expect].breaks) == (Window(0.0, 0.0, False, "s"), False)


def test_a_nested_fallback_or_performance_routing_moves_them_as_priority_would(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, GEO_OUTAGE)
    for settings in ({"routing": "Geographic", "geographicFallback": "priority"}, {"routing": "Performance"}):
        reviews = _by_expect(review(scenario, _env(**settings, **DEFAULTS), FACTS))
        assert reviews["dns.failover_time.us < 3m"].window == Window(35.0, 45.0, True, "s")
        assert reviews["dns.failover_time < 3m"].window == Window(35.0, 45.0, True, "s")
        assert reviews["users.downtime.us < 4m"].window == Window(35.0, 75.0, True, "s")
        assert reviews["dns.failover_time.eu < 3m"].window == Window(0.0, 0.0, False, "s")
        assert not any(r.breaks for r in reviews.values())
    # A probe asking from nowhere in particular cannot be predicted where the answer depends on it.
    plain = _by_expect(review(_scenario(tmp_path, US_OUTAGE), _env(routing="Performance", **DEFAULTS), FACTS))
    assert plain["dns.failover_time < 3m"].reasoning.startswith("unknown: with Performance routing")


REGION_DOWN = """
apiVersion: drill/v1
name: region-down
probes:
  dns: {kind: dns, every: 1s}
  users: {kind: http, path: /, every: 500ms}
  data: {kind: replication, every: 1s}
steps:
  - parallel:
      - {id: z1, fault: zone-down, cluster: us, zone: zone-1}
      - {id: z2, fault: zone-down, cluster: us, zone: zone-2}
      - {id: z3, fault: zone-down, cluster: us, zone: zone-3}
      - {id: data, fault: region-outage, region: us}
  - wait: 2m
expect:
  - dns.failover_time < 3m
  - dns.failback_time < 1m
  - data.lost_writes == 0
  - data.rpo < 5s
"""

PLANNED = """
apiVersion: drill/v1
name: planned
probes:
  dns: {kind: dns, every: 1s}
  users: {kind: http, path: /, every: 500ms}
  data: {kind: replication, every: 1s}
steps:
  - {id: data, fault: region-failover, to: eu}
  - {id: traffic, fault: disable-endpoint, region: us}
  - wait: 2m
expect:
  - dns.failover_time < 10s
  - dns.client_failover_time < 10s
  - users.downtime < 10s
  - data.lost_writes == 0
"""

ZONES = {"us": ("zone-1", "zone-2", "zone-3"), "eu": ("zone-1", "zone-2", "zone-3")}
COSMOS = {"account": "a", "endpoint": "https://a/", "database": "d", "container": "c",
          "locations": {"us": "East US", "eu": "West Europe"}}


def _cosmos_env(consistency: str | None, **tm: Any) -> Environment:
    cosmos = {**COSMOS, **({"consistency": consistency} if consistency else {})}
    return _env(**tm).model_copy(update={"cosmos": Environment.model_validate(
        {**_env().model_dump(by_alias=True, exclude={"path"}), "cosmos": cosmos}).cosmos})


def test_a_region_whose_every_zone_is_powered_off_is_a_front_door_that_hangs(tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, REGION_DOWN), _cosmos_env("Session", **FLAWED),
                                DesignFacts(zones=ZONES)))
    failover = reviews["dns.failover_time < 3m"]
    assert failover.window == Window(160.0, 190.0, True, "s")  # 5 x 30 s + 10 s timeout, one interval more
    assert failover.breaks
    assert reviews["dns.failback_time < 1m"].window is None  # the VMs' boot time is no setting
    # Two zones of three down leave the front door standing: no prediction.
    two = REGION_DOWN.replace("      - {id: z3, fault: zone-down, cluster: us, zone: zone-3}\n", "")
    assert _by_expect(review(_scenario(tmp_path, two), _cosmos_env("Session", **FLAWED),
                             DesignFacts(zones=ZONES)))["dns.failover_time < 3m"].window is None


def test_a_forced_failover_under_session_consistency_may_lose_writes_whatever_one_run_lost(
        tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, REGION_DOWN), _cosmos_env("Session", **FLAWED),
                                DesignFacts(zones=ZONES)))
    nothing_lost = reviews["data.lost_writes == 0"]
    assert nothing_lost.breaks
    assert nothing_lost.verdict == "the design allows more than 0"
    assert "asynchronously" in nothing_lost.reasoning
    # How much is lost follows from the lag at that instant, which no setting states: no verdict on it.
    assert not reviews["data.rpo < 5s"].breaks
    strong = _by_expect(review(_scenario(tmp_path, REGION_DOWN), _cosmos_env("Strong", **FLAWED),
                               DesignFacts(zones=ZONES)))
    assert strong["data.lost_writes == 0"].window == Window(0.0, 0.0, False, "count")
    assert not strong["data.lost_writes == 0"].breaks
    unstated = _by_expect(review(_scenario(tmp_path, REGION_DOWN), _cosmos_env(None, **FLAWED),
                                 DesignFacts(zones=ZONES)))
    assert unstated["data.lost_writes == 0"].reasoning.startswith("unknown")


def test_a_planned_move_loses_nothing_and_a_disabled_endpoint_leaves_at_once(tmp_path: Path) -> None:
    reviews = _by_expect(review(_scenario(tmp_path, PLANNED), _cosmos_env("Session", **FLAWED),
                                DesignFacts(zones=ZONES)))
    assert reviews["data.lost_writes == 0"].window == Window(0.0, 0.0, False, "count")
    # No probe decides: the answers change once ARM has the change (how long that takes, no setting says).
    assert reviews["dns.failover_time < 10s"].window == Window(0.0, None, True, "s")
    assert reviews["users.downtime < 10s"].window == Window(0.0, None, True, "s")
    assert "TTL" in reviews["dns.client_failover_time < 10s"].reasoning
    assert not any(r.breaks for r in reviews.values())
