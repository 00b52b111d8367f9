"""The scheduler: binds pending pods to nodes, honouring taints, node affinity, resource requests and
zone spread.

A node is feasible for a pod when it is Ready, schedulable (``spec.unschedulable`` not set, or
tolerated), matches the pod's node selector and required node affinity, carries no NoSchedule or
NoExecute taint the pod does not tolerate, and has room for the pod's CPU and memory requests: its
``status.allocatable`` minus the requests of every pod bound to it that has not finished (terminating
pods included: they hold their resources until they are gone), or ``Insufficient cpu`` / ``Insufficient
memory``. Topology spread constraints then apply with the Kubernetes
semantics: domains are counted over every node that matches the pod's node affinity, tainted and
cordoned ones included (``nodeTaintsPolicy`` defaults to Ignore), with the pods that match the
constraint's selector and are not terminating. ``DoNotSchedule`` filters out nodes whose domain would
exceed ``maxSkew`` over the least loaded domain; ``ScheduleAnyway`` only prefers the least loaded
domain. Among the best nodes the one with the fewest pods wins (then the name, for repeatability).

A pod that fits nowhere stays Pending with ``PodScheduled=False`` (reason ``Unschedulable``) and a
``FailedScheduling`` event carrying the scheduler's usual summary (``0/6 nodes are available: ...``),
counted again when the same summary recurs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from drills.lab.clock import LabClock, rfc3339
from drills.lab.kube.kubelet import condition_status, set_condition
from drills.lab.kube.nodes import UNSCHEDULABLE, is_ready, tolerates
from drills.lab.kube.quantity import parse_quantity
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.selectors import LabelSelector
from drills.lab.kube.store import NODES, PODS, Obj, Store
from drills.lab.kube.workqueue import Retries

SCHEDULER_NAME = "default-scheduler"

_SPREAD_MISMATCH = "node(s) didn't match pod topology spread constraints"


class Scheduler:
    """The default scheduler of one cluster."""

    def __init__(self, store: Store, *, clock: LabClock) -> None:
        self._store = store
        self._clock = clock
        self._events = EventRecorder(store, clock=clock, component=SCHEDULER_NAME)
        self._retries = Retries(store, clock=clock, component=SCHEDULER_NAME)

    def reconcile(self, now: float) -> float | None:
        """Try every pending pod, oldest first. Nothing is ever due later: a change wakes it."""
        pending = sorted(
            (p for p in self._store.iter(PODS)
             if not (p.get("spec") or {}).get("nodeName") and not p["metadata"].get("deletionTimestamp")
             and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME),
            key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
        if not pending:
            return None
        nodes = list(self._store.iter(NODES))
        bound = [p for p in self._store.iter(PODS) if (p.get("spec") or {}).get("nodeName")
                 and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        placed = [p for p in bound if not p["metadata"].get("deletionTimestamp")]
        for pod in pending:
            self._retries.sync(pod, lambda pod=pod: self._schedule(pod, nodes, placed, bound))
        return self._retries.due()

    def _schedule(self, pod: Obj, nodes: list[Obj], placed: list[Obj], bound: list[Obj]) -> None:
        node, reasons = place(pod, nodes, placed, bound=bound)
        if node is None:
            self._unschedulable(pod, _summary(len(nodes), reasons))
            return
        self._bind(pod, node["metadata"]["name"])
        now_bound = {**pod, "spec": {**pod["spec"], "nodeName": node["metadata"]["name"]}}
        placed.append(now_bound)
        bound.append(now_bound)

    def _bind(self, pod: Obj, node: str) -> None:
        stamp = rfc3339(self._clock.wall())
        meta = pod["metadata"]

        def change(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            status = p.setdefault("status", {})
            status["phase"] = "Pending"
            set_condition(status.setdefault("conditions", []), "PodScheduled", "True", reason="", message="",
                          now=stamp)

        self._store.mutate(PODS, meta["namespace"], meta["name"], change)
        self._event(pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} "
                                                f"to {node}")

    def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        known = next((c.get("message") for c in (pod.get("status") or {}).get("conditions") or []
                      if c.get("type") == "PodScheduled"), None)
        if known == message and condition_status(pod, "PodScheduled") == "False":
            return
        stamp = rfc3339(self._clock.wall())

        def change(p: Obj) -> None:
            status = p.setdefault("status", {})
            status["phase"] = "Pending"
            set_condition(status.setdefault("conditions", []), "PodScheduled", "False",
                          reason="Unschedulable", message=message, now=stamp)

        self._store.mutate(PODS, meta["namespace"], meta["name"], change)
        self._event(pod, "Warning", "FailedScheduling", message)

    def _event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        self._events.event(pod, type_, reason, message)


def place(pod: Obj, nodes: list[Obj], placed: list[Obj], *,
          bound: list[Obj] | None = None) -> tuple[Obj | None, Counter[str]]:
    """The node the scheduler picks for ``pod`` among ``nodes`` given the ``placed`` (bound, live) pods
    and the ``bound`` ones that still hold resources (terminating ones too; default: ``placed``).

    Returns the node, or None and how many nodes failed for each reason.
    """
    reasons: Counter[str] = Counter()
    feasible: list[Obj] = []
    used: dict[str, tuple[float, float]] = {}
    for other in placed if bound is None else bound:
        cpu, memory = used.get(other["spec"]["nodeName"], (0.0, 0.0))
        more_cpu, more_memory = requests(other)
        used[other["spec"]["nodeName"]] = (cpu + more_cpu, memory + more_memory)
    for node in nodes:
        why = _filter(pod, node) or _insufficient(pod, node, used.get(node["metadata"]["name"], (0.0, 0.0)))
        if why:
            reasons.update([why] if isinstance(why, str) else why)
        else:
            feasible.append(node)
    constraints = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    soft_counts: list[tuple[str, Counter[str]]] = []
    for constraint in constraints:
        key = constraint["topologyKey"]
        counts, domains = _domain_counts(pod, constraint, nodes, placed)
        if constraint.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            soft_counts.append((key, counts))
            continue
        floor = min((counts[d] for d in domains), default=0)
        if len(domains) < int(constraint.get("minDomains") or 1):
            floor = 0
        selector = LabelSelector.from_object(constraint.get("labelSelector"))
        own = 1 if selector.matches(pod["metadata"].get("labels") or {}) else 0
        kept = []
        for node in feasible:
            domain = _labels(node).get(key)
            if domain is None or counts[domain] + own - floor > int(constraint.get("maxSkew", 1)):
                reasons[_SPREAD_MISMATCH] += 1
            else:
                kept.append(node)
        feasible = kept
    if not feasible:
        return None, reasons
    per_node = Counter(p["spec"]["nodeName"] for p in placed)

    def score(node: Obj) -> tuple[int, int, str]:
        labels = _labels(node)
        spread = sum(counts[labels[key]] for key, counts in soft_counts if key in labels)
        return spread, per_node[node["metadata"]["name"]], node["metadata"]["name"]

    return min(feasible, key=score), reasons


def affinity_matches(pod: Obj, node: Obj) -> bool:
    """The pod's node selector and required node affinity accept the node."""
    spec = pod.get("spec") or {}
    labels = _labels(node)
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(_term_matches(term, labels, fields) for term in required.get("nodeSelectorTerms") or [])


def _filter(pod: Obj, node: Obj) -> str | None:
    """Why the node cannot take the pod, in the scheduler's words, or None if it can."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(
            tolerations, {"key": UNSCHEDULABLE, "effect": "NoSchedule"}):
        return "node(s) were unschedulable"
    if not affinity_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    if not is_ready(node):
        return "node(s) were not ready"
    return None


def requests(pod: Obj) -> tuple[float, float]:
    """The pod's CPU (cores) and memory (bytes) requests: its containers' summed, or its largest init
    container's if that is more, as Kubernetes counts them."""
    spec = pod.get("spec") or {}

    def summed(containers: list[Obj]) -> tuple[float, float]:
        cpu = memory = 0.0
        for container in containers:
            asked = (container.get("resources") or {}).get("requests") or {}
            cpu += _amount(asked.get("cpu"))
            memory += _amount(asked.get("memory"))
        return cpu, memory

    cpu, memory = summed(spec.get("containers") or [])
    for init in spec.get("initContainers") or []:
        init_cpu, init_memory = summed([init])
        cpu, memory = max(cpu, init_cpu), max(memory, init_memory)
    return cpu, memory


def _insufficient(pod: Obj, node: Obj, used: tuple[float, float]) -> list[str]:
    """``Insufficient cpu`` / ``Insufficient memory`` when the pod's requests exceed what is left."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    wanted = requests(pod)
    short = []
    for resource, want, taken in zip(("cpu", "memory"), wanted, used, strict=True):
        free = allocatable.get(resource)
        if want > 0 and free is not None and taken + want > _amount(free) + 1e-9:
            short.append(f"Insufficient {resource}")
    return short


def _amount(quantity: str | int | float | None) -> float:
    if quantity is None:
        return 0.0
    try:
        return parse_quantity(quantity)
    except ValueError:
        return 0.0  # the API server stores what it is given; an unreadable request asks for nothing


def _domain_counts(pod: Obj, constraint: Obj, nodes: Iterable[Obj],
                   placed: Iterable[Obj]) -> tuple[Counter[str], set[str]]:
    """Matching pods per topology domain, over the nodes that count for this constraint."""
    key = constraint["topologyKey"]
    honor_taints = constraint.get("nodeTaintsPolicy") == "Honor"
    ignore_affinity = constraint.get("nodeAffinityPolicy") == "Ignore"
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    domain_of: dict[str, str] = {}
    for node in nodes:
        domain = _labels(node).get(key)
        if domain is None or (not ignore_affinity and not affinity_matches(pod, node)):
            continue
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") in ("NoSchedule", "NoExecute")]
        if honor_taints and not all(tolerates(tolerations, t) for t in taints):
            continue
        domain_of[node["metadata"]["name"]] = domain
    selector = LabelSelector.from_object(constraint.get("labelSelector"))
    namespace = pod["metadata"].get("namespace")
    counts: Counter[str] = Counter({d: 0 for d in domain_of.values()})
    for other in placed:
        domain = domain_of.get(other["spec"]["nodeName"])
        if domain is not None and other["metadata"].get("namespace") == namespace and \
                selector.matches(other["metadata"].get("labels") or {}):
            counts[domain] += 1
    return counts, set(domain_of.values())


def _term_matches(term: Obj, labels: dict[str, str], fields: dict[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False  # an empty term matches no node
    return all(_expression_matches(e, labels) for e in expressions) and \
        all(_expression_matches(e, fields) for e in field_expressions)


def _expression_matches(expression: Obj, labels: dict[str, str]) -> bool:
    key, op = expression["key"], expression["operator"]
    values = [str(v) for v in expression.get("values") or []]
    value = labels.get(key)
    if op == "In":
        return value in values
    if op == "NotIn":
        return value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


def _labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _summary(total: int, reasons: Counter[str]) -> str:
    parts = sorted(f"{n} {why}" for why, n in reasons.items())
    if not parts:
        return "no nodes available to schedule pods"
    return (f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes are available: "
            f"{total} Preemption is not helpful for scheduling.")
