"""Live values as the terminal and the log show them: units, never a raw Python value."""

from __future__ import annotations

from drills.runner.livestate import Deadline, GuardLine, incident_deadlines
from drills.runner.readouts import (
    format_signal,
    guard_progress,
    incident_timer,
    readouts,
    signal_unit,
    time_base,
    trends,
)
from drills.scenario.expressions import parse_comparison
from probes.dns import DnsProbe
from probes.http import HttpProbe
from probes.replicas import ReplicasProbe
from probes.replication import ReplicationProbe
from probes.trafficmanager import TrafficManagerProbe


def test_rates_carry_a_percent_sign_at_one_decimal() -> None:
    assert readouts({"error_rate": 45.45454545454545}) == ["error_rate 45.5%"]


def test_an_unknown_value_and_a_truth_are_words() -> None:
    assert readouts({"region": None, "steady": True}) == ["region -", "steady"]
    assert readouts({"ok": None, "steady": False}) == ["ok -", "not steady"]
    assert format_signal(True, None) == "yes"


def test_a_short_duration_is_shown_in_milliseconds() -> None:
    assert format_signal(0.0017, "s") == "1.7 ms"
    assert readouts({"lag.eu": 12.04, "lag.us": 0.25}) == ["lag eu:12 s us:250 ms"]


def test_a_breakdown_joins_its_total_with_every_key_s_count() -> None:
    signals = {"ready": 4, "desired": 6, "ready.us-1": 2, "ready.us-2": 2, "ready.us-3": 0}
    assert readouts(signals) == ["ready 4 (us-1:2 us-2:2 us-3:0)", "desired 6"]
    dns = {"answer": "eu", "answer.paris": "eu", "answer.nyc": "us"}
    assert readouts(dns) == ["answer eu (paris:eu nyc:us)"]


def test_a_categorical_signal_gets_a_strip_per_vantage_point() -> None:
    history = [{"answer.paris": "us", "answer.nyc": "us"}, {"answer.paris": "eu", "answer.nyc": None}]
    assert trends(history) == [("answer.paris", "ue"), ("answer.nyc", "u·")]


def test_a_rate_s_sparkline_spans_zero_to_a_hundred_percent() -> None:
    assert trends([{"error_rate": v} for v in (0.0, 50.0, 100.0, None)]) == [("error_rate", "▁▅█·")]


def test_a_guard_says_how_long_its_condition_has_held_of_how_long_it_may() -> None:
    guard = GuardLine("users.error_rate > 80% for 8m", "%", 480.0, 86.66666, held_s=67.2)
    assert guard_progress(guard) == "held 01:07 of 08:00 (now 86.7%)"


def test_the_incident_timer_stops_when_recovery_begins_and_says_when_it_is_past() -> None:
    rto = Deadline("dns.failover_time", 120.0, "dns.failover_time < 2m")
    assert incident_timer(rto, 60.0, 127.0) == ("incident +01:07 of 02:00 (dns.failover_time)", False)
    assert incident_timer(rto, 60.0, 400.0, end_t=170.0) == ("incident +01:50 of 02:00 (dns.failover_time)",
                                                            False)
    assert incident_timer(rto, 60.0, 181.0)[1]


def test_a_lab_says_its_time_base() -> None:
    assert time_base(30.0) == "lab time (30x): times are real-world equivalent"


def test_only_a_metric_counted_from_the_incident_becomes_an_incident_deadline() -> None:
    expect = [parse_comparison(text) for text in (
        "dns.failover_time < 3m", "dns.client_failover_time.paris <= 4m", "users.failover_time < 2m",
        "web.time_to_restore < 5m", "data.write_failover_time < 2m", "tm.time_to_degraded.us < 90s",
        "data.lag_p50.eu < 5s", "data.rpo < 5s", "users.downtime < 10s", "users.latency_p99 < 200ms",
        "dns.failback_time < 3m", "tm.time_to_online.us < 3m", "dns.flaps < 2")]
    probes = {"dns": DnsProbe, "users": HttpProbe, "web": ReplicasProbe, "data": ReplicationProbe,
              "tm": TrafficManagerProbe}
    assert [d.text for d in incident_deadlines(expect, probes)] == [
        "dns.failover_time < 3m", "dns.client_failover_time.paris <= 4m", "users.failover_time < 2m",
        "web.time_to_restore < 5m", "data.write_failover_time < 2m", "tm.time_to_degraded.us < 90s"]
    assert incident_deadlines(expect[:1], probes)[0] == Deadline("dns.failover_time", 180.0,
                                                                "dns.failover_time < 3m")


def test_units_follow_the_signals_the_probes_give_and_no_other_name() -> None:
    units = {name.removesuffix(".*"): signal_unit(name.removesuffix(".*"))
             for probe in (DnsProbe, HttpProbe, ReplicasProbe, ReplicationProbe, TrafficManagerProbe)
             for name in probe.SIGNALS if name != "steady"}
    assert units == {"answer": None, "ok": "%", "error_rate": "%", "region": None, "ready": None,
                     "desired": None, "write_region": None, "lag": "s", "status": None, "profile": None}
    assert signal_unit("latency") is None  # no probe gives it
    assert signal_unit("age") is None
