"""Server-side apply and managed fields through kubectl and the Python client
(:mod:`drills.lab.kube.apply`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubectlrun import AsyncKubectl
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pyclient import call

from drills.lab.kube.store import CONFIGMAPS, DEPLOYMENTS, Store

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels: {app: api, team: core}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
"""



def _managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields") or []}


async def test_kubectl_apply_server_side_conflicts_forces_and_prunes(kubectl: AsyncKubectl,
                                                                     store: Store) -> None:
    async def with_manifest(*args: str, manifest: str) -> tuple[int, str, str]:
        return await kubectl(*args, "-f", "-", stdin=manifest)

    assert (await with_manifest("apply", manifest=DEPLOYMENT))[:2] == (0, "deployment.apps/api created\n")
    assert ("kubectl-client-side-apply", "Update") in _managers(store.get(DEPLOYMENTS, "shop", "api"))

    three = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    code, _, err = await with_manifest("apply", "--server-side", manifest=three)
    assert code == 1
    assert err.startswith('error: Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                          'using apps/v1: .spec.replicas\n')
    assert store.get(DEPLOYMENTS, "shop", "api")["spec"]["replicas"] == 2

    assert (await with_manifest("apply", "--server-side", "--force-conflicts", manifest=three))[:2] == (
        0, "deployment.apps/api serverside-applied\n")
    applied = store.get(DEPLOYMENTS, "shop", "api")
    assert applied["spec"]["replicas"] == 3
    assert "f:replicas" in _managers(applied)[("kubectl", "Apply")]["f:spec"]

    # Applying again without a label and with another image: the label the applier owned is removed.
    changed = three.replace(", team: core", "").replace("nginx:1.27", "nginx:1.28")
    assert (await with_manifest("apply", "--server-side", manifest=changed))[0] == 0
    again = store.get(DEPLOYMENTS, "shop", "api")
    assert again["metadata"]["labels"] == {"app": "api"}
    assert again["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"

    version = store.resource_version
    code, out, err = await with_manifest("diff", manifest=changed.replace("nginx:1.28", "nginx:1.29"))
    assert code == 1, err  # kubectl diff exits 1 when there are differences
    assert "-      - image: nginx:1.28\n" in out
    assert "+      - image: nginx:1.29\n" in out
    four = changed.replace("replicas: 3", "replicas: 4")
    code, out, err = await with_manifest("diff", "--server-side", manifest=four)
    assert code == 1, err
    assert "-  replicas: 3\n+  replicas: 4\n" in out
    assert store.resource_version == version  # a diff is a dry run: nothing stored
    assert store.get(DEPLOYMENTS, "shop", "api")["spec"]["replicas"] == 3


async def test_apply_through_the_python_client_shares_and_releases_fields(kube: client.ApiClient,
                                                                          store: Store) -> None:
    core = client.CoreV1Api(kube)

    async def apply(manager: str, data: dict[str, str], **options: Any) -> Any:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data}
        return await call(core.patch_namespaced_config_map, "settings", "shop", body,
                                       field_manager=manager, _content_type="application/apply-patch+yaml",
                                       **options)

    created = await apply("team-a", {"mode": "eu", "size": "s"})
    assert created.data == {"mode": "eu", "size": "s"}
    await apply("team-b", {"mode": "eu"})  # the same value: both own it, no conflict
    with pytest.raises(ApiException) as conflict:
        await apply("team-b", {"mode": "us", "size": "m"})
    status = json.loads(conflict.value.body)
    assert (conflict.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == ('Apply failed with 2 conflicts: conflicts with "team-a":\n- .data.mode\n'
                                 '- .data.size')
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a"', "field": ".data.mode"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a"', "field": ".data.size"}]

    await apply("team-a", {"size": "s"})  # team-a lets go of mode; team-b still applies it: it stays
    assert store.get(CONFIGMAPS, "shop", "settings")["data"] == {"mode": "eu", "size": "s"}
    await apply("team-b", {})  # nobody applies mode any more: it goes
    assert store.get(CONFIGMAPS, "shop", "settings")["data"] == {"size": "s"}

    dry = await apply("team-c", {"size": "xl"}, force=True, dry_run="All")
    assert dry.data == {"size": "xl"}
    assert store.get(CONFIGMAPS, "shop", "settings")["data"] == {"size": "s"}

    await call(core.patch_namespaced_config_map, "settings", "shop", {"data": {"size": "l"}},
                            field_manager="editor")
    managers = _managers(store.get(CONFIGMAPS, "shop", "settings"))
    assert managers[("editor", "Update")] == {"f:data": {"f:size": {}}}
    assert ("team-a", "Apply") not in managers  # its only field was taken by an update

    with pytest.raises(ApiException) as unnamed:
        await call(core.patch_namespaced_config_map, "settings", "shop",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}},
                                _content_type="application/apply-patch+yaml")
    assert (unnamed.value.status, json.loads(unnamed.value.body)["message"]) == (
        422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply '
             'patch')


async def test_apply_merges_list_items_by_key_and_names_them_in_conflicts(kube: client.ApiClient,
                                                                          store: Store) -> None:
    apps = client.AppsV1Api(kube)

    async def apply(manager: str, containers: list[dict[str, Any]]) -> Any:
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pair"},
                "spec": {"selector": {"matchLabels": {"app": "pair"}},
                         "template": {"metadata": {"labels": {"app": "pair"}},
                                      "spec": {"containers": containers}}}}
        return await call(apps.patch_namespaced_deployment, "pair", "shop", body,
                                       field_manager=manager, _content_type="application/apply-patch+yaml")

    await apply("base", [{"name": "app", "image": "app:1"}, {"name": "proxy", "image": "envoy:1"}])
    await apply("sidecars", [{"name": "log", "image": "fluent:1"}])  # a third container, its own
    containers = store.get(DEPLOYMENTS, "shop", "pair")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "proxy", "log"]
    with pytest.raises(ApiException) as conflict:
        await apply("sidecars", [{"name": "log", "image": "fluent:1"}, {"name": "app", "image": "app:2"}])
    message = json.loads(conflict.value.body)["message"]
    assert message == ('Apply failed with 1 conflict: conflict with "base": '
                       '.spec.template.spec.containers[name="app"].image')

    await apply("base", [{"name": "app", "image": "app:1"}])  # proxy no longer applied: removed
    containers = store.get(DEPLOYMENTS, "shop", "pair")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "log"]
    fields = _managers(store.get(DEPLOYMENTS, "shop", "pair"))[("base", "Apply")]
    assert fields["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}
    assert fields["f:spec"]["f:selector"] == {}  # a label selector is atomic


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
"""


async def test_server_side_apply_over_a_client_side_service_keys_ports_by_their_defaulted_protocol(
        kubectl: AsyncKubectl) -> None:
    """A port applied without ``protocol`` is the stored ``TCP`` one, not a second port named alike."""
    created = await kubectl("apply", "-f", "-", stdin=SERVICE)
    assert created[:2] == (0, "service/web created\n"), created[2]
    before = json.loads((await kubectl("get", "service", "web", "-n", "shop", "-o", "json"))[1])["spec"]
    code, out, err = await kubectl("apply", "--server-side", "-f", "-", stdin=SERVICE)
    assert (code, out) == (0, "service/web serverside-applied\n"), err
    after = json.loads((await kubectl("get", "service", "web", "-n", "shop", "-o", "json"))[1])["spec"]
    assert after["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]
    assert after == before  # the defaults and the allocated cluster IP stay
