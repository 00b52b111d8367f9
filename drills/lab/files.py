"""The files a started lab writes for its users: the environment file, the kubeconfig, the Cosmos key.

They are what a real environment would give drill: the environment file in the format of
``drills/environment.py`` (read by ``drill run --env FILE``), the kubeconfig that ``kubectl`` and the
``kubernetes`` client load, with one context per region (``lab-us``, ``lab-eu``) and the lab's token,
and the Cosmos DB account's master key (base64, mode 0600), which the environment file points at
(``lab.cosmosKeyFile``) as a real one names where the key comes from, never the key itself.
The lab may not import the runner side (import-linter), so the environment file is written here as
plain data; a test checks that ``drills.environment.load_environment`` accepts it.

Each file is written to a temporary name and renamed, so that a reader never sees half of one.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from drills.lab import resources
from drills.lab.topology import Topology

ENVIRONMENT_FILE = "environment.yaml"
KUBECONFIG_FILE = "kubeconfig"
GROUND_TRUTH_FILE = "ground-truth.jsonl"
ARM_TOKEN_FILE = "arm.token"
COSMOS_KEY_FILE = "cosmos.key"
PROOF_FILE = "lab.proof"
"""The lab's proof key (hex, mode 0600): the environment file's ``lab.proofFile``."""
IDENTITIES_DIR = "identities"
"""Where the kubeconfig and environment file of each RBAC identity go."""
TARGET_DOMAIN = "endpoints.drill.test"
"""Traffic Manager endpoint targets are ``<region>.endpoints.drill.test`` (a reserved test domain)."""


@dataclass(frozen=True)
class RegionAddress:
    """Where one region of a started lab listens."""

    name: str
    address: str
    """The region's own loopback address: its API server and its ingress listen there."""
    api_port: int
    cosmos_port: int | None = None
    """Where the region's Cosmos DB location serves its REST API (HTTPS), on the same address."""

    @property
    def api_url(self) -> str:
        """The API server's URL: HTTPS, with the lab's own CA (:mod:`drills.lab.certs`)."""
        return f"https://{self.address}:{self.api_port}"

    @property
    def context(self) -> str:
        """The kubeconfig context (and cluster and user) of the region."""
        return f"lab-{self.name}"

    @property
    def target(self) -> str:
        """The host name Traffic Manager answers with for this region's endpoint."""
        return f"{self.name}.{TARGET_DOMAIN}"


@dataclass(frozen=True)
class LabAddresses:
    """Every socket of a started lab that a user reaches."""

    regions: tuple[RegionAddress, ...]
    """In topology order; the first is the kubeconfig's current context."""
    service_port: int
    """The one port every region's ingress listens on (users connect to it after resolving)."""
    dns_address: str
    dns_port: int
    arm_url: str
    """The lab's Azure Resource Manager endpoint (``https://host:port``)."""
    cosmos_port: int | None = None
    """The Cosmos DB account's global endpoint, on the first region's address."""

    def region(self, name: str) -> RegionAddress:
        return next(r for r in self.regions if r.name == name)

    @property
    def nameserver(self) -> str:
        return f"{self.dns_address}:{self.dns_port}"


def write_kubeconfig(path: Path, addresses: LabAddresses, *, token: str, ca_pem: bytes) -> None:
    """A kubeconfig with a cluster, a user and a context named ``lab-<region>`` per region; the
    clusters trust the lab's CA (``ca_pem``)."""
    regions = addresses.regions
    ca_data = base64.b64encode(ca_pem).decode("ascii")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": r.context,
                      "cluster": {"server": r.api_url, "certificate-authority-data": ca_data}}
                     for r in regions],
        "users": [{"name": r.context, "user": {"token": token}} for r in regions],
        "contexts": [{"name": r.context, "context": {"cluster": r.context, "user": r.context}}
                     for r in regions],
        "current-context": regions[0].context,
        "preferences": {},
    }
    _write(path, config, header="Written by `drill lab up`; valid while that lab runs.", mode=0o600)


def write_cosmos_key(path: Path, key: str) -> None:
    """The Cosmos DB account's master key, readable by its owner only."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    partial.replace(path)


def write_environment(path: Path, addresses: LabAddresses, *, topology: Topology, kubeconfig: Path,
                      ground_truth: Path, pid: int, ca: Path, arm_token: Path,
                      cosmos_key: Path | None = None, proof: Path | None = None) -> None:
    """The environment file of a started lab (``drill run --env PATH`` drives the lab through it): its
    clusters, Traffic Manager profile and Azure resources, the CA its HTTPS endpoints are signed by, and
    where its ARM token is (the token itself is not in the file, as no credential is). With
    ``cosmos_key`` (the key file) and the account's global endpoint port, it names the Cosmos DB account;
    ``proof`` is the lab's proof key file, with which a reader checks that it is a lab."""
    document: dict[str, Any] = {
        "apiVersion": "drill/v1",
        "kind": "Environment",
        "name": "lab",
        "timeScale": topology.time_scale,
        "regions": {
            r.name: {
                "kubeconfig": str(kubeconfig.resolve()),
                "context": r.context,
                "ingress": {"namespace": topology.ingress.namespace, "deployment": topology.ingress.name},
                "endpoint": r.name,
                "target": r.target,
                "nodePools": [{"resourceGroup": resources.node_resource_group(r.name),
                               "scaleSet": resources.scale_set(r.name)}],
            }
            for r in addresses.regions
        },
        "trafficManager": {"fqdn": topology.traffic_manager.fqdn, "nameservers": [addresses.nameserver],
                           "resourceGroup": resources.RESOURCE_GROUP,
                           "profile": resources.traffic_manager_profile(topology.traffic_manager.fqdn),
                           **_traffic_manager_settings(topology)},
        "service": {"scheme": "http", "port": addresses.service_port, "path": "/"},
        # A lab is disposable: its system pods (the node agents a lost zone takes) may be drilled too.
        "limits": {"protectedNamespaces": []},
        "azure": {"subscription": resources.SUBSCRIPTION, "armEndpoint": addresses.arm_url,
                  "caFile": str(ca.resolve())},
    }
    lab: dict[str, Any] = {"groundTruth": str(ground_truth.resolve()), "pid": pid,
                           "armTokenFile": str(arm_token.resolve())}
    if proof is not None:
        lab["proofFile"] = str(proof.resolve())
    if cosmos_key is not None and addresses.cosmos_port is not None:
        cosmos = topology.cosmos
        document["cosmos"] = {
            "account": cosmos.account,
            "endpoint": f"https://{addresses.regions[0].address}:{addresses.cosmos_port}/",
            "database": cosmos.database,
            "container": cosmos.container,
            "locations": {r.name: topology.cosmos_location(r.name) for r in addresses.regions},
            "resourceGroup": resources.RESOURCE_GROUP,
            "consistency": cosmos.consistency,
        }
        lab["cosmosKeyFile"] = str(cosmos_key.resolve())
    document["lab"] = lab
    _write(path, document, header=f"The lab started by `drill lab up` (pid {pid}); valid while it runs.")


def write_secret(path: Path, secret: str) -> None:
    """A credential file only its owner may read."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    partial.replace(path)


def _traffic_manager_settings(topology: Topology) -> dict[str, Any]:
    """The profile's TTL, routing and monitor settings, in the environment file's terms (Azure's), and
    where each region's users ask from (``vantagePoints``: region -> its users' first subnet)."""
    tm = topology.traffic_manager
    m = tm.monitor
    monitor = {"protocol": m.protocol, "path": m.path, "interval": f"{m.interval:g}s",
               "timeout": f"{m.timeout:g}s", "toleratedFailures": m.tolerated_failures,
               "expectedStatusCodeRanges": [{"min": r.min, "max": r.max}
                                            for r in m.expected_status_code_ranges]}
    settings: dict[str, Any] = {"ttl": f"{tm.ttl:g}s", "routing": tm.routing, "monitor": monitor}
    if tm.routing == "Geographic":
        settings["geographicFallback"] = tm.geographic_fallback
    # Each region's users as a named client subnet, so that a scenario can say ``vantage: [us, eu]``.
    vantage_points = {name: r.subnets[0] for name, r in topology.regions.items() if r.subnets}
    if vantage_points:
        settings["vantagePoints"] = vantage_points
    return settings


def _write(path: Path, data: Mapping[str, Any], *, header: str, mode: int = 0o644) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keep the order a reader expects (apiVersion first)
    text = StringIO()
    text.write(f"# {header}\n")
    yaml.dump(dict(data), text)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text.getvalue())
    partial.replace(path)
