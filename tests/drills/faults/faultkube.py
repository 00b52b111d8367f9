"""The fault tests' fixture and small reads of a region's objects (through the same rate-limited client).

Not a ``conftest.py``: pytest would import one here as ``drills.faults.conftest`` (this folder
mirrors the package), hiding the real ``drills.faults``. Test modules import :func:`lab_targets`,
the ``targets`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.client import V1Node, V1Pod

from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.targets import Targets

ZONE = "topology.kubernetes.io/zone"


@pytest.fixture(name="targets")
async def lab_targets(lab: Any) -> AsyncIterator[Targets]:
    """The lab's regions, reached through its environment file exactly as a run reaches them."""
    env = load_environment(lab.environment_file)
    targets = Targets(env, ScenarioClock(env.time_scale))
    yield targets
    targets.close()


async def nodes(targets: Targets, region: str) -> dict[str, V1Node]:
    kube = targets.kube(region)
    return {n.metadata.name: n for n in (await kube.call(kube.core.list_node)).items}


def cordoned(node: V1Node) -> bool:
    return bool(node.spec and node.spec.unschedulable)


def zone_of(node: V1Node) -> str | None:
    return (node.metadata.labels or {}).get(ZONE)


async def pods(targets: Targets, region: str, namespace: str, selector: str) -> list[V1Pod]:
    kube = targets.kube(region)
    found = await kube.call(kube.core.list_namespaced_pod, namespace, label_selector=selector)
    return [p for p in found.items if p.metadata.deletion_timestamp is None]


async def set_cordon(targets: Targets, region: str, name: str, cordon: bool) -> None:
    kube = targets.kube(region)
    await kube.call(kube.core.patch_node, name, {"spec": {"unschedulable": True if cordon else None}})


async def app_selector(targets: Targets, region: str, namespace: str, deployment: str) -> str:
    """The label selector of a deployment's pods, as a selector string."""
    kube = targets.kube(region)
    found = await kube.call(kube.apps.read_namespaced_deployment, deployment, namespace)
    return ",".join(f"{k}={v}" for k, v in sorted(found.spec.selector.match_labels.items()))


async def pods_on(targets: Targets, region: str, node: str) -> list[V1Pod]:
    kube = targets.kube(region)
    found = await kube.call(kube.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}")
    return list(found.items)


def owner_kind(pod: V1Pod) -> str | None:
    return next((o.kind for o in pod.metadata.owner_references or [] if o.controller), None)
