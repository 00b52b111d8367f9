"""What the design review reads from a cluster: pods per zone, start delay, node failure timeout, budget."""

from __future__ import annotations

from kubernetes.client import (
    V1Affinity,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1NodeAffinity,
    V1NodeSelector,
    V1NodeSelectorRequirement,
    V1NodeSelectorTerm,
    V1ObjectMeta,
    V1Pod,
    V1PodDisruptionBudget,
    V1PodDisruptionBudgetSpec,
    V1PodSpec,
    V1PodTemplateSpec,
    V1Probe,
    V1Toleration,
)

from drills.designfacts import deployment_facts


def _deployment(*, tolerations: list[V1Toleration] | None = None) -> V1Deployment:
    containers = [V1Container(name="web", readiness_probe=V1Probe(initial_delay_seconds=20)),
                  V1Container(name="sidecar", readiness_probe=V1Probe(initial_delay_seconds=5)),
                  V1Container(name="plain")]
    return V1Deployment(
        metadata=V1ObjectMeta(name="web", namespace="shop"),
        spec=V1DeploymentSpec(
            replicas=5, selector=V1LabelSelector(match_labels={"app": "web"}),
            template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels={"app": "web"}),
                                       spec=V1PodSpec(containers=containers, tolerations=tolerations))),
        status=V1DeploymentStatus(ready_replicas=4))


def _pod(node: str) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name=f"web-{node}", labels={"app": "web"}), spec=V1PodSpec(
        containers=[], node_name=node))


def _pdb(**spec: object) -> V1PodDisruptionBudget:
    return V1PodDisruptionBudget(spec=V1PodDisruptionBudgetSpec(
        selector=V1LabelSelector(match_labels={"app": "web"}), **spec))


ZONES = {"n1": "zone-1", "n2": "zone-1", "n3": "zone-2"}


def test_the_facts_of_a_deployment_come_from_its_template_pods_nodes_and_budget() -> None:
    tolerations = [
        V1Toleration(key="node.kubernetes.io/unreachable", effect="NoExecute", toleration_seconds=60),
        V1Toleration(key="node.kubernetes.io/not-ready", effect="NoExecute", toleration_seconds=90)]
    pods = [_pod("n1"), _pod("n2"), _pod("n3"), _pod("n4")]  # n4: no zone label known
    budget = _pdb(min_available="60%")
    facts = deployment_facts("us", _deployment(tolerations=tolerations), pods, ZONES, [budget])
    assert (facts.replicas, facts.ready, dict(facts.by_zone)) == (5, 4, {"zone-1": 2, "zone-2": 1})
    assert (facts.start_delay, facts.node_failure_timeout, facts.floor) == (20.0, 60.0, 3)


def test_a_required_zone_affinity_limits_the_zones() -> None:
    deployment = _deployment()
    deployment.spec.template.spec.affinity = V1Affinity(node_affinity=V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=V1NodeSelector(node_selector_terms=[
            V1NodeSelectorTerm(match_expressions=[V1NodeSelectorRequirement(
                key="topology.kubernetes.io/zone", operator="In", values=["zone-1", "zone-2"])])])))
    assert deployment_facts("us", deployment, [], ZONES, []).allowed_zones == ("zone-1", "zone-2")
    assert deployment_facts("us", _deployment(), [], ZONES, []).allowed_zones is None


def test_without_tolerations_or_budget_kubernetes_defaults_apply() -> None:
    facts = deployment_facts("us", _deployment(), [], ZONES, [_pdb(max_unavailable=2)])
    assert (facts.node_failure_timeout, facts.floor) == (300.0, 3)
    other = _pdb(min_available=1)
    other.spec.selector = V1LabelSelector(match_labels={"app": "api"})
    assert deployment_facts("us", _deployment(), [], ZONES, [other]).floor is None
