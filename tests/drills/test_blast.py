"""The blast radius of a whole scenario: which faults are in effect together (steps in order, parallel
groups, undo steps), the distinct nodes and pods they affect then, and each rule of the environment's
limits, computed from the scenario's steps and its faults' undo records alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from drills.blast import assess, moments
from drills.environment import Environment, load_environment
from drills.errors import SourceErrors
from drills.faults.base import Undo
from drills.faults.compute import ZoneDown
from drills.faults.network import Isolate
from drills.faults.nodes import CordonZone, DrainNodes
from drills.faults.trafficmanager import DisableEndpoint
from drills.faults.workloads import DeletePods, KillIngress
from drills.scenario import FaultStep, ParallelStep, Scenario, Step, UndoStep, WaitStep

ENV = """apiVersion: drill/v1
kind: Environment
name: prod
regions:
  us: {context: us, ingress: {namespace: ingress-nginx, deployment: ingress}, endpoint: us, target: us.t}
  eu: {context: eu, ingress: {namespace: ingress-nginx, deployment: ingress}, endpoint: eu, target: eu.t}
trafficManager: {fqdn: shop.trafficmanager.net, nameservers: ["127.0.0.1:53"]}
"""


def environment(tmp_path: Path, limits: str = "") -> Environment:
    path = tmp_path / "env.yaml"
    path.write_text(ENV + (f"limits: {limits}\n" if limits else ""))
    return load_environment(path)


def fault(step_id: str, kind: str, params: BaseModel) -> FaultStep:
    region = getattr(params, "cluster", None) or getattr(params, "region", None) or ""
    return FaultStep(id=step_id, fault=kind, region=region, params=params)


def cordon(step_id: str, region: str, zone: str) -> FaultStep:
    return fault(step_id, "cordon-zone", CordonZone.Params(cluster=region, zone=zone))


def kill(step_id: str, region: str) -> FaultStep:
    return fault(step_id, "kill-ingress", KillIngress.Params(cluster=region))


def undo(step_id: str, target: str) -> UndoStep:
    return UndoStep(id=step_id, target=target)


def wait() -> WaitStep:
    return WaitStep(id="w", duration=60.0, condition=None, timeout=60.0)


def scenario(*steps: Step) -> Scenario:
    return Scenario(name="s", description="", file="s.yaml", probes={}, steps=steps, expect=(), guards=(),
                    rollback="auto")


def nodes_undo(kind: str, region: str, names: list[str], **data: Any) -> Undo:
    return Undo(fault=kind, region=region, summary="", objects=[f"{region}/Node//{n}" for n in names],
                data={"nodes": names, **data})


def kill_undo(region: str, replicas: int = 2) -> Undo:
    return Undo(fault="kill-ingress", region=region, summary="",
                objects=[f"{region}/Deployment/ingress-nginx/ingress"],
                data={"namespace": "ingress-nginx", "deployment": "ingress", "replicas": replicas})


def pods_undo(region: str, pods: list[str]) -> Undo:
    return Undo(fault="delete-pods", region=region, summary="", objects=[f"{region}/Pod/{p}" for p in pods],
                data={"pods": pods})


ZONES = {"zone-1": ["n1", "n2"], "zone-2": ["n3", "n4"], "zone-3": ["n5", "n6"]}


def cordons(*steps: FaultStep) -> dict[str, Undo]:
    return {s.id: nodes_undo("cordon-zone", s.region, ZONES[s.params.zone])  # type: ignore[attr-defined]
            for s in steps}


def test_steps_in_order_add_up_until_the_rollback(tmp_path: Path) -> None:
    a, b, c = cordon("a", "us", "zone-1"), cordon("b", "us", "zone-2"), cordon("c", "eu", "zone-1")
    drill = scenario(a, wait(), b, c, wait())
    assert moments(drill.steps) == [("a",), ("a", "b"), ("a", "b", "c")]
    blast = assess(drill, cordons(a, b, c), environment(tmp_path, "{maxNodes: 5}"))
    assert blast.worst.steps == ("a", "b", "c")
    assert dict(blast.worst.nodes) == {"us": 4, "eu": 2}
    assert blast.refused
    assert ("at the worst moment (steps a, b, c in effect together) the drill would affect 6 nodes "
            "(us 4, eu 2), more than limits.maxNodes of 5") in blast.reason


def test_each_fault_within_the_limit_is_not_enough(tmp_path: Path) -> None:
    # Observation 5: every cordon touches 2 nodes, within maxNodes 2; six of them touch 12.
    steps = [cordon(f"{r}-{z[-1]}", r, z) for r in ("us", "eu") for z in ZONES]
    blast = assess(scenario(*steps), cordons(*steps), environment(tmp_path, "{maxNodes: 2}"))
    assert blast.worst.total_nodes == 12
    assert [r.name for r in blast.rules if not r.passed] == ["maxNodes"]


def test_an_undo_step_ends_its_fault_early(tmp_path: Path) -> None:
    a, b, c = cordon("a", "us", "zone-1"), cordon("b", "us", "zone-2"), cordon("c", "us", "zone-3")
    drill = scenario(a, b, undo("u", "a"), c)
    assert moments(drill.steps) == [("a",), ("a", "b"), ("b", "c")]
    blast = assess(drill, cordons(a, b, c), environment(tmp_path, "{maxNodes: 4}"))
    assert blast.worst.total_nodes == 4
    assert not blast.refused, blast.reason


def test_a_parallel_group_is_in_effect_at_once_and_its_undos_count_only_after_it(tmp_path: Path) -> None:
    a, b, c = cordon("a", "us", "zone-1"), cordon("b", "us", "zone-2"), cordon("c", "us", "zone-3")
    # The undo of a runs alongside b: b may be in place before a is reverted.
    drill = scenario(a, ParallelStep(id="p", steps=(undo("u", "a"), b)), c)
    assert moments(drill.steps) == [("a",), ("a", "b"), ("b", "c")]
    nested = scenario(ParallelStep(id="p", steps=(a, ParallelStep(id="q", steps=(b, c)), wait())))
    assert moments(nested.steps) == [("a", "b", "c")]
    blast = assess(nested, cordons(a, b, c), environment(tmp_path, "{maxNodes: 5}"))
    assert blast.worst.total_nodes == 6
    assert blast.refused


def test_an_object_several_faults_touch_counts_once(tmp_path: Path) -> None:
    a = cordon("a", "us", "zone-1")
    drain = fault("d", "drain-nodes", DrainNodes.Params(cluster="us", zone="zone-1"))
    drained = Undo(fault="drain-nodes", region="us", summary="",
                   objects=["us/Node//n1", "us/Node//n2", "us/Pod/shop/web-7d9-a", "us/Pod/shop/api-1"],
                   data={"nodes": [], "drain": ["n1", "n2"]})
    blast = assess(scenario(a, drain), {"a": cordons(a)["a"], "d": drained}, environment(tmp_path))
    assert (dict(blast.worst.nodes), dict(blast.worst.pods)) == ({"us": 2, "eu": 0}, {"us": 2, "eu": 0})


def test_killed_ingress_pods_count_as_its_replicas_and_as_the_same_pods_when_named(tmp_path: Path) -> None:
    k1, k2 = kill("k1", "us"), kill("k2", "us")
    ingress_pods = ["ingress-nginx/ingress-5c8-x1", "ingress-nginx/ingress-5c8-x2", "ingress-nginx/other-1"]
    delete = fault("d", "delete-pods", DeletePods.Params(cluster="us", namespace="ingress-nginx",
                                                         selector="app=x"))
    undos = {"k1": kill_undo("us", 3), "k2": kill_undo("us", 0), "d": pods_undo("us", ingress_pods)}
    blast = assess(scenario(k1, k2), undos, environment(tmp_path))
    assert blast.worst.pods["us"] == 3
    assert blast.estimated == ("a scaled-away deployment's pods are its replica count when prepared",)
    # Two of the three replicas are among the deleted pods: 3 + 1 other, not 3 + 3.
    assert assess(scenario(k1, delete), undos, environment(tmp_path)).worst.pods["us"] == 4


def test_every_regions_front_door_at_once_is_refused_unless_allowed(tmp_path: Path) -> None:
    us, eu = kill("kill-us", "us"), fault("off-eu", "disable-endpoint", DisableEndpoint.Params(region="eu"))
    endpoint = Undo(fault="disable-endpoint", region="eu", summary="", objects=["/subscriptions/s/x/eu"],
                    data={"status": "Enabled"})
    undos = {"kill-us": kill_undo("us"), "off-eu": endpoint}
    blast = assess(scenario(us, wait(), eu), undos, environment(tmp_path))
    assert blast.refused
    assert ("steps kill-us, off-eu take the front door of every region (us, eu) at once (ingress or Traffic "
            "Manager endpoint): the whole service is down, which limits.allowAllRegionsDown does not allow"
            ) in blast.reason
    assert not assess(scenario(us, wait(), eu), undos,
                      environment(tmp_path, "{allowAllRegionsDown: true}")).refused
    # One after the other is a failover there and back, not an outage of both.
    one_then_other = assess(scenario(us, undo("u", "kill-us"), eu), undos, environment(tmp_path))
    assert not one_then_other.refused, one_then_other.reason
    assert one_then_other.rules[-1].detail == "at most us of us, eu without a front door at once"


def test_zone_down_of_every_zone_takes_the_front_door_and_isolating_the_ingress_too(tmp_path: Path) -> None:
    downs = [fault(f"down-{z[-1]}", "zone-down", ZoneDown.Params(cluster="us", zone=z)) for z in ZONES]
    isolate = fault("cut-eu", "isolate", Isolate.Params(cluster="eu", namespace="ingress-nginx",
                                                       selector="app=ingress"))
    undos: dict[str, Undo] = {}
    for s in downs:
        zone = s.params.zone  # type: ignore[attr-defined]
        undos[s.id] = Undo(fault="zone-down", region="us", summary="",
                           objects=[f"/subscriptions/s/vmss/{n}" for n in ZONES[zone]],
                           data={"nodes": ZONES[zone], "scaleSets": []})
    undos["cut-eu"] = Undo(fault="isolate", region="eu", summary="",
                           objects=["eu/NetworkPolicy/ingress-nginx/drill-isolate-1"],
                           data={"namespace": "ingress-nginx", "policy": "drill-isolate-1",
                                 "selector": "app=ingress", "pods": ["ingress-nginx/ingress-1"]})
    zones = {"us": frozenset(ZONES)}
    all_zones = assess(scenario(*downs, isolate), undos, environment(tmp_path), zones=zones)
    assert all_zones.refused
    assert dict(all_zones.worst.nodes) == {"us": 6, "eu": 0}
    assert dict(all_zones.worst.pods) == {"us": 0, "eu": 1}
    assert "the pods on powered-off nodes are not counted (known only once they are lost)" in \
        all_zones.estimated
    two_zones = assess(scenario(*downs[:2], isolate), undos, environment(tmp_path), zones=zones)
    assert not two_zones.refused, two_zones.reason


def test_a_fault_in_a_protected_namespace_is_refused(tmp_path: Path) -> None:
    delete = fault("d", "delete-pods", DeletePods.Params(cluster="us", zone="zone-1"))
    a = cordon("a", "us", "zone-1")
    undos = {"d": pods_undo("us", ["shop/web-1", "kube-system/coredns-1"]), **cordons(a)}
    blast = assess(scenario(a, delete), undos, environment(tmp_path))
    rule = next(r for r in blast.rules if r.name == "protectedNamespaces")
    assert not rule.passed
    assert rule.detail == ("step d would change kube-system/Pod/coredns-1 in a protected namespace "
                           "(kube-system); narrow the step (a namespace, a selector) or take the namespace "
                           "out of limits.protectedNamespaces")
    assert not assess(scenario(a, delete), undos, environment(tmp_path, "{protectedNamespaces: []}")).refused


def test_only_allowed_fault_kinds_pass(tmp_path: Path) -> None:
    a, k = cordon("a", "us", "zone-1"), kill("k", "us")
    undos = {**cordons(a), "k": kill_undo("us")}
    blast = assess(scenario(a, k), undos, environment(tmp_path, "{allowedFaults: [cordon-zone]}"))
    assert blast.refused
    assert ("limits.allowedFaults: step k is kill-ingress, which the environment does not allow (allowed: "
            "cordon-zone)") in blast.reason


def test_the_limits_default_to_safe_values_and_the_record_holds_them(tmp_path: Path) -> None:
    env = environment(tmp_path)
    limits = env.limits
    assert (limits.max_nodes, limits.max_pods, limits.protected_namespaces, limits.allowed_faults,
            limits.allow_all_regions_down) == (50, 500, ["kube-system"], None, False)
    blast = assess(scenario(wait()), {}, env)
    assert not blast.refused
    record = blast.record()
    assert (record["worst_moment"], record["nodes"], record["refused"]) == ([], {"us": 0, "eu": 0}, False)
    assert record["limits"]["protectedNamespaces"] == ["kube-system"]


@pytest.mark.parametrize("limits", ["{maxNodes: -1}", "{protectedNamespaces: kube-system}",
                                    "{allowAllRegionsDown: maybe}", "{maxPod: 3}"])
def test_a_wrong_limit_is_an_error_at_its_place(tmp_path: Path, limits: str) -> None:
    with pytest.raises(SourceErrors, match=r"env\.yaml:8:"):
        environment(tmp_path, limits)
