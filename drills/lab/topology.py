"""The lab's topology: the design being rehearsed.

Regions and their zones and nodes, the workloads every region runs (replicas, zone spread, start
delay, PodDisruptionBudget), Traffic Manager's routing, monitor settings and TTL, how long
Kubernetes waits before replacing pods of a lost node, and the time scale. Every duration is in
real-world units; the lab's clock compresses them. The built-in default is a sound design: it
passes the shipped scenarios. A topology file changes any part of it, which is how flawed designs
are rehearsed (a TTL too long, all replicas in one zone, a PDB that blocks a drain).

A file only states what differs from the default; nested mappings merge into the default's,
lists replace it::

    timeScale: 60
    trafficManager:
      ttl: 300s
    workloads:
      - {namespace: shop, name: web, replicas: 3, zones: [zone-1], role: app}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drills.errors import SourceError, SourceLocation
from drills.units import Duration
from drills.yamlsource import field_names, load, validation_errors

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
MAX_TTL_S = 2**31 - 1
"""The largest TTL Traffic Manager takes (wire-facts.md), and DNS can carry."""

_REGION_NAME = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Region(_Model):
    zones: list[str] = Field(default_factory=lambda: ["zone-1", "zone-2", "zone-3"], min_length=1)
    nodes_per_zone: int = Field(default=2, alias="nodesPerZone", ge=1, le=50)
    priority: int = Field(ge=1, le=1000)
    """Traffic Manager endpoint priority (Priority routing: the lowest available wins)."""

    @field_validator("zones")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({z for z in value if value.count(z) > 1})
        if repeated:
            raise ValueError(f"each zone is listed once; repeated: {', '.join(repeated)}")
        return value


class Disruption(_Model):
    """A PodDisruptionBudget; exactly one of the two."""

    min_available: int | None = Field(default=None, alias="minAvailable", ge=0)
    max_unavailable: int | None = Field(default=None, alias="maxUnavailable", ge=0)

    @model_validator(mode="after")
    def _one(self) -> Disruption:
        if (self.min_available is None) == (self.max_unavailable is None):
            raise ValueError("give exactly one of minAvailable and maxUnavailable")
        return self


class Workload(_Model):
    """A Deployment that every region runs."""

    namespace: str
    name: str
    replicas: int = Field(ge=0, le=500)
    role: Literal["app", "ingress", "other"] = "other"
    """``app``: the ingress serves it; ``ingress``: the ingress controller itself."""
    spread: Literal["zone", "none"] = "zone"
    """A topology spread constraint over zones (maxSkew 1), or none."""
    when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        default="ScheduleAnyway", alias="whenUnsatisfiable")
    zones: list[str] | None = None
    """Pin the pods to these zones (node affinity); None: any zone."""
    start_delay: Duration = Field(default=20.0, alias="startDelay")
    """From scheduling to Ready: image pull, start, readiness probe."""
    health_path: str = Field(default="/healthz", alias="healthPath")
    """The pods' readiness probe path; for the app, the path its ingress serves besides ``/``."""
    pdb: Disruption | None = None

    @field_validator("health_path")
    @classmethod
    def _health_path(cls, value: str) -> str:
        return _url_path(value, "the health path")


class DaemonSet(_Model):
    namespace: str
    name: str


class StatusCodeRange(_Model):
    """HTTP status codes a monitor probe may answer to succeed, ``min`` to ``max`` inclusive."""

    min: int = Field(ge=100, le=599)
    max: int = Field(ge=100, le=599)

    @model_validator(mode="after")
    def _ordered(self) -> StatusCodeRange:
        if self.min > self.max:
            raise ValueError(f"a status code range runs from min to max: {self.min} is above {self.max}")
        return self


class Monitor(_Model):
    """Traffic Manager endpoint monitoring (wire-facts: interval 30 or 10 s, timeout 5-10 s, N 0-9)."""

    protocol: str = "HTTP"
    """Only HTTP: the lab's ingresses serve plain HTTP, so an HTTPS or TCP monitor would not be rehearsed."""
    path: str = "/healthz"
    interval: Duration = 10.0
    timeout: Duration = 5.0
    tolerated_failures: int = Field(default=3, alias="toleratedFailures", ge=0, le=9)
    expected_status_code_ranges: list[StatusCodeRange] = Field(default_factory=list,
                                                               alias="expectedStatusCodeRanges")
    """The statuses a probe succeeds with (Azure's ``expectedStatusCodeRanges``); empty: only 200."""

    def succeeds(self, status: int) -> bool:
        """Whether a probe answered with ``status`` counts as a success."""
        if not self.expected_status_code_ranges:
            return status == 200
        return any(r.min <= status <= r.max for r in self.expected_status_code_ranges)

    @field_validator("protocol")
    @classmethod
    def _http(cls, value: str) -> str:
        if value != "HTTP":
            raise ValueError(f"the lab's Traffic Manager probes HTTP only (its ingresses serve plain HTTP), "
                             f"not {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _url_path(value, "the monitor path")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if value not in (10.0, 30.0):
            raise ValueError(f"Traffic Manager probes every 10s or 30s, not every {value:g}s")
        return value

    @field_validator("timeout")
    @classmethod
    def _whole_timeout(cls, value: float) -> float:
        return _whole_seconds(value, "the monitor timeout")

    @model_validator(mode="after")
    def _azure_limits(self) -> Monitor:
        high = 9.0 if self.interval == 10.0 else 10.0
        if not 5.0 <= self.timeout <= high:
            raise ValueError(f"with interval {self.interval:.0f}s the timeout must be 5s to {high:.0f}s")
        return self


class TrafficManager(_Model):
    fqdn: str = "shop.trafficmanager.net"
    routing: Literal["Priority", "Weighted"] = "Priority"
    ttl: Duration = 30.0
    """The TTL of the profile's answers: whole seconds, 0 to 2^31-1 as Azure takes them."""
    monitor: Monitor = Monitor()

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: float) -> float:
        _whole_seconds(value, "the TTL")
        if value > MAX_TTL_S:
            raise ValueError(f"the TTL must be at most {MAX_TTL_S}s (2^31-1), not {value:g}s")
        return value


class Topology(_Model):
    """The whole lab design."""

    time_scale: float = Field(default=30.0, alias="timeScale", gt=0, le=1000)
    regions: dict[str, Region] = Field(
        default_factory=lambda: {"us": Region(priority=1), "eu": Region(priority=2)}, min_length=1)
    workloads: list[Workload] = Field(default_factory=lambda: [
        Workload(namespace="shop", name="web", replicas=3, role="app", pdb=Disruption(min_available=2)),
        Workload(namespace="ingress-nginx", name="ingress-nginx-controller", replicas=2, role="ingress"),
    ])
    daemon_sets: list[DaemonSet] = Field(
        default_factory=lambda: [DaemonSet(namespace="kube-system", name="node-agent")], alias="daemonSets")
    node_failure_timeout: Duration = Field(default=300.0, alias="nodeFailureTimeout")
    """How long pods stay bound to a NotReady node before they are replaced (tolerationSeconds 300)."""
    termination_time: Duration = Field(default=2.0, alias="terminationTime")
    """How long a deleted pod takes to exit (well within its grace period)."""
    traffic_manager: TrafficManager = Field(default_factory=TrafficManager, alias="trafficManager")

    @field_validator("node_failure_timeout")
    @classmethod
    def _whole_toleration(cls, value: float) -> float:
        return _whole_seconds(value, "the node failure timeout (a pod's tolerationSeconds)")

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, Region]) -> dict[str, Region]:
        for name in value:
            if not _REGION_NAME.fullmatch(name):
                raise ValueError(f"region name {name!r} must be a DNS label: lower-case letters, digits and "
                                 "'-', starting with a letter (it names the endpoint's DNS target and the "
                                 "kubeconfig context)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        roles = [w.role for w in self.workloads]
        if roles.count("app") != 1 or roles.count("ingress") != 1:
            raise ValueError("workloads need exactly one with role 'app' and one with role 'ingress'")
        for w in self.workloads:
            for zone in w.zones or []:
                if not any(zone in r.zones for r in self.regions.values()):
                    raise ValueError(f"workload {w.namespace}/{w.name}: no region has zone {zone!r}")
        priorities = [r.priority for r in self.regions.values()]
        if len(set(priorities)) != len(priorities):
            raise ValueError("each region needs its own Traffic Manager priority")
        return self

    @property
    def app(self) -> Workload:
        return next(w for w in self.workloads if w.role == "app")

    @property
    def ingress(self) -> Workload:
        return next(w for w in self.workloads if w.role == "ingress")


DEFAULT = Topology()


def load_topology(path: str | Path | None) -> Topology:
    """The default topology, changed by the file at ``path`` if one is given."""
    if path is None:
        return DEFAULT
    doc = load(path)
    if doc.data is None:
        return DEFAULT
    if not isinstance(doc.data, dict):
        raise SourceError(SourceLocation(str(path), 1, 1), "a topology file is a mapping",
                          hint="for example 'trafficManager: {ttl: 300s}'")
    merged = _merge(DEFAULT.model_dump(by_alias=True), doc.data)
    try:
        return Topology.model_validate(merged)
    except ValidationError as exc:
        raise validation_errors(doc, exc, vocabulary=field_names(Topology)) from exc


def _url_path(value: str, what: str) -> str:
    if not value.startswith("/") or any(c.isspace() or c in "?#" for c in value):
        raise ValueError(f"{what} is an absolute URL path like /healthz, not {value!r}")
    return value


def _whole_seconds(value: float, what: str) -> float:
    """Traffic Manager takes its times as integer seconds."""
    if value != int(value):
        raise ValueError(f"{what} is a whole number of seconds, not {value:g}s")
    return value


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in override.items()}}
    return override
