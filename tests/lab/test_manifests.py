"""Reading a team's manifests: what each region gets and in what order, what is kept out and said so,
every mistake at its place, and how the topology's roles follow the manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from drills.cli import main
from drills.errors import SourceErrors
from drills.lab.kube.store import DEPLOYMENTS, INGRESSES, PDBS, SERVICES
from drills.lab.manifests import load_manifests
from drills.lab.topology import DEFAULT

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "manifests" / "shop"
REGIONS = list(DEFAULT.regions)


def test_the_example_applies_namespaces_first_and_ingresses_last_and_names_what_it_keeps_out() -> None:
    manifests = load_manifests(EXAMPLE, REGIONS)
    us = [(m.resource.kind, m.namespace, m.name) for m in manifests.regions["us"]]
    assert us == [("Namespace", None, "ingress-nginx"), ("Namespace", None, "shop"),
                  ("PodDisruptionBudget", "shop", "web-pdb"),
                  ("Service", "ingress-nginx", "ingress-nginx-controller"), ("Service", "shop", "web"),
                  ("Deployment", "ingress-nginx", "ingress-nginx-controller"), ("Deployment", "shop", "web"),
                  ("IngressClass", None, "nginx"), ("Ingress", "shop", "web")]
    assert [m.key for m in manifests.regions["eu"]] == [m.key for m in manifests.regions["us"]]
    line = manifests.not_modelled_line()
    assert line is not None
    assert line.startswith("lab: not modelled, kept out: ")
    assert "1 HorizontalPodAutoscaler" in line
    assert "1 ServiceAccount" in line
    assert manifests.regions["us"][-1].location.line == 61  # the Ingress's document in web.yaml
    assert manifests.slowest_start() == 20.0  # the lab waits that long for its pods to settle
    # The example names its objects as the built-in design does: the roles stay, the defaults they
    # replace are kept out (the built-in PDB "web" too: the team's budget is "web-pdb").
    assert manifests.adopt_roles(DEFAULT).app.name == "web"
    assert manifests.keeps_out("us", DEFAULT, PDBS, {"metadata": {"namespace": "shop", "name": "web"}})
    assert manifests.keeps_out("us", DEFAULT, INGRESSES, {"metadata": {"namespace": "shop", "name": "web"}})
    assert not manifests.keeps_out("us", DEFAULT, SERVICES, {"metadata": {"namespace": "default",
                                                                            "name": "kubernetes"}})


def test_a_region_folder_adds_and_replaces_what_differs_there(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(_deployment("shop", "web", replicas=3) + "---\n"
                                       "apiVersion: v1\nkind: List\nitems:\n"
                                       "  - {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n")
    (tmp_path / "eu").mkdir()
    (tmp_path / "eu" / "web.yml").write_text(_deployment("shop", "web", replicas=5))
    manifests = load_manifests(tmp_path, REGIONS)
    replicas = {r: [m.object["spec"]["replicas"] for m in ms if m.resource is DEPLOYMENTS]
                for r, ms in manifests.regions.items()}
    assert replicas == {"us": [3], "eu": [5]}
    assert [m.resource.kind for m in manifests.regions["us"]] == ["Namespace", "Deployment"]
    assert manifests.not_modelled_line() is None


def test_every_mistake_is_named_at_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: [\n")
    (tmp_path / "old.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
                                       "apiVersion: extensions/v1beta1\nkind: Ingress\n"
                                       "metadata: {name: web}\n")
    (tmp_path / "nameless.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n"
                                            "metadata:\n  labels: {}\n")
    (tmp_path / "twice.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    (tmp_path / "prod").mkdir()
    with pytest.raises(SourceErrors) as raised:
        load_manifests(tmp_path, REGIONS)
    messages = [str(e) for e in raised.value.errors]
    assert any(m.startswith(f"{tmp_path / 'broken.yaml'}:4:1: YAML syntax error") for m in messages), messages
    assert f"{tmp_path / 'old.yaml'}:5:13: no Ingress in extensions/v1beta1: the lab serves Ingress as " \
           f"networking.k8s.io/v1, as Kubernetes v1.32.0 does (write 'apiVersion: networking.k8s.io/v1')" \
        in messages
    assert f"{tmp_path / 'nameless.yaml'}:4:3: Deployment: metadata.name is required (kubectl apply names " \
           f"every object it applies)" in messages
    assert any(m.startswith(f"{tmp_path / 'twice.yaml'}:1:1: Namespace shop is stated twice (also at "
                            f"{tmp_path / 'old.yaml'}:1:1)") for m in messages), messages
    assert f"{tmp_path / 'prod'}:1:1: the folder 'prod' names no region of the topology (a folder per " \
           f"region holds what differs there: us, eu)" in messages
    # drill lab up says the same, and starts nothing.
    assert main(["lab", "up", "--manifests", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == messages


def test_the_roles_follow_the_ingress_and_the_controller_the_manifests_deploy(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(
        _deployment("retail", "storefront", replicas=4, delay=12, path="/ready") + "---\n" +
        _deployment("edge", "nginx", replicas=2, labels="app.kubernetes.io/name: ingress-nginx, "
                    "app.kubernetes.io/component: controller") + "---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: front, namespace: retail}\n"
        "spec: {selector: {app: storefront}, ports: [{port: 80, targetPort: 8080}]}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: front, namespace: retail}\n"
        "spec:\n  rules:\n    - http:\n        paths:\n          - path: /\n            pathType: Prefix\n"
        "            backend: {service: {name: front, port: {number: 80}}}\n")
    manifests = load_manifests(tmp_path, REGIONS)
    design = DEFAULT.model_validate({**DEFAULT.model_dump(by_alias=True), "regions": {
        "us": {"priority": 1}, "eu": {"priority": 2, "workloads": [{"namespace": "shop", "name": "web",
                                                                    "capacity": 50}]}}})
    topology = manifests.adopt_roles(design)
    assert [(o.namespace, o.name, o.capacity) for o in topology.regions["eu"].workloads] == [
        ("retail", "storefront", 50.0)]  # a region's override follows the app it names
    assert (topology.app.namespace, topology.app.name, topology.app.start_delay, topology.app.health_path,
            topology.app.pdb) == ("retail", "storefront", 12.0, "/ready", None)
    assert (topology.ingress.namespace, topology.ingress.name) == ("edge", "nginx")
    # The built-in Ingress and Services stay out: the team's Ingress routes.
    assert manifests.keeps_out("us", topology, INGRESSES, {"metadata": {"namespace": "retail",
                                                                         "name": "storefront"}})
    assert manifests.keeps_out("us", topology, DEPLOYMENTS, {"metadata": {"namespace": "edge",
                                                                           "name": "nginx"}})


def _deployment(namespace: str, name: str, *, replicas: int, delay: int = 20, path: str = "/healthz",
                labels: str = "") -> str:
    extra = f", {labels}" if labels else ""
    return (f"apiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}{extra}}}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n"
            f"        - name: {name}\n          image: example/{name}:1\n"
            f"          readinessProbe: {{initialDelaySeconds: {delay}, "
            f"httpGet: {{path: {path}, port: 8080}}}}\n")
