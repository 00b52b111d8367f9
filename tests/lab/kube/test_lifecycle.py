"""Object lifecycle on a running region, through kubectl and the ``kubernetes`` client: namespace
termination, propagation policies and finalizers, paused rollouts, and controllers that go on when one
object makes them fail.

The region is a :data:`CLUSTER_SCALE` cluster (its controllers run) served over HTTPS; kubectl runs as
a subprocess while the server and the controllers run on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from apiseed import seed
from kubectlrun import AsyncKubectl, start_kubectl
from kubernetes import client
from pyclient import call

from drills.lab.clock import LabClock
from drills.lab.kube import deletion, namespaces
from drills.lab.kube.api import ApiServer
from drills.lab.kube.cluster import Cluster
from drills.lab.kube.disruption import is_healthy
from drills.lab.kube.namespaces import NamespaceController
from drills.lab.kube.store import (
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    NAMESPACES,
    PDBS,
    PODS,
    REPLICASETS,
    Change,
    Obj,
    Resource,
    Store,
)


@pytest.fixture
async def cluster(make_cluster: Callable[[], Awaitable[Cluster]]) -> Cluster:
    return await make_cluster()


@pytest.fixture
def store(cluster: Cluster) -> Store:
    """The running cluster's store: what the API server fixtures serve."""
    return cluster.store


async def _json(kubectl: AsyncKubectl, *args: str) -> Any:
    code, out, err = await kubectl(*args, "-o", "json")
    assert code == 0, err
    return json.loads(out)


def _condition(obj: Obj, type_: str) -> Obj:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == type_)


async def test_deleting_a_namespace_terminates_it_empties_it_then_removes_it(
        cluster: Cluster, kubectl: AsyncKubectl, tls_server: tuple[ApiServer, Path], tmp_path: Path) -> None:
    store = cluster.store
    code, _, err = await kubectl("delete", "namespace", "kube-system")
    assert code == 1
    assert 'namespaces "kube-system" is forbidden: this namespace may not be deleted' in err
    # A finalizer on the budget holds the namespace Terminating, long enough to look at it.
    hold = '{"metadata":{"finalizers":["example.com/hold"]}}'
    assert (await kubectl("patch", "pdb", "web", "-n", "shop", "--type", "merge", "-p", hold))[0] == 0
    watch = await start_kubectl(tls_server[1], tmp_path, "get", "namespace", "shop", "--watch",
                           "--output-watch-events", "--no-headers")
    assert watch.stdout is not None
    try:
        first = await asyncio.wait_for(watch.stdout.readline(), 30)
        assert first.decode().split()[:3] == ["ADDED", "shop", "Active"]

        assert (await kubectl("delete", "namespace", "shop", "--dry-run=server"))[0] == 0
        assert store.get(NAMESPACES, None, "shop")["status"]["phase"] == "Active"
        assert await kubectl("delete", "namespace", "shop", "--wait=false") == (
            0, 'namespace "shop" deleted\n', "")
        await cluster.until(lambda: not list(store.iter(PODS, "shop")), within=120.0)
        namespace = await _json(kubectl, "get", "namespace", "shop")
        assert namespace["status"]["phase"] == "Terminating"
        assert namespace["metadata"]["deletionTimestamp"]
        assert namespace["spec"]["finalizers"] == ["kubernetes"]
        remaining = _condition(namespace, "NamespaceContentRemaining")
        assert (remaining["status"], remaining["reason"], remaining["message"]) == (
            "True", "SomeResourcesRemain",
            "Some resources are remaining: poddisruptionbudgets.policy has 1 resource instances")
        held = _condition(namespace, "NamespaceFinalizersRemaining")
        assert held["message"] == "Some finalizers are remaining: example.com/hold in 1 resource instances"
        assert _condition(namespace, "NamespaceDeletionContentFailure")["status"] == "False"
        assert (await kubectl("get", "deploy,rs,pods", "-n", "shop", "-o", "name"))[1] == ""

        manifest = tmp_path / "api.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api"},
                                        "spec": {"containers": [{"name": "api", "image": "nginx"}]}}))
        code, _, err = await kubectl("create", "-f", str(manifest), "-n", "shop")
        assert code == 1
        assert ('pods "api" is forbidden: unable to create new content in namespace shop because it is being '
                'terminated') in err
        # Only the namespace controller finalizes a namespace: an update keeps its finalizer.
        drop = '{"spec":{"finalizers":[]}}'
        assert (await kubectl("patch", "namespace", "shop", "--type", "merge", "-p", drop))[0] == 0
        assert (await _json(kubectl, "get", "namespace", "shop"))["spec"]["finalizers"] == ["kubernetes"]
        code, _, err = await kubectl("delete", "namespace", "shop", "--wait=false")
        assert code == 1
        assert ('Operation cannot be fulfilled on namespaces "shop": The system is ensuring all content is '
                'removed from this namespace.') in err

        release = '[{"op":"remove","path":"/metadata/finalizers"}]'
        assert (await kubectl("patch", "pdb", "web", "-n", "shop", "--type", "json", "-p", release))[0] == 0
        assert (await kubectl("wait", "--for=delete", "namespace/shop", "--timeout=30s"))[0] == 0
        seen: list[tuple[str, str]] = []
        while not seen or seen[-1][0] != "DELETED":
            line = await asyncio.wait_for(watch.stdout.readline(), 30)
            assert line, f"the watch ended before the namespace went: {seen}"
            event, _, status = line.decode().split()[:3]
            seen.append((event, status))
    finally:
        watch.kill()
        await watch.wait()
    assert set(seen[:-1]) == {("MODIFIED", "Terminating")}
    assert store.find(NAMESPACES, None, "shop") is None
    assert (await kubectl("get", "namespace", "kube-system", "-o", "name"))[1] == "namespace/kube-system\n"

    # kube-node-lease may go; the control plane creates it again within a minute.
    lease_uid = store.get(NAMESPACES, None, "kube-node-lease")["metadata"]["uid"]
    assert (await kubectl("delete", "namespace", "kube-node-lease"))[0] == 0
    await cluster.until(lambda: store.find(NAMESPACES, None, "kube-node-lease") is not None, within=120.0)
    again = await _json(kubectl, "get", "namespace", "kube-node-lease")
    assert (again["status"]["phase"], again["spec"]["finalizers"]) == ("Active", ["kubernetes"])
    assert again["metadata"]["uid"] != lease_uid


async def test_cascade_orphan_keeps_the_dependents_and_foreground_deletes_them_first(
        cluster: Cluster, kubectl: AsyncKubectl, kube: client.ApiClient, tmp_path: Path) -> None:
    store = cluster.store
    web = store.get(DEPLOYMENTS, "shop", "web")
    pods = sorted(p["metadata"]["name"] for p in store.iter(PODS, "shop"))
    assert await kubectl("delete", "deployment", "web", "-n", "shop", "--cascade=orphan") == (
        0, 'deployment.apps "web" deleted from shop namespace\n', "")
    assert store.find(DEPLOYMENTS, "shop", "web") is None
    sets = (await _json(kubectl, "get", "rs", "-n", "shop"))["items"]
    assert len(sets) == 1
    assert "ownerReferences" not in sets[0]["metadata"]
    kept = (await _json(kubectl, "get", "pods", "-n", "shop"))["items"]
    assert sorted(p["metadata"]["name"] for p in kept) == pods
    assert all(p["status"]["phase"] == "Running" and "deletionTimestamp" not in p["metadata"] for p in kept)

    # The same Deployment again adopts the ReplicaSet it selects: no new one, no pod replaced.
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "shop", "labels": web["metadata"]["labels"]}, "spec": web["spec"]}))
    assert (await kubectl("create", "-f", str(manifest)))[0] == 0
    await cluster.until(lambda: (store.get(DEPLOYMENTS, "shop", "web").get("status") or {}).get(
        "readyReplicas") == 3, within=60.0)
    rs = sets[0]["metadata"]["name"]
    adopted = await _json(kubectl, "get", "rs", "-n", "shop")
    assert [s["metadata"]["name"] for s in adopted["items"]] == [rs]
    owner = adopted["items"][0]["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["controller"]) for o in owner] == [("Deployment", "web", True)]
    assert sorted(p["metadata"]["name"] for p in store.iter(PODS, "shop")) == pods

    changes: list[tuple[str, str, list[str]]] = []

    def note(change: Change) -> None:
        if change.resource in (DEPLOYMENTS, PODS, REPLICASETS):
            meta = change.object["metadata"]
            name = f"{change.resource.plural}/{meta['name']}"
            changes.append((change.type, name, meta.get("finalizers", [])))

    store.on_change(note)
    assert await kubectl("delete", "deployment", "web", "-n", "shop", "--cascade=foreground") == (
        0, 'deployment.apps "web" deleted from shop namespace\n', "")
    assert ("MODIFIED", "deployments/web", ["foregroundDeletion"]) in changes
    assert ("MODIFIED", f"replicasets/{rs}", ["foregroundDeletion"]) in changes
    gone = [name for kind, name, _ in changes if kind == "DELETED"]
    assert gone[-2:] == [f"replicasets/{rs}", "deployments/web"]
    assert sorted(gone[:-2]) == [f"pods/{p}" for p in pods]

    # The legacy orphanDependents, from the Python client: the daemon set goes, its pods stay.
    agents = {p["metadata"]["name"] for p in store.iter(PODS, "kube-system")}
    created = (await call(client.CoreV1Api(kube).list_namespaced_event, "kube-system")).items
    assert {e.message for e in created if e.reason == "SuccessfulCreate"
            and e.source.component == "daemonset-controller"} == {f"Created pod: {a}" for a in agents}
    await call(client.AppsV1Api(kube).delete_namespaced_daemon_set, "node-agent", "kube-system",
                            body=client.V1DeleteOptions(orphan_dependents=True))
    await cluster.until(lambda: store.find(DAEMONSETS, "kube-system", "node-agent") is None, within=60.0)
    left = (await call(client.CoreV1Api(kube).list_namespaced_pod, "kube-system")).items
    assert {p.metadata.name for p in left} == agents
    assert all(p.metadata.owner_references is None for p in left)


async def test_a_paused_deployment_scales_but_rolls_out_only_when_resumed(cluster: Cluster,
                                                                        kubectl: AsyncKubectl) -> None:
    store = cluster.store

    def deployment() -> Obj:
        return store.get(DEPLOYMENTS, "shop", "web")

    def observed() -> bool:
        d = deployment()
        return d["status"].get("observedGeneration") == d["metadata"]["generation"]

    old = next(store.iter(REPLICASETS, "shop"))["metadata"]["name"]
    assert await kubectl("rollout", "pause", "deploy/web", "-n", "shop") == (
        0, "deployment.apps/web paused\n", "")
    assert (await kubectl("set", "image", "deploy/web", "web=registry.drill.test/shop/web:2.0",
                          "-n", "shop"))[0] == 0
    await cluster.until(observed, within=60.0)
    progressing = _condition(await _json(kubectl, "get", "deploy", "web", "-n", "shop"), "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown", "DeploymentPaused", "Deployment is paused")
    assert (await kubectl("get", "rs", "-n", "shop", "-o", "name"))[1] == f"replicaset.apps/{old}\n"

    assert (await kubectl("scale", "deploy/web", "--replicas=4", "-n", "shop"))[0] == 0
    await cluster.until(lambda: observed() and deployment()["status"].get("readyReplicas") == 4, within=120.0)
    assert (await kubectl("get", "rs", "-n", "shop", "-o", "name"))[1] == f"replicaset.apps/{old}\n"
    events = (await _json(kubectl, "get", "events", "-n", "shop"))["items"]
    scaled = [(e["source"]["component"], e["reason"], e["message"]) for e in events
              if e["involvedObject"]["kind"] == "Deployment"]
    assert ("deployment-controller", "ScalingReplicaSet",
            f"Scaled up replica set {old} to 4 from 3") in scaled
    created = [e for e in events if e["reason"] == "SuccessfulCreate" and e["involvedObject"]["name"] == old]
    assert len(created) == 4  # three as the region started, one now
    assert created[-1]["source"]["component"] == "replicaset-controller"
    assert created[-1]["message"].startswith(f"Created pod: {old}-")

    assert await kubectl("rollout", "resume", "deploy/web", "-n", "shop") == (
        0, "deployment.apps/web resumed\n", "")
    await cluster.until(lambda: observed() and deployment()["status"].get("updatedReplicas") == 4
                        and deployment()["status"].get("replicas") == 4, within=600.0)
    sets = {rs["metadata"]["name"]: rs["spec"]["replicas"]
            for rs in (await _json(kubectl, "get", "rs", "-n", "shop"))["items"]}
    assert len(sets) == 2
    assert sets[old] == 0
    new = next(name for name in sets if name != old)
    events = (await _json(kubectl, "get", "events", "-n", "shop"))["items"]
    assert any(e["reason"] == "ScalingReplicaSet"
               and e["message"].startswith(f"Scaled up replica set {new} from 0 to ") for e in events)
    assert any(e["reason"] == "SuccessfulDelete" and e["involvedObject"]["name"] == old for e in events)


async def test_one_bad_object_does_not_stop_its_controller(cluster: Cluster, kubectl: AsyncKubectl,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    store = cluster.store
    # What a merge patch without validation stored: a size that is not a number (put straight into the
    # store, since the API now refuses it).
    bad = store.get(DEPLOYMENTS, "shop", "web")
    bad["metadata"] = {"name": "bad", "namespace": "shop", "labels": {"app": "bad"}}
    bad["spec"]["replicas"] = "three"
    bad["spec"]["selector"] = {"matchLabels": {"app": "bad"}}
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "bad"}
    bad.pop("status")
    caplog.set_level(logging.ERROR)
    store.create(DEPLOYMENTS, bad)
    passes = cluster.stats.passes

    assert (await kubectl("scale", "deploy/web", "--replicas=5", "-n", "shop"))[0] == 0
    await cluster.until(lambda: sum(1 for p in store.iter(PODS, "shop") if is_healthy(p)) == 5, within=120.0)
    web = await _json(kubectl, "get", "deploy", "web", "-n", "shop")
    assert web["status"]["readyReplicas"] == 5
    await cluster.until(lambda: any(e["involvedObject"]["name"] == "bad" and e.get("count", 1) > 1
                                    for e in store.iter(EVENTS, "shop")), within=60.0)
    events = [e for e in (await _json(kubectl, "get", "events", "-n", "shop"))["items"]
              if e["involvedObject"]["name"] == "bad"]
    assert len(events) == 1
    event = events[0]
    assert (event["type"], event["reason"], event["source"]["component"]) == (
        "Warning", "ReconcileError", "deployment-controller")
    assert "three" in event["message"]
    assert cluster.stats.passes - passes > event["count"]  # the retries back off: not one per pass
    logged = [r for r in caplog.records if "shop/bad" in r.getMessage()]
    assert len(logged) == 1

    # Fixed, it is synced at once, backoff or not.
    assert (await kubectl("patch", "deploy", "bad", "-n", "shop", "--type", "merge",
                          "-p", '{"spec":{"replicas":2}}'))[0] == 0
    await cluster.until(lambda: (store.get(DEPLOYMENTS, "shop", "bad").get("status") or {}).get(
        "readyReplicas") == 2, within=60.0)


def test_a_failed_deletion_is_a_namespace_condition_and_the_rest_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = LabClock(time_scale=1.0)
    store = Store(clock)
    seed(store)
    controller = NamespaceController(store, clock=clock)
    real_delete = deletion.delete

    def failing(store: Store, resource: Resource, obj: Obj, **kwargs: Any) -> Obj | None:
        if resource is PDBS:
            raise RuntimeError("etcdserver: request timed out")
        return real_delete(store, resource, obj, **kwargs)

    monkeypatch.setattr(deletion, "delete", failing)
    store.mutate(NAMESPACES, None, "shop", lambda ns: ns.update(spec={"finalizers": ["kubernetes"]}))
    namespaces.delete(store, store.get(NAMESPACES, None, "shop"), clock=clock)
    controller.reconcile(clock.now())
    assert store.find(DEPLOYMENTS, "shop", "web") is None
    assert store.find(PDBS, "shop", "web") is not None
    failure = _condition(store.get(NAMESPACES, None, "shop"), "NamespaceDeletionContentFailure")
    assert (failure["status"], failure["reason"], failure["message"]) == (
        "True", "ContentDeletionFailed", "Failed to delete all resource types, 1 remaining: failed to delete "
        "poddisruptionbudgets.policy web: etcdserver: request timed out")
