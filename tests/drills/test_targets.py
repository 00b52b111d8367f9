"""A region's kubeconfig that is not one (text, a list, broken YAML, a pipe) is said to be so, naming
the file, and nothing is touched: never a TypeError from deep inside the Kubernetes client, never a
read that blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drills.cli import main

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "us-outage.yaml"

ENVIRONMENT = """apiVersion: drill/v1
kind: Environment
name: prod
regions:
  us:
    kubeconfig: kubeconfig.yaml
    context: aks-us
    ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
    endpoint: shop-us
    target: shop-us.example
  eu:
    kubeconfig: kubeconfig.yaml
    context: aks-eu
    ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
    endpoint: shop-eu
    target: shop-eu.example
trafficManager: {fqdn: shop.example, nameservers: ["127.0.0.1:9"]}
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("content", "why"), [
    ('"just a string"\n', "expected a mapping with clusters, contexts and users, not text"),
    ("[1, 2]\n", "expected a mapping with clusters, contexts and users, not a list"),
    ("", "expected a mapping with clusters, contexts and users, not an empty file"),
    ("clusters: 5\n", "its clusters must be a list of mappings with a name"),
    ("clusters: [\n", "it is not YAML"),
    ("clusters: [{name: c, cluster: 5}]\ncontexts: [{name: aks-us, context: {cluster: c, user: u}}]\n"
     "users: [{name: u, user: {token: t}}]\n", "expected a mapping with clusters, contexts and users"),
    (None, "is not a regular file"),
])
def test_a_kubeconfig_that_is_not_one_is_named_and_nothing_is_touched(
        tmp_path: Path, content: str | None, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    if content is None:
        os.mkfifo(kubeconfig)  # opening it would wait for a writer forever
    else:
        kubeconfig.write_text(content)
    env = tmp_path / "prod.yaml"
    env.write_text(ENVIRONMENT)
    assert main(["plan", str(SCENARIO), "--env", str(env)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "TypeError: '" not in err
    assert "problems" not in err  # one error, whatever its number of lines
    for region in ("us", "eu"):
        assert f"\n  region {region}: " in err, err
    assert str(kubeconfig) in err
    assert why in err, err
