"""disable-endpoint against a lab's ARM endpoint, through the real azure-mgmt-trafficmanager client:
what ARM shows and what the lab's Traffic Manager answers change at once, and the undo restores the
recorded status (an endpoint someone else disabled stays disabled)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faultkube import lab_targets  # noqa: F401 - the targets fixture

from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import FaultError
from drills.faults.trafficmanager import DisableEndpoint
from drills.targets import Targets
from probes.dns import DnsProbe

pytestmark = pytest.mark.lab

DEADLINE_S = 10.0
"""Real seconds to wait for the lab's Traffic Manager to answer as expected (it takes well under one)."""


async def _statuses(targets: Targets) -> dict[str, str]:
    """Each endpoint's ``endpointStatus`` as ARM shows it, read through the SDK as a person would."""
    tm = targets.env.traffic_manager
    client = targets.azure.traffic_manager()
    profile = await client.profiles.get(tm.resource_group, tm.profile)
    return {e.name: e.properties.endpoint_status for e in profile.properties.endpoints}


async def _answer(targets: Targets) -> Any:
    return (await DnsProbe("dns", DnsProbe.Spec(), targets, every=1.0).sample())["answer"]


async def _answers(targets: Targets, wanted: str | None) -> None:
    """Wait until the lab's Traffic Manager answers ``wanted`` (None: no usable answer)."""
    async def loop() -> None:
        while await _answer(targets) != wanted:  # noqa: ASYNC110 - a DNS answer is polled, as users do
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), DEADLINE_S)


async def _set(targets: Targets, endpoint: str, status: str) -> None:
    tm = targets.env.traffic_manager
    client = targets.azure.traffic_manager()
    profile = await client.profiles.get(tm.resource_group, tm.profile)
    found = next(e for e in profile.properties.endpoints if e.name == endpoint)
    kind = found.type.rsplit("/", 1)[-1]
    await client.endpoints.update(tm.resource_group, tm.profile, kind, endpoint,
                                  {"properties": {"endpointStatus": status}})


@pytest.fixture(name="azure_targets")
async def _azure_targets(targets: Targets) -> AsyncIterator[Targets]:
    yield targets
    await targets.aclose()


async def test_disabling_the_us_endpoint_moves_users_at_once_and_the_undo_brings_it_back(
        azure_targets: Targets) -> None:
    targets = azure_targets
    assert await _answer(targets) == "us"
    fault = DisableEndpoint(DisableEndpoint.Params(region="us"))
    undo = await fault.prepare(targets)
    assert undo.region == "us"
    assert undo.data["status"] == "Enabled"
    assert undo.data["endpoint"] == "us"
    assert len(undo.objects) == 1
    assert undo.objects[0].lower().endswith("/us")
    assert undo.objects[0].lower().startswith(f"/subscriptions/{targets.env.azure.subscription}/".lower())
    assert await _statuses(targets) == {"us": "Enabled", "eu": "Enabled"}
    await fault.inject(targets, undo)
    assert await _statuses(targets) == {"us": "Disabled", "eu": "Enabled"}
    assert await _answer(targets) == "eu"  # no probe cycle to wait for: a disabled endpoint is never answered
    await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # idempotent
    assert await _statuses(targets) == {"us": "Enabled", "eu": "Enabled"}
    await _answers(targets, "us")


async def test_an_endpoint_someone_disabled_stays_disabled_and_the_last_enabled_one_is_flagged(
        azure_targets: Targets) -> None:
    targets = azure_targets
    await _set(targets, "eu", "Disabled")
    try:
        fault = DisableEndpoint(DisableEndpoint.Params(endpoint="eu"))
        undo = await fault.prepare(targets)
        assert undo.region == "eu"
        assert undo.data["status"] == "Disabled"
        assert "already Disabled" in undo.summary
        await fault.inject(targets, undo)
        await fault.revert(targets, undo)
        assert (await _statuses(targets))["eu"] == "Disabled"
        assert DisableEndpoint.by_hand(undo) is None

        last = await DisableEndpoint(DisableEndpoint.Params(region="us")).prepare(targets)
        assert "last enabled endpoint" in last.summary
        assert "NXDOMAIN" in last.summary
    finally:
        await _set(targets, "eu", "Enabled")
    assert await _statuses(targets) == {"us": "Enabled", "eu": "Enabled"}


def _environment(lab_env: Environment, **changes: Any) -> Environment:
    """The lab's environment file with some of its parts changed, as a user might have written it."""
    return load_environment(lab_env.path).model_copy(update=changes)


async def test_a_profile_arm_does_not_have_is_refused_naming_it(lab_env: Environment) -> None:
    tm = lab_env.traffic_manager.model_copy(update={"profile": "no-such-profile"})
    targets = Targets(_environment(lab_env, traffic_manager=tm), ScenarioClock(lab_env.time_scale))
    try:
        with pytest.raises(FaultError, match="not found") as caught:
            await DisableEndpoint(DisableEndpoint.Params(region="us")).prepare(targets)
        assert "no-such-profile" in str(caught.value)
    finally:
        await targets.aclose()


async def test_a_token_arm_refuses_is_a_credentials_error(lab_env: Environment, tmp_path: Path) -> None:
    assert lab_env.lab is not None
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-labs-token\n")
    lab = lab_env.lab.model_copy(update={"arm_token_file": str(wrong)})
    targets = Targets(_environment(lab_env, lab=lab), ScenarioClock(lab_env.time_scale))
    try:
        with pytest.raises(FaultError, match="did not accept drill's credentials"):
            await DisableEndpoint(DisableEndpoint.Params(region="us")).prepare(targets)
    finally:
        await targets.aclose()


async def test_an_environment_without_the_profiles_place_is_refused(lab_env: Environment) -> None:
    tm = lab_env.traffic_manager.model_copy(update={"resource_group": None})
    targets = Targets(_environment(lab_env, traffic_manager=tm), ScenarioClock(lab_env.time_scale))
    try:
        with pytest.raises(FaultError, match=r"set trafficManager\.resourceGroup"):
            await DisableEndpoint(DisableEndpoint.Params(region="us")).prepare(targets)
    finally:
        await targets.aclose()
