"""Write and list semantics of the API server through real clients: dry runs, deletecollection, paged
lists, ConfigMaps and Secrets (:mod:`drills.lab.kube.objects`, :mod:`drills.lab.kube.paging`,
:mod:`drills.lab.kube.configdata`)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apiseed import TOKEN, WEB_PODS, loopback
from kubectlrun import AsyncKubectl
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pyclient import call

from drills.lab.clock import LabClock
from drills.lab.kube.api import ApiServer, start_api_server
from drills.lab.kube.store import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, SECRETS, Store
from drills.lab.rbac import Authorizer, User


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body)
    return body


async def test_dry_run_answers_what_would_be_stored_and_stores_nothing(
        kube: client.ApiClient, store: Store, kubectl: AsyncKubectl) -> None:
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    version = store.resource_version
    created = await call(core.create_namespaced_config_map, "shop",
                          {"metadata": {"name": "settings"}, "data": {"mode": "eu"}}, dry_run="All")
    assert (created.metadata.name, created.data, bool(created.metadata.uid)) == ("settings", {"mode": "eu"},
                                                                                 True)
    assert created.metadata.resource_version is None
    patched = await call(apps.patch_namespaced_deployment, "web", "shop", {"spec": {"replicas": 7}},
                          dry_run="All")
    assert patched.spec.replicas == 7
    scaled = await call(apps.patch_namespaced_deployment_scale, "web", "shop", {"spec": {"replicas": 9}},
                         dry_run="All")
    assert scaled.spec.replicas == 9
    live = await call(apps.read_namespaced_deployment, "web", "shop")
    live.metadata.labels["tier"] = "front"
    replaced = await call(apps.replace_namespaced_deployment, "web", "shop", live, dry_run="All")
    assert replaced.metadata.labels["tier"] == "front"
    terminating = await call(core.delete_namespaced_pod, WEB_PODS[0], "shop", dry_run="All")
    assert terminating.metadata.deletion_timestamp is not None
    await call(core.create_namespaced_pod_eviction, WEB_PODS[1], "shop",
                {"metadata": {"name": WEB_PODS[1]}, "deleteOptions": {"dryRun": ["All"]}})
    doomed = await call(core.delete_collection_namespaced_pod, "shop", dry_run="All", _preload_content=False)
    assert [p["metadata"]["name"] for p in json.loads(doomed.data)["items"]] == sorted(WEB_PODS)

    assert store.resource_version == version  # no version taken, so no change was stored or watched
    assert store.find(CONFIGMAPS, "shop", "settings") is None
    deployment = store.get(DEPLOYMENTS, "shop", "web")
    assert (deployment["spec"]["replicas"], "tier" in deployment["metadata"]["labels"]) == (3, False)
    assert all(not store.get(PODS, "shop", p)["metadata"].get("deletionTimestamp") for p in WEB_PODS)

    with pytest.raises(ApiException) as unknown:
        await call(core.create_namespaced_config_map, "shop", {"metadata": {"name": "x"}}, dry_run="Some")
    assert (unknown.value.status, _status(unknown)["message"]) == (
        422, 'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Some"}: '
             'supported values: "All"')

    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n"
    code, out, err = await kubectl("create", "--dry-run=server", "-f", "-", stdin=manifest)
    assert (code, out) == (0, "configmap/settings created (server dry run)\n"), err
    code, out, err = await kubectl("delete", "deploy/web", "-n", "shop", "--dry-run=server")
    assert (code, out) == (0, 'deployment.apps "web" deleted from shop namespace (server dry run)\n'), err
    assert store.resource_version == version


async def test_deletecollection_deletes_what_the_selectors_pick(kube: client.ApiClient, store: Store,
                                                                kubectl: AsyncKubectl) -> None:
    core = client.CoreV1Api(kube)
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        store.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": "shop", "labels": {"tier": tier}}})
    gone = await call(core.delete_collection_namespaced_config_map, "shop", label_selector="tier=x",
                       _preload_content=False)
    deleted = json.loads(gone.data)
    assert deleted["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in deleted["items"]] == ["a", "b"]
    assert [c["metadata"]["name"] for c in store.list(CONFIGMAPS, "shop")] == ["c"]

    await call(core.delete_collection_namespaced_pod, "shop", field_selector=f"metadata.name={WEB_PODS[2]}")
    marked = {p: bool(store.get(PODS, "shop", p)["metadata"].get("deletionTimestamp")) for p in WEB_PODS}
    assert marked == {WEB_PODS[0]: False, WEB_PODS[1]: False, WEB_PODS[2]: True}  # graceful, as one delete

    code, _, err = await kubectl("delete", "pods", "--all", "-n", "kube-system", "--grace-period=0",
                                 "--force")
    assert code == 0, err
    assert store.list(PODS, "kube-system") == []


async def test_deletecollection_is_its_own_rbac_verb(store: Store) -> None:
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete", "list"]}]
    authorizer = Authorizer.from_manifests([
        ("role", {"kind": "Role", "metadata": {"name": "r", "namespace": "shop"}, "rules": rules}),
        ("binding", {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "shop"},
                     "roleRef": {"kind": "Role", "name": "r"},
                     "subjects": [{"kind": "User", "name": "ops"}]})])
    store.create(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "shop"}})
    server = await start_api_server(store, host=loopback(), token=TOKEN,
                                    identities={"ops-token": User("ops")}, authorizer=authorizer)
    try:
        configuration = client.Configuration(host=server.url)
        configuration.api_key = {"authorization": "Bearer ops-token"}
        with client.ApiClient(configuration) as api:
            with pytest.raises(ApiException) as forbidden:
                await call(client.CoreV1Api(api).delete_collection_namespaced_config_map, "shop")
            await call(client.CoreV1Api(api).delete_namespaced_config_map, "a", "shop")
    finally:
        await server.close()
    assert (forbidden.value.status, _status(forbidden)["message"]) == (
        403, 'configmaps is forbidden: User "ops" cannot deletecollection resource "configmaps" in API '
             'group "" in the namespace "shop"')
    assert store.list(CONFIGMAPS, "shop") == []


async def test_list_pages_with_limit_and_continue_over_one_snapshot(kube: client.ApiClient,
                                                                    store: Store) -> None:
    core = client.CoreV1Api(kube)
    everything = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in store.list(PODS)]
    first = await call(core.list_pod_for_all_namespaces, limit=4)
    assert len(first.items) == 4
    assert first.metadata._continue
    assert first.metadata.remaining_item_count == len(everything) - 4
    # Changes after the first page do not show in the later ones: one list, at the first page's version.
    store.delete(PODS, "shop", WEB_PODS[2])
    store.create(PODS, {"metadata": {"name": "zz-late", "namespace": "shop"}, "spec": {}})
    seen = [(p.metadata.namespace, p.metadata.name) for p in first.items]
    token = first.metadata._continue
    while token:
        page = await call(core.list_pod_for_all_namespaces, limit=4, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += [(p.metadata.namespace, p.metadata.name) for p in page.items]
        token = page.metadata._continue
    assert seen == sorted(everything, key=lambda k: f"{k[0]}/{k[1]}")

    selected = await call(core.list_namespaced_pod, "shop", limit=1, label_selector="app=web")
    assert (len(selected.items), selected.metadata.remaining_item_count) == (1, None)
    assert selected.metadata._continue
    with pytest.raises(ApiException) as bad:
        await call(core.list_namespaced_pod, "shop", limit=1, _continue="not-a-token")
    assert bad.value.status == 400


async def test_a_continue_token_older_than_the_history_is_expired(tmp_path: Path) -> None:
    store = Store(LabClock(1.0), history=5)
    store.create(NAMESPACES, {"metadata": {"name": "shop"}})
    for n in range(4):
        store.create(CONFIGMAPS, {"metadata": {"name": f"c{n}", "namespace": "shop"}})
    server = await start_api_server(store, host=loopback(), token=TOKEN)
    try:
        configuration = client.Configuration(host=server.url)
        configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
        with client.ApiClient(configuration) as api:
            core = client.CoreV1Api(api)
            first = await call(core.list_namespaced_config_map, "shop", limit=2)
            for n in range(6):
                store.mutate(CONFIGMAPS, "shop", "c0", lambda c, n=n: c.update(data={"n": str(n)}))
            with pytest.raises(ApiException) as expired:
                await call(core.list_namespaced_config_map, "shop", limit=2,
                            _continue=first.metadata._continue)
            status = _status(expired)
            rest = await call(core.list_namespaced_config_map, "shop",
                               _continue=status["metadata"]["continue"])
    finally:
        await server.close()
    assert (expired.value.status, status["reason"]) == (410, "Expired")
    assert status["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result. You can start a new "
        "list without the continue parameter, or use the continue token in this response")
    assert [c.metadata.name for c in rest.items] == ["c2", "c3"]


async def test_kubectl_get_pages_tables_in_chunks(kubectl: AsyncKubectl, store: Store) -> None:
    code, out, err = await kubectl("get", "pods", "-A", "--chunk-size=1", "-v=6")
    assert code == 0, err
    names = [line.split()[1] for line in out.strip().splitlines()[1:]]
    pods = store.list(PODS)
    assert sorted(names) == sorted(p["metadata"]["name"] for p in pods)
    pages = re.findall(r"url=\"\S+/api/v1/pods\?\S*limit=1", err)
    assert len(pages) == len(pods)  # one request per pod: the server paged, kubectl followed the tokens


async def test_configmaps_and_secrets(kube: client.ApiClient, store: Store,
                                      kubectl: AsyncKubectl) -> None:
    core = client.CoreV1Api(kube)
    code, _, err = await kubectl("create", "secret", "generic", "db", "-n", "shop",
                                 "--from-literal=user=app", "--from-literal=password=s3cret")
    assert code == 0, err
    stored = store.get(SECRETS, "shop", "db")
    assert (stored["type"], base64.b64decode(stored["data"]["password"])) == ("Opaque", b"s3cret")

    secret = await call(core.patch_namespaced_secret, "db", "shop",
                         {"stringData": {"password": "n3w", "host": "h"}})
    assert "string_data" not in secret.to_dict() or secret.string_data is None
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
        "user": "app", "password": "n3w", "host": "h"}
    assert "stringData" not in store.get(SECRETS, "shop", "db")
    with pytest.raises(ApiException) as bad:
        await call(core.create_namespaced_secret, "shop",
                    {"metadata": {"name": "bad"}, "data": {"k": "no!pe"}})
    assert (bad.value.status, _status(bad)["message"]) == (
        400, 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 2')

    code, _, err = await kubectl("create", "configmap", "settings", "-n", "shop",
                                 "--from-literal=mode=eu", "--from-literal=region=us")
    assert code == 0, err
    code, out, err = await kubectl("get", "cm,secret", "-n", "shop")
    assert code == 0, err
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines() if line.strip()]
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert rows[1][:2] == ["configmap/settings", "2"]
    assert rows[2] == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows[3][:3] == ["secret/db", "Opaque", "3"]


async def test_immutable_configmaps_and_secrets_and_their_keys(kube: client.ApiClient,
                                                               server: ApiServer) -> None:
    core = client.CoreV1Api(kube)
    await call(core.create_namespaced_config_map, "shop",
                {"metadata": {"name": "frozen"}, "data": {"mode": "eu"}, "immutable": True})
    with pytest.raises(ApiException) as changed:
        await call(core.patch_namespaced_config_map, "frozen", "shop", {"data": {"mode": "us"}})
    assert (changed.value.status, _status(changed)["message"]) == (
        422, 'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set')
    await call(core.patch_namespaced_config_map, "frozen", "shop", {"metadata": {"labels": {"a": "b"}}})

    await call(core.create_namespaced_secret, "shop", {"metadata": {"name": "tls"},
                                                        "type": "kubernetes.io/tls",
                                                        "data": {"tls.crt": "", "tls.key": ""}})
    with pytest.raises(ApiException) as retyped:
        await call(core.patch_namespaced_secret, "tls", "shop", {"type": "Opaque"})
    assert _status(retyped)["message"] == ('Secret "tls" is invalid: type: Invalid value: "Opaque": field is '
                                           'immutable')
    with pytest.raises(ApiException) as bad_key:
        await call(core.create_namespaced_config_map, "shop",
                    {"metadata": {"name": "k"}, "data": {"a b": "c"}})
    assert _status(bad_key)["message"].startswith(
        'ConfigMap "k" is invalid: data[a b]: Invalid value: "a b": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.'")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http, \
            http.delete(server.url + "/api/v1/namespaces") as every_namespace:
        assert every_namespace.status == 405  # namespaces have no deletecollection
