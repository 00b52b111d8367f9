"""The names of the lab's Azure resources, as its ARM endpoint serves them and its environment file
names them.

The lab is one subscription: Traffic Manager and Cosmos DB in the resource group ``drill-lab``, each
region's nodes in an AKS-style node resource group ``MC_drill-lab_<cluster>_<location>`` holding one VM
scale set (``aks-nodepool1-<region>-vmss``) whose instances are the region's nodes, zone by zone.
Resource names compare case-insensitively, as ARM's do.
"""

from __future__ import annotations

SUBSCRIPTION = "00000000-0000-4000-8000-00000000d7a1"
"""The lab's subscription id (a fixed, obviously fake one)."""
RESOURCE_GROUP = "drill-lab"
"""The resource group of the lab's Traffic Manager profile and Cosmos DB account."""

_LOCATIONS = {"us": "eastus", "eu": "westeurope"}


def location(region: str) -> str:
    """The Azure location of a lab region (``us``: eastus, ``eu``: westeurope, others their own name)."""
    return _LOCATIONS.get(region, region)


def node_resource_group(region: str) -> str:
    """The node resource group of ``region``'s cluster, named as AKS names them."""
    return f"MC_{RESOURCE_GROUP}_aks-{region}_{location(region)}"


def scale_set(region: str) -> str:
    """The VM scale set whose instances are ``region``'s nodes."""
    return f"aks-nodepool1-{region}-vmss"


def traffic_manager_profile(fqdn: str) -> str:
    """The profile's name: the first label of its ``<name>.trafficmanager.net`` FQDN."""
    return fqdn.split(".", 1)[0]
