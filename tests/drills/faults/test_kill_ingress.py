"""kill-ingress against a lab: scaled to 0 through the scale subresource, restored to the recorded count."""

from __future__ import annotations

import pytest
from faultkube import lab_targets  # noqa: F401 - the targets fixture

from drills.faults.workloads import KillIngress
from drills.targets import Targets

pytestmark = pytest.mark.lab


async def _replicas(targets: Targets, region: str) -> int:
    kube = targets.kube(region)
    ingress = targets.env.regions[region].ingress
    scale = await kube.call(kube.apps.read_namespaced_deployment_scale, ingress.deployment, ingress.namespace)
    return scale.spec.replicas


async def test_scales_the_ingress_to_zero_and_back_to_the_recorded_count(targets: Targets) -> None:
    fault = KillIngress(KillIngress.Params(cluster="us"))
    undo = await fault.prepare(targets)
    assert undo.data["replicas"] == 2
    assert undo.objects == ["us/Deployment/ingress-nginx/ingress-nginx-controller"]
    await fault.inject(targets, undo)
    assert await _replicas(targets, "us") == 0
    assert await _replicas(targets, "eu") == 2
    await fault.revert(targets, undo)
    await fault.revert(targets, undo)  # idempotent
    assert await _replicas(targets, "us") == 2
    assert KillIngress.by_hand(undo) == ("-n ingress-nginx scale deployment/ingress-nginx-controller "
                                         "--replicas=2")
