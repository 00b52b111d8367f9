"""``drill plan FILE [--env lab|NAME|PATH]``: what a run would do to which objects, touching nothing.

The scenario is validated against the environment, every probe and fault is built, each region's
API is asked one list call, and every fault's ``prepare`` runs: it reads the objects the fault would
change and records how to restore them, changing nothing. The plan prints each step in order with,
for faults, what it would do, the objects, and how it would be undone; then the design review: per
expectation, the window its metric can fall in given the environment's settings, and whether the
design allows a value that breaks it; then the blast radius: the worst moment's nodes and pods
against the environment's limits, each rule PASS or REFUSED (exit 2 when a run would be refused).
For the lab, a private lab is started to plan against, as ``drill run`` would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from drills.blast import BlastRadius
from drills.cli.run import add_environment_arguments
from drills.design import DesignReview
from drills.environment import Environment
from drills.runner import PlannedFault
from drills.runner.session import Where, plan_scenario
from drills.scenario import FaultStep, ParallelStep, Scenario, Step, UndoStep, WaitStep
from drills.units import format_duration


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` command."""
    parser = commands.add_parser("plan", help="show what a drill would do, touching nothing",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("file", type=Path, metavar="FILE", help="the scenario file")
    add_environment_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the plan; 0, or 2 when the scenario or environment is wrong or the blast radius refuses
    the drill (a run would be refused)."""
    where = Where.parse(args.env, topology=args.topology, time_scale=args.time_scale,
                        manifests=args.manifests)
    scenario, env, planned, design, blast = asyncio.run(plan_scenario(args.file, where))
    print("\n".join(plan_lines(scenario, env, planned, design, blast, private_lab=where.env is None)))
    return 2 if blast.refused else 0


def plan_lines(scenario: Scenario, env: Environment, planned: Sequence[PlannedFault],
               design: DesignReview | None = None, blast: BlastRadius | None = None, *,
               private_lab: bool = False) -> list[str]:
    """The plan as text, step by step. A ``private_lab`` was started for the plan and is gone now:
    its objects are those a run's own private lab would have."""
    where = (f"a private lab (time scale {env.time_scale:g}) like the one a run starts" if private_lab
             else f"environment {env.name!r} ({env.path}), time scale {env.time_scale:g}")
    lines = [f"plan for {scenario.name} ({scenario.file}) on {where}"]
    if scenario.description:
        lines.append(f"  {scenario.description}")
    lines.append("probes:")
    lines.extend(f"  {p.name}: {p.kind} every {format_duration(p.every)}" for p in scenario.probes.values())
    lines.append("steps:")
    by_step = {p.step.id: p for p in planned}
    for step in scenario.steps:
        lines.extend(_step_lines(step, by_step, indent="  "))
    if scenario.expect:
        lines.append("expect:")
        lines.extend(f"  {e.text}" for e in scenario.expect)
    if design is not None:
        lines.extend(design_lines(design))
    if scenario.guards:
        lines.append("guards (abort and roll back):")
        lines.extend(f"  {g.text}" for g in scenario.guards)
    if blast is not None:
        lines.extend(blast.lines())
        if blast.refused:
            broken = ", ".join(f"limits.{r.name}" for r in blast.rules if not r.passed)
            lines.append(f"a run would be REFUSED before touching anything ({broken})")
    if scenario.rollback == "manual":
        lines.append("rollback: MANUAL: the faults stay in place after the run; undo them by hand")
    else:
        lines.append("rollback: every fault not yet undone is undone at the end, newest first")
    lines.append("nothing was changed.")
    return lines


def design_lines(design: DesignReview) -> list[str]:
    """The design review: per expectation the window the settings allow and why, in one line each."""
    lines = [f"design review ({design.settings}):"]
    for r in design.expectations:
        if r.window is None:
            lines.append(f"  {r.expect}: {r.reasoning}")
            continue
        verdict = f"FAILS: {r.verdict}" if r.breaks else "holds in every phase"
        lines.append(f"  {r.expect}: {r.metric} {r.window.phrase}, {verdict} ({r.reasoning})")
    lines.extend(f"  not read: {p}" for p in design.problems)
    return lines


def _step_lines(step: Step, planned: dict[str, PlannedFault], *, indent: str) -> list[str]:
    if isinstance(step, ParallelStep):
        lines = [f"{indent}{step.id}: in parallel:"]
        for child in step.steps:
            lines.extend(_step_lines(child, planned, indent=indent + "  "))
        return lines
    if isinstance(step, WaitStep):
        if step.condition is None:
            return [f"{indent}{step.id}: wait {format_duration(step.timeout)}"]
        return [f"{indent}{step.id}: wait until {step.condition.text} (fails the run after "
                f"{format_duration(step.timeout)})"]
    if isinstance(step, UndoStep):
        return [f"{indent}{step.id}: undo {step.target}"]
    return _fault_lines(step, planned[step.id], indent=indent)


def _fault_lines(step: FaultStep, plan: PlannedFault, *, indent: str) -> list[str]:
    undo = plan.undo
    where = f" in {step.region}" if step.region else ""
    lines = [f"{indent}{step.id}: fault {step.fault}{where}: {undo.summary}"]
    lines.append(f"{indent}  changes {len(undo.objects)} objects:")
    lines.extend(f"{indent}    {name}" for name in undo.objects)
    lines.append(f"{indent}  undo record: {json.dumps(undo.data, sort_keys=True)}")
    lines.append(f"{indent}  undone by hand with: {plan.by_hand}" if plan.by_hand
                 else f"{indent}  nothing to run by hand to undo it")
    return lines
