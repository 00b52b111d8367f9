"""``drill doctor``: can this identity drill this environment? Checked before a drill finds out halfway.

Two questions, each answered by asking the environment itself, touching nothing:

- **Reachable?** Each region's Kubernetes API (``/version``), each Traffic Manager name server (a DNS
  query for the profile's name), Azure Resource Manager (reading the Traffic Manager profile) and the
  Cosmos DB account (reading it through ARM) when the environment file names them.
- **Allowed?** What drill itself reads (:data:`DRILL_READS`: probes, design review, plan), what every
  run needs (:data:`DRILL_RUN_NEEDS`: the cluster's identity, the lock's Lease) and what each fault
  needs (its class's ``PERMISSIONS``, :class:`~drills.faults.base.Permission`): one
  SelfSubjectAccessReview per verb and resource per region, cluster-wide (as the shipped ClusterRoles
  in ``deploy/rbac`` grant) unless the permission names its namespace (the lock's Role). For what is
  missing it prints the exact rules to add. Azure roles a fault needs are named but not checked (Azure
  RBAC is not queried; a lab's ARM does not model it), and a plugin fault that declares no
  ``PERMISSIONS`` is "unknown".

Faults checked: those of the scenario when one is given, else every installed fault kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from drills.azure import traffic_manager_profile
from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.errors import DrillError
from drills.faults.base import AzureRole, Permission, permissions_of
from drills.lock import LEASE_NAMESPACE
from drills.plugins import Plugins
from drills.scenario import Scenario
from drills.targets import Targets

REQUEST_TIMEOUT_S = (3.0, 10.0)
"""Connect and read timeouts (real seconds) of each Kubernetes request."""
DNS_TIMEOUT_S = 3.0

DRILL_READS: tuple[Permission, ...] = (
    Permission("list", "namespaces"),
    Permission("list", "nodes"),
    Permission("watch", "nodes"),
    Permission("list", "pods"),
    Permission("watch", "pods"),
    Permission("get", "deployments", "apps"),
    Permission("list", "deployments", "apps"),
    Permission("watch", "deployments", "apps"),
    Permission("list", "poddisruptionbudgets", "policy"),
)
"""What drill reads whatever the faults: the reachability check, the replicas probe's watches, the
design review (replicas per zone, PodDisruptionBudgets) and the takeover check."""

DRILL_RUN_NEEDS: tuple[Permission, ...] = (
    Permission("get", "namespaces"),
    *(Permission(verb, "leases", "coordination.k8s.io", namespace=LEASE_NAMESPACE)
      for verb in ("get", "create", "update", "patch")),
)
"""What every ``drill run`` needs besides the faults: the cluster's identity (the ``kube-system``
namespace's UID, :mod:`drills.identity`) and the environment's lock (:mod:`drills.lock`)."""

Outcome = Literal["ok", "missing", "unknown", "not checked"]


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis."""

    outcome: Outcome
    subject: str
    """What was checked (``region us: Kubernetes API``, ``kill-ingress``)."""
    detail: str


@dataclass
class Diagnosis:
    """Everything doctor found, and the rules that would grant what is missing."""

    reachable: list[Finding] = field(default_factory=list)
    allowed: list[Finding] = field(default_factory=list)
    missing_rules: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    """(namespace or "" for cluster-wide, API group, resource[/subresource]) -> verbs to grant."""

    @property
    def healthy(self) -> bool:
        """Whether every API answered and nothing checked is missing."""
        return all(f.outcome != "missing" for f in (*self.reachable, *self.allowed))

    def lines(self, env: Environment) -> list[str]:
        """The diagnosis as text."""
        out = [f"doctor for environment {env.name!r} ({env.path})", "reachable:"]
        out += [f"  {f.outcome:<12}{f.subject}: {f.detail}" for f in self.reachable]
        out.append("permissions (SelfSubjectAccessReview):")
        out += [f"  {f.outcome:<12}{f.subject}: {f.detail}" for f in self.allowed]
        if self.missing_rules:
            out.append("to grant what is missing, add these rules to a ClusterRole bound to this identity "
                       "(deploy/rbac/ holds roles with all of them):")
            for (namespace, group, resource), verbs in sorted(self.missing_rules.items()):
                where = [f"    # in a Role in namespace {namespace}"] if namespace else []
                out += [f'  - apiGroups: ["{group}"]', *where, f'    resources: ["{resource}"]',
                        f"    verbs: [{', '.join(sorted(verbs))}]"]
        out.append("all fine" if self.healthy else "not ready to drill: see 'missing' above")
        return out


async def diagnose(env: Environment, plugins: Plugins, scenario: Scenario | None = None) -> Diagnosis:
    """Check that ``env`` is reachable and that its identity may do what drill and the faults (of
    ``scenario``, else every installed one) need. Touches nothing."""
    diagnosis = Diagnosis()
    targets = Targets(env, ScenarioClock(env.time_scale))
    try:
        diagnosis.reachable = await _reachable(env, targets)
        needs = _needs(plugins, scenario)
        answering = {f.subject for f in diagnosis.reachable if f.outcome == "ok"}
        regions = [r for r in sorted(env.regions) if _api_subject(r) in answering]
        asked = {p for _, declared in needs for p in declared or () if isinstance(p, Permission)}
        answers = await _access(targets, regions, asked)
        for name, declared in needs:
            diagnosis.allowed.extend(_judge(name, declared, answers, regions, env, diagnosis))
    finally:
        await targets.aclose()
    return diagnosis


Needs = list[tuple[str, tuple[Permission | AzureRole, ...] | None]]
"""Who needs what: drill itself, then each fault kind (None: the fault declares nothing)."""


def _needs(plugins: Plugins, scenario: Scenario | None) -> Needs:
    kinds = sorted({s.fault for s in scenario.fault_steps()} if scenario is not None else plugins.faults)
    needs: Needs = [("drill (probes, plan)", DRILL_READS), ("drill run (identity, lock)", DRILL_RUN_NEEDS)]
    return needs + [(kind, permissions_of(plugins.faults[kind])) for kind in kinds if kind in plugins.faults]


def _api_subject(region: str) -> str:
    return f"region {region}: Kubernetes API"


def _judge(name: str, declared: tuple[Permission | AzureRole, ...] | None,
           answers: dict[tuple[str, Permission], bool], regions: list[str], env: Environment,
           diagnosis: Diagnosis) -> Iterable[Finding]:
    if declared is None:
        yield Finding("unknown", name, "the fault declares no PERMISSIONS, so what it needs is unknown")
        return
    kube = [p for p in declared if isinstance(p, Permission)]
    if kube:
        missing: dict[Permission, list[str]] = {}
        for permission in kube:
            lacking = [r for r in regions if not answers.get((r, permission), False)]
            if lacking:
                missing[permission] = lacking
                rule = (permission.namespace, permission.group, permission.rule_resource)
                diagnosis.missing_rules.setdefault(rule, set()).add(permission.verb)
        if missing:
            yield Finding("missing", name, "; ".join(f"{p.verb} {p.qualified} in {', '.join(where)}"
                                                    for p, where in missing.items()))
        elif regions:
            yield Finding("ok", name, ", ".join(f"{p.verb} {p.qualified}" for p in kube))
    for role in (p for p in declared if isinstance(p, AzureRole)):
        why = ("the lab's ARM does not model Azure RBAC" if env.is_lab
               else "Azure role assignments are not queried")
        yield Finding("not checked", name, f"needs Azure role {role.role!r} on {role.scope} ({why})")


async def _access(targets: Targets, regions: list[str],
                  permissions: set[Permission]) -> dict[tuple[str, Permission], bool]:
    """One SelfSubjectAccessReview per region and permission: whether it is allowed."""
    from kubernetes import client as k8s

    async def ask(region: str, permission: Permission) -> tuple[tuple[str, Permission], bool]:
        kube = targets.kube(region)
        review = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(verb=permission.verb, group=permission.group,
                                                         resource=permission.resource,
                                                         subresource=permission.subresource or None,
                                                         namespace=permission.namespace or None)))
        api = k8s.AuthorizationV1Api(kube.api_client)
        try:
            answer = await kube.call(api.create_self_subject_access_review, review,
                                     _request_timeout=REQUEST_TIMEOUT_S)
        except Exception:  # an API that cannot answer the review does not grant the permission
            return (region, permission), False
        return (region, permission), bool(answer.status.allowed)

    results = await asyncio.gather(*(ask(r, p) for r in regions for p in sorted(permissions, key=repr)))
    return dict(results)


async def _reachable(env: Environment, targets: Targets) -> list[Finding]:
    checks = [*(_kube_api(targets, region) for region in sorted(env.regions)),
              *(_nameserver(env, server) for server in env.traffic_manager.nameservers)]
    if env.azure is not None:
        checks.append(_arm_profile(env, targets))
        if env.cosmos is not None:
            checks.append(_cosmos_account(env, targets))
    return list(await asyncio.gather(*checks))


async def _kube_api(targets: Targets, region: str) -> Finding:
    subject = _api_subject(region)
    try:
        from kubernetes import client as k8s

        kube = targets.kube(region)
        version = await kube.call(k8s.VersionApi(kube.api_client).get_code,
                                  _request_timeout=REQUEST_TIMEOUT_S)
        where = kube.api_client.configuration.host
    except Exception as exc:  # whatever stops the call, the API is not reachable for drill
        return Finding("missing", subject, f"unreachable ({_reason(exc)})")
    return Finding("ok", subject, f"{where} answers (Kubernetes {version.git_version})")


async def _nameserver(env: Environment, server: str) -> Finding:
    import dns.asyncquery
    import dns.message
    import dns.rcode

    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
    subject = f"Traffic Manager name server {server}"
    try:
        query = dns.message.make_query(env.traffic_manager.fqdn, "A")
        answer = await dns.asyncquery.udp(query, host, timeout=DNS_TIMEOUT_S, port=int(port or 53))
    except Exception as exc:  # no answer in time, a refused port, a malformed reply: unreachable
        return Finding("missing", subject, f"no answer for {env.traffic_manager.fqdn} ({_reason(exc)})")
    rcode = dns.rcode.to_text(answer.rcode())
    return Finding("ok", subject, f"answers for {env.traffic_manager.fqdn} ({rcode})")


async def _arm_profile(env: Environment, targets: Targets) -> Finding:
    subject = "Azure Resource Manager"
    try:
        profile = traffic_manager_profile(env)
    except DrillError as exc:
        return Finding("unknown", subject, str(exc))
    try:
        client = targets.azure.traffic_manager(profile.subscription)
        await targets.azure.call(lambda: client.profiles.get(profile.resource_group, profile.name))
    except Exception as exc:  # any failure to read the profile is what a fault would meet
        return Finding("missing", subject,
                       f"cannot read Traffic Manager profile {profile.id} ({_reason(exc)})")
    return Finding("ok", subject, f"{env.azure.arm_endpoint if env.azure else ''} reads {profile.id}")


async def _cosmos_account(env: Environment, targets: Targets) -> Finding:
    cosmos = env.cosmos
    assert cosmos is not None
    subject = f"Cosmos DB account {cosmos.account}"
    if not cosmos.resource_group:
        return Finding("unknown", subject, "cosmos.resourceGroup is not set, so ARM cannot be asked")
    try:
        client = targets.azure.cosmos_db(cosmos.subscription)
        await targets.azure.call(lambda: client.database_accounts.get(cosmos.resource_group, cosmos.account))
    except Exception as exc:  # as above
        return Finding("missing", subject, f"cannot read it through ARM ({_reason(exc)})")
    return Finding("ok", subject, "readable through ARM")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
