"""Patches as the API applies them: JSON merge patch, strategic merge patch and JSON Patch."""

from __future__ import annotations

import copy

import pytest

from drills.lab.kube.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

POD = {
    "metadata": {"name": "web-1", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
    "spec": {
        "containers": [
            {"name": "app", "image": "nginx:1.27",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "envoy:1.31"},
        ],
        "tolerations": [{"key": "x", "operator": "Exists"}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
    "status": {"conditions": [{"type": "Ready", "status": "True"},
                              {"type": "Initialized", "status": "True"}]},
}


def test_merge_patch_merges_maps_removes_nulls_and_replaces_lists() -> None:
    patched = merge_patch(POD, {"metadata": {"labels": {"tier": None, "zone": "1"}},
                                "spec": {"containers": [{"name": "only"}]}})
    assert patched["metadata"]["labels"] == {"app": "web", "zone": "1"}
    assert patched["spec"]["containers"] == [{"name": "only"}]
    assert patched["spec"]["volumes"] == POD["spec"]["volumes"]


def test_cordon_and_uncordon_as_kubectl_sends_them() -> None:
    node = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.0.0/24"}}
    cordoned = strategic_merge_patch(node, {"spec": {"unschedulable": True}})
    assert cordoned["spec"] == {"podCIDR": "10.244.0.0/24", "unschedulable": True}
    uncordoned = strategic_merge_patch(cordoned, {"spec": {"unschedulable": None}})
    assert uncordoned["spec"] == {"podCIDR": "10.244.0.0/24"}


def test_strategic_merge_merges_containers_and_env_by_name() -> None:
    patched = strategic_merge_patch(POD, {"spec": {"containers": [
        {"name": "app", "image": "nginx:1.28",
         "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
        {"name": "debug", "image": "busybox"}]}})
    containers = {c["name"]: c for c in patched["spec"]["containers"]}
    assert list(containers) == ["app", "sidecar", "debug"]
    assert containers["app"]["image"] == "nginx:1.28"
    assert containers["app"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                                        {"name": "C", "value": "4"}]
    assert containers["sidecar"] == {"name": "sidecar", "image": "envoy:1.31"}


def test_strategic_merge_merges_conditions_by_type_and_taints_by_key() -> None:
    patched = strategic_merge_patch(POD, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "False"},
                                               {"type": "Initialized", "status": "True"}]
    node = {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]}}
    patched = strategic_merge_patch(node, {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}})
    assert patched["spec"]["taints"] == [{"key": "a", "effect": "NoSchedule"},
                                         {"key": "b", "effect": "NoSchedule"}]


def test_strategic_merge_replaces_lists_without_a_merge_key() -> None:
    patched = strategic_merge_patch(POD, {"spec": {"tolerations": [{"key": "y", "operator": "Exists"}]}})
    assert patched["spec"]["tolerations"] == [{"key": "y", "operator": "Exists"}]
    policy = {"spec": {"ports": [{"port": 80}]}}
    patched = strategic_merge_patch(policy, {"spec": {"ports": [{"port": 443}]}})
    assert patched["spec"]["ports"] == [{"port": 443}]


def test_patch_directives() -> None:
    deleted = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "sidecar",
                                                                   "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["app"]
    replaced_list = strategic_merge_patch(POD, {"spec": {"volumes": [{"$patch": "replace"},
                                                                     {"name": "new"}]}})
    assert replaced_list["spec"]["volumes"] == [{"name": "new"}]
    replaced_map = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert replaced_map["metadata"]["labels"] == {"only": "this"}
    removed_map = strategic_merge_patch(POD, {"status": {"$patch": "delete"}})
    assert "status" not in removed_map
    retained = strategic_merge_patch(POD, {"metadata": {"$retainKeys": ["name", "labels"],
                                                        "labels": {"x": "1"}}})
    assert retained["metadata"] == {"name": "web-1", "labels": {"app": "web", "tier": "front", "x": "1"}}
    with pytest.raises(PatchError, match="unknown \\$patch directive"):
        strategic_merge_patch(POD, {"spec": {"$patch": "explode"}})


def test_primitive_list_directives_and_finalizers() -> None:
    united = strategic_merge_patch(POD, {"metadata": {"finalizers": ["b", "a"]}})
    assert united["metadata"]["finalizers"] == ["a", "b"]
    pruned = strategic_merge_patch(united, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert pruned["metadata"]["finalizers"] == ["b"]
    ordered = strategic_merge_patch(POD, {"spec": {"$setElementOrder/containers": [{"name": "sidecar"},
                                                                                   {"name": "app"}]}})
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["sidecar", "app"]


def test_json_patch_operations() -> None:
    ops = [
        {"op": "add", "path": "/metadata/labels/zone", "value": "1"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.28"},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "z"}},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations", "path": "/metadata/a~1b"},
        {"op": "test", "path": "/metadata/a~1b", "value": "web-1"},
    ]
    patched = json_patch(POD, ops)
    assert patched["metadata"]["labels"]["zone"] == "1"
    assert [c["image"] for c in patched["spec"]["containers"]] == ["nginx:1.28"]
    assert patched["spec"]["tolerations"][-1] == {"key": "z"}
    assert patched["metadata"]["a/b"] == "web-1"
    assert "annotations" not in patched["metadata"]


@pytest.mark.parametrize(("ops", "message"), [
    ([{"op": "test", "path": "/metadata/name", "value": "other"}], "test failed"),
    ([{"op": "remove", "path": "/spec/nothing"}], "does not exist"),
    ([{"op": "replace", "path": "/spec/containers/9", "value": {}}], "does not exist"),
    ([{"op": "frobnicate", "path": "/spec"}], "unknown operation"),
    ({"op": "add"}, "must be a list"),
])
def test_json_patch_failures(ops: object, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch(POD, ops)


def test_patches_leave_the_original_untouched_and_dispatch_on_content_type() -> None:
    before = copy.deepcopy(POD)
    body = {"spec": {"containers": [{"name": "app", "image": "x"}]}}
    assert len(apply_patch(POD, body, STRATEGIC_MERGE_PATCH)["spec"]["containers"]) == 2
    assert len(apply_patch(POD, body, MERGE_PATCH)["spec"]["containers"]) == 1
    apply_patch(POD, [{"op": "remove", "path": "/spec"}], JSON_PATCH)
    assert before == POD
