"""The design review: from the environment's settings, the window each expectation's metric can fall in.

One outage is one sample: where in Traffic Manager's probe cycle the endpoint dies, and where in its
TTL each user's cache is, decide the value a drill measures. The review predicts, from the settings
alone, every value the design allows, and an expectation that some phase breaks fails with "the
design allows up to X" whatever the trials measured.

Traffic Manager (docs/protocol-facts.md): an endpoint is Degraded on the (N+1)th failed probe in a row, probes
come every I seconds, and a probe that hangs fails after the timeout T (one refused fails at once).
An endpoint that dies somewhere in a probe cycle is therefore detected within ``[N*I + T,
(N+1)*I + T)`` (without T for refused connections): ``dns.failover_time`` lies there, and a client's
cache may keep the old answer one TTL longer (``dns.client_failover_time``, a user's downtime). When
the fault is undone the endpoint is Online at the first successful probe once its pods are Ready:
failback within ``[start delay, start delay + I)``.

With Performance or Geographic routing the answer depends on where the user is, so the review goes
by vantage point (``dns.failover_time.us``; a plain metric by the probe's vantage points), a vantage
point named after a region being that region's users: those of a region no fault takes out are never
sent to the failed one (0 s); those of the failed region move as above, except under Geographic
routing without a fallback (``geographicFallback: none``, or not stated: a plain Geographic profile
has none), where their one mapped endpoint is answered even while Degraded, and they are never moved
while the faults last: a design that strands them, which any bound on their failover breaks.

How a fault makes Traffic Manager's probe fail is known per fault kind (:data:`FRONT_DOOR_FAULTS`):
``kill-ingress`` leaves the region's load balancer with no backend, where Azure's (and the lab's)
connections hang; so does ``zone-down`` once every zone of the region is powered off.
``disable-endpoint`` fails no probe: Traffic Manager stops answering with the endpoint at once, and
the region, still serving, keeps the users whose resolvers still hold its address.

Data (Cosmos DB): a planned failover (``region-failover``) hands the writes over only once the new write
region has them all, so it loses nothing; a forced one (``region-outage``) loses what had not been
replicated yet, unless the account is Strong (a write is acknowledged once every region has it). How
much is lost follows from the replication lag at that instant, which no setting states: the review
predicts only whether a loss is possible, so that "nothing lost" is never passed on one lucky run.

Kubernetes: a fault that takes k of a deployment's R pods away (a zone drained or its pods deleted)
leaves at least R - k ready (a drain's evictions no fewer than its PodDisruptionBudget keeps), and
replacements are Ready no sooner than the pod template's start delay. Settings the environment does
not state make a prediction "unknown", never a failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from drills.designfacts import DeploymentFacts, DesignFacts, read_facts
from drills.environment import Environment, Monitor
from drills.faults.compute import ZoneDown
from drills.faults.nodes import CordonZone, DrainNodes
from drills.scenario import Comparison, FaultStep, Scenario
from drills.targets import Targets
from probes.base import Metric
from probes.replicas import ReplicasProbe
from reports.base import format_value

FailureMode = Literal["hang", "refused", "disabled"]

FRONT_DOOR_FAULTS: Mapping[str, FailureMode] = {"kill-ingress": "hang", "disable-endpoint": "disabled"}
"""Faults that take a region's front door out, by how Traffic Manager's probes of its endpoint then
fail: ``hang`` (no backend behind the load balancer: each probe fails at its timeout), ``refused``
(fails at once), or ``disabled`` (not probed: the endpoint leaves the answers at once). ``zone-down``
hangs once it has powered off every zone of a region."""

DATA_METRICS = ("lost_writes", "rpo")
"""The replication probe's metrics of what a failover lost."""

UNKNOWN_TM = "unknown: the environment does not state the Traffic Manager settings"


@dataclass(frozen=True)
class Window:
    """The values a metric can take: ``[low, high]`` (``high`` excluded when ``high_open``; None: no
    upper bound the settings give)."""

    low: float
    high: float | None
    high_open: bool
    unit: str
    above_low: bool = False
    """With no ``high``: values above ``low`` are possible, by how much no setting says."""

    @property
    def text(self) -> str:
        if math.isinf(self.low):
            return "never (while the faults last)"
        if self.high is None and self.above_low:
            return f"{_value(self.low, self.unit)} or more"
        high = "∞" if self.high is None else _value(self.high, self.unit)
        return f"[{_value(self.low, self.unit)}, {high}{')' if self.high_open or self.high is None else ']'}"

    @property
    def phrase(self) -> str:
        """``in [35s, 45s)``, or ``never (while the faults last)``."""
        return self.text if math.isinf(self.low) else f"in {self.text}"

    def can_break(self, comparison: Comparison) -> float | None:
        """A value in the window that breaks ``comparison`` (the worst one), or None if none does."""
        if isinstance(comparison.value, str):
            return None
        bound = comparison.value
        op = comparison.op
        if op == "==" and self.above_low and self.high is None and bound <= self.low:
            return math.inf
        if op in ("<", "<="):
            if self.low > bound or (op == "<" and self.low == bound):
                return self.low
            if self.high is None:
                return math.inf if self.above_low and op == "<=" and bound <= self.low else None
            reaches = self.high > bound or (op == "<" and not self.high_open and self.high == bound)
            return self.high if reaches else None
        if op in (">", ">="):
            return self.low if self.low < bound or (op == ">" and self.low == bound) else None
        return None

    def outside(self, value: float, error: float) -> bool:
        """Whether ``value`` lies outside the window by more than ``error``."""
        if math.isinf(self.low):
            # "Never while the faults last": a value measured after the undo says nothing against it.
            return False
        if value + error < self.low:
            return True
        if self.high is None:
            return False
        return value - error > self.high or (self.high_open and value - error == self.high)


@dataclass(frozen=True)
class ExpectationReview:
    """What the design allows for one expectation: the predicted window and its reasoning, and
    whether the settings can break the expectation (``breaks``, with ``verdict`` saying how)."""

    expect: str
    metric: str
    window: Window | None
    reasoning: str
    breaks: bool = False
    verdict: str = ""

    def disagreement(self, metric: Metric | None) -> str:
        """A note when ``metric`` was measured outside the window beyond its error, else ""."""
        if self.window is None or metric is None or not isinstance(metric.value, float | int):
            return ""
        error = metric.error or 0.0
        if not self.window.outside(float(metric.value), error):
            return ""
        shown = format_value(float(metric.value), self.window.unit, error)
        return (f"measured {shown} is outside the predicted window {self.window.text}: one of them is wrong "
                "(the measurement, or the settings the prediction read)")


@dataclass(frozen=True)
class DesignReview:
    """The review of a whole scenario: each expectation's, the settings it read, what it could not."""

    expectations: tuple[ExpectationReview, ...]
    settings: str
    problems: tuple[str, ...] = ()

    def by_expectation(self) -> dict[str, ExpectationReview]:
        return {r.expect: r for r in self.expectations}


async def review_drill(scenario: Scenario, targets: Targets) -> DesignReview:
    """Read the facts (reads only) and review every expectation of ``scenario``."""
    settings = settings_text(targets.env)
    try:
        facts = await read_facts(scenario, targets)
        return DesignReview(expectations=tuple(review(scenario, targets.env, facts)), settings=settings,
                            problems=facts.problems)
    except Exception as exc:  # a review that breaks must not stop the drill: it says so instead
        return DesignReview(expectations=(), settings=settings,
                            problems=(f"the design review failed: {type(exc).__name__}: {exc}",))


def settings_text(env: Environment) -> str:
    """The Traffic Manager settings the review read, in one line."""
    tm = env.traffic_manager
    if tm.monitor is None and tm.ttl is None:
        return "Traffic Manager: settings not stated in the environment"
    parts = [f"routing {tm.routing}" if tm.routing else "routing not stated"]
    if tm.routing == "Geographic":
        parts[0] += {"none": " without fallback", "priority": " with nested Priority fallbacks",
                     None: " (fallback not stated: none)"}[tm.geographic_fallback]
    m = tm.monitor
    if m is not None:
        where = f" {m.path}" if m.protocol != "TCP" else ""
        parts.append(f"probe {m.protocol}{where} every {m.interval:g}s, timeout {m.timeout:g}s, "
                     f"{m.tolerated_failures} tolerated failures")
    else:
        parts.append("monitor not stated")
    parts.append(f"TTL {tm.ttl:g}s" if tm.ttl is not None else "TTL not stated")
    return "Traffic Manager: " + ", ".join(parts)


def detection(monitor: Monitor, mode: FailureMode) -> tuple[float, float]:
    """When Traffic Manager degrades an endpoint that stopped answering, from the instant it stopped:
    ``[N*I + T, (N+1)*I + T)`` (T only when the probe hangs)."""
    n, interval = monitor.tolerated_failures, monitor.interval
    timeout = monitor.timeout if mode == "hang" else 0.0
    return n * interval + timeout, (n + 1) * interval + timeout


def review(scenario: Scenario, env: Environment, facts: DesignFacts) -> list[ExpectationReview]:
    """Every expectation of ``scenario`` reviewed against the settings."""
    return [_review(comparison, scenario, env, facts) for comparison in scenario.expect]


def _review(comparison: Comparison, scenario: Scenario, env: Environment,
            facts: DesignFacts) -> ExpectationReview:
    window, reasoning = _predict(comparison, scenario, env, facts)
    reviewed = ExpectationReview(expect=comparison.text, metric=comparison.subject, window=window,
                                 reasoning=reasoning)
    if window is None:
        return reviewed
    worst = window.can_break(comparison)
    if worst is None:
        return reviewed
    if math.isinf(worst) and window.above_low:
        verdict = f"the design allows more than {_value(window.low, window.unit)}"
    elif comparison.op in ("<", "<=") and worst == window.high:
        verdict = f"the design allows up to {_value(worst, window.unit)}"
    elif comparison.op in ("<", "<=") and math.isinf(worst):
        verdict = "the design allows it never to happen while the faults last"
    elif comparison.op in ("<", "<="):
        verdict = f"the design allows no less than {_value(worst, window.unit)}"
    else:
        verdict = f"the design allows as few as {_value(worst, window.unit)}"
    return ExpectationReview(expect=comparison.text, metric=comparison.subject, window=window,
                             reasoning=reasoning, breaks=True, verdict=verdict)


def _predict(comparison: Comparison, scenario: Scenario, env: Environment,
             facts: DesignFacts) -> tuple[Window | None, str]:
    probe = scenario.probes.get(comparison.probe)
    if probe is None:
        return None, "no prediction: no such probe"
    metric, _, vantage = comparison.name.partition(".")
    dns_metric = {"dns": {"failover_time": "failover_time", "client_failover_time": "client_failover_time",
                          "failback_time": "failback_time"},
                  "http": {"failover_time": "client_failover_time", "downtime": "downtime"}
                  }.get(probe.kind, {}).get(metric)
    if dns_metric is not None:
        vantages = [vantage] if vantage else [*getattr(probe.params, "vantage_points", {}),
                                              *getattr(probe.params, "vantage", [])]
        by_place = _by_vantage(dns_metric, vantages, breakdown=bool(vantage), scenario=scenario, env=env,
                               facts=facts)
        if by_place is not None:
            return by_place
        return _traffic_manager(dns_metric, scenario, env, facts)
    if probe.kind == "replication" and metric in DATA_METRICS:
        return _data_loss(metric, scenario, env)
    if isinstance(probe.params, ReplicasProbe.Spec) and metric in ("min_ready", "time_to_restore"):
        p = probe.params
        found = facts.deployments.get((p.cluster, p.namespace, p.deployment))
        if found is None:
            why = "; ".join(facts.problems) or "the deployment was not found"
            return None, f"unknown: {why}"
        return _replicas(metric, found, scenario, facts)
    return None, f"no prediction for {probe.kind} metric {metric!r}"


def _front_door(scenario: Scenario, facts: DesignFacts) -> tuple[FaultStep, FailureMode] | None:
    """The step that takes a region's front door out, and how; a dark region before a disabled endpoint."""
    found: list[tuple[FaultStep, FailureMode]] = []
    down: dict[str, set[str]] = {}
    for step in scenario.fault_steps():
        mode = FRONT_DOOR_FAULTS.get(step.fault)
        if mode is not None:
            found.append((step, mode))
        if isinstance(step.params, ZoneDown.Params):
            zones = down.setdefault(step.region, set())
            zones.add(step.params.zone)
            known = facts.zones.get(step.region)
            if known and zones >= set(known):
                found.append((step, "hang"))
    return min(found, key=lambda item: item[1] == "disabled", default=None)


def _data_loss(metric: str, scenario: Scenario, env: Environment) -> tuple[Window | None, str]:
    """Whether the scenario's failovers can lose acknowledged writes (see the module docstring)."""
    unit = "count" if metric == "lost_writes" else "s"
    faults = {step.fault for step in scenario.fault_steps()}
    if "region-outage" not in faults:
        why = ("a planned failover moves the writes only once the new write region has them all"
               if "region-failover" in faults else "no fault moves the writes")
        return Window(0.0, 0.0, False, unit), f"{why}: nothing is lost"
    consistency = env.cosmos.consistency if env.cosmos is not None else None
    if consistency is None:
        return None, "unknown: the environment does not state the Cosmos DB account's consistency level"
    if consistency == "Strong":
        return (Window(0.0, 0.0, False, unit),
                "Strong consistency acknowledges a write only once every region has it: a forced failover "
                "loses nothing")
    return (Window(0.0, None, True, unit, above_low=True),
            f"{consistency} consistency replicates asynchronously: taking the write region offline loses "
            "the acknowledged writes not yet replicated, as many as the replication lag at that instant "
            "holds (no setting bounds it; Azure states an RPO under 15 minutes)")


def _by_vantage(metric: str, vantages: list[str], *, breakdown: bool, scenario: Scenario,
                env: Environment, facts: DesignFacts) -> tuple[Window | None, str] | None:
    """The prediction where the answer depends on where the user is (Performance, Geographic), for the
    users at ``vantages`` (one vantage point's metric when ``breakdown``, else the probe's); None where
    it is the one every user gets."""
    tm = env.traffic_manager
    found = _front_door(scenario, facts)
    if tm.routing not in ("Performance", "Geographic") or found is None:
        return None
    failed = found[0].region
    if not vantages:
        return None, (f"unknown: with {tm.routing} routing the answer depends on where the user is, and the "
                      "probe names no vantage point (give it vantage: [...])")
    if tm.routing == "Geographic" and tm.geographic_fallback != "priority" and failed in vantages:
        stated = "" if tm.geographic_fallback is not None else (
            " (the environment states no geographicFallback: a plain Geographic profile has none)")
        why = (f"Geographic routing with no fallback{stated}: {failed}'s users are mapped to the {failed} "
               "endpoint alone, which Traffic Manager keeps answering while it is Degraded (no other "
               "endpoint serves that geography), so they are never moved while the faults last")
        if metric == "failback_time":
            return None, f"no prediction: {why}"
        return Window(math.inf, None, True, "s"), why
    vantage = vantages[0]
    if breakdown and vantage != failed:
        if vantage not in env.regions:
            return None, (f"unknown: vantage point {vantage} is named after no region, so which endpoint "
                          f"{tm.routing} routing gives its users is not known")
        if metric == "failback_time":
            return None, f"no prediction: {vantage}'s users are not sent to {failed}"
        return (Window(0.0, 0.0, False, "s"),
                f"{tm.routing} routing sends {vantage}'s users to {vantage}, which no fault takes out: their "
                f"answer never points at {failed}")
    return None


def _traffic_manager(metric: str, scenario: Scenario, env: Environment,
                     facts: DesignFacts) -> tuple[Window | None, str]:
    found = _front_door(scenario, facts)
    if found is None:
        return None, "no prediction: no fault takes a region's front door out"
    step, mode = found
    tm = env.traffic_manager
    if mode == "disabled":
        return _disabled(metric, step, tm.ttl)
    monitor = tm.monitor
    if monitor is None:
        return None, UNKNOWN_TM
    n, interval, timeout = monitor.tolerated_failures, monitor.interval, monitor.timeout
    low, high = detection(monitor, mode)
    plus = f" + {timeout:g}s timeout" if mode == "hang" else ""
    how = (f"{step.fault} makes the probe {'hang' if mode == 'hang' else 'be refused'}: Degraded on the "
           f"{_ordinal(n + 1)} failed probe, {n} x {interval:g}s{plus} = {low:g}s, up to one {interval:g}s "
           "interval later by the phase of the probe cycle")
    if metric == "failover_time":
        return Window(low, high, True, "s"), how
    if metric == "failback_time" and isinstance(step.params, ZoneDown.Params):
        return None, ("unknown: after the undo the region's VMs boot and its pods start again, which no "
                      "setting states")
    if metric == "failback_time":
        ingress = env.regions[step.region].ingress
        deployment = facts.deployments.get((step.region, ingress.namespace, ingress.deployment))
        if deployment is None or deployment.start_delay is None:
            return None, (f"unknown: the start delay of {step.region}'s ingress controller (its pod "
                          "template's readinessProbe.initialDelaySeconds) is not stated")
        delay = deployment.start_delay
        return (Window(delay, delay + interval, True, "s"),
                f"{step.region}'s ingress pods are Ready {delay:g}s after the undo, then Online at the next "
                f"successful probe, within one {interval:g}s interval")
    if tm.ttl is None:
        return None, "unknown: the environment does not state the Traffic Manager TTL"
    ttl = tm.ttl
    if metric == "client_failover_time":
        window = Window(low + ttl, high + ttl, True, "s")
        return window, (f"{how}; then a resolver may keep the old answer for the {ttl:g}s TTL, which the "
                        f"window {window.text} includes")
    return (Window(low, high + ttl, True, "s"),
            f"{how}; then each user's cache follows within the {ttl:g}s TTL")


def _disabled(metric: str, step: FaultStep, ttl: float | None) -> tuple[Window | None, str]:
    """An endpoint disabled by hand: no probe decides, the answers change at once."""
    why = (f"{step.fault} ({step.id}) takes the endpoint out of the answers as soon as ARM has taken the "
           "change (the call's own time, which no setting states), no probe deciding")
    if metric in ("failover_time", "failback_time"):
        return Window(0.0, None, True, "s"), why + ("; undone, it is answered again as soon"
                                                    if metric == "failback_time" else "")
    if metric == "downtime":
        return (Window(0.0, None, True, "s"),
                f"{why}; the region still serves the users whose resolvers hold its address")
    if ttl is None:
        return None, "unknown: the environment does not state the Traffic Manager TTL"
    return (Window(0.0, None, True, "s"),
            f"{why}; then a resolver may keep the old answer for the {ttl:g}s TTL")


def _replicas(metric: str, found: DeploymentFacts, scenario: Scenario,
              facts: DesignFacts) -> tuple[Window | None, str]:
    replicas = found.replicas
    worst, reason = 0, ""
    blocked: list[str] = []
    for step in scenario.fault_steps():
        taken = facts.removed.get(step.id, {}).get(found.key, 0)
        if step.id not in facts.removed and step.region == found.region:
            return None, f"unknown: cannot tell what step {step.id} removes"
        if taken == 0:
            continue
        kept = replicas - taken
        why = f"{step.fault} ({step.id}) takes {taken} of its {replicas} pods"
        if isinstance(step.params, DrainNodes.Params) and found.floor is not None:
            floor = min(found.floor, replicas)
            if floor >= replicas:
                blocked.append(f"{step.fault} ({step.id}) cannot finish: the PodDisruptionBudget of "
                               f"{found.text} keeps all {replicas} ready, so no eviction is allowed")
                continue
            elif floor > kept:
                kept = floor
                why += (f", its PodDisruptionBudget keeps {floor} ready (the drain waits for replacements "
                        "before evicting more)")
        if replicas - kept > worst:
            worst, reason = replicas - kept, why
    if metric == "min_ready":
        if worst == 0:
            return (Window(replicas, replicas, False, "count"),
                    "; ".join([f"no fault takes pods of {found.text} away: {replicas} stay ready", *blocked]))
        return (Window(replicas - worst, replicas, False, "count"),
                f"{reason}: {replicas - worst} of {replicas} stay ready until replacements start")
    if worst == 0:
        return None, f"no prediction: no fault takes pods of {found.text} away"
    stranded = _stranded(found, scenario, facts)
    if stranded:
        return Window(math.inf, None, True, "s"), f"{reason}; {stranded}"
    if found.start_delay is None:
        return None, (f"unknown: {found.text} states no start delay (its pod template's "
                      "readinessProbe.initialDelaySeconds)")
    return (Window(found.start_delay, None, True, "s"),
            f"{reason}; a replacement is Ready no sooner than its {found.start_delay:g}s start delay")


def _stranded(found: DeploymentFacts, scenario: Scenario, facts: DesignFacts) -> str:
    """Why replacements have no zone to run in while the faults last, or ""."""
    closed = {s.params.zone for s in scenario.fault_steps() if s.region == found.region
              and isinstance(s.params, CordonZone.Params | DrainNodes.Params) and s.params.zone is not None}
    if not closed:
        return ""
    allowed = found.allowed_zones if found.allowed_zones is not None else facts.zones.get(found.region)
    if allowed is None or set(allowed) - closed:
        return ""
    return (f"its pods may run only in {', '.join(sorted(allowed))}, which the faults cordon: replacements "
            "cannot start until the faults are undone")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _value(value: float, unit: str) -> str:
    # As the measurement beside it is shown: "measured 74.2 s ± 0.5 s is outside [35 s, 45 s)".
    return format_value(value, unit)
