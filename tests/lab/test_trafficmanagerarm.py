"""The lab's Traffic Manager through ``azure-mgmt-trafficmanager``, as a drill reaches it: the real aio
client built by :class:`drills.azure.Azure` from the lab's environment file, DNS through dnspython, the
ingress killed through the kubernetes client. One lab for the module; each test leaves it as found."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
import pytest_asyncio
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.trafficmanager import TrafficManagerManagementClient
from azure.mgmt.trafficmanager.models import Endpoint, EndpointProperties
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.azure import Azure, LabCredential
from drills.environment import load_environment
from drills.lab import resources
from drills.lab.groundtruth import read
from drills.lab.topology import DEFAULT
from drills.lab.world import World

pytestmark = [pytest.mark.lab, pytest.mark.asyncio(loop_scope="module")]

SCALE = 100.0
"""Lab seconds per real second: a US endpoint degrades (3 tolerated failures, 10 s apart) in ~0.5 s."""

RG, PROFILE, KIND = resources.RESOURCE_GROUP, "shop", "ExternalEndpoints"
_POLL_S = 0.01


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    world = World(DEFAULT.model_copy(update={"time_scale": SCALE}), tmp_path_factory.mktemp("lab"))
    await world.start()
    try:
        yield world
    finally:
        await world.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def azure(world: World) -> AsyncIterator[Azure]:
    azure = Azure(load_environment(world.environment_file))
    try:
        yield azure
    finally:
        await azure.aclose()


async def test_the_profile_reads_as_arm_serves_it(azure: Azure, world: World) -> None:
    client = azure.traffic_manager()
    profile = await client.profiles.get(RG, PROFILE)
    assert profile.id == (f"/subscriptions/{resources.SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                          "Microsoft.Network/trafficManagerProfiles/shop")
    assert (profile.name, profile.type, profile.location) == (
        "shop", "Microsoft.Network/trafficManagerProfiles", "global")
    props = profile.properties
    assert props.traffic_routing_method == "Priority"
    assert (props.dns_config.relative_name, props.dns_config.fqdn, props.dns_config.ttl) == (
        "shop", "shop.trafficmanager.net", 30)
    monitor = props.monitor_config
    assert (monitor.protocol, monitor.path, monitor.interval_in_seconds, monitor.timeout_in_seconds,
            monitor.tolerated_number_of_failures) == ("HTTP", "/healthz", 10, 5, 3)
    assert monitor.port == world.addresses.service_port
    assert monitor.profile_monitor_status == "Online"
    assert [(e.name, e.type, e.properties.target, e.properties.priority, e.properties.endpoint_status,
             e.properties.endpoint_monitor_status) for e in props.endpoints] == [
        ("us", "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "us.endpoints.drill.test", 1,
         "Enabled", "Online"),
        ("eu", "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "eu.endpoints.drill.test", 2,
         "Enabled", "Online")]
    # Listed by resource group and by subscription; ARM's paths and names are case-insensitive.
    assert [p.name async for p in client.profiles.list_by_resource_group(RG)] == ["shop"]
    assert [p.name async for p in client.profiles.list_by_subscription()] == ["shop"]
    endpoint = await client.endpoints.get(RG.upper(), "SHOP", "externalendpoints", "US")
    assert (endpoint.name, endpoint.properties.endpoint_location) == ("us", "eastus")


async def test_unknown_resources_are_arm_404s(azure: Azure) -> None:
    client = azure.traffic_manager()
    with pytest.raises(ResourceNotFoundError):
        await client.profiles.get(RG, "nope")
    with pytest.raises(ResourceNotFoundError):
        await client.endpoints.get(RG, PROFILE, "AzureEndpoints", "us")
    with pytest.raises(ResourceNotFoundError, match="ResourceGroupNotFound"):
        await client.profiles.get("other-rg", PROFILE)


async def test_disabling_us_moves_the_next_dns_answer_to_eu_at_once(azure: Azure, world: World) -> None:
    client = azure.traffic_manager()
    assert await _answer(world) == "us"
    try:
        disabled = await client.endpoints.update(RG, PROFILE, KIND, "us", Endpoint(
            properties=EndpointProperties(endpoint_status="Disabled")))
        assert await _answer(world) == "eu"  # the very next query, no wait
        assert (disabled.properties.endpoint_status, disabled.properties.endpoint_monitor_status) == (
            "Disabled", "Disabled")
        read_back = await client.endpoints.get(RG, PROFILE, KIND, "us")
        assert read_back.properties.endpoint_status == "Disabled"
    finally:
        enabled = await client.endpoints.update(RG, PROFILE, KIND, "us", Endpoint(
            properties=EndpointProperties(endpoint_status="Enabled")))
    assert enabled.properties.endpoint_monitor_status in ("CheckingEndpoint", "Online")
    assert await _answer(world) == "us"  # checking is routed as if online
    await _until(lambda: _monitor_status(client, "us"), "Online")
    changes = [(line["endpoint"], line["enabled"]) for line in read(world.ground_truth_file)
               if line["event"] == "endpoint_enabled"]
    assert changes[-2:] == [("us", False), ("us", True)]


async def test_a_get_object_put_back_with_new_priorities_reroutes(azure: Azure, world: World) -> None:
    client = azure.traffic_manager()
    profile = await client.profiles.get(RG, PROFILE)
    for endpoint in profile.properties.endpoints:
        endpoint.properties.priority = {"us": 2, "eu": 1}[endpoint.name]
    try:
        updated = await client.profiles.create_or_update(RG, PROFILE, profile)
        assert {e.name: e.properties.priority for e in updated.properties.endpoints} == {"us": 2, "eu": 1}
        assert await _answer(world) == "eu"
    finally:
        for name, priority in (("us", 1), ("eu", 2)):
            await client.endpoints.update(RG, PROFILE, KIND, name, Endpoint(
                properties=EndpointProperties(priority=priority)))
    assert await _answer(world) == "us"


async def test_changes_the_lab_cannot_apply_are_refused_and_nothing_is_applied(azure: Azure,
                                                                              world: World) -> None:
    client = azure.traffic_manager()
    profile = await client.profiles.get(RG, PROFILE)
    profile.properties.dns_config.ttl = 5
    profile.properties.endpoints[0].properties.endpoint_status = "Disabled"
    with pytest.raises(HttpResponseError) as refused:
        await client.profiles.create_or_update(RG, PROFILE, profile)
    assert refused.value.status_code == 400
    assert "cannot change dnsConfig.ttl" in str(refused.value)
    assert await _answer(world) == "us"
    with pytest.raises(HttpResponseError, match="cannot add endpoints"):
        await client.endpoints.create_or_update(RG, PROFILE, KIND, "asia", Endpoint(
            properties=EndpointProperties(target="asia.example.com", endpoint_status="Enabled")))
    with pytest.raises(HttpResponseError, match="cannot change endpoint us's target"):
        await client.endpoints.update(RG, PROFILE, KIND, "us", Endpoint(
            properties=EndpointProperties(target="elsewhere.example.com")))


async def test_a_dead_us_ingress_shows_degraded_then_online(azure: Azure, world: World) -> None:
    client = azure.traffic_manager()
    ingress = DEFAULT.ingress
    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(world.kubeconfig_file),
                                                             context="lab-us"))
    await asyncio.to_thread(apps.patch_namespaced_deployment_scale, ingress.name, ingress.namespace,
                            {"spec": {"replicas": 0}})
    try:
        await _until(lambda: _monitor_status(client, "us"), "Degraded", timeout_s=5)
        profile = await client.profiles.get(RG, PROFILE)
        assert profile.properties.monitor_config.profile_monitor_status == "Degraded"
        assert await _answer(world) == "eu"
        degraded_at = next(line for line in read(world.ground_truth_file)
                           if line["event"] == "endpoint_status" and line["status"] == "Degraded")
        assert degraded_at["endpoint"] == "us"
    finally:
        await asyncio.to_thread(apps.patch_namespaced_deployment_scale, ingress.name, ingress.namespace,
                                {"spec": {"replicas": ingress.replicas}})
    await _until(lambda: _monitor_status(client, "us"), "Online", timeout_s=5)


async def test_a_wrong_token_is_refused_with_401(azure: Azure, world: World, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-lab-token\n")
    client = type(azure.traffic_manager())(LabCredential(wrong), resources.SUBSCRIPTION,
                                            base_url=world.addresses.arm_url,
                                            credential_scopes=[f"{world.addresses.arm_url}/.default"],
                                            connection_verify=str(world.directory / "ca.crt"))
    async with client:
        with pytest.raises(ClientAuthenticationError) as refused:
            await client.profiles.get(RG, PROFILE)
    assert refused.value.status_code == 401


async def test_the_sync_client_reads_the_same_state(world: World) -> None:
    class Token:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(world.arm_token, int(time.time()) + 3600)

    def read_statuses() -> dict[str, Any]:
        url = world.addresses.arm_url
        with TrafficManagerManagementClient(Token(), resources.SUBSCRIPTION,  # type: ignore[arg-type]
                                            base_url=url, credential_scopes=[f"{url}/.default"],
                                            connection_verify=str(world.directory / "ca.crt")) as client:
            endpoints = client.profiles.get(RG, PROFILE).properties.endpoints
            return {e.name: e.properties.endpoint_monitor_status for e in endpoints}

    # In a thread: the lab serves from this test's event loop.
    assert await asyncio.to_thread(read_statuses) == world.traffic_manager.statuses()


async def _answer(world: World) -> str:
    """The region the profile's name is answered with now (the CNAME target's first label)."""
    query = dns.message.make_query(DEFAULT.traffic_manager.fqdn, dns.rdatatype.A)
    reply = await dns.asyncquery.udp(query, world.addresses.dns_address, port=world.addresses.dns_port,
                                     timeout=2)
    cname = next(r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME)
    return str(next(iter(cname)).target).split(".", 1)[0]


async def _monitor_status(client: Any, name: str) -> str:
    endpoint = await client.endpoints.get(RG, PROFILE, KIND, name)
    status: str = endpoint.properties.endpoint_monitor_status  # a str enum: equal to its value
    return status


async def _until(read_status: Callable[[], Awaitable[str]], wanted: str, *, timeout_s: float = 2.0) -> None:
    """Poll ARM, as a user does, until it says ``wanted``."""
    deadline = time.monotonic() + timeout_s
    while (status := await read_status()) != wanted:
        assert time.monotonic() < deadline, f"still {status}, not {wanted}, after {timeout_s} s"
        await asyncio.sleep(_POLL_S)
