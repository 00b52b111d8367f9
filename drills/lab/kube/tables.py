"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

``kubectl get`` asks the server for a Table (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``)
and prints its columns; the server decides what ``STATUS``, ``READY`` or ``AGE`` say. The columns and
cell rules here are those of Kubernetes' own printers (``pkg/printers/internalversion/printers.go``):
every column is always sent, and kubectl shows the priority-1 ones only with ``-o wide``. Ages are
measured against the lab's wall clock and written as kubectl writes durations (``5m12s``, ``3h``,
``12d``). Init containers are not modelled by the lab, so the pod printer ignores them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drills.lab.kube.store import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    EVENTS,
    INGRESS_CLASSES,
    INGRESSES,
    LEASES,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    Obj,
    Resource,
)

INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT = "None", "Metadata", "Object"
"""The values of the ``includeObject`` query parameter; the API's default is ``Metadata``."""


@dataclass(frozen=True)
class Column:
    """One column definition of a Table."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def to_json(self) -> Obj:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


def table(resource: Resource, objects: list[Obj], *, now: datetime, resource_version: str,
          include_object: str = INCLUDE_METADATA, api_version: str = "meta.k8s.io/v1") -> Obj:
    """The Table of ``objects`` (all of one resource) as the API server renders it."""
    columns, cells = _PRINTERS.get(resource.plural, (_DEFAULT_COLUMNS, _default_cells))
    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj, now)}
        if include_object == INCLUDE_OBJECT:
            row["object"] = obj
        elif include_object != INCLUDE_NONE:
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": api_version, "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [c.to_json() for c in columns], "rows": rows}


def partial_metadata(obj: Obj) -> Obj:
    """An object reduced to its metadata (``PartialObjectMetadata``)."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages (``duration.HumanDuration`` of apimachinery)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """A ``matchLabels``/``matchExpressions`` selector in its string form, keys sorted (``app=web``)."""
    parts: list[tuple[str, str]] = []
    for key, value in ((selector or {}).get("matchLabels") or {}).items():
        parts.append((key, f"{key}={value}"))
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                "DoesNotExist": f"!{key}"}.get(op, f"{key} {op} ({values})")
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts))


def age(timestamp: str | None, now: datetime) -> str:
    """The time since an RFC 3339 timestamp, as kubectl prints it; ``<unknown>`` when absent."""
    if not timestamp:
        return "<unknown>"
    return human_duration((now - _parse_time(timestamp)).total_seconds())


_NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
_AGE = Column("Age", description="CreationTimestamp is a timestamp representing the server time when "
                                 "this object was created.")
_DEFAULT_COLUMNS = (_NAME, _AGE)

_Cells = Callable[[Obj, datetime], list[Any]]


def _default_cells(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], _created(obj, now)]


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        reason = "SchedulingGated"
    restarts, ready, running = 0, 0, False
    last_restart: datetime | None = None
    for cs in reversed(status.get("containerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and (last_restart is None or _parse_time(finished) > last_restart):
            last_restart = _parse_time(finished)
        state = cs.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated is not None:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif cs.get("ready") and "running" in state:
            running = True
            ready += 1
    if reason == "Completed" and running:
        pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in status.get("conditions") or [])
        reason = "Running" if pod_ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gates_text = f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, restarts_text,
            _created(pod, now), (ips[0].get("ip") if ips else "") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_text]


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = sorted({k.removeprefix("node-role.kubernetes.io/") for k in node["metadata"].get("labels") or {}
                    if k.startswith("node-role.kubernetes.io/") and k != "node-role.kubernetes.io/"}
                   | {v for k, v in (node["metadata"].get("labels") or {}).items()
                      if k == "kubernetes.io/role" and v})
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == kind),
                    "<none>")

    return [node["metadata"]["name"], ",".join(states), ",".join(roles) or "<none>", _created(node, now),
            info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _template_cells(obj: Obj) -> list[Any]:
    containers = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])
    return [",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers),
            format_label_selector((obj.get("spec") or {}).get("selector"))]


def _deployment_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _created(obj, now),
            *_template_cells(obj)]


def _replicaset_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), _created(obj, now), *_template_cells(obj)]


def _daemonset_cells(obj: Obj, now: datetime) -> list[Any]:
    status = obj.get("status") or {}
    node_selector = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {})
                     .get("nodeSelector") or {})
    return [obj["metadata"]["name"], status.get("desiredNumberScheduled", 0),
            status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
            status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or "<none>", _created(obj, now),
            *_template_cells(obj)]


def _pdb_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    return [obj["metadata"]["name"], str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
            str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
            (obj.get("status") or {}).get("disruptionsAllowed", 0), _created(obj, now)]


def _namespace_cells(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase") or "Active", _created(obj, now)]


def _lease_cells(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity") or "", _created(obj, now)]


def _network_policy_cells(obj: Obj, now: datetime) -> list[Any]:
    selector = format_label_selector((obj.get("spec") or {}).get("podSelector"))
    return [obj["metadata"]["name"], selector or "<none>", _created(obj, now)]


def _configmap_cells(obj: Obj, now: datetime) -> list[Any]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [obj["metadata"]["name"], count, _created(obj, now)]


def _secret_cells(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], obj.get("type") or "", len(obj.get("data") or {}), _created(obj, now)]


def _event_cells(event: Obj, now: datetime) -> list[Any]:
    first = age(event.get("firstTimestamp") or event.get("eventTime"), now)
    last = age(event["lastTimestamp"], now) if event.get("lastTimestamp") else first
    series = event.get("series")
    count = event.get("count") or 1
    if series:
        last = age(series.get("lastObservedTime"), now)
        count = series.get("count", count)
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return [last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {instance}" if instance else component, str(event.get("message", "")).strip(),
            first, count, event["metadata"]["name"]]


def _service_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        balancers = [i.get("ip") or i.get("hostname") or "" for i in
                     ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        external = balancers + external if balancers or external else ["<pending>"]
    elif kind == "ExternalName":
        external = [spec.get("externalName") or ""]
    ports = [f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
             else f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []]
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [obj["metadata"]["name"], kind, spec.get("clusterIP") or "<none>", ",".join(external) or "<none>",
            ",".join(ports) or "<none>", _created(obj, now), selector or "<none>"]


def _listed(items: list[str], *, empty: str) -> str:
    """At most three items, then ``+ N more...``, as Kubernetes' printers abbreviate addresses."""
    if not items:
        return empty
    text = ",".join(items[:3])
    return f"{text} + {len(items) - 3} more..." if len(items) > 3 else text


def _endpoints_cells(obj: Obj, now: datetime) -> list[Any]:
    pairs = [f"{a.get('ip')}:{p.get('port')}" if subset.get("ports") else str(a.get("ip"))
             for subset in obj.get("subsets") or [] for a in subset.get("addresses") or []
             for p in (subset.get("ports") or [{}])]
    return [obj["metadata"]["name"], _listed(pairs, empty="<none>"), _created(obj, now)]


def _endpoint_slice_cells(obj: Obj, now: datetime) -> list[Any]:
    ports = [str(p.get("port")) for p in obj.get("ports") or []]
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [obj["metadata"]["name"], obj.get("addressType", ""), ",".join(ports) or "<unset>",
            _listed(addresses, empty="<unset>"), _created(obj, now)]


def _ingress_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    hosts = [r["host"] for r in spec.get("rules") or [] if r.get("host")]
    addresses = [i.get("ip") or i.get("hostname") or "" for i in
                 ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    return [obj["metadata"]["name"], spec.get("ingressClassName") or "<none>", ",".join(hosts) or "*",
            ",".join(addresses), "80, 443" if spec.get("tls") else "80", _created(obj, now)]


def _ingress_class_cells(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    parameters = spec.get("parameters")
    text = f"{parameters.get('kind')}/{parameters.get('name')}" if isinstance(parameters, dict) else "<none>"
    return [obj["metadata"]["name"], spec.get("controller", ""), text, _created(obj, now)]


def _columns(*specs: str) -> tuple[Column, ...]:
    """Columns from ``Name`` / ``Name:integer`` / ``Name:wide`` specs; Name and Age are the shared ones."""
    columns = []
    for spec in specs:
        name, _, flag = spec.partition(":")
        if name in ("Name", "Age") and not flag:
            columns.append(_NAME if name == "Name" else _AGE)
        elif flag == "integer":
            columns.append(Column(name, "integer"))
        else:
            columns.append(Column(name, priority=1 if flag == "wide" else 0))
    return tuple(columns)


_TEMPLATE = ("Containers:wide", "Images:wide", "Selector:wide")
_PRINTERS: dict[str, tuple[tuple[Column, ...], _Cells]] = {
    PODS.plural: (_columns("Name", "Ready", "Status", "Restarts", "Age", "IP:wide", "Node:wide",
                           "Nominated Node:wide", "Readiness Gates:wide"), _pod_cells),
    NODES.plural: (_columns("Name", "Status", "Roles", "Age", "Version", "Internal-IP:wide",
                            "External-IP:wide", "OS-Image:wide", "Kernel-Version:wide",
                            "Container-Runtime:wide"), _node_cells),
    DEPLOYMENTS.plural: (_columns("Name", "Ready", "Up-to-date", "Available", "Age", *_TEMPLATE),
                         _deployment_cells),
    REPLICASETS.plural: (_columns("Name", "Desired:integer", "Current:integer", "Ready:integer", "Age",
                                  *_TEMPLATE), _replicaset_cells),
    DAEMONSETS.plural: (_columns("Name", "Desired:integer", "Current:integer", "Ready:integer",
                                 "Up-to-date:integer", "Available:integer", "Node Selector", "Age",
                                 *_TEMPLATE),
                        _daemonset_cells),
    PDBS.plural: (_columns("Name", "Min Available", "Max Unavailable", "Allowed Disruptions:integer", "Age"),
                  _pdb_cells),
    NAMESPACES.plural: (_columns("Name", "Status", "Age"), _namespace_cells),
    NETWORK_POLICIES.plural: (_columns("Name", "Pod-Selector", "Age"), _network_policy_cells),
    LEASES.plural: (_columns("Name", "Holder", "Age"), _lease_cells),
    CONFIGMAPS.plural: (_columns("Name", "Data:integer", "Age"), _configmap_cells),
    SECRETS.plural: (_columns("Name", "Type", "Data:integer", "Age"), _secret_cells),
    SERVICES.plural: (_columns("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                               "Selector:wide"), _service_cells),
    ENDPOINTS.plural: (_columns("Name", "Endpoints", "Age"), _endpoints_cells),
    ENDPOINT_SLICES.plural: (_columns("Name", "AddressType", "Ports", "Endpoints", "Age"),
                             _endpoint_slice_cells),
    INGRESSES.plural: (_columns("Name", "Class", "Hosts", "Address", "Ports", "Age"), _ingress_cells),
    INGRESS_CLASSES.plural: (_columns("Name", "Controller", "Parameters", "Age"), _ingress_class_cells),
    EVENTS.plural: (_columns("Last Seen", "Type", "Reason", "Object", "Subobject:wide", "Source:wide",
                             "Message", "First Seen:wide", "Count:wide", "Name:wide"), _event_cells),
}


def _created(obj: Obj, now: datetime) -> str:
    return age(obj["metadata"].get("creationTimestamp"), now)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
