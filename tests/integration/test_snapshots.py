"""Overlapping faults on one object, and crashed runs: the objects a drill touched end as they were
before it, from the run's snapshots (journaled) or from the marks it left on the objects themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from drillrun import TEST_SCENARIOS, azure_tags, drill_run, snapshot, unchanged
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drills.environment import Environment
from drills.labprocess import LabProcess
from drills.marks import RUN, RUN_TAG

pytestmark = pytest.mark.lab


def marks(env: Environment) -> dict[str, str]:
    """Every mark of a run left in the lab, by where it is: Kubernetes annotations and labels, Azure
    tags, read as a person would (kubectl's view, the SDKs')."""
    found: dict[str, str] = {}
    for name, region in env.regions.items():
        api = k8s_config.new_client_from_config(config_file=region.kubeconfig, context=region.context)
        try:
            core, apps, net = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.NetworkingV1Api(api)
            for item in [*core.list_node().items, *apps.list_deployment_for_all_namespaces().items,
                         *net.list_network_policy_for_all_namespaces().items]:
                meta = item.metadata
                run = (meta.annotations or {}).get(RUN) or (meta.labels or {}).get(RUN)
                if run:
                    found[f"{name}/{meta.namespace or ''}/{meta.name}"] = run
        finally:
            api.close()
    for resource, tags in azure_tags(env).items():
        if RUN_TAG in tags:
            found[resource] = tags[RUN_TAG]
    return found


def test_overlapping_faults_end_with_the_object_as_it_was_before_the_drill(
        lab: LabProcess, lab_env: Environment, runs: Path) -> None:
    with unchanged(lab_env) as before:
        run = drill_run(runs, str(TEST_SCENARIOS / "overlapping-kill.yaml"), "--env",
                        str(lab.environment_file), "--trials", "1")
        after = snapshot(lab_env)
        ingress = "ingress-nginx/ingress-nginx-controller"
        assert after["us"]["replicas"][ingress] == before["us"]["replicas"][ingress], run.output
        assert run.code == 0, run.output
        key = f"us/Deployment/{ingress}"
        assert run.record["restored"] == [{"object": key, "outcome": "restored",
                                           "detail": "restored replicas 2", "trial": 1}]
        assert any(e["event"] == "object_restored" and e["detail"].startswith(key)
                   for e in run.record["timeline"])
        assert marks(lab_env) == {}
