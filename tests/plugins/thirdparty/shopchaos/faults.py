"""A fault that scales a deployment down to fewer replicas, and back to what it had."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drills.faults.base import AzureRole, FaultBase, Permission, Undo

if TYPE_CHECKING:
    from drills.targets import Targets


class ShrinkDeployment(FaultBase):
    """Scale one deployment of a region down to ``replicas`` (the capacity left after a bad deploy)."""

    name: ClassVar[str] = "shrink-deployment"
    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...] | None] = (
        Permission("get", "deployments", "apps", "scale"),
        Permission("patch", "deployments", "apps", "scale"),
    )

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        cluster: str
        namespace: str
        deployment: str
        replicas: int = Field(default=1, ge=0)

    def __init__(self, params: Params) -> None:
        self.params = params

    async def prepare(self, targets: Targets) -> Undo:
        p = self.params
        kube = targets.kube(p.cluster)
        scale = await kube.call(kube.apps.read_namespaced_deployment_scale, p.deployment, p.namespace)
        return Undo(fault=self.name, region=p.cluster,
                    summary=f"scale {p.namespace}/{p.deployment} in {p.cluster} from {scale.spec.replicas} "
                            f"to {p.replicas} replicas",
                    objects=[f"{p.cluster}/Deployment/{p.namespace}/{p.deployment}"],
                    data={"namespace": p.namespace, "deployment": p.deployment,
                          "replicas": scale.spec.replicas})

    async def inject(self, targets: Targets, undo: Undo) -> None:
        await _scale(targets, undo, self.params.replicas)

    async def revert(self, targets: Targets, undo: Undo) -> None:
        # From the undo record alone: drill recover may call it with parameters it could not validate.
        await _scale(targets, undo, undo.data["replicas"])

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        d = undo.data
        return f"-n {d['namespace']} scale deployment/{d['deployment']} --replicas={d['replicas']}"


async def _scale(targets: Targets, undo: Undo, replicas: int) -> None:
    kube = targets.kube(undo.region)
    await kube.call(kube.apps.patch_namespaced_deployment_scale, undo.data["deployment"],
                    undo.data["namespace"], {"spec": {"replicas": replicas}})
