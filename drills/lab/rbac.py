"""Role-based access control in the lab's API servers: who may do what, as Kubernetes' RBAC decides it.

The topology names RBAC manifests (``rbac: [deploy/rbac]``: files, or folders of ``*.yaml``) holding
ServiceAccounts, Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, as ``kubectl apply`` would
take them. The lab gives every ServiceAccount a bearer token of its own (in a kubeconfig per identity,
:mod:`drills.lab.files`) and its API servers authorize each request of that identity as Kubernetes'
RBAC authorizer does: a request is allowed when a rule of a role bound to the user (or one of its
groups) names its verb, its API group and its resource (``pods/eviction`` for a subresource), and the
object's name when the rule lists ``resourceNames``. A RoleBinding grants within its namespace only;
a ClusterRoleBinding everywhere. ``*`` matches any verb, group or resource. Anything else is
forbidden, with Kubernetes' message. The lab's own token (the kubeconfig ``drill lab up`` writes) is
the cluster's administrator (``system:masters``) and may do everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from drills.errors import LabError

ADMIN_USER = "lab-admin"
"""The user the lab's own token stands for."""
MASTERS = "system:masters"
"""The group Kubernetes lets do everything, whatever the roles say."""
RBAC_KINDS = frozenset({"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
                        "Namespace"})
"""The kinds an RBAC manifest may hold (a Namespace for the ServiceAccounts is accepted and ignored)."""


@dataclass(frozen=True)
class User:
    """An authenticated identity: its user name and groups."""

    name: str
    groups: tuple[str, ...] = ()


ADMIN = User(ADMIN_USER, (MASTERS, "system:authenticated"))


@dataclass(frozen=True)
class Request:
    """What a request asks to do, in RBAC's terms."""

    verb: str
    """get, list, watch, create, update, patch, delete, deletecollection."""
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    """Empty: cluster-scoped, or all namespaces."""
    name: str = ""


@dataclass(frozen=True)
class Rule:
    """One ``rules:`` entry of a Role or ClusterRole."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str] = frozenset()

    def allows(self, request: Request) -> bool:
        """Whether this rule covers ``request``."""
        if not (self.verbs & {"*", request.verb}) or not (self.api_groups & {"*", request.group}):
            return False
        if not any(_resource_matches(pattern, request.resource, request.subresource)
                   for pattern in self.resources):
            return False
        return not self.resource_names or request.name in self.resource_names


@dataclass(frozen=True)
class ServiceAccount:
    """A ServiceAccount of the manifests: the identity a token stands for."""

    namespace: str
    name: str

    @property
    def user(self) -> User:
        """The user Kubernetes authenticates its tokens as."""
        return User(f"system:serviceaccount:{self.namespace}:{self.name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                     "system:authenticated"))


@dataclass
class Authorizer:
    """The roles and bindings of a set of manifests, answering "may this user do that?"."""

    service_accounts: list[ServiceAccount] = field(default_factory=list)
    _cluster_roles: dict[str, list[Rule]] = field(default_factory=dict)
    _roles: dict[tuple[str, str], list[Rule]] = field(default_factory=dict)
    _bindings: list[tuple[str | None, str, str, frozenset[tuple[str, str]]]] = field(default_factory=list)
    """(namespace or None for a ClusterRoleBinding, role kind, role name, subjects as (kind, name))."""

    @classmethod
    def from_manifests(cls, documents: Iterable[tuple[str, Mapping[str, Any]]]) -> Authorizer:
        """From ``(where, document)`` pairs; raises :class:`LabError` naming a document that is not one
        of :data:`RBAC_KINDS` or lacks what its kind needs."""
        authorizer = cls()
        for where, doc in documents:
            try:
                authorizer._add(doc)
            except LabError as exc:
                raise LabError(f"{where}: {exc}") from None
            except (KeyError, TypeError, AttributeError) as exc:
                raise LabError(f"{where}: not a valid {doc.get('kind', 'RBAC')} manifest "
                               f"(missing or malformed {exc})") from None
        return authorizer

    def allows(self, user: User, request: Request) -> bool:
        """Whether RBAC lets ``user`` do ``request``."""
        if MASTERS in user.groups:
            return True
        return any(rule.allows(request) for rule in self._rules_of(user, request.namespace))

    def rules(self, user: User, namespace: str) -> list[Rule]:
        """The rules that grant ``user`` anything in ``namespace`` (what ``kubectl auth can-i --list``
        shows): the bound roles' rules, everything for ``system:masters``, and what Kubernetes gives every
        authenticated user (``system:basic-user``: reviewing its own access)."""
        if MASTERS in user.groups:
            granted = [Rule(frozenset({"*"}), frozenset({"*"}), frozenset({"*"}))]
        else:
            granted = list(self._rules_of(user, namespace))
        return [*granted, *_BASIC_USER]

    def _rules_of(self, user: User, namespace: str) -> Iterator[Rule]:
        subjects = {("User", user.name), *(("Group", g) for g in user.groups)}
        for bound_in, kind, role, who in self._bindings:
            if not subjects & who:
                continue
            if bound_in is not None and bound_in != namespace:
                continue  # a RoleBinding grants within its namespace only
            if kind == "ClusterRole":
                yield from self._cluster_roles.get(role, [])
            elif bound_in is not None:
                yield from self._roles.get((bound_in, role), [])

    def _add(self, doc: Mapping[str, Any]) -> None:
        kind = doc.get("kind")
        if kind not in RBAC_KINDS:
            raise LabError(f"an RBAC manifest holds only {', '.join(sorted(RBAC_KINDS))}, not {kind!r}")
        meta = doc["metadata"]
        if kind == "ServiceAccount":
            self.service_accounts.append(ServiceAccount(meta.get("namespace", "default"), meta["name"]))
        elif kind == "ClusterRole":
            self._cluster_roles[meta["name"]] = [_rule(r) for r in doc.get("rules") or []]
        elif kind == "Role":
            namespace = meta.get("namespace", "default")
            self._roles[(namespace, meta["name"])] = [_rule(r) for r in doc.get("rules") or []]
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = doc["roleRef"]
            namespace = meta.get("namespace", "default")
            subjects = frozenset(_subject(s, namespace) for s in doc.get("subjects") or [])
            bound_in = namespace if kind == "RoleBinding" else None
            self._bindings.append((bound_in, ref["kind"], ref["name"], subjects))


_BASIC_USER = (
    Rule(frozenset({"create"}), frozenset({"authorization.k8s.io"}), frozenset({"selfsubjectaccessreviews"})),
    Rule(frozenset({"create"}), frozenset({"authorization.k8s.io"}), frozenset({"selfsubjectrulesreviews"})),
)


def load_manifests(paths: Iterable[str | Path]) -> Authorizer:
    """The manifests in ``paths`` (files, or folders whose ``*.yaml`` files are read in name order).

    Raises :class:`LabError` for a path that cannot be read or a document that is not RBAC.
    """
    yaml = YAML(typ="safe", pure=True)
    documents: list[tuple[str, Mapping[str, Any]]] = []
    for path in map(Path, paths):
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            try:
                loaded = list(yaml.load_all(file.read_text(encoding="utf-8")))
            except (OSError, YAMLError) as exc:
                raise LabError(f"cannot read the RBAC manifest {file}: {exc}") from exc
            for i, doc in enumerate(loaded):
                if doc is None:
                    continue
                if not isinstance(doc, Mapping):
                    raise LabError(f"{file}: document {i + 1} is not a Kubernetes object")
                documents.append((f"{file} (document {i + 1})", doc))
    return Authorizer.from_manifests(documents)


def forbidden_message(user: User, request: Request) -> str:
    """Kubernetes' message for a forbidden request, word for word."""
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    qualified = f"{request.resource}.{request.group}" if request.group else request.resource
    what = f'{qualified} "{request.name}"' if request.name else qualified
    scope = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    return (f'{what} is forbidden: User "{user.name}" cannot {request.verb} resource "{resource}" '
            f'in API group "{request.group}" {scope}')


def _resource_matches(pattern: str, resource: str, subresource: str) -> bool:
    wanted = f"{resource}/{subresource}" if subresource else resource
    if pattern in ("*", wanted):
        return True
    if subresource and pattern == f"*/{subresource}":
        return True
    return bool(subresource) and pattern == f"{resource}/*"


def _rule(rule: Mapping[str, Any]) -> Rule:
    return Rule(verbs=frozenset(rule["verbs"]), api_groups=frozenset(rule.get("apiGroups") or []),
                resources=frozenset(rule["resources"]),
                resource_names=frozenset(rule.get("resourceNames") or []))


def _subject(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str]:
    if subject["kind"] == "ServiceAccount":
        account = ServiceAccount(subject.get("namespace", binding_namespace), subject["name"])
        return "User", account.user.name
    return str(subject["kind"]), str(subject["name"])
