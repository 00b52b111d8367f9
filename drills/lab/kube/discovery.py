"""API discovery: what the server says it serves, so that kubectl can map names to paths.

kubectl first reads ``/version``, ``/api`` and ``/apis``, then the resource list of every group
version (``/api/v1``, ``/apis/apps/v1`` ...) to learn kinds, short names (``deploy``, ``po``),
which resources are namespaced, their verbs and subresources. ``kubectl drain`` looks for
``pods/eviction`` with group ``policy`` and version ``v1`` to choose the Eviction API version, and
``kubectl scale`` learns from ``deployments/scale`` that the Scale kind is ``autoscaling/v1``.
Everything here is derived from :data:`drills.lab.kube.store.RESOURCES`. The aggregated discovery
format (``apidiscovery.k8s.io/v2``) is not offered: kubectl falls back to these documents.
"""

from __future__ import annotations

from drills.lab.kube.store import RESOURCES, Obj, Resource

KUBERNETES_VERSION = "v1.32.0"
"""The Kubernetes release the lab's API server claims to be."""

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_CATEGORY_ALL = frozenset({"pods", "deployments", "replicasets", "daemonsets", "services"})
_SUBRESOURCES: dict[str, tuple[str, str, str, list[str]]] = {
    # subresource: group, version, kind ("" = the parent's), verbs
    "status": ("", "", "", ["get", "patch", "update"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
}


def version_info() -> Obj:
    """The ``/version`` document."""
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    return {"major": major, "minor": minor, "gitVersion": KUBERNETES_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2024-12-11T17:58:51Z", "goVersion": "go1.23.3", "compiler": "gc",
            "platform": "linux/amd64"}


def api_versions(server_address: str) -> Obj:
    """The ``/api`` document: the legacy core group's versions."""
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> Obj:
    """The ``/apis`` document: every named group the lab serves."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(name) for name in _group_names()]}


def api_group(name: str) -> Obj | None:
    """The ``/apis/{group}`` document, or None for a group the lab does not serve."""
    return _group(name) if name in _group_names() else None


def api_resource_list(group: str, version: str) -> Obj | None:
    """The resource list of one group version, or None if the lab does not serve it."""
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    resources: list[Obj] = []
    for resource in served:
        resources.append(_entry(resource))
        for sub in resource.subresources:
            sub_group, sub_version, sub_kind, verbs = _SUBRESOURCES[sub]
            entry: Obj = {"name": f"{resource.plural}/{sub}", "singularName": "", "verbs": verbs,
                          "namespaced": resource.namespaced, "kind": sub_kind or resource.kind}
            if sub_group:
                entry["group"], entry["version"] = sub_group, sub_version
            resources.append(entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def verbs(resource: Resource) -> list[str]:
    """The verbs ``resource`` serves: all of them, but namespaces have no deletecollection."""
    return [v for v in _VERBS if not (v == "deletecollection" and resource.plural == "namespaces")]


def _entry(resource: Resource) -> Obj:
    entry: Obj = {"name": resource.plural, "singularName": resource.kind.lower(),
                  "namespaced": resource.namespaced, "kind": resource.kind, "verbs": verbs(resource)}
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.plural in _CATEGORY_ALL:
        entry["categories"] = ["all"]
    return entry


def _group_names() -> list[str]:
    names: list[str] = []
    for resource in RESOURCES:
        if resource.group and resource.group not in names:
            names.append(resource.group)
    return names


def _group(name: str) -> Obj:
    versions = []
    for resource in RESOURCES:
        gv = {"groupVersion": resource.api_version, "version": resource.version}
        if resource.group == name and gv not in versions:
            versions.append(gv)
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions,
            "preferredVersion": versions[0]}
