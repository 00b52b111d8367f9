"""The lab's RBAC decisions, as Kubernetes' RBAC authorizer makes them (the API server's use of them,
403s and SelfSubjectAccessReview are in tests/lab/kube/test_api_rbac.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.errors import LabError
from drills.lab.rbac import ADMIN, Authorizer, Request, ServiceAccount, forbidden_message, load_manifests

BOT = ServiceAccount("ops", "bot")


def _authorizer(*docs: dict[str, object]) -> Authorizer:
    return Authorizer.from_manifests((f"doc {i}", d) for i, d in enumerate(docs))


def _binding(kind: str, role_kind: str, role: str, namespace: str | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": f"{kind}-{role}"}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": BOT.name, "namespace": BOT.namespace}]}


def test_a_role_binding_grants_a_cluster_role_within_its_namespace_only() -> None:
    rbac = _authorizer({"kind": "ClusterRole", "metadata": {"name": "deleter"},
                        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]},
                       _binding("RoleBinding", "ClusterRole", "deleter", namespace="shop"))
    assert rbac.allows(BOT.user, Request("delete", "", "pods", namespace="shop", name="web-1"))
    assert not rbac.allows(BOT.user, Request("delete", "", "pods", namespace="kube-system", name="x"))
    assert not rbac.allows(BOT.user, Request("delete", "", "pods"))  # all namespaces
    assert rbac.allows(ADMIN, Request("delete", "", "nodes", name="n1"))


def test_subresources_wildcards_and_resource_names() -> None:
    rbac = _authorizer({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"],
         "resourceNames": ["ingress"]},
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]}]},
        _binding("ClusterRoleBinding", "ClusterRole", "r"))
    assert rbac.allows(BOT.user, Request("patch", "apps", "deployments", "scale", "ns", "ingress"))
    assert not rbac.allows(BOT.user, Request("patch", "apps", "deployments", "scale", "ns", "web"))
    assert not rbac.allows(BOT.user, Request("patch", "apps", "deployments", "", "ns", "ingress"))
    assert rbac.allows(BOT.user, Request("list", "policy", "poddisruptionbudgets"))
    assert not rbac.allows(BOT.user, Request("watch", "", "pods"))


def test_the_forbidden_message_is_kubernetes_own() -> None:
    assert forbidden_message(BOT.user, Request("create", "", "pods", "eviction", "shop", "web-1")) == (
        'pods "web-1" is forbidden: User "system:serviceaccount:ops:bot" cannot create resource '
        '"pods/eviction" in API group "" in the namespace "shop"')
    assert forbidden_message(BOT.user, Request("list", "apps", "deployments")) == (
        'deployments.apps is forbidden: User "system:serviceaccount:ops:bot" cannot list resource '
        '"deployments" in API group "apps" at the cluster scope')


def test_a_manifest_that_is_not_rbac_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "pod.yaml"
    bad.write_text("kind: Pod\nmetadata: {name: x}\n")
    with pytest.raises(LabError, match=r"pod\.yaml \(document 1\): an RBAC manifest holds only .* not 'Pod'"):
        load_manifests([tmp_path])
