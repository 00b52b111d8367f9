"""A team's own Kubernetes manifests, applied to the lab after its defaults (``--manifests DIR``).

``DIR`` is a folder of manifest files (``*.yaml``, ``*.yml``, ``*.json``; several ``---``
documents per file, ``kind: List`` expanded) applied to every region; or, where regions differ, it
also holds one subfolder per region, named as the topology names it, whose files apply to that region
only, on top of the shared ones (an object a region's folder states replaces the shared one of the
same kind, namespace and name). A subfolder that names no region is a mistake, as is a file that does
not parse, a document that is no Kubernetes object, an object without a name, the same object twice in
one place, or a kind the lab serves under another ``apiVersion``; each is a
:class:`~drills.errors.SourceError` at its ``file:line:col``, found before anything starts.

Objects of kinds the lab does not model (a HorizontalPodAutoscaler, a CronJob ...) are kept out and
counted by kind (:meth:`Manifests.not_modelled_line`), never silently dropped.

Each region's objects are applied through that region's API server, as ``kubectl apply`` applies them
(create, or replace what is there; the ``kubectl.kubernetes.io/last-applied-configuration``
annotation written, so that a later ``kubectl apply`` of an edited file patches as it would), in
Helm's install order: Namespaces first, then policies and budgets, configuration, Services, workloads,
IngressClasses, Ingresses. An object the API server refuses is an error at the object's place in its
file, with the server's message.

Before the lab starts, :meth:`Manifests.adopt_roles` fits the topology to the manifests: the topology's
``app`` is the Deployment that the Service behind the manifests' Ingress route for ``/`` selects, and
its ``ingress`` the Deployment labelled as ingress-nginx's controller
(``app.kubernetes.io/name: ingress-nginx``, ``app.kubernetes.io/component: controller``), when the
manifests have them; :meth:`Manifests.keeps_out` says which of the lab's defaults the manifests replace
(a workload's Deployment and budget, the built-in Services and Ingress once the manifests route).
"""

from __future__ import annotations

import json
import ssl
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from drills.errors import SourceError, SourceErrors, SourceLocation
from drills.lab.kube.discovery import KUBERNETES_VERSION
from drills.lab.kube.exposure import exposure
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import DEPLOYMENTS, INGRESSES, PDBS, RESOURCES, SERVICES, Obj, Resource
from drills.lab.topology import Topology, Workload, WorkloadOverride
from drills.yamlsource import Document, load_all

SUFFIXES = (".yaml", ".yml", ".json")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
INSTALL_ORDER = (
    "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget",
    "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService")
"""Helm's install order, by kind; kinds it does not name come last."""
CONTROLLER_LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
"""How ingress-nginx's own manifests label its controller Deployment."""


@dataclass(frozen=True)
class Manifest:
    """One object of a manifest file, where it was written."""

    resource: Resource
    object: Obj
    location: SourceLocation

    @property
    def namespace(self) -> str | None:
        return self.object["metadata"].get("namespace")

    @property
    def name(self) -> str:
        return str(self.object["metadata"]["name"])

    @property
    def key(self) -> tuple[Resource, str | None, str]:
        return self.resource, self.namespace, self.name

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.resource.kind} {where}{self.name}"


@dataclass(frozen=True)
class Manifests:
    """What the manifests give each region, in apply order, and what they hold that the lab does not model."""

    regions: dict[str, tuple[Manifest, ...]]
    not_modelled: Counter[str] = field(default_factory=Counter)

    def not_modelled_line(self) -> str | None:
        """``lab: not modelled, kept out: 2 HorizontalPodAutoscaler, 1 CronJob``; None if all are modelled."""
        if not self.not_modelled:
            return None
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.not_modelled.most_common())
        return f"lab: not modelled, kept out: {kinds}"

    def find(self, region: str, resource: Resource, namespace: str | None, name: str) -> Manifest | None:
        """The region's manifest of that object, if any."""
        return next((m for m in self.regions.get(region, ()) if m.key == (resource, namespace, name)), None)

    def routes(self, region: str) -> bool:
        """Whether the region's manifests hold Ingress objects (their routing replaces the built-in one)."""
        return any(m.resource is INGRESSES for m in self.regions.get(region, ()))

    def keeps_out(self, region: str, topology: Topology, resource: Resource, obj: Obj) -> bool:
        """Whether one of the lab's default objects stays out of ``region`` because the manifests state
        it: a topology workload's Deployment and PodDisruptionBudget when the manifests deploy the
        workload, the built-in Services and Ingress when the manifests route."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name", "")
        if resource in (DEPLOYMENTS, PDBS):
            return any(w.namespace == namespace and w.name == name for w in topology.workloads) and \
                self.find(region, DEPLOYMENTS, namespace, name) is not None
        built_in = {(r, o["metadata"].get("namespace"), o["metadata"]["name"])
                    for r, o in exposure(topology.app, topology.ingress) if r in (SERVICES, INGRESSES)}
        return (resource, namespace, name) in built_in and self.routes(region)

    def adopt_roles(self, topology: Topology) -> Topology:
        """The topology with its ``app`` and ``ingress`` workloads renamed to the Deployments the
        manifests route to and run as the ingress controller, where they differ (the first region's
        manifests decide); each adopted Deployment's readiness delay and path become the workload's."""
        region = next(iter(topology.regions))
        app = self._app(region)
        controller = self._controller(region)
        workloads = []
        for workload in topology.workloads:
            found = app if workload.role == "app" else controller if workload.role == "ingress" else None
            found = found or self.find(region, DEPLOYMENTS, workload.namespace, workload.name)
            workloads.append(_adopted(workload, found) if found is not None else workload)
        if workloads == list(topology.workloads):
            return topology
        # A region's overrides name the workloads as the topology did: they follow the renaming.
        renamed = {(old.namespace, old.name): new
                   for old, new in zip(topology.workloads, workloads, strict=True)}

        def rename(override: WorkloadOverride) -> WorkloadOverride:
            new = renamed.get((override.namespace, override.name))
            return override if new is None else override.model_copy(update={"namespace": new.namespace,
                                                                            "name": new.name})

        regions = {name: r.model_copy(update={"workloads": [rename(o) for o in r.workloads]})
                   for name, r in topology.regions.items()}
        return topology.model_copy(update={"workloads": workloads, "regions": regions})

    def slowest_start(self) -> float:
        """The longest readiness delay (``initialDelaySeconds``) of the manifests' Deployments, in seconds:
        how long the lab may take to settle beyond its own workloads."""
        delays = [_readiness(m.object).get("initialDelaySeconds") for manifests in self.regions.values()
                  for m in manifests if m.resource is DEPLOYMENTS]
        return float(max((d for d in delays if _is_number(d)), default=0.0))

    def _app(self, region: str) -> Manifest | None:
        """The Deployment whose pods the Service behind the region's Ingress route for ``/`` selects."""
        for ingress in (m for m in self.regions.get(region, ()) if m.resource is INGRESSES):
            for rule in (ingress.object.get("spec") or {}).get("rules") or []:
                for path in ((rule or {}).get("http") or {}).get("paths") or []:
                    service = ((path or {}).get("backend") or {}).get("service") or {}
                    if (path.get("path") or "/") == "/" and service.get("name"):
                        found = self._selected(region, ingress.namespace, str(service["name"]))
                        if found is not None:
                            return found
        return None

    def _selected(self, region: str, namespace: str | None, service: str) -> Manifest | None:
        found = self.find(region, SERVICES, namespace, service)
        selector = ((found.object.get("spec") or {}).get("selector") or {}) if found is not None else {}
        if not selector:
            return None
        match = LabelSelector.from_object({"matchLabels": selector})
        return next((m for m in self.regions.get(region, ()) if m.resource is DEPLOYMENTS
                     and m.namespace == namespace and match.matches(_template_labels(m.object))), None)

    def _controller(self, region: str) -> Manifest | None:
        def controller(m: Manifest) -> bool:
            labels = m.object["metadata"].get("labels") or {}
            return m.resource is DEPLOYMENTS and all(labels.get(k) == v for k, v in CONTROLLER_LABELS.items())

        return next((m for m in self.regions.get(region, ()) if controller(m)), None)


def load_manifests(path: Path, regions: Iterable[str]) -> Manifests:
    """Read the manifests at ``path`` (a folder, or one file) for the topology's ``regions``.

    Raises :class:`~drills.errors.SourceErrors` listing every problem, before anything is applied.
    """
    names = list(regions)
    errors: list[SourceError] = []
    shared: list[Path] = []
    own: dict[str, list[Path]] = {name: [] for name in names}
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.name in own:
                    own[entry.name] = sorted(
                        p for p in entry.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(entry).parts))
                else:
                    errors.append(SourceError(SourceLocation(str(entry), 1, 1),
                                              f"the folder {entry.name!r} names no region of the topology",
                                              hint=f"a folder per region holds what differs there: "
                                                   f"{', '.join(names)}"))
            elif entry.suffix in SUFFIXES:
                shared.append(entry)
    elif path.exists():
        shared.append(path)
    else:
        raise SourceErrors([SourceError(SourceLocation(str(path), 1, 1), "no such folder or file",
                                        hint="give the folder holding the team's manifests")])
    if not shared and not any(own.values()) and not errors:
        errors.append(SourceError(SourceLocation(str(path), 1, 1), "no manifests here",
                                  hint=f"manifest files end in {', '.join(SUFFIXES)}"))
    not_modelled: Counter[str] = Counter()
    common = _read(shared, errors, not_modelled)
    result: dict[str, tuple[Manifest, ...]] = {}
    for region in names:
        mine = _read(own[region], errors, not_modelled)
        merged = {m.key: m for m in common}
        merged.update({m.key: m for m in mine})
        result[region] = tuple(sorted(merged.values(), key=_install_rank))
    if errors:
        raise SourceErrors(errors)
    return Manifests(result, not_modelled)


async def apply(manifests: Iterable[Manifest], *, region: str, url: str, token: str,
                ssl_context: ssl.SSLContext | None) -> None:
    """Apply each manifest through the region's API server at ``url`` as ``kubectl apply`` does;
    raises :class:`~drills.errors.SourceError` at the first one it refuses."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for manifest in manifests:
            obj = json.loads(json.dumps(manifest.object))
            obj["metadata"].setdefault("annotations", {})[LAST_APPLIED] = \
                json.dumps(manifest.object, sort_keys=True, separators=(",", ":")) + "\n"
            collection = f"{url}{_path(manifest.resource, manifest.namespace)}"
            async with session.post(collection, json=obj, ssl=ssl_context) as response:
                status, body = response.status, await response.json(content_type=None)
            if status == 409 and body.get("reason") == "AlreadyExists":
                item = f"{collection}/{manifest.name}"
                async with session.get(item, ssl=ssl_context) as response:
                    current = await response.json(content_type=None)
                obj["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
                async with session.put(item, json=obj, ssl=ssl_context) as response:
                    status, body = response.status, await response.json(content_type=None)
            if status >= 300:
                message = body.get("message") if isinstance(body, dict) else None
                raise SourceError(manifest.location, f"{manifest.describe()}: region {region}'s API server "
                                  f"refused it ({status}): {message or body}",
                                  hint="fix the manifest; the lab applies it as kubectl apply would")


def _read(files: list[Path], errors: list[SourceError], not_modelled: Counter[str]) -> list[Manifest]:
    found: dict[tuple[Resource, str | None, str], Manifest] = {}
    for file in files:
        try:
            documents = load_all(file)
        except SourceError as exc:
            errors.append(exc)
            continue
        for doc in documents:
            for manifest in _objects(doc, errors, not_modelled):
                twice = found.get(manifest.key)
                if twice is not None:
                    errors.append(SourceError(manifest.location, f"{manifest.describe()} is stated twice "
                                              f"(also at {twice.location})", hint="keep one of them"))
                found[manifest.key] = manifest
    return list(found.values())


def _objects(doc: Document, errors: list[SourceError], not_modelled: Counter[str]) -> list[Manifest]:
    data = doc.data
    if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
        items = [(["items", i], item) for i, item in enumerate(data["items"])]
    else:
        items = [([], data)]
    found = []
    for at, item in items:
        manifest = _object(doc, at, item, errors, not_modelled)
        if manifest is not None:
            found.append(manifest)
    return found


def _object(doc: Document, at: list[str | int], item: Any, errors: list[SourceError],
            not_modelled: Counter[str]) -> Manifest | None:
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str) or \
            not isinstance(item.get("apiVersion"), str):
        errors.append(doc.error(at, "not a Kubernetes object: a manifest is a mapping with apiVersion, kind "
                                    "and metadata", hint="for example 'apiVersion: v1', 'kind: Namespace'"))
        return None
    kind, version = item["kind"], item["apiVersion"]
    resource = next((r for r in RESOURCES if r.kind == kind and r.api_version == version), None)
    if resource is None:
        served = next((r for r in RESOURCES if r.kind == kind), None)
        if served is not None:
            errors.append(doc.error([*at, "apiVersion"], f"no {kind} in {version}: the lab serves {kind} as "
                                    f"{served.api_version}, as Kubernetes {KUBERNETES_VERSION} does",
                                    hint=f"write 'apiVersion: {served.api_version}'"))
        else:
            not_modelled[kind] += 1
        return None
    meta = item.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        errors.append(doc.error([*at, "metadata"], f"{kind}: metadata.name is required",
                                hint="kubectl apply names every object it applies"))
        return None
    obj = json.loads(json.dumps(item))
    if resource.namespaced:
        obj["metadata"]["namespace"] = meta.get("namespace") or "default"
    else:
        obj["metadata"].pop("namespace", None)
    return Manifest(resource, obj, doc.locate(at))


def _install_rank(manifest: Manifest) -> tuple[int, str, str]:
    kind = manifest.resource.kind
    rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
    return rank, manifest.namespace or "", manifest.name


def _path(resource: Resource, namespace: str | None) -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    scope = f"/namespaces/{namespace}" if resource.namespaced else ""
    return f"{base}{scope}/{resource.plural}"


def _template_labels(deployment: Obj) -> dict[str, str]:
    return (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def _adopted(workload: Workload, manifest: Manifest) -> Workload:
    """The workload as the manifest deploys it: its name, and its readiness delay and path if stated."""
    changes: dict[str, Any] = {"namespace": manifest.namespace, "name": manifest.name, "pdb": None}
    probe = _readiness(manifest.object)
    delay = probe.get("initialDelaySeconds")
    if _is_number(delay):
        changes["start_delay"] = float(delay)
    path = (probe.get("httpGet") or {}).get("path")
    if isinstance(path, str) and path.startswith("/"):
        changes["health_path"] = path
    return workload.model_copy(update=changes)



def _readiness(deployment: Obj) -> dict[str, Any]:
    """The readiness probe of the Deployment's first container (empty if none)."""
    template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or [{}]
    probe = containers[0].get("readinessProbe") if isinstance(containers[0], dict) else None
    return probe if isinstance(probe, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
