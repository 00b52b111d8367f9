"""Environments: where a scenario runs.

An environment file names, per region, the Kubernetes cluster (kubeconfig and context) and its
ingress controller, the Traffic Manager profile users resolve (FQDN, the name servers to ask, the
endpoint serving each region), how users reach the service after resolving, the time scale (1 for
real environments), and blast-radius limits. ``drill lab up`` writes one for the lab it started;
driving a lab through that file is exactly the production code path. Credentials never live here:
they come from the kubeconfig and the usual Azure places.

Example::

    apiVersion: drill/v1
    kind: Environment
    name: prod
    timeScale: 1
    regions:
      us:
        kubeconfig: ~/.kube/config
        context: aks-shop-us
        ingress: {namespace: ingress-nginx, deployment: ingress-nginx-controller}
        endpoint: shop-us               # Traffic Manager endpoint name
        target: shop-us.eastus.cloudapp.azure.com
      eu: {...}
    trafficManager:
      fqdn: shop.trafficmanager.net
      nameservers: ["tm1.trafficmanager.net:53"]
      ttl: 30s                          # optional: the profile's settings, which the design review
      routing: Priority                 # predicts from (unknown when absent)
      monitor: {protocol: HTTP, path: /healthz, interval: 10s, timeout: 5s, toleratedFailures: 3,
                expectedStatusCodeRanges: [{min: 200, max: 299}]}
      geographicFallback: none          # Geographic routing: none (a plain profile) or priority (nested)
      vantagePoints: {us: 198.51.100.0/24, eu: 203.0.113.0/24}   # where each region's users ask from
    service: {scheme: https, port: 443}
    limits: {maxNodes: 20, maxPods: 200, protectedNamespaces: [kube-system]}   # docs/environment.md
    azure: {subscription: 00000000-0000-0000-0000-000000000000}
    cosmos:
      account: shop-db
      endpoint: https://shop-db.documents.azure.com:443/
      resourceGroup: rg-shop-data
      database: shop
      container: drill-canary
      locations: {us: East US, eu: West Europe}
      keyEnv: COSMOS_KEY                # or none: Microsoft Entra ID

and per region ``nodePools: [{resourceGroup: MC_rg_aks-us_eastus, scaleSet: aks-nodepool1-vmss}]``, the
scale sets ``zone-down`` may power off.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from drills.errors import SourceError, SourceLocation
from drills.units import Duration
from drills.yamlsource import field_names, load, validation_errors


class _Model(BaseModel):
    # allow_inf_nan: .inf or .nan in a file is a mistake, said as such (not "should be <= 1000").
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Workload(_Model):
    """A deployment, by namespace and name."""

    namespace: str
    deployment: str


class NodePool(_Model):
    """An Azure VM scale set whose instances are a region's nodes (an AKS node pool)."""

    resource_group: str = Field(alias="resourceGroup")
    """The node resource group (``MC_...`` for AKS)."""
    scale_set: str = Field(alias="scaleSet")
    subscription: str | None = None
    """None: ``azure.subscription``."""


class Region(_Model):
    """One region: its cluster and how Traffic Manager knows it."""

    kubeconfig: str | None = None
    """Path of the kubeconfig; None means the default ($KUBECONFIG or ~/.kube/config)."""
    context: str
    ingress: Workload
    """The ingress controller whose loss takes the region out of service (kill-ingress)."""
    endpoint: str
    """The Traffic Manager endpoint that sends users to this region."""
    target: str
    """The host name that endpoint answers with (the CNAME target), which tells DNS probes the region."""
    node_pools: list[NodePool] = Field(default_factory=list, alias="nodePools")
    """The scale sets of the cluster's nodes: the only ones ``zone-down`` may power off."""


VANTAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
"""A vantage point's name: it becomes a metric's key (``dns.failover_time.us``)."""


def check_vantage_points(value: dict[str, str]) -> dict[str, str]:
    """Vantage points (name -> client subnet), as an environment or a probe's spec gives them. Raises
    ValueError."""
    for name, subnet in value.items():
        if not VANTAGE_NAME.fullmatch(name):
            raise ValueError(f"vantage point {name!r}: use lower-case letters, digits, '-' and '_'")
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise ValueError(f"vantage point {name!r}: {subnet!r} is not a subnet like "
                             "203.0.113.0/24") from None
    return value


Routing = Literal["Priority", "Weighted", "Performance", "Geographic", "MultiValue", "Subnet"]
"""Traffic Manager's routing methods."""


class StatusCodeRange(_Model):
    """HTTP status codes a monitor counts as healthy, ``min`` to ``max`` inclusive."""

    min: int = Field(ge=100, le=599)
    max: int = Field(ge=100, le=599)

    @model_validator(mode="after")
    def _ordered(self) -> StatusCodeRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class Monitor(_Model):
    """Traffic Manager's endpoint monitoring, in Azure's terms (its ``monitorConfig``)."""

    protocol: Literal["HTTP", "HTTPS", "TCP"] = "HTTP"
    path: str = "/"
    """The path an HTTP(S) monitor requests."""
    port: int | None = Field(default=None, ge=1, le=65535)
    """The port probed; None: the service's port."""
    interval: Duration = 30.0
    """Seconds between probes (Azure: 30 or 10)."""
    timeout: Duration = 10.0
    """How long a probe may take before it counts as failed (Azure: 5 to 10 s, 5 to 9 s at interval 10)."""
    tolerated_failures: int = Field(default=3, alias="toleratedFailures", ge=0, le=9)
    """Failed probes tolerated before the endpoint is Degraded: it is on the (N+1)th in a row."""
    expected_status_code_ranges: list[StatusCodeRange] = Field(default_factory=list,
                                                               alias="expectedStatusCodeRanges")
    """The status codes counted as healthy; empty: 200 only."""

    def healthy(self, status: int) -> bool:
        """Whether an answer with ``status`` counts as a successful probe."""
        ranges = self.expected_status_code_ranges or [StatusCodeRange(min=200, max=200)]
        return any(r.min <= status <= r.max for r in ranges)


class TrafficManager(_Model):
    fqdn: str
    """The name users resolve."""
    nameservers: list[str] = Field(min_length=1)
    """``host:port`` of the authoritative servers to ask (port 53 if omitted)."""
    subscription: str | None = None
    resource_group: str | None = Field(default=None, alias="resourceGroup")
    profile: str | None = None
    ttl: Duration | None = None
    """The TTL of the profile's answers; None: not stated (the design review says it cannot tell)."""
    routing: Routing | None = None
    monitor: Monitor | None = None
    """The endpoint monitor settings; None: not stated."""
    geographic_fallback: Literal["none", "priority"] | None = Field(default=None, alias="geographicFallback")
    """Geographic routing: ``none`` (each geography's one endpoint is answered even when Degraded: its
    users are never moved) or ``priority`` (each region's endpoint is a nested Priority profile that
    answers the next endpoint meanwhile); None: not stated, which is a plain profile's ``none``."""
    vantage_points: dict[str, str] = Field(default_factory=dict, alias="vantagePoints")
    """Named client subnets where users ask from (``us: 198.51.100.0/24``): a scenario's ``dns`` and
    ``http`` probes take them by name (``vantage: [us, eu]``). A vantage point named after a region is
    that region's users (Performance routing: closest to it; Geographic: mapped to its endpoint)."""

    @field_validator("vantage_points")
    @classmethod
    def _vantage_points(cls, value: dict[str, str]) -> dict[str, str]:
        return check_vantage_points(value)


class Azure(_Model):
    """How drill reaches Azure Resource Manager. Credentials are never here: ``DefaultAzureCredential``
    finds them (environment variables, a managed identity, ``az login``), or a lab's token file."""

    subscription: str | None = None
    """The subscription of every resource that does not name its own."""
    arm_endpoint: str = Field(default="https://management.azure.com", alias="armEndpoint")
    ca_file: str | None = Field(default=None, alias="caFile")
    """A CA bundle to trust for ARM and Cosmos DB besides the system's (a lab's own CA)."""

    @field_validator("arm_endpoint")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"armEndpoint must be an https:// URL (Azure sends tokens only over TLS), "
                             f"not {value!r}")
        return value.rstrip("/")


Consistency = Literal["Strong", "BoundedStaleness", "Session", "ConsistentPrefix", "Eventual"]
"""Cosmos DB's consistency levels."""


class Cosmos(_Model):
    """The Cosmos DB account whose replication a drill measures and fails over."""

    account: str
    endpoint: str
    """The account's endpoint (``https://<account>.documents.azure.com:443/``)."""
    database: str
    container: str
    """The container the replication probe writes its canaries to (partition key ``/pk``)."""
    locations: dict[str, str] = Field(min_length=1)
    """Each drill region's Cosmos DB location name (``us: East US``)."""
    subscription: str | None = None
    """None: ``azure.subscription``."""
    resource_group: str | None = Field(default=None, alias="resourceGroup")
    key_env: str | None = Field(default=None, alias="keyEnv")
    """The environment variable holding the account key; None: Microsoft Entra ID through
    ``DefaultAzureCredential`` (the data-plane role must be granted)."""
    consistency: Consistency | None = None
    """The account's default consistency level, as in the portal (optional: the design review predicts
    lost writes from it, and says it cannot tell when it is not stated)."""


class Service(_Model):
    """How a user reaches the application once the name is resolved."""

    scheme: Literal["http", "https"] = "https"
    port: int = Field(default=443, ge=1, le=65535)
    path: str = "/"


class Limits(_Model):
    """Blast radius: a scenario that would touch more than this is refused before anything is done.

    The limits hold for the whole scenario at its worst moment, every fault in effect then counted
    together (:mod:`drills.blast`); each fault is also held to ``maxNodes`` and ``maxPods`` on its own
    when it is prepared again just before it is applied, against the world as it is then.
    """

    max_nodes: int = Field(default=50, alias="maxNodes", ge=0)
    """Distinct nodes cordoned, drained or powered off at once, over every region."""
    max_pods: int = Field(default=500, alias="maxPods", ge=0)
    """Distinct pods evicted, deleted, scaled away or isolated at once, over every region."""
    protected_namespaces: list[str] = Field(default_factory=lambda: ["kube-system"],
                                            alias="protectedNamespaces")
    """Namespaces no fault may change an object in (a pod, a deployment, a policy)."""
    allowed_faults: list[str] | None = Field(default=None, alias="allowedFaults")
    """The fault kinds a scenario may use; None: every installed one."""
    allow_all_regions_down: bool = Field(default=False, alias="allowAllRegionsDown")
    """Whether the faults may take every region's front door (its ingress or Traffic Manager
    endpoint) away at once, which is an outage of the whole service."""


class Lab(_Model):
    """Present only in the files that ``drill lab up`` writes. Saying so proves nothing: an environment
    is a lab only when its API servers prove it (:mod:`drills.labproof`)."""

    ground_truth: str = Field(alias="groundTruth")
    """The lab's JSON-lines log of every change it made or saw, with real and lab time."""
    pid: int | None = None
    arm_token_file: str | None = Field(default=None, alias="armTokenFile")
    """The lab's ARM bearer token (the lab's stand-in for a Microsoft Entra ID token)."""
    cosmos_key_file: str | None = Field(default=None, alias="cosmosKeyFile")
    """The lab's Cosmos DB account key."""
    proof_file: str | None = Field(default=None, alias="proofFile")
    """The lab's proof key, with which its API servers prove that they are the lab's."""


class Environment(_Model):
    """A parsed environment file."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    time_scale: float = Field(default=1.0, alias="timeScale", gt=0)
    """How much faster than real time the environment's clock runs: 1 unless it is a lab."""
    regions: dict[str, Region] = Field(min_length=1)
    traffic_manager: TrafficManager = Field(alias="trafficManager")
    service: Service = Service()
    limits: Limits = Limits()
    azure: Azure | None = None
    cosmos: Cosmos | None = None
    lab: Lab | None = None
    vars: dict[str, str] = Field(default_factory=dict)
    """Free values a scenario may use as ``{{ env.NAME }}`` (besides ``name`` and ``fqdn``)."""
    path: str = Field(default="", exclude=True)
    """Where the file was read from (relative paths in it are relative to its folder)."""
    _lab_proven: bool = PrivateAttr(default=False)
    _lab_doubt: str | None = PrivateAttr(default=None)

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if value != "drill/v1":
            raise ValueError(f"apiVersion must be 'drill/v1', not {value!r}")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value != "Environment":
            raise ValueError(f"kind must be 'Environment', not {value!r}")
        return value

    def region_of_target(self, target: str) -> str | None:
        """The region whose endpoint answers with ``target`` (case and final dot ignored)."""
        wanted = target.rstrip(".").lower()
        for name, region in self.regions.items():
            if region.target.rstrip(".").lower() == wanted:
                return name
        return None

    @property
    def is_lab(self) -> bool:
        """Whether the environment proved that it is a lab (:func:`drills.labproof.prove_lab`): never
        because the file says ``lab:``. Until proven, it is a real environment."""
        return self._lab_proven

    @property
    def lab_doubt(self) -> str | None:
        """Why a file that says ``lab:`` was not taken for a lab, once :mod:`drills.labproof` checked."""
        return self._lab_doubt

    def proven_lab(self, doubt: str | None = None) -> Environment:
        """This environment as its lab proof found it: a lab when ``doubt`` is None, else a real
        environment whose file claimed a lab, for the reason ``doubt`` (only :mod:`drills.labproof`
        calls this)."""
        copy = self.model_copy()
        copy._lab_proven = doubt is None
        copy._lab_doubt = doubt
        return copy

    @model_validator(mode="after")
    def _cosmos_regions(self) -> Environment:
        if self.cosmos is not None:
            unknown = sorted(set(self.cosmos.locations) - set(self.regions))
            if unknown:
                raise ValueError(f"cosmos.locations names regions this environment does not have: "
                                 f"{', '.join(unknown)} (its regions: {', '.join(sorted(self.regions))})")
        return self


def load_environment(path: str | Path) -> Environment:
    """Read and validate an environment file; every problem is reported at its place."""
    doc = load(path)
    if not isinstance(doc.data, dict):
        raise SourceError(SourceLocation(str(path), 1, 1), "an environment file is a mapping",
                          hint="start with 'apiVersion: drill/v1' and 'kind: Environment'")
    try:
        env = Environment.model_validate({**doc.data, "path": str(Path(path).resolve())})
    except ValidationError as exc:
        raise validation_errors(doc, exc, vocabulary=field_names(Environment)) from exc
    base = Path(path).resolve().parent

    def resolved(file: str | None) -> str | None:
        return str(base / Path(file).expanduser()) if file else None

    regions = {name: r.model_copy(update={"kubeconfig": resolved(r.kubeconfig)})
               for name, r in env.regions.items()}
    update: dict[str, object] = {"regions": regions}
    if env.azure is not None:
        update["azure"] = env.azure.model_copy(update={"ca_file": resolved(env.azure.ca_file)})
    if env.lab is not None:
        update["lab"] = env.lab.model_copy(update={"arm_token_file": resolved(env.lab.arm_token_file),
                                                   "cosmos_key_file": resolved(env.lab.cosmos_key_file),
                                                   "proof_file": resolved(env.lab.proof_file)})
    return env.model_copy(update=update)
