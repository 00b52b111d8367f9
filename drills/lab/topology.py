"""The lab's topology: the design being rehearsed.

Regions and their zones, nodes (``nodeSize``: the VM's CPU and memory) and users (``load``:
requests/s they send), the workloads every region runs (replicas, zone spread, start delay, health
path, resource requests, the app's ``capacity`` in requests/s per Ready pod, PodDisruptionBudget) and
what a region changes of them (``regions.<r>.workloads``: replicas, resources, capacity), Traffic
Manager's routing, monitor settings (path, expected status code ranges, timing) and TTL, where each
region's users are (``subnets``: the client subnets their resolvers ask from, which Performance and
Geographic routing go by) and, for Geographic routing, the subnets each region's endpoint is mapped to
(``geography``) and whether a nested profile gives the mapped endpoint a fallback, how long
Kubernetes waits before replacing pods of a lost node, the Cosmos DB account (``cosmos``: names,
consistency level, replication lag as p50/p99, each region's location name, failover priorities),
the RBAC manifests its API servers enforce (``rbac: [../deploy/rbac]``, :mod:`drills.lab.rbac`),
and the time scale. Every duration is in
real-world units; the lab's clock compresses them. The built-in default is a sound design: it
passes the shipped scenarios. A topology file changes any part of it, which is how flawed designs
are rehearsed (a TTL too long, all replicas in one zone, a PDB that blocks a drain).

A file only states what differs from the default; nested mappings merge into the default's,
lists replace it::

    timeScale: 60
    trafficManager:
      ttl: 300s
      monitor: {path: /healthz, expectedStatusCodeRanges: [{min: 200, max: 299}]}
    cosmos:
      consistency: Eventual
      lag: {p50: 2s, p99: 20s}
    regions:
      eu:
        nodeSize: {cpu: 2, memory: 8Gi}
        load: 100
        workloads:
          - {namespace: shop, name: web, replicas: 2, capacity: 75}
    workloads:
      - {namespace: shop, name: web, replicas: 3, zones: [zone-1], role: app, capacity: 100,
         resources: {cpu: 500m, memory: 512Mi}, healthPath: /healthz}
      - {namespace: ingress-nginx, name: ingress-nginx-controller, replicas: 2, role: ingress}

Geography: by default the US users ask from ``198.51.100.0/24`` and the European users from
``203.0.113.0/24`` (RFC 5737's documentation ranges). With ``routing: Performance`` each user gets the
closest region (the one whose ``subnets`` hold the user's address), the next one by priority while it
is Degraded or Disabled. With ``routing: Geographic`` each user gets the endpoint whose ``geography``
(by default the region's own ``subnets``; ``WORLD`` maps every address no other region maps) holds
the user's address, the most specific mapping winning; as in Azure, a Degraded mapped endpoint is
still answered (there is no other endpoint for that geography) unless ``geographicFallback:
priority`` says the region's endpoint is a nested Priority profile holding the others as well::

    trafficManager: {routing: Geographic, geographicFallback: none}
    regions:
      us: {subnets: [198.51.100.0/24], geography: [198.51.100.0/24, WORLD]}
      eu: {subnets: [203.0.113.0/24]}
"""

from __future__ import annotations

import ipaddress
import math
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

from drills.errors import SourceError, SourceErrors, SourceLocation
from drills.lab.kube.quantity import parse_quantity
from drills.units import Duration
from drills.yamlsource import Document, field_names, load, validation_errors

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
MAX_TTL_S = 2**31 - 1
"""The largest TTL Traffic Manager takes (docs/protocol-facts.md), and DNS can carry."""

_REGION_NAME = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")

WORLD = "WORLD"
"""The geography that holds every address another mapping does not (Azure's catch-all)."""

DEFAULT_SUBNETS = {"us": ["198.51.100.0/24"], "eu": ["203.0.113.0/24"]}
"""Where the default regions' users are: RFC 5737's documentation ranges (TEST-NET-2 and -3)."""


def _subnet(value: str) -> str:
    """A client subnet in its canonical form (``198.51.100.0/24``)."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a subnet like 198.51.100.0/24") from None


def _claimed_twice(by_region: dict[str, list[str]], *, overlap: bool) -> list[tuple[str, int, str]]:
    """Each subnet a region claims that an earlier region claims too (with ``overlap``: or overlaps one
    of its subnets): (region, its index in the region's list, what clashes, in words)."""
    found: list[tuple[str, int, str]] = []
    claimed: list[tuple[str, str]] = []
    for region, subnets in by_region.items():
        for i, subnet in enumerate(subnets):
            for other, seen in claimed:
                clash = other != region and (subnet == seen or (overlap and WORLD not in (subnet, seen) and
                                                                ipaddress.ip_network(subnet).overlaps(
                                                                    ipaddress.ip_network(seen))))
                if clash:
                    same = "is" if subnet == seen else f"overlaps {seen}, which is"
                    found.append((region, i, f"{subnet} {same} also region {other}'s"))
                    break
            claimed.append((region, subnet))
    return found


class _Model(BaseModel):
    # allow_inf_nan: .inf or .nan in a file is a mistake, said as such (not "should be <= 1000").
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _quantity(value: str | int | float, what: str) -> str:
    """A Kubernetes quantity kept as written (``500m``, ``4``, ``16Gi``), checked and positive."""
    if not isinstance(value, str | int | float):
        raise ValueError(f"{what} is a Kubernetes quantity like 500m, 2, 512Mi or 16Gi, not {value!r}")
    try:
        amount = parse_quantity(value)
    except ValueError:
        raise ValueError(f"{what} is a Kubernetes quantity like 500m, 2, 512Mi or 16Gi, "
                         f"not {value!r}") from None
    if amount <= 0:
        raise ValueError(f"{what} must be more than 0, not {value!r}")
    return str(value)


class Resources(_Model):
    """A container's resource requests, in Kubernetes quantities."""

    cpu: str = "100m"
    memory: str = "128Mi"

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: str | int | float) -> str:
        return _quantity(value, "cpu")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: str | int | float) -> str:
        return _quantity(value, "memory")


class NodeSize(Resources):
    """A node's VM size: its capacity. Allocatable is what AKS leaves after its reservations."""

    cpu: str = "4"
    memory: str = "16Gi"


class WorkloadOverride(_Model):
    """What one region changes of a workload (named by namespace and name): unset fields keep it."""

    namespace: str
    name: str
    replicas: int | None = Field(default=None, ge=0, le=500)
    resources: Resources | None = None
    capacity: float | None = Field(default=None, gt=0)


class Region(_Model):
    zones: list[str] = Field(default_factory=lambda: ["zone-1", "zone-2", "zone-3"], min_length=1)
    nodes_per_zone: int = Field(default=2, alias="nodesPerZone", ge=1, le=50)
    priority: int = Field(ge=1, le=1000)
    """Traffic Manager endpoint priority (Priority routing: the lowest available wins)."""
    node_size: NodeSize = Field(default_factory=NodeSize, alias="nodeSize")
    load: float = Field(default=100.0, ge=0, le=1_000_000)
    """Requests per second the region's users send (to wherever Traffic Manager sends them)."""
    workloads: list[WorkloadOverride] = Field(default_factory=list)
    """Per-region changes of the topology's workloads (replicas, resources, capacity)."""
    subnets: list[str] = Field(default_factory=list)
    """The client subnets the region's users (their resolvers) ask from: Performance routing sends them
    to this region first, and the environment file names them as the region's vantage point."""
    geography: list[str] | None = None
    """Geographic routing: the subnets (or ``WORLD``) this region's endpoint is mapped to; None: its
    own ``subnets``."""

    @field_validator("subnets")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        return [_subnet(s) for s in value]

    @field_validator("geography")
    @classmethod
    def _geography(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [WORLD if s.upper() == WORLD else _subnet(s) for s in value]

    @property
    def mapped(self) -> list[str]:
        """The geography this region's endpoint answers for under Geographic routing."""
        return self.subnets if self.geography is None else self.geography

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
    resources: Resources = Field(default_factory=Resources)
    """Each pod's resource requests: the scheduler places a pod only where they fit."""
    capacity: float | None = Field(default=None, gt=0)
    """The app only: requests per second one Ready pod serves; past it requests fail. None: unlimited."""
    pdb: Disruption | None = None

    @model_validator(mode="after")
    def _capacity_is_the_apps(self) -> Workload:
        if self.capacity is not None and self.role != "app":
            raise ValueError("capacity (requests/s per Ready pod) is the app's: give it on the workload "
                             "with role 'app'")
        return self

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
    """Traffic Manager endpoint monitoring: interval 30 or 10 s, timeout 5-10 s, N 0-9
    (docs/protocol-facts.md)."""

    protocol: str = "HTTP"
    """Only HTTP: the lab's ingresses serve plain HTTP, so an HTTPS monitor would not be rehearsed; nor
    would TCP, since a region without ingress pods still accepts connections in the lab (and holds them),
    where Azure's load balancer drops them."""
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
    routing: Literal["Priority", "Weighted", "Performance", "Geographic"] = "Priority"
    geographic_fallback: Literal["none", "priority"] = Field(default="none", alias="geographicFallback")
    """Geographic routing only: ``none`` (Azure's plain Geographic profile: the mapped endpoint is
    answered even when Degraded) or ``priority`` (each region's endpoint is a nested Priority profile
    whose next endpoints, by priority, answer while it is Degraded or Disabled)."""
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


CONSISTENCY_LEVELS = ("Strong", "BoundedStaleness", "Session", "ConsistentPrefix", "Eventual")
"""Cosmos DB's consistency levels, strongest first (the names its APIs use)."""

DEFAULT_LOCATIONS = {"us": "East US", "eu": "West Europe"}
"""The Cosmos DB location of a lab region unless the topology names one; any other region is its own."""

_Z99 = 2.3263478740408408
"""The standard normal's 99th percentile: a log-normal's sigma is ln(p99/p50) / z99."""


class Lag(_Model):
    """How long a write takes to reach another region: a log-normal fitted to its median and 99th
    percentile (both 0: replication is instant)."""

    p50: Duration = 0.08
    p99: Duration = 0.4

    @model_validator(mode="after")
    def _ordered(self) -> Lag:
        if self.p99 < self.p50:
            raise ValueError(f"the lag's p99 ({self.p99:g}s) cannot be below its p50 ({self.p50:g}s)")
        if self.p50 == 0 and self.p99 > 0:
            raise ValueError("a lag with p50 0s is always 0s: give p50 above 0s for a p99 above it")
        return self

    @property
    def mu(self) -> float:
        """The log-normal's mu (ln of the median, in seconds)."""
        return math.log(self.p50) if self.p50 > 0 else -math.inf

    @property
    def sigma(self) -> float:
        """The log-normal's sigma."""
        return math.log(self.p99 / self.p50) / _Z99 if self.p50 > 0 else 0.0


class Cosmos(_Model):
    """The Cosmos DB account every region's app writes to: one write region, asynchronous replication."""

    account: str = "shop-db"
    database: str = "shop"
    container: str = "canary"
    partition_key: str = Field(default="/pk", alias="partitionKey")
    consistency: Literal["Strong", "BoundedStaleness", "Session", "ConsistentPrefix", "Eventual"] = "Session"
    lag: Lag = Field(default_factory=Lag)
    """From a write's commit in the write region to its apply in another region (real-world units)."""
    locations: dict[str, str] = Field(default_factory=dict)
    """Lab region -> Cosmos location name; a region not named takes :data:`DEFAULT_LOCATIONS` or its own."""
    failover_priorities: list[str] | None = Field(default=None, alias="failoverPriorities")
    """Lab regions in failover priority order (the first is the write region); None: the order of their
    Traffic Manager priorities."""

    @field_validator("account")
    @classmethod
    def _account_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{1,42}[a-z0-9])", value):
            raise ValueError(f"a Cosmos DB account name is 3-44 lower-case letters, digits and '-', "
                             f"not {value!r}")
        return value

    @field_validator("database", "container")
    @classmethod
    def _resource_name(cls, value: str) -> str:
        if not value or len(value) > 255 or any(c in value for c in "/\\?#") or value != value.strip():
            raise ValueError(f"a Cosmos DB database or container id has no '/', '\\', '?', '#' or outer "
                             f"spaces, not {value!r}")
        return value

    @field_validator("partition_key")
    @classmethod
    def _partition_key(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"the partition key is one top-level path like /pk, not {value!r}")
        return value


class Topology(_Model):
    """The whole lab design."""

    time_scale: float = Field(default=30.0, alias="timeScale", gt=0, le=1000)
    regions: dict[str, Region] = Field(
        default_factory=lambda: {"us": Region(priority=1, subnets=DEFAULT_SUBNETS["us"]),
                                 "eu": Region(priority=2, subnets=DEFAULT_SUBNETS["eu"])}, min_length=1)
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
    cosmos: Cosmos = Field(default_factory=Cosmos)
    rbac: list[str] = Field(default_factory=list)
    """RBAC manifests (files, or folders of ``*.yaml``; relative to the topology file) whose
    ServiceAccounts get tokens and whose roles the API servers enforce (:mod:`drills.lab.rbac`)."""

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
        for region, problems in self.override_problems().items():
            if problems:
                raise ValueError(f"region {region}: {problems[0][1]}")
        for region, field, _, message in self.subnet_problems():
            raise ValueError(f"region {region}'s {field}: {message}")
        self._check_cosmos()
        return self

    def subnet_problems(self) -> list[tuple[str, str, int, str]]:
        """Subnets two regions claim, which would make routing ambiguous: (region, field, index in the
        field's list, message). A user is in one region's ``subnets`` (no overlap); with Geographic
        routing a geography is mapped to one endpoint (``geography``, or the ``subnets`` it defaults
        to: no subnet twice)."""
        users = [(region, "subnets", i, f"{clash}: a user is in one region, so give each subnet to one "
                  "region's users") for region, i, clash in
                 _claimed_twice({r: s.subnets for r, s in self.regions.items()}, overlap=True)]
        if self.traffic_manager.routing != "Geographic":
            return users
        mapped = [(region, "geography" if self.regions[region].geography is not None else "subnets", i,
                   f"{clash}: Geographic routing maps each geography to exactly one endpoint")
                  for region, i, clash in
                  _claimed_twice({r: s.mapped for r, s in self.regions.items()}, overlap=False)]
        return users + mapped

    def _check_cosmos(self) -> None:
        cosmos = self.cosmos
        unknown = sorted(set(cosmos.locations) - set(self.regions))
        if unknown:
            raise ValueError(f"cosmos locations name regions the topology does not have: "
                             f"{', '.join(unknown)} (regions: {', '.join(self.regions)})")
        names = [self.cosmos_location(r) for r in self.regions]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"each region needs its own Cosmos location; shared: {', '.join(repeated)}")
        order = cosmos.failover_priorities
        if order is not None and sorted(order) != sorted(self.regions):
            raise ValueError(f"cosmos failoverPriorities lists every region once "
                             f"({', '.join(self.regions)}), not {', '.join(order) or 'none'}")

    def cosmos_location(self, region: str) -> str:
        """The Cosmos DB location name of a lab region (``us`` -> ``East US`` unless the topology says)."""
        return self.cosmos.locations.get(region) or DEFAULT_LOCATIONS.get(region, region)

    def cosmos_failover_order(self) -> list[str]:
        """The lab regions in Cosmos failover priority order: the first is the write region."""
        if self.cosmos.failover_priorities is not None:
            return list(self.cosmos.failover_priorities)
        return sorted(self.regions, key=lambda r: self.regions[r].priority)

    def override_problems(self) -> dict[str, list[tuple[int, str]]]:
        """Per region, each override (by index) that names no workload, is repeated, or gives a capacity to
        a workload other than the app."""
        known = {(w.namespace, w.name): w for w in self.workloads}
        problems: dict[str, list[tuple[int, str]]] = {}
        for region, settings in self.regions.items():
            found: list[tuple[int, str]] = []
            for i, override in enumerate(settings.workloads):
                workload = known.get((override.namespace, override.name))
                if workload is None:
                    found.append((i, f"no workload {override.namespace}/{override.name} to override (there "
                                     f"are {', '.join(f'{n}/{m}' for n, m in known)})"))
                elif override.capacity is not None and workload.role != "app":
                    found.append((i, "capacity (requests/s per Ready pod) is the app's"))
            seen = [(o.namespace, o.name) for o in settings.workloads]
            found += [(i, f"{n}/{m} is overridden twice") for i, (n, m) in enumerate(seen)
                      if seen.index((n, m)) != i]
            problems[region] = found
        return problems

    def workloads_in(self, region: str) -> list[Workload]:
        """The workloads as ``region`` runs them: its overrides applied."""
        overrides = {(o.namespace, o.name): o for o in self.regions[region].workloads}
        result: list[Workload] = []
        for workload in self.workloads:
            override = overrides.get((workload.namespace, workload.name))
            if override is not None:
                changes = {field: value for field in ("replicas", "resources", "capacity")
                           if (value := getattr(override, field)) is not None}
                workload = workload.model_copy(update=changes)
            result.append(workload)
        return result

    def app_in(self, region: str) -> Workload:
        """The app as ``region`` runs it."""
        return next(w for w in self.workloads_in(region) if w.role == "app")

    @property
    def total_load(self) -> float:
        """Requests per second all regions' users send together."""
        return sum(r.load for r in self.regions.values())

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
        topology = Topology.model_validate(merged)
        base = Path(path).resolve().parent
        return topology.model_copy(update={"rbac": [str(base / Path(p).expanduser()) for p in topology.rbac]})
    except ValidationError as exc:
        overrides = _override_errors(doc, merged) or _subnet_errors(doc, merged)
        if overrides is not None:
            raise overrides from exc
        raise validation_errors(doc, exc, vocabulary=field_names(Topology)) from exc


def _override_errors(doc: Document, merged: dict[str, Any]) -> SourceErrors | None:
    """Overrides naming no workload, each at its place (the model alone can only point at the region)."""
    try:
        unchecked = Topology.model_construct(
            workloads=[Workload.model_validate(w) for w in merged.get("workloads") or []],
            regions={name: Region.model_validate(r) for name, r in (merged.get("regions") or {}).items()})
    except (ValidationError, AttributeError, TypeError):
        return None  # other mistakes first: the pydantic errors say where
    errors = [doc.error(["regions", region, "workloads", i], message)
              for region, problems in unchecked.override_problems().items() for i, message in problems]
    return SourceErrors(errors) if errors else None


def _subnet_errors(doc: Document, merged: dict[str, Any]) -> SourceErrors | None:
    """Subnets two regions claim, each at its place (the model alone can only point at the file)."""
    try:
        unchecked = Topology.model_construct(
            traffic_manager=TrafficManager.model_validate(merged.get("trafficManager") or {}),
            regions={name: Region.model_validate(r) for name, r in (merged.get("regions") or {}).items()})
    except (ValidationError, AttributeError, TypeError):
        return None  # other mistakes first: the pydantic errors say where
    errors = [doc.error(["regions", region, field, i], f"region {region}'s {field}: {message}")
              for region, field, i, message in unchecked.subnet_problems()]
    return SourceErrors(errors) if errors else None


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
