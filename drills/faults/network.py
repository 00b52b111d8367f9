"""Network faults: ``isolate`` cuts the pods a selector picks off from every ingress connection.

It creates a deny-all ingress NetworkPolicy over those pods (policy type Ingress, no rules); undo
deletes it. The policy's name is chosen when the fault is prepared, so that the journal holds it
before it exists, and it carries ``app.kubernetes.io/managed-by: drill`` so that a person can find
what a crashed drill left behind.
"""

from __future__ import annotations

import secrets
from typing import ClassVar

from kubernetes.client import ApiException, V1NetworkPolicy, V1NetworkPolicySpec, V1ObjectMeta
from pydantic import ConfigDict

from drills.errors import FaultError
from drills.faults.base import AzureRole, Permission, Undo
from drills.faults.kube import (
    MANAGED_BY,
    RUN_LABEL,
    FaultParams,
    Selector,
    call,
    call_unless_gone,
    object_name,
    parse_selector,
    region,
)
from drills.targets import Targets


class Isolate:
    """Deny every ingress connection to the pods a selector picks."""

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...]] = (
        Permission("list", "pods"),
        Permission("create", "networkpolicies", "networking.k8s.io"),
        Permission("delete", "networkpolicies", "networking.k8s.io"),
    )

    name: ClassVar[str] = "isolate"

    class Params(FaultParams):
        model_config = ConfigDict(title="isolate")

        cluster: str
        """The region whose pods are isolated."""
        namespace: str
        """The namespace of the pods (and of the policy)."""
        selector: Selector
        """A label selector, as kubectl takes it (``app=web``); it becomes the policy's podSelector."""

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        kube = region(targets, p.cluster)
        found = await call(kube, kube.core.list_namespaced_pod, p.namespace, label_selector=p.selector,
                           what=f"list the pods {p.selector} in {p.cluster}/{p.namespace}")
        if not found.items:
            raise FaultError(f"isolate: no pod matches {p.selector!r} in {p.cluster}/{p.namespace}")
        name = f"drill-isolate-{secrets.token_hex(3)}"
        return Undo(fault=self.name, region=p.cluster,
                    summary=f"deny all ingress to the {len(found.items)} pods {p.selector} in "
                            f"{p.cluster}/{p.namespace} (NetworkPolicy {name})",
                    objects=[object_name(p.cluster, "NetworkPolicy", p.namespace, name)],
                    data={"namespace": p.namespace, "policy": name, "selector": p.selector,
                          "pods": sorted(f"{p.namespace}/{pod.metadata.name}" for pod in found.items)})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        kube = targets.kube(undo.region)
        namespace, name = undo.data["namespace"], undo.data["policy"]
        policy = V1NetworkPolicy(
            api_version="networking.k8s.io/v1", kind="NetworkPolicy",
            metadata=V1ObjectMeta(name=name, namespace=namespace, labels=_labels(targets)),
            spec=V1NetworkPolicySpec(pod_selector=parse_selector(undo.data["selector"]),
                                     policy_types=["Ingress"]))
        try:
            await call(kube, kube.networking.create_namespaced_network_policy, namespace, policy,
                       what=f"create NetworkPolicy {undo.region}/{namespace}/{name}")
        except FaultError as exc:
            # The name is ours alone (chosen at random in prepare): if it exists, a retry already made it.
            if not (isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 409):
                raise

    async def revert(self, targets: Targets, undo: Undo) -> None:
        kube = targets.kube(undo.region)
        namespace, name = undo.data["namespace"], undo.data["policy"]
        await call_unless_gone(kube, kube.networking.delete_namespaced_network_policy, name, namespace,
                               what=f"delete NetworkPolicy {undo.region}/{namespace}/{name}")

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """The kubectl arguments that undo it, for a person when drill could not."""
        return f"-n {undo.data['namespace']} delete networkpolicy {undo.data['policy']}"


def _labels(targets: Targets) -> dict[str, str]:
    """drill's label, and the run's mark when a run injects it (so that a lost run's policy is found)."""
    run_id = getattr(targets, "run_id", None)
    return {**MANAGED_BY, **({RUN_LABEL: run_id} if run_id else {})}
