"""The scenario's ``regression:`` threshold: 20% unless the file says, per metric if it says, and every
mistake in it at its place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from drills.errors import SourceErrors
from drills.plugins import Plugins
from drills.scenario import Scenario, load_scenario

Write = Callable[..., Path]

FAILOVER = """
    apiVersion: drill/v1
    name: failover
    probes:
      dns: {kind: dns, every: 1s}
      users: {kind: http, path: /, every: 500ms}
    steps:
      - wait: 1m
    expect:
      - dns.failover_time < 3m
      - users.downtime < 4m
    """


def _load(path: Path, plugins: Plugins) -> Scenario:
    return load_scenario(path, regions=("us", "eu"), variables={}, plugins=plugins)


def _errors(path: Path, plugins: Plugins) -> list[str]:
    with pytest.raises(SourceErrors) as info:
        _load(path, plugins)
    return [str(e).replace(f"{path}:", "") for e in info.value.errors]


def test_the_threshold_is_20_percent_unless_the_scenario_sets_it_per_metric_too(
        write: Write, fake_plugins: Plugins) -> None:
    default = _load(write(FAILOVER), fake_plugins)
    assert default.regression.for_metric("dns.failover_time") == pytest.approx(0.2)
    extra = "    regression: {threshold: 30%, metrics: {users.downtime: 0%}}\n"
    chosen = _load(write(FAILOVER.rstrip(" ") + extra), fake_plugins)
    assert chosen.regression.for_metric("dns.failover_time") == pytest.approx(0.3)
    assert chosen.regression.for_metric("users.downtime") == 0.0


def test_regression_mistakes_are_reported_at_their_place_with_a_suggestion(
        write: Write, fake_plugins: Plugins) -> None:
    bad = write(FAILOVER.rstrip(" ") + "    regression:\n      treshold: 30%\n      metrics:\n"
                "        dns.failover_tim: 10%\n        users.downtime: 30\n")
    assert _errors(bad, fake_plugins) == [
        "12:3: unknown key 'treshold' in regression (did you mean 'threshold'?)",
        "14:5: 'dns.failover_tim' is not a metric an expectation names (did you mean 'dns.failover_time'?)",
        "15:21: a regression threshold: expected a percentage like 95%, not 30 "
        "(how much worse than the median of recent passed runs, e.g. 30%)",
    ]
    assert _errors(write(FAILOVER.rstrip(" ") + "    regression: 30%\n"), fake_plugins) == [
        "11:13: regression must be a mapping, not the text '30%' "
        "(for example 'regression: {threshold: 30%, metrics: {dns.failover_time: 10%}}')"]
