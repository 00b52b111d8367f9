"""Leases (``coordination.k8s.io/v1``) as the official client's ``CoordinationV1Api`` uses them against the
lab's API server: discovered, created, read, listed, watched, updated and patched with optimistic
concurrency (a stale ``resourceVersion`` is a 409 Conflict), deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pyclient import call


@pytest.fixture
def coordination(kube: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(kube)



def _lease(name: str, holder: str) -> client.V1Lease:
    return client.V1Lease(metadata=client.V1ObjectMeta(name=name, annotations={"drill/run-id": "r1"}),
                          spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=30,
                                                  renew_time=datetime.now(UTC)))


async def test_discovery_lists_leases_in_the_coordination_group(
        coordination: client.CoordinationV1Api) -> None:
    resources = {r.name: r for r in (await call(coordination.get_api_resources)).resources}
    lease = resources["leases"]
    assert (lease.kind, lease.namespaced) == ("Lease", True)
    assert {"create", "get", "list", "watch", "update", "patch", "delete"} <= set(lease.verbs)
    groups = await call(client.ApisApi(coordination.api_client).get_api_versions)
    assert "coordination.k8s.io/v1" in {g.preferred_version.group_version for g in groups.groups}


async def test_create_read_list_and_delete_a_lease(coordination: client.CoordinationV1Api) -> None:
    created = await call(coordination.create_namespaced_lease, "kube-system", _lease("drill-lock", "alice"))
    assert (created.kind, created.api_version) == ("Lease", "coordination.k8s.io/v1")
    assert created.metadata.resource_version
    assert created.metadata.uid
    with pytest.raises(ApiException) as exists:
        await call(coordination.create_namespaced_lease, "kube-system", _lease("drill-lock", "bob"))
    assert (exists.value.status, json.loads(exists.value.body)["reason"]) == (409, "AlreadyExists")
    read = await call(coordination.read_namespaced_lease, "drill-lock", "kube-system")
    assert read.spec.holder_identity == "alice"
    assert read.spec.lease_duration_seconds == 30
    assert isinstance(read.spec.renew_time, datetime)
    assert read.metadata.annotations == {"drill/run-id": "r1"}
    listed = await call(coordination.list_namespaced_lease, "kube-system")
    assert [item.metadata.name for item in listed.items] == ["drill-lock"]
    assert (await call(coordination.list_namespaced_lease, "default")).items == []
    await call(coordination.delete_namespaced_lease, "drill-lock", "kube-system")
    with pytest.raises(ApiException) as gone:
        await call(coordination.read_namespaced_lease, "drill-lock", "kube-system")
    assert gone.value.status == 404
    assert json.loads(gone.value.body)["message"] == 'leases.coordination.k8s.io "drill-lock" not found'


async def test_a_stale_update_or_patch_is_a_conflict(coordination: client.CoordinationV1Api) -> None:
    first = await call(coordination.create_namespaced_lease, "kube-system", _lease("drill-lock", "alice"))
    first.spec.holder_identity = "bob"
    taken = await call(coordination.replace_namespaced_lease, "drill-lock", "kube-system", first)
    assert taken.spec.holder_identity == "bob"
    assert int(taken.metadata.resource_version) > int(first.metadata.resource_version)
    # Alice still has the version she read: her update and her patch both lose the race.
    first.spec.holder_identity = "alice"
    with pytest.raises(ApiException) as stale:
        await call(coordination.replace_namespaced_lease, "drill-lock", "kube-system", first)
    status = json.loads(stale.value.body)
    assert (stale.value.status, status["kind"], status["reason"]) == (409, "Status", "Conflict")
    assert status["details"] == {"name": "drill-lock", "group": "coordination.k8s.io", "kind": "leases"}
    assert "the object has been modified" in status["message"]
    stale_patch = {"metadata": {"resourceVersion": first.metadata.resource_version},
                   "spec": {"holderIdentity": "alice"}}
    with pytest.raises(ApiException) as patched:
        await call(coordination.patch_namespaced_lease, "drill-lock", "kube-system", stale_patch)
    assert (patched.value.status, json.loads(patched.value.body)["reason"]) == (409, "Conflict")
    fresh = {"metadata": {"resourceVersion": taken.metadata.resource_version,
                          "annotations": {"drill/abort-requested": "yes"}}}
    marked = await call(coordination.patch_namespaced_lease, "drill-lock", "kube-system", fresh)
    assert marked.metadata.annotations == {"drill/run-id": "r1", "drill/abort-requested": "yes"}
    assert marked.spec.holder_identity == "bob"


async def test_a_watch_sees_a_lease_renewed(coordination: client.CoordinationV1Api) -> None:
    created = await call(coordination.create_namespaced_lease, "kube-system", _lease("drill-lock", "alice"))
    created.spec.renew_time = datetime.now(UTC)
    await call(coordination.replace_namespaced_lease, "drill-lock", "kube-system", created)

    def first_change() -> tuple[str, Any]:
        stream = watch.Watch().stream(coordination.list_namespaced_lease, "kube-system",
                                      resource_version=created.metadata.resource_version, timeout_seconds=5)
        for event in stream:
            return event["type"], event["object"]
        raise AssertionError("the watch ended with no event")

    kind, lease = await call(first_change)
    assert kind == "MODIFIED"
    assert lease.spec.renew_time == created.spec.renew_time
