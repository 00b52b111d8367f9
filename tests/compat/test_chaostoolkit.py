"""Chaos Toolkit and its Kubernetes extension (chaostoolkit-kubernetes) against a lab: the actions and
probes a chaos engineer reaches for, called as Chaos Toolkit calls them (keyword arguments and a
``secrets`` mapping naming the kubeconfig context, ``KUBECONFIG`` in the environment), and a
``chaos run`` of a small experiment whose journal must say it completed and left the lab as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from chaosk8s.deployment.actions import scale_deployment
from chaosk8s.node import actions as node_actions
from chaosk8s.node.actions import cordon_node, drain_nodes, uncordon_node
from chaosk8s.pod.actions import terminate_pods
from chaosk8s.pod.probes import pods_in_phase
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.config import kube_config

pytestmark = pytest.mark.lab

SECRETS = {"KUBERNETES_CONTEXT": "lab-us"}
"""The experiment's ``secrets`` for the extension: which context of the lab's kubeconfig to use."""

CHAOS = Path(sys.executable).with_name("chaos")
"""Chaos Toolkit's CLI, installed beside drill by scripts/setup."""


@pytest.fixture
def chaos_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``KUBECONFIG`` for the extension, and the client's global configuration restored afterwards:
    the extension loads the kubeconfig into the client's default configuration and sets class
    attributes of ``Configuration`` (``debug``, ``verify_ssl``), which later tests must not inherit."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The client reads KUBECONFIG once, when imported; a `chaos` process has it set before that.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setattr(k8s.Configuration, "_default", k8s.Configuration._default)
    for name in ("debug", "verify_ssl"):
        monkeypatch.setattr(k8s.Configuration, name, getattr(k8s.Configuration, name, None), raising=False)


def _schedulable(api: k8s.ApiClient) -> dict[str, bool]:
    return {n.metadata.name: not n.spec.unschedulable for n in k8s.CoreV1Api(api).list_node().items}


def _quiet_node(api: k8s.ApiClient) -> str:
    """A node running only DaemonSet pods, terminating ones counted (five app pods on six nodes leave
    one once the pods evicted by an earlier test are gone): listed, then awaited by watch."""
    core = k8s.CoreV1Api(api)
    listed = core.list_pod_for_all_namespaces()
    pods = {p.metadata.uid: p for p in listed.items}

    def quiet() -> list[str]:
        busy = {p.spec.node_name for p in pods.values() if p.metadata.owner_references[0].kind != "DaemonSet"}
        return sorted(set(_schedulable(api)) - busy)

    if found := quiet():
        return found[0]
    for event in watch.Watch().stream(core.list_pod_for_all_namespaces, timeout_seconds=30,
                                      resource_version=listed.metadata.resource_version):
        pod = event["object"]
        if event["type"] == "DELETED":
            pods.pop(pod.metadata.uid, None)
        else:
            pods[pod.metadata.uid] = pod
        if found := quiet():
            return found[0]
    pytest.fail("no node was left with only DaemonSet pods within 30 s")


@pytest.mark.usefixtures("chaos_env")
def test_cordon_uncordon_scale_terminate_and_probe(api: k8s.ApiClient,
                                                   web_available: Callable[[], None]) -> None:
    zone, nodes = "topology.kubernetes.io/zone=zone-1", ["aks-us-zone-1-0", "aks-us-zone-1-1"]
    assert sorted(cordon_node(label_selector=zone, secrets=SECRETS)) == nodes
    assert [n for n, ok in _schedulable(api).items() if not ok] == nodes
    assert sorted(uncordon_node(label_selector=zone, secrets=SECRETS)) == nodes
    assert all(_schedulable(api).values())

    assert pods_in_phase(label_selector="app=web", phase="Running", ns="shop", secrets=SECRETS) is True
    assert pods_in_phase(label_selector="app=web", phase="Pending", ns="shop", raise_on_invalid_phase=False,
                         secrets=SECRETS) is False

    try:
        scale_deployment(name="web", replicas=4, ns="shop", secrets=SECRETS)
        assert k8s.AppsV1Api(api).read_namespaced_deployment("web", "shop").spec.replicas == 4
    finally:
        scale_deployment(name="web", replicas=3, ns="shop", secrets=SECRETS)
    web_available()

    [terminated] = terminate_pods(label_selector="app=web", ns="shop", secrets=SECRETS)
    pod = k8s.CoreV1Api(api).list_namespaced_pod("shop", field_selector=f"metadata.name={terminated}").items
    assert not pod or pod[0].metadata.deletion_timestamp is not None
    web_available()


@pytest.mark.usefixtures("chaos_env")
def test_drain_nodes(api: k8s.ApiClient, web_available: Callable[[], None],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The extension checks every 10 real seconds whether the evicted pods are gone; the lab's 30 s grace
    # period passes in half a real second, so it checks every 0.1 s here (its own clock, only faster).
    monkeypatch.setattr(node_actions, "time", SimpleNamespace(time=time.time,
                                                              sleep=lambda _s: time.sleep(0.1)))
    core = k8s.CoreV1Api(api)
    node = next(p.spec.node_name for p in core.list_namespaced_pod("shop", label_selector="app=web").items)
    try:
        assert drain_nodes(name=node, delete_pods_with_local_storage=True, timeout=30,
                           secrets=SECRETS) == [node]
        left = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        assert {p.metadata.owner_references[0].kind for p in left} <= {"DaemonSet"}
        assert _schedulable(api)[node] is False
    finally:
        uncordon_node(name=node, secrets=SECRETS)
    web_available()


def _experiment(drained: str) -> dict[str, Any]:
    """A zone-cordon experiment: web keeps running while zone-1 is cordoned and a quiet node drained."""

    def activity(kind: str, title: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
        return {"type": kind, "name": title, "provider": {"type": "python", "module": module, "func": func,
                                                         "arguments": arguments, "secrets": ["k8s"]}}

    web_running = {**activity("probe", "web-pods-running", "chaosk8s.pod.probes", "pods_in_phase",
                              label_selector="app=web", phase="Running", ns="shop"), "tolerance": True}
    zone = "topology.kubernetes.io/zone=zone-1"
    return {
        "version": "1.0.0",
        "title": "The shop keeps running while a zone is cordoned",
        "description": "Cordon zone-1 and drain a node; web's pods keep running; rollbacks uncordon.",
        "secrets": {"k8s": SECRETS},
        "steady-state-hypothesis": {"title": "web runs", "probes": [web_running]},
        "method": [
            activity("action", "cordon-zone-1", "chaosk8s.node.actions", "cordon_node", label_selector=zone),
            activity("action", "drain-a-node", "chaosk8s.node.actions", "drain_nodes", name=drained,
                     delete_pods_with_local_storage=True, timeout=30),
        ],
        "rollbacks": [
            activity("action", "uncordon-zone-1", "chaosk8s.node.actions", "uncordon_node",
                     label_selector=zone),
            activity("action", "uncordon-drained", "chaosk8s.node.actions", "uncordon_node", name=drained),
        ],
    }


def test_chaos_run_of_an_experiment(api: k8s.ApiClient, web_available: Callable[[], None], kubeconfig: Path,
                                    tmp_path: Path) -> None:
    drained = _quiet_node(api)
    experiment, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    experiment.write_text(json.dumps(_experiment(drained), indent=2))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    run = subprocess.run([str(CHAOS), "--no-version-check", "--log-file", str(tmp_path / "chaos.log"), "run",
                          "--journal-path", str(journal), str(experiment)],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(journal.read_text())
    assert (result["status"], result["deviated"]) == ("completed", False)
    assert result["steady_states"]["before"]["steady_state_met"] is True
    assert result["steady_states"]["after"]["steady_state_met"] is True
    assert [(a["activity"]["name"], a["status"]) for a in result["run"]] == [
        ("cordon-zone-1", "succeeded"), ("drain-a-node", "succeeded")], result["run"]
    assert [(a["activity"]["name"], a["status"]) for a in result["rollbacks"]] == [
        ("uncordon-zone-1", "succeeded"), ("uncordon-drained", "succeeded")]
    assert all(_schedulable(api).values())
    web_available()
