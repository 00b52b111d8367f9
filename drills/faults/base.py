"""What every fault is: the extension point and its undo record.

A fault is one injected failure with its exact undo. It acts in three moves, so that the runner
can journal the undo *before* anything changes and ``drill plan`` can show what would be done
while touching nothing:

1. :meth:`Fault.prepare` reads the environment and returns an :class:`Undo`: which objects the
   fault will change and what to restore them to. It changes nothing.
2. The runner writes that record to the journal (fsynced), then calls :meth:`Fault.inject`.
3. :meth:`Fault.revert` restores what the record names; it is idempotent, so that ``drill recover``
   may run it again after a crash at any point.

Faults register under the entry point group ``drill.faults``; the registered name is what a
scenario's ``fault:`` names, and the class's ``Params`` model (unknown keys forbidden) is what the
step's other keys must fit.

A fault class may declare what its identity must be allowed to do, as ``PERMISSIONS`` (a tuple of
:class:`Permission` for Kubernetes RBAC and :class:`AzureRole` for Azure): ``drill doctor`` checks
each against the environment, and the shipped ``deploy/rbac/operator.yaml`` grants exactly the
shipped faults' needs. It is optional: for a plugin that declares none, doctor says "unknown".
:class:`FaultBase` gives the optional members (``PERMISSIONS``, ``by_hand``) their defaults; a fault
class inherits it or declares them itself (the registry refuses a class lacking one, saying which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from drills.environment import Environment
    from drills.targets import Targets

COMPLETE_COMMANDS = ("az ", "kubectl ")
"""How a complete command starts: a ``by_hand`` that starts otherwise gives kubectl's arguments."""


@dataclass(frozen=True)
class Permission:
    """One Kubernetes request a fault makes, as an RBAC rule names it: ``verb`` on ``resource``
    (plural, with ``subresource``: ``pods/eviction``) of API ``group`` ("" for the core group)."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    """Where the request is made, when only one namespace (a Role, not a ClusterRole) needs to allow
    it; empty: cluster-wide."""

    @property
    def rule_resource(self) -> str:
        """The resource as an RBAC rule's ``resources`` names it: ``deployments/scale``."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def qualified(self) -> str:
        """``deployments/scale (apps)``, ``leases (coordination.k8s.io) in namespace drill``, as doctor
        prints it."""
        name = f"{self.rule_resource} ({self.group})" if self.group else self.rule_resource
        return f"{name} in namespace {self.namespace}" if self.namespace else name


@dataclass(frozen=True)
class AzureRole:
    """An Azure role a fault's identity needs on a resource (``scope`` says which, in words)."""

    role: str
    scope: str


def permissions_of(fault_class: FaultFactory) -> tuple[Permission | AzureRole, ...] | None:
    """What a fault class declares it needs; None when it declares nothing (a plugin may not)."""
    declared = fault_class.PERMISSIONS
    return tuple(declared) if declared is not None else None


@dataclass(frozen=True)
class Undo:
    """What a fault will change and how to put it back; JSON-serialisable by construction.

    ``objects`` names each object touched, for the plan, the journal and the report: a Kubernetes
    object as ``region/kind/namespace/name`` (namespace empty for cluster objects), an Azure resource
    by its resource id (``/subscriptions/...``); ``data`` holds what ``revert`` needs (recorded
    replica counts, the nodes that were schedulable before, a policy's name, an endpoint's status).
    ``region`` is the environment's region the fault strikes, empty when it names none.
    """

    fault: str
    region: str
    summary: str
    objects: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Fault(Protocol):
    """One injected failure (see the module docstring).

    Members drill reads, and when: ``Params`` when a scenario is validated; ``PERMISSIONS`` in ``drill
    doctor``; :meth:`prepare` in ``drill plan`` and before each injection; :meth:`inject` after the
    undo record is journaled; :meth:`revert` in the rollback, an ``undo`` step and ``drill recover``;
    :meth:`by_hand` wherever a person must undo it (a manual rollback, a failed revert, ``drill
    recover`` when the revert fails). An exception from prepare, inject or revert is reported with the
    step; raise :class:`~drills.errors.FaultError` (``transient=True`` when a retry may help) to say what
    went wrong in words.
    """

    name: ClassVar[str]
    """The fault's own name, written as :attr:`Undo.fault` and shown in plans, reports and ``drill
    recover``. Usually the entry point's name, but need not be: the journal records the entry point too."""
    Params: ClassVar[type[BaseModel]]
    """The step's parameters besides ``id`` and ``fault`` (forbid unknown keys; ``cluster`` or
    ``region`` names the environment's region the fault strikes)."""
    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...] | None]
    """What the fault's identity must be allowed to do, for ``drill doctor``; None: not declared."""

    async def prepare(self, targets: Targets) -> Undo:
        """Find the objects the fault will change and record how to restore them. Changes nothing:
        ``drill plan`` calls it to show what a run would do."""
        ...

    async def inject(self, targets: Targets, undo: Undo) -> None:
        """Apply the failure to the objects ``undo`` names. Called once the undo record is on disk."""
        ...

    async def revert(self, targets: Targets, undo: Undo) -> None:
        """Restore what ``undo`` names. Idempotent: safe to run twice, or after a partial inject, or in
        another process from the journaled record alone (``drill recover`` rebuilds the fault from its
        journaled parameters, which may no longer validate). Retried on a transient FaultError."""
        ...

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """How a person undoes ``undo``: a complete command (starting ``az `` or ``kubectl ``) or
        kubectl's arguments (drill adds the region's kubeconfig and context); None when it knows none.
        Pure: it reads only ``undo``."""
        ...


class FaultBase:
    """Defaults for a fault's optional members; a fault class may inherit them.

    No declared permissions (doctor says "unknown") and no command for a person (the undo record's
    objects are shown instead).
    """

    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...] | None] = None

    @staticmethod
    def by_hand(undo: Undo) -> str | None:
        """No command known."""
        return None


class FaultFactory(Protocol):
    """What the ``drill.faults`` entry point names: a class built from its parsed parameters.

    It is called with the step's ``Params`` instance for a run or a plan, and by ``drill recover`` with
    the journaled parameters; it must not do I/O (:meth:`Fault.prepare` does).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    PERMISSIONS: ClassVar[tuple[Permission | AzureRole, ...] | None]

    @staticmethod
    def by_hand(undo: Undo) -> str | None: ...

    def __call__(self, params: Any) -> Fault: ...


def undo_command(fault: Fault | FaultFactory, undo: Undo, env: Environment) -> str | None:
    """The command a person runs to undo ``undo``, if the fault class knows one.

    A fault class's ``by_hand(undo)`` returns either a complete command (``az vmss start ...``, see
    :data:`COMPLETE_COMMANDS`), used as is, or kubectl's arguments, which run against the region's
    kubeconfig and context; None when there is nothing to run, or when ``by_hand`` raises (a plugin's
    bug there must not cost the undo its journal line, nor a person the rest of the report).
    """
    try:
        args = fault.by_hand(undo)
    except Exception:
        return None
    if not args:
        return None
    if args.startswith(COMPLETE_COMMANDS):
        return args
    region = env.regions.get(undo.region)
    if region is None:
        return f"kubectl {args}"
    config = f"--kubeconfig {region.kubeconfig} " if region.kubeconfig else ""
    return f"kubectl {config}--context {region.context} {args}"
