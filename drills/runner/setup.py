"""Binding a scenario to an environment: every probe and fault built, nothing touched yet.

:func:`check_reachable` asks each region's API one cheap list call; :func:`bind` then builds the
run's clock, its :class:`~drills.targets.Targets`, every probe and every fault object from the
validated scenario, so that a parameter a class still rejects fails here, before the first change;
:func:`plan` calls every fault's ``prepare`` (which reads and changes nothing) to say what a run
would do to which objects. ``drill run`` and ``drill plan`` both start here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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
    does not answer. Uses clients of its own, so that it can run before a drill is bound."""
    targets = Targets(env, ScenarioClock(env.time_scale))

    async def reason(region: str) -> str | None:
        try:
            kube = targets.kube(region)
            await kube.call(kube.core.list_namespace, limit=1, _request_timeout=REACH_TIMEOUT_S)
        except EnvironmentUnreachable as exc:
            return str(exc)
        except Exception as exc:  # any failure to answer a list call is unreachable for us
            return f"{type(exc).__name__}: {exc}"
        return None

    regions = sorted(env.regions)
    try:
        reasons = await asyncio.gather(*(reason(r) for r in regions))
    finally:
        await targets.aclose()
    failed = [f"region {r}: {why}" for r, why in zip(regions, reasons, strict=True) if why is not None]
    if failed:
        raise EnvironmentUnreachable(f"environment {env.name} ({env.path}) cannot be reached; "
                                     "nothing was touched: " + "; ".join(failed))


async def plan(drill: BoundDrill) -> list[PlannedFault]:
    """Prepare every fault (each reads, none changes anything) in file order."""
    planned = []
    for run in drill.faults.values():
        undo = await run.fault.prepare(drill.targets)
        planned.append(PlannedFault(step=run.step, undo=undo, by_hand=by_hand(run.fault, undo, drill.env)))
    return planned
