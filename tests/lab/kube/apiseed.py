"""A small seeded region for the API server tests: six nodes in three zones, ``shop/web`` (three
Ready pods, one per zone, behind a PodDisruptionBudget), a DaemonSet ``kube-system/agent`` with a pod
on every node; and a kubeconfig for it."""

from __future__ import annotations

import base64
import random
from pathlib import Path

from drills.lab.kube.disruption import budget
from drills.lab.kube.store import (
    DAEMONSETS,
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PDBS,
    PODS,
    REPLICASETS,
    Obj,
    Store,
)

TOKEN = "lab-token-for-tests"
ZONES = ("eastus-1", "eastus-2", "eastus-3")
NODE_NAMES = tuple(f"aks-pool-{zone[-1]}{suffix}" for zone in ZONES for suffix in "ab")
WEB_RS = "web-6d4cf56db6"
WEB_PODS = (f"{WEB_RS}-k7x2p", f"{WEB_RS}-m9q4z", f"{WEB_RS}-t5w8n")
"""One per zone, on the first node of each zone."""


def node(name: str, zone: str, index: int) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              "topology.kubernetes.io/zone": zone,
                                              "node-role.kubernetes.io/agent": ""}},
        "spec": {"podCIDR": f"10.244.{index}.0/24"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": f"10.224.0.{index + 4}"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Ubuntu 22.04.5 LTS",
                         "kernelVersion": "5.15.0-1079-azure", "containerRuntimeVersion": "containerd://1.7.25",
                         "architecture": "amd64", "operatingSystem": "linux", "bootID": "", "machineID": "",
                         "systemUUID": "", "kubeProxyVersion": ""},
        },
    }


def running_pod(name: str, namespace: str, node_name: str, ip: str, *, labels: dict[str, str],
                owner: tuple[str, str, str]) -> Obj:
    kind, owner_name, api_version = owner
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": owner_name,
                                          "uid": f"uid-{owner_name}", "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "nginx:1.27", "imageID": "", "ready": True,
                                   "started": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": "2026-11-22T03:00:00Z"}}}],
        },
    }


def seed(store: Store) -> None:
    """Fill ``store`` with the region described in the module docstring."""
    for ns in ("default", "kube-system", "shop"):
        store.create(NAMESPACES, {"metadata": {"name": ns}, "status": {"phase": "Active"}})
    for index, name in enumerate(NODE_NAMES):
        store.create(NODES, node(name, ZONES[index // 2], index))
    selector = {"matchLabels": {"app": "web"}}
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}
    store.create(DEPLOYMENTS, {
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": selector, "template": template},
        "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                   "availableReplicas": 3}})
    store.create(REPLICASETS, {
        "metadata": {"name": WEB_RS, "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": selector, "template": template},
        "status": {"replicas": 3, "readyReplicas": 3}})
    for index, name in enumerate(WEB_PODS):
        store.create(PODS, running_pod(name, "shop", NODE_NAMES[2 * index], f"10.244.{2 * index}.10",
                                       labels={"app": "web"}, owner=("ReplicaSet", WEB_RS, "apps/v1")))
    store.create(DAEMONSETS, {
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "agent", "image": "agent:1.0"}]}}},
        "status": {"desiredNumberScheduled": 6, "currentNumberScheduled": 6, "numberReady": 6,
                   "updatedNumberScheduled": 6, "numberAvailable": 6}})
    for index, name in enumerate(NODE_NAMES):
        store.create(PODS, running_pod(f"agent-{name[-2:]}", "kube-system", name, f"10.224.0.{index + 4}",
                                       labels={"app": "agent"}, owner=("DaemonSet", "agent", "apps/v1")))
    create_pdb(store, min_available=2)


def create_pdb(store: Store, *, min_available: int) -> Obj:
    store.create(PDBS, {"metadata": {"name": "web", "namespace": "shop"},
                        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}}}})
    return refresh_pdb_status(store, "web")


def refresh_pdb_status(store: Store, name: str) -> Obj:
    """What the disruption controller would write into the budget's status."""
    pdb = store.get(PDBS, "shop", name)
    status = budget(store, pdb)

    def write(obj: Obj) -> None:
        obj["status"] = {"currentHealthy": status.current_healthy, "desiredHealthy": status.desired_healthy,
                         "expectedPods": status.expected_pods,
                         "disruptionsAllowed": status.disruptions_allowed}

    return store.mutate(PDBS, "shop", name, write)


def kubeconfig(path: Path, url: str, *, ca_pem: bytes | None = None, token: str = TOKEN,
               namespace: str = "default") -> Path:
    """A kubeconfig with one context, ``lab``, whose user presents ``token`` and trusts ``ca_pem``."""
    ca = f"    certificate-authority-data: {base64.b64encode(ca_pem).decode()}\n" if ca_pem else ""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: lab\n  cluster:\n    server: {url}\n{ca}"
        f"users:\n- name: lab\n  user:\n    token: {token}\n"
        f"contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\n    namespace: {namespace}\n"
        "current-context: lab\n")
    return path


def loopback() -> str:
    """A random loopback address, away from the blocks labs pick (``127.20-250.x.x``)."""
    return f"127.{random.randint(1, 19)}.{random.randint(0, 255)}.{random.randint(2, 250)}"
