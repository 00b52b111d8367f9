"""Pre-flight: the regions a scenario expects to take over must be healthy before the first fault.

A drill that takes a region's front door out (:data:`drills.design.FRONT_DOOR_FAULTS`) while the
region meant to take over is already down causes an outage instead of rehearsing a failover. The
regions expected to take over are, simply, every region no front-door fault targets, and every
region a condition wait names (``dns.answer == eu``); a scenario with neither expects no takeover.

Each of them must be healthy as Traffic Manager sees it: its endpoint's target, resolved through the
environment's name servers as the probes resolve it, answers the monitor's request (protocol, port,
path) with a status the monitor counts as healthy within the monitor's timeout; and its workloads
(the ingress controller, and every deployment a replicas probe watches there) have every replica
ready. :func:`takeover_problems` says what is wrong, per region; the runner refuses the drill on it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import aiohttp

from drills.design import FRONT_DOOR_FAULTS
from drills.environment import Environment, Monitor
from drills.runner.verdict import Ending
from drills.scenario import ParallelStep, Scenario, Step, WaitStep
from drills.targets import Targets
from probes.replicas import ReplicasProbe
from probes.resolver import CachingResolver, ResolveError, parse_nameserver

DEFAULT_MONITOR = Monitor()
"""Azure's defaults (HTTP, path /, 30 s, 10 s timeout, 200 only) for an environment that states none."""
TRIES = 3
"""Requests to an endpoint before it counts as unhealthy: one good answer is enough."""
MIN_TIMEOUT_REAL_S = 1.0
"""The shortest real wait for one answer: a lab's 5 s timeout at scale 60 is 83 ms, shorter than a
loaded machine's stalls; a real monitor's 5-10 s are longer than this anyway."""


def takeover_regions(scenario: Scenario, env: Environment) -> list[str]:
    """The regions ``scenario`` expects to take over, in the environment's order."""
    struck = {s.region for s in scenario.fault_steps() if s.fault in FRONT_DOOR_FAULTS}
    named = {w.condition.value.casefold() for w in _waits(scenario.steps)
             if w.condition is not None and isinstance(w.condition.value, str) and w.condition.op == "=="}
    return [r for r in env.regions
            if (struck and r not in struck) or r.casefold() in named]


async def takeover_problems(scenario: Scenario, targets: Targets) -> list[str]:
    """What is wrong with each region expected to take over, one sentence per region; empty: none."""
    env = targets.env
    regions = takeover_regions(scenario, env)
    found = await asyncio.gather(*(_region(region, scenario, targets) for region in regions))
    return [f"{region}: {'; '.join(problems)}" for region, problems in zip(regions, found, strict=True)
            if problems]


async def takeover_refusal(scenario: Scenario, targets: Targets, *, force: bool,
                           note: Callable[..., None]) -> Ending | None:
    """The pre-flight's ending when a region expected to take over is not healthy (None: go on).
    With ``force`` the problems are noted loudly and the drill goes on."""
    problems = await takeover_problems(scenario, targets)
    if not problems:
        return None
    what = "; ".join(problems)
    if force:
        note(f"a region expected to take over is not healthy ({what}); going on because of --force",
             loud=True)
        return None
    return Ending("refused", f"pre-flight: a region expected to take over is not healthy, so the drill would "
                             f"cause an outage; nothing was touched (--force runs anyway): {what}")


async def _region(region: str, scenario: Scenario, targets: Targets) -> list[str]:
    problems = []
    endpoint = await _endpoint(region, targets)
    if endpoint:
        problems.append(endpoint)
    problems.extend(await _workloads(region, scenario, targets))
    return problems


async def _endpoint(region: str, targets: Targets) -> str | None:
    """None when the region's endpoint answers the monitor as healthy, else what went wrong.

    A single lost answer does not make Traffic Manager degrade an endpoint either: it takes one good
    answer in :data:`TRIES`, each waited for at least the monitor's timeout and
    :data:`MIN_TIMEOUT_REAL_S` real seconds (a lab's compressed timeout is shorter than a busy
    machine's stalls)."""
    env = targets.env
    monitor = env.traffic_manager.monitor or DEFAULT_MONITOR
    target = env.regions[region].target
    scale = targets.clock.time_scale
    timeout_real = max(monitor.timeout / scale, MIN_TIMEOUT_REAL_S)
    resolver = CachingResolver([parse_nameserver(s) for s in env.traffic_manager.nameservers],
                               time_scale=scale, query_timeout_s=timeout_real)
    try:
        address = await _address(resolver, target)
    except ResolveError as exc:
        return f"its endpoint target {target} does not resolve ({exc})"
    problem: str | None = None
    for _ in range(TRIES):
        problem = await ask_as_the_monitor(monitor, target, address, env.service.port, timeout_real)
        if problem is None:
            return None
    return problem


async def _address(resolver: CachingResolver, target: str) -> str:
    """The target's address from the environment's name servers (the lab's answer for its targets) or,
    when they do not answer for it (Traffic Manager's servers refuse names outside their zones), from
    the system's resolver, as a user's resolver following the CNAME would."""
    try:
        return (await resolver.resolve(target)).address
    except ResolveError as first:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ResolveError(f"{first}; system resolver: {exc}") from exc
        return str(infos[0][4][0])


async def ask_as_the_monitor(monitor: Monitor, target: str, address: str, service_port: int,
                             timeout_real: float) -> str | None:
    """One request as Traffic Manager's monitor sends it to ``address`` (the endpoint ``target``'s);
    None when the answer counts as healthy, else what went wrong. ``timeout_real`` in real seconds."""
    port = monitor.port or service_port
    what = f"endpoint {target} ({address}:{port})"
    try:
        if monitor.protocol == "TCP":
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout_real)
            writer.close()
            return None
        url = f"{monitor.protocol.lower()}://{address}:{port}{monitor.path}"
        # Traffic Manager's monitor does not validate the endpoint's certificate, nor does this.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_real)) as session, \
                session.get(url, headers={"Host": target}, allow_redirects=False,
                            ssl=insecure if monitor.protocol == "HTTPS" else None) as response:
            status = response.status
    except TimeoutError:
        return (f"{what} does not answer the monitor's {monitor.protocol} {monitor.path} within its "
                f"{monitor.timeout:g}s timeout ({TRIES} tries): Traffic Manager sees it Degraded")
    except (aiohttp.ClientError, OSError) as exc:
        return (f"{what} refuses the monitor's request ({exc or type(exc).__name__}): Traffic Manager sees "
                "it Degraded")
    if monitor.healthy(status):
        return None
    return (f"{what} answers the monitor's GET {monitor.path} with {status}, which the monitor does not "
            "count as healthy: Traffic Manager sees it Degraded")


async def _workloads(region: str, scenario: Scenario, targets: Targets) -> list[str]:
    ingress = targets.env.regions[region].ingress
    wanted = [(ingress.namespace, ingress.deployment)]
    for probe in scenario.probes.values():
        if isinstance(probe.params, ReplicasProbe.Spec) and probe.params.cluster == region:
            key = (probe.params.namespace, probe.params.deployment)
            if key not in wanted:
                wanted.append(key)
    problems = []
    try:
        kube = targets.kube(region)
        for namespace, name in wanted:
            deployment = await kube.call(kube.apps.read_namespaced_deployment, name, namespace)
            desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
            ready = (deployment.status.ready_replicas or 0) if deployment.status else 0
            if ready < desired:
                problems.append(f"{namespace}/{name} has {ready} of {desired} replicas ready")
    except Exception as exc:  # an API that cannot answer is no region to fail over to either
        problems.append(f"cannot read its workloads: {type(exc).__name__}: {exc}")
    return problems


def _waits(steps: tuple[Step, ...]) -> list[WaitStep]:
    found: list[WaitStep] = []
    for step in steps:
        if isinstance(step, WaitStep):
            found.append(step)
        elif isinstance(step, ParallelStep):
            found.extend(_waits(step.steps))
    return found
