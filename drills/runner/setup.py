"""Binding a scenario to an environment: every probe and fault built, nothing touched yet.

:func:`check_reachable` asks each region's API one cheap list call; :func:`bind` then builds the
run's clock, its :class:`~drills.targets.Targets`, every probe and every fault object from the
validated scenario, so that a parameter a class still rejects fails here, before the first change;
:func:`plan` calls every fault's ``prepare`` (which reads and changes nothing) to say what a run
would do to which objects. ``drill run`` and ``drill plan`` both start here.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.errors import DrillError, EnvironmentUnreachable
from drills.faults.base import Undo
from drills.plugins import Plugins
from drills.runner.faultrun import FaultRun, by_hand
from drills.scenario import FaultStep, Scenario
from drills.targets import Targets
from probes.base import Probe

REACH_TIMEOUT_S = (3.0, 10.0)
"""Connect and read timeouts (real seconds) of the reachability check: an API that takes longer
than this to list one namespace is in no state to be drilled."""


@dataclass(eq=False)
class BoundDrill:
    """A scenario bound to an environment, ready to run."""

    scenario: Scenario
    env: Environment
    clock: ScenarioClock
    targets: Targets
    probes: dict[str, tuple[Probe, str]]
    """Each probe by name, with its kind."""
    faults: dict[str, FaultRun]
    """Each fault step's fault by step id, in file order."""

    async def aclose(self) -> None:
        """Release the API clients."""
        await self.targets.aclose()


@dataclass(frozen=True)
class PlannedFault:
    """What one fault step would do: its undo record, and what a person would run to undo it."""

    step: FaultStep
    undo: Undo
    by_hand: str | None


def bind(scenario: Scenario, env: Environment, *, plugins: Plugins) -> BoundDrill:
    """Build every probe and fault of ``scenario`` for ``env``. Touches nothing.

    The clock starts now: the run's ``t`` counts from here. Raises :class:`DrillError` naming the
    probe or step whose object cannot be built.
    """
    clock = ScenarioClock(env.time_scale)
    targets = Targets(env, clock)
    try:
        probes: dict[str, tuple[Probe, str]] = {}
        for name, spec in scenario.probes.items():
            cls = plugins.probes.get(spec.kind)
            if cls is None:
                raise DrillError(f"probe {name}: no probe kind {spec.kind!r} is installed")
            try:
                probes[name] = (cls(name, spec.params, targets, every=spec.every), spec.kind)
            except DrillError:
                raise
            except Exception as exc:  # a plugin's constructor may raise anything; say which one
                raise DrillError(f"probe {name} ({spec.kind}): cannot be set up: {exc}") from exc
        faults: dict[str, FaultRun] = {}
        for step in scenario.fault_steps():
            cls = plugins.faults.get(step.fault)
            if cls is None:
                raise DrillError(f"step {step.id}: no fault {step.fault!r} is installed")
            try:
                faults[step.id] = FaultRun(step=step, fault=cls(step.params))
            except DrillError:
                raise
            except Exception as exc:  # as above
                raise DrillError(f"step {step.id} ({step.fault}): cannot be set up: {exc}") from exc
    except BaseException:
        targets.close()
        raise
    return BoundDrill(scenario=scenario, env=env, clock=clock, targets=targets, probes=probes, faults=faults)


async def check_reachable(env: Environment) -> None:
    """One list call to each region's API; :class:`EnvironmentUnreachable` naming every region that
    does not answer, one line each (an API server that refuses the credentials says so, with its
    status, not its HTTP exchange). Uses clients of its own, so that it can run before a drill is bound."""
    targets = Targets(env, ScenarioClock(env.time_scale))

    async def reason(region: str) -> str | None:
        try:
            kube = targets.kube(region)
            await kube.call(kube.core.list_namespace, limit=1, _request_timeout=REACH_TIMEOUT_S)
        except DrillError as exc:
            return str(exc).removeprefix(f"region {region}: ")
        except ApiException as exc:
            return _refusal(exc, host=targets.kube(region).api_client.configuration.host,
                            context=env.regions[region].context)
        except Exception as exc:  # any failure to answer a list call is unreachable for us
            return f"{type(exc).__name__}: {_first_line(exc)}"
        return None

    regions = sorted(env.regions)
    try:
        reasons = await asyncio.gather(*(reason(r) for r in regions))
    finally:
        await targets.aclose()
    failed = [f"  region {r}: {why}" for r, why in zip(regions, reasons, strict=True) if why is not None]
    if failed:
        raise EnvironmentUnreachable(f"environment {env.name} ({env.path}) cannot be reached; "
                                     "nothing was touched:\n" + "\n".join(failed))


def _refusal(exc: ApiException, *, host: str, context: str) -> str:
    """An API server's refusal in one line: who refused, the status, and the server's own reason."""
    status = f"{exc.status} {exc.reason or ''}".strip()
    said = _status_message(exc.body)
    detail = f" ({said})" if said and said.casefold() != str(exc.reason or "").casefold() else ""
    if exc.status in (401, 403):
        what = ("did not accept the credentials" if exc.status == 401
                else "accepted the credentials but does not allow them to list namespaces")
        return f"the API server at {host} {what} of kube context {context!r}: {status}{detail}"
    return f"the API server at {host} answered {status}{detail}"


def _status_message(body: object) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, or nothing."""
    try:
        message = json.loads(body).get("message") if isinstance(body, (str, bytes)) else None
    except (ValueError, AttributeError):
        return ""
    return _first_line(message) if isinstance(message, str) else ""


def _first_line(value: object) -> str:
    return str(value).strip().split("\n", 1)[0][:200]


async def plan(drill: BoundDrill) -> list[PlannedFault]:
    """Prepare every fault (each reads, none changes anything) in file order."""
    planned = []
    for run in drill.faults.values():
        undo = await run.fault.prepare(drill.targets)
        planned.append(PlannedFault(step=run.step, undo=undo, by_hand=by_hand(run.fault, undo, drill.env)))
    return planned
