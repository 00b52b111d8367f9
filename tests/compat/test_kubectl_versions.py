"""kubectl 1.32 and 1.37 against a lab, as an operator rehearsing a drill uses them: reads, describe,
apply/diff/delete, cordon, drain, rollouts, ``auth can-i``, and what the lab deliberately lacks.

Every test runs once per release (``any_kubectl``) on the module's lab and leaves the lab as it found
it: nodes uncordoned, ``web`` rolled out with three ready pods, manifests deleted. The module's lab
enforces the shipped RBAC manifests (``rbac_lab``), so that ``auth can-i`` can also answer no; its
administrator, whom the other tests use, may do anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kubectlrun import Kubectl

from drills.labprocess import LabProcess

pytestmark = pytest.mark.lab

NODES = [f"aks-us-zone-{zone}-{index}" for zone in (1, 2, 3) for index in (0, 1)]
"""The default topology's US nodes."""

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: compat
  namespace: shop
  labels: {{app: compat}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: compat}}
  template:
    metadata:
      labels: {{app: compat}}
    spec:
      containers:
      - name: echo
        image: registry.drill.test/shop/echo:1.0
        ports:
        - containerPort: 8080
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: compat
  namespace: shop
spec:
  minAvailable: 1
  selector:
    matchLabels: {{app: compat}}
"""
"""A team's small manifest: a Deployment and its PodDisruptionBudget."""


@pytest.fixture(scope="module")
def lab(rbac_lab: LabProcess) -> LabProcess:
    """The module's one lab: the RBAC lab (``kubectl`` and ``any_kubectl`` use its administrator)."""
    return rbac_lab


def _rows(text: str) -> list[list[str]]:
    """kubectl's table: cells are separated by at least two spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def _web_pods(kubectl: Kubectl) -> dict[str, str]:
    """The shop's web pods: name -> node."""
    out = kubectl("get", "pods", "-n", "shop", "-l", "app=web", "-o",
                  "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{'\\n'}{end}").stdout
    return dict(line.split() for line in out.strip().splitlines())


def _web_rolled_out(kubectl: Kubectl) -> None:
    """Wait, as an operator does, until web has rolled out with every replica available."""
    out = kubectl("rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s").stdout
    assert "successfully rolled out" in out


def test_reads(any_kubectl: Kubectl) -> None:
    version = json.loads(any_kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.32.0"

    nodes = _rows(any_kubectl("get", "nodes").stdout)
    assert nodes[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [(row[0], row[1]) for row in nodes[1:]] == [(name, "Ready") for name in NODES]

    pods = _rows(any_kubectl("get", "pods", "-A").stdout)
    assert pods[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    running = {(row[0], row[1].rsplit("-", 2)[0]) for row in pods[1:] if row[2:4] == ["1/1", "Running"]}
    assert {("shop", "web"), ("ingress-nginx", "ingress-nginx-controller")} <= running

    deployments = _rows(any_kubectl("get", "deploy", "-n", "shop").stdout)
    assert deployments[1][:4] == ["web", "3/3", "3", "3"]

    events = any_kubectl("get", "events", "-A").stdout
    assert "Scheduled" in events
    assert "<invalid>" not in events


def test_describe(any_kubectl: Kubectl) -> None:
    node = any_kubectl("describe", "node", NODES[0]).stdout
    assert f"Name:               {NODES[0]}" in node
    assert re.search(rf"Lease:\s+HolderIdentity:\s+{NODES[0]}", node), node
    assert "<invalid>" not in node

    name = next(iter(_web_pods(any_kubectl)))
    pod = any_kubectl("describe", "pod", "-n", "shop", name).stdout
    assert re.search(r"Status:\s+Running", pod)
    assert re.search(r"Controlled By:\s+ReplicaSet/web-", pod)
    assert re.search(r"kube-api-access-\w+:\s+Type:\s+Projected", pod), pod
    assert re.search(r"Normal\s+Scheduled\s+.*default-scheduler", pod)
    assert re.search(r"Normal\s+Started\s+.*kubelet", pod), pod
    assert "<invalid>" not in pod


def test_apply_diff_delete(any_kubectl: Kubectl, tmp_path: Path) -> None:
    manifest, changed = tmp_path / "compat.yaml", tmp_path / "compat-2.yaml"
    manifest.write_text(MANIFEST.format(replicas=1))
    changed.write_text(MANIFEST.format(replicas=2))
    try:
        out = any_kubectl("apply", "-f", str(manifest)).stdout
        assert out.split("\n")[:2] == ["deployment.apps/compat created",
                                       "poddisruptionbudget.policy/compat created"]
        assert "unchanged" in any_kubectl("apply", "-f", str(manifest)).stdout

        assert any_kubectl("diff", "-f", str(manifest), check=False).returncode == 0
        diff = any_kubectl("diff", "-f", str(changed), check=False)
        assert diff.returncode == 1, diff.stderr  # 1: differences found; >1: kubectl failed
        assert re.search(r"^-\s+replicas: 1$", diff.stdout, re.MULTILINE), diff.stdout
        assert re.search(r"^\+\s+replicas: 2$", diff.stdout, re.MULTILINE), diff.stdout
        assert any_kubectl("get", "deploy", "compat", "-n", "shop", "-o",
                           "jsonpath={.spec.replicas}").stdout == "1"  # diff changed nothing

        out = any_kubectl("delete", "-f", str(manifest)).stdout
        assert 'deployment.apps "compat" deleted' in out
        gone = any_kubectl("get", "deploy", "compat", "-n", "shop", check=False)
        assert gone.returncode == 1
        assert 'deployments.apps "compat" not found' in gone.stderr
    finally:
        any_kubectl("delete", "-f", str(manifest), "--ignore-not-found", check=False)


def test_cordon_and_uncordon(any_kubectl: Kubectl) -> None:
    node = NODES[1]
    try:
        assert any_kubectl("cordon", node).stdout.strip() == f"node/{node} cordoned"
        assert _rows(any_kubectl("get", "node", node).stdout)[1][1] == "Ready,SchedulingDisabled"
    finally:
        assert any_kubectl("uncordon", node).stdout.strip() == f"node/{node} uncordoned"
    assert _rows(any_kubectl("get", "node", node).stdout)[1][1] == "Ready"


def test_drain(any_kubectl: Kubectl) -> None:
    node = next(iter(_web_pods(any_kubectl).values()))
    try:
        drained = any_kubectl("drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                              "--timeout=60s")
        output = drained.stdout + drained.stderr
        assert f"node/{node} cordoned" in output
        assert re.search(r"evicting pod shop/web-", output), output
        assert f"node/{node} drained" in output
        left = any_kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o",
                           "jsonpath={.items[*].metadata.ownerReferences[0].kind}").stdout.split()
        assert set(left) <= {"DaemonSet"}
        assert node not in _web_pods(any_kubectl).values()
    finally:
        any_kubectl("uncordon", node)
    _web_rolled_out(any_kubectl)


def test_rollout_restart_status_and_history(any_kubectl: Kubectl) -> None:
    before = set(_web_pods(any_kubectl))
    assert any_kubectl("rollout", "restart", "deployment/web", "-n", "shop").stdout.strip() == \
        "deployment.apps/web restarted"
    _web_rolled_out(any_kubectl)
    assert len(after := set(_web_pods(any_kubectl))) == 3
    assert not before & after

    history = _rows(any_kubectl("rollout", "history", "deployment/web", "-n", "shop").stdout)
    assert history[1] == ["REVISION", "CHANGE-CAUSE"]
    revisions = [int(row[0]) for row in history[2:]]
    assert len(revisions) >= 2
    assert revisions == sorted(revisions)


def test_imperative_create(any_kubectl: Kubectl) -> None:
    """kubectl's typed creates send protobuf bodies; the lab reads them."""
    try:
        assert any_kubectl("create", "namespace", "compat").stdout.strip() == "namespace/compat created"
        assert any_kubectl("create", "deployment", "compat", "-n", "compat",
                           "--image=registry.drill.test/shop/echo:1.0").stdout.strip() == \
            "deployment.apps/compat created"
        assert any_kubectl("create", "pdb", "compat", "-n", "compat", "--selector=app=compat",
                           "--max-unavailable=1").stdout.strip() == \
            "poddisruptionbudget.policy/compat created"
        pdb = json.loads(any_kubectl("get", "pdb", "compat", "-n", "compat", "-o", "json").stdout)
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "compat"}}}
    finally:
        any_kubectl("delete", "deployment,pdb", "compat", "-n", "compat", "--ignore-not-found", check=False)
        any_kubectl("delete", "namespace", "compat", "--ignore-not-found", "--wait=false", check=False)


def test_auth_can_i(any_kubectl: Kubectl, lab: LabProcess) -> None:
    evict = ("auth", "can-i", "create", "pods", "--subresource=eviction", "-n", "shop")
    assert any_kubectl(*evict).stdout.strip() == "yes"
    for identity, expected in (("drill-readonly", 1), ("drill-operator", 0)):
        assert lab.directory is not None
        config = lab.directory / "identities" / f"{identity}.kubeconfig"
        as_identity = any_kubectl.variant(kubeconfig=config)
        answer = as_identity(*evict, check=False)
        assert (answer.returncode, answer.stdout.split()[0]) == (expected, ["yes", "no"][expected]), \
            (identity, answer.stderr)
        assert as_identity("auth", "can-i", "list", "nodes").stdout.strip() == "yes"

LACKING = [
    (("logs", "-n", "shop", "{pod}"), "has no logs to read"),
    (("exec", "-n", "shop", "{pod}", "--", "true"), "has nothing to exec into"),
    (("port-forward", "-n", "shop", "{pod}", "18080:8080"), "has no ports to forward to"),
    (("debug", "-n", "shop", "{pod}", "--image=busybox", "--profile=general", "--", "true"),
     "has no containers to debug"),
    (("top", "nodes"), "Metrics API not available"),
]
"""What the lab deliberately lacks, and what kubectl says about it."""


def test_what_the_lab_lacks_fails_at_once_and_says_why(any_kubectl: Kubectl) -> None:
    pod = next(iter(_web_pods(any_kubectl)))
    for args, message in LACKING:
        result = any_kubectl(*(a.format(pod=pod) for a in args), check=False, timeout=20)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        if args[0] != "top":
            assert "the lab runs no containers" in result.stderr
        assert "InternalError" not in result.stderr
