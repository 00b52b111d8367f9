"""The Traffic Manager settings an environment may state, checked at their place in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.environment import load_environment
from drills.errors import SourceError, SourceErrors

BASE = """apiVersion: drill/v1
kind: Environment
name: prod
regions:
  us: {context: us, ingress: {namespace: i, deployment: i}, endpoint: us, target: us.t}
trafficManager:
  fqdn: shop.trafficmanager.net
  nameservers: ["127.0.0.1:53"]
"""


def test_the_monitor_settings_and_ttl_are_read_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(BASE + "  ttl: 1m\n  routing: Weighted\n  monitor: {path: /health, interval: 10s, "
                           "timeout: 5s, toleratedFailures: 0,\n"
                           "    expectedStatusCodeRanges: [{min: 200, max: 204}]}\n")
    tm = load_environment(path).traffic_manager
    assert (tm.ttl, tm.routing) == (60.0, "Weighted")
    assert tm.monitor is not None
    assert (tm.monitor.protocol, tm.monitor.path, tm.monitor.interval, tm.monitor.timeout,
            tm.monitor.tolerated_failures) == ("HTTP", "/health", 10.0, 5.0, 0)
    assert [tm.monitor.healthy(s) for s in (200, 204, 205, 301)] == [True, True, False, False]


def test_without_ranges_only_200_is_healthy_and_without_settings_nothing_is_stated(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(BASE)
    tm = load_environment(path).traffic_manager
    assert (tm.ttl, tm.routing, tm.monitor) == (None, None, None)
    path.write_text(BASE + "  monitor: {}\n")
    monitor = load_environment(path).traffic_manager.monitor
    assert monitor is not None
    assert [monitor.healthy(s) for s in (200, 201)] == [True, False]


def test_a_bad_setting_is_reported_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(BASE + "  monitor: {toleratedFailures: 12,\n"
                           "    expectedStatusCodeRanges: [{min: 300, max: 200}]}\n")
    with pytest.raises((SourceError, SourceErrors)) as info:
        load_environment(path)
    assert str(info.value).splitlines() == [f"{path}:9:32: Input should be less than or equal to 9",
                                            f"{path}:10:32: min (300) must not exceed max (200)"]
