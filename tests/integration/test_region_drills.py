"""The region drills on a lab started apart, as a user runs them (``drill lab up`` in one terminal,
``drill run ... --env <its file>`` in another): the sound design passes both, every fault is undone
(checked through the Azure SDKs and the kubernetes client), and flawed designs fail naming the
expectation they break."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from drillrun import SCENARIOS, TOPOLOGIES, Finished, azure_state, drill_run, unchanged

from drills.environment import Environment, load_environment
from drills.labprocess import start_lab

pytestmark = pytest.mark.lab

SOUND_SCALE = 15.0
"""Half the README's scale: the lab's canaries are read a few real milliseconds apart, and a loaded
machine's stalls of a few hundred milliseconds are worth seconds of lab time at 30x, as much as the
bounds on replication lag and on a planned move's user downtime."""
FLAWED_SCALE = 60.0
"""The flawed designs break their bounds by seconds to minutes."""

REGION_OUTAGE = str(SCENARIOS / "region-outage.yaml")
PLANNED = str(SCENARIOS / "planned-failover.yaml")


@contextmanager
def _lab(tmp_path: Path, topology: str | None, scale: float) -> Iterator[Environment]:
    with start_lab(topology=TOPOLOGIES / f"{topology}.yaml" if topology else None, time_scale=scale,
                   directory=tmp_path / "lab") as lab:
        yield load_environment(lab.environment_file)


def _run(env: Environment, tmp_path: Path, scenario: str) -> Finished:
    return drill_run(tmp_path / "runs", scenario, "--env", env.path, "--trials", "1")


def _restored(env: Environment) -> dict[str, object]:
    state = azure_state(env)
    assert set(state["endpoints"].values()) == {"Enabled"}
    assert state["write"] == ["East US"]
    assert state["read"] == ["East US", "West Europe"]
    assert all(codes == ["PowerState/running"] for codes in state["power"].values()), state["power"]
    return state


def test_the_sound_design_passes_the_region_outage_and_is_left_as_it_was(tmp_path: Path) -> None:
    with _lab(tmp_path, None, SOUND_SCALE) as env, unchanged(env):
        before = _restored(env)
        run = _run(env, tmp_path, REGION_OUTAGE)
        assert run.record["verdict"] == "passed", run.output
        assert _restored(env) == before
    metrics = run.record["metrics"]
    assert metrics["data.lost_writes"]["unit"] == "count"
    assert metrics["data.rpo"]["value"] < 5.0
    assert metrics["tm.time_to_degraded.us"]["value"] is not None
    undone = {u["step"]: u["outcome"] for u in run.record["rollback"]}
    assert undone == dict.fromkeys(["us-zone-1-down", "us-zone-2-down", "us-zone-3-down", "us-data-offline"],
                                   "reverted")


def test_the_sound_design_moves_traffic_and_data_on_purpose_losing_nothing(tmp_path: Path) -> None:
    with _lab(tmp_path, None, SOUND_SCALE) as env, unchanged(env):
        before = _restored(env)
        run = _run(env, tmp_path, PLANNED)
        assert run.record["verdict"] == "passed", run.output
        assert _restored(env) == before
    assert run.metric("data.lost_writes")["value"] == 0


@pytest.mark.parametrize(("topology", "scenario", "broken"), [
    ("replication-lag-beyond-rpo", REGION_OUTAGE, {"data.lag_p50.eu < 5s", "data.rpo < 5s"}),
    ("eventual-lagging", REGION_OUTAGE, {"data.rpo < 5s"}),
    ("geographic-no-fallback", REGION_OUTAGE, {"dns.failover_time.us < 3m", "users.downtime.us < 4m"}),
    ("slow-probing", REGION_OUTAGE, {"dns.failover_time.us < 3m", "users.downtime.us < 4m"}),
    ("geographic-no-fallback", PLANNED, {"dns.failover_time.us < 10s"}),
])
def test_a_flawed_design_fails_naming_the_promise_it_breaks(tmp_path: Path, topology: str, scenario: str,
                                                           broken: set[str]) -> None:
    with _lab(tmp_path, topology, FLAWED_SCALE) as env:
        run = _run(env, tmp_path, scenario)
        _restored(env)
    assert (run.code, run.record["verdict"]) == (1, "failed"), run.output
    assert broken <= run.failed_expectations(), run.output
    if topology == "eventual-lagging":
        assert run.metric("data.lost_writes")["value"] > 0
