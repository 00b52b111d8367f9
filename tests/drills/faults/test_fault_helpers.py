"""What the Kubernetes faults share, without a cluster: selectors, bounded fan-out, parameters, and
how a drain judges each pod (kubectl's rules)."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.client import (
    V1EmptyDirVolumeSource,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
    V1Volume,
)
from pydantic import ValidationError

from drills.errors import FaultError
from drills.faults.kube import each, parse_selector, selector_matches
from drills.faults.network import Isolate
from drills.faults.nodes import CordonZone, DrainNodes, _classify
from drills.faults.workloads import DeletePods


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("app=web", {"app": "web", "x": "1"}, True),
    ("app==web", {"app": "api"}, False),
    ("app!=web", {"app": "api"}, True),
    ("app!=web", {}, True),
    ("tier in (a, b),app=web", {"tier": "b", "app": "web"}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("canary", {"canary": ""}, True),
    ("!canary", {"canary": "yes"}, False),
    ("app.kubernetes.io/name=web,!canary", {"app.kubernetes.io/name": "web"}, True),
])
def test_a_selector_string_becomes_the_object_kubernetes_matches_with(
        selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(parse_selector(selector), labels) is matches


@pytest.mark.parametrize("bad", ["", "app web", "tier in ()", "a=b,,"])
def test_a_malformed_selector_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked through the Params below
        parse_selector(bad)


def test_a_null_selector_selects_nothing() -> None:
    assert not selector_matches(None, {"app": "web"})


async def test_each_is_concurrent_within_its_bound_and_tries_every_item() -> None:
    running = peak = 0
    done: list[int] = []

    async def act(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(i)
        if i in (3, 7):
            raise FaultError(f"item {i} failed", transient=True)
        return i

    with pytest.raises(FaultError) as caught:
        await each(range(40), act, limit=8)
    assert peak == 8
    assert sorted(done) == list(range(40))
    assert "2 of 40 failed" in str(caught.value)
    assert "item 3" in str(caught.value)
    assert caught.value.transient
    assert await each(range(5), lambda i: asyncio.sleep(0, result=i * 2)) == [0, 2, 4, 6, 8]


def test_params_refuse_unknown_keys_and_take_units() -> None:
    with pytest.raises(ValidationError, match="extra"):
        CordonZone.Params.model_validate({"cluster": "us", "zone": "zone-1", "zones": "x"})
    drain = DrainNodes.Params.model_validate({"cluster": "us", "zone": "zone-1", "timeout": "90s",
                                              "grace_period": "5s"})
    assert (drain.timeout, drain.grace_period) == (90.0, 5.0)
    assert DrainNodes.Params.model_validate(drain.model_dump(mode="json")) == drain
    with pytest.raises(ValidationError, match="either zone or nodes"):
        DrainNodes.Params.model_validate({"cluster": "us", "zone": "zone-1", "nodes": ["n1"]})
    with pytest.raises(ValidationError, match="duration"):
        DrainNodes.Params.model_validate({"cluster": "us", "zone": "zone-1", "timeout": 30})
    assert DeletePods.Params.model_validate({"cluster": "us", "namespace": "shop", "selector": "app=web",
                                             "share": "50%"}).share == 50.0
    # Every pod of a zone needs the zone: without it, no selector would mean every pod of the region.
    assert DeletePods.Params.model_validate({"cluster": "us", "zone": "zone-1"}).selector is None
    with pytest.raises(ValidationError, match="a selector, a zone or both"):
        DeletePods.Params.model_validate({"cluster": "us", "namespace": "shop"})
    with pytest.raises(ValidationError, match="not a label requirement"):
        Isolate.Params.model_validate({"cluster": "us", "namespace": "shop", "selector": "app web"})


def _pod(*, owner: str | None = "ReplicaSet", mirror: bool = False, empty_dir: bool = False,
         phase: str = "Running") -> V1Pod:
    refs = [V1OwnerReference(api_version="apps/v1", kind=owner, name="o", uid="u", controller=True)
            ] if owner else None
    volumes = [V1Volume(name="v", empty_dir=V1EmptyDirVolumeSource())]
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", owner_references=refs,
                                       annotations={"kubernetes.io/config.mirror": "x"} if mirror else None),
                 spec=V1PodSpec(containers=[], volumes=volumes if empty_dir else None),
                 status=V1PodStatus(phase=phase))


@pytest.mark.parametrize(("pod", "options", "verdict"), [
    (_pod(), {}, "evict"),
    (_pod(owner="DaemonSet"), {}, "skip"),
    (_pod(owner="DaemonSet"), {"ignore_daemonsets": False}, "daemonset"),
    (_pod(owner=None, mirror=True), {}, "skip"),
    (_pod(owner=None), {}, "unmanaged"),
    (_pod(owner=None), {"force": True}, "evict"),
    (_pod(owner=None, phase="Succeeded"), {}, "evict"),
    (_pod(empty_dir=True), {}, "emptydir"),
    (_pod(empty_dir=True), {"delete_emptydir_data": True}, "evict"),
])
def test_a_drain_judges_pods_as_kubectl_does(pod: V1Pod, options: dict[str, bool], verdict: str) -> None:
    settings = {"ignore_daemonsets": True, "delete_emptydir_data": False, "force": False, **options}
    assert _classify(pod, **settings) == verdict
