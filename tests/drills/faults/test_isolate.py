"""isolate against a lab: a deny-all ingress policy that takes the region out of service, and back."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from faultkube import (
    app_selector,
    lab_targets,  # noqa: F401 - the targets fixture
)

from drills.faults.network import Isolate
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def _status(targets: Targets, region: str) -> int:
    """What a user connecting to the region's ingress gets (the ingress shares the API's address)."""
    host = urlsplit(targets.kube(region).api_client.configuration.host).hostname
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"http://{host}:{targets.env.service.port}/")).status_code


async def test_a_deny_all_policy_takes_the_region_out_of_service_until_reverted(targets: Targets) -> None:
    kube = targets.kube("us")
    web = await app_selector(targets, "us", "shop", "web")
    assert await _status(targets, "us") == 200
    fault = Isolate(Isolate.Params(cluster="us", namespace="shop", selector=web))
    undo = await fault.prepare(targets)
    name = undo.data["policy"]
    assert name.startswith("drill-isolate-")
    assert undo.objects == [f"us/NetworkPolicy/shop/{name}"]

    await fault.inject(targets, undo)
    policy = await kube.call(kube.networking.read_namespaced_network_policy, name, "shop")
    assert policy.metadata.labels == {"app.kubernetes.io/managed-by": "drill"}
    assert policy.spec.policy_types == ["Ingress"]
    assert not policy.spec.ingress
    assert await _status(targets, "us") == 503
    assert await _status(targets, "eu") == 200

    await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # a policy already gone is fine
    listed = await kube.call(kube.networking.list_namespaced_network_policy, "shop")
    assert name not in {p.metadata.name for p in listed.items}
    assert await _status(targets, "us") == 200
