"""A scenario as a Chaos Toolkit experiment: what ``drill export --to chaostoolkit`` writes.

The experiment's activities are Python providers of this package (:mod:`drills.chaostoolkit.actions`,
:mod:`drills.chaostoolkit.probes`), which call drill's own faults and probes. The mapping:

* steady-state hypothesis: every probe of the scenario must see its steady state (its ``steady``
  signal, what ``drill run`` waits for before the first fault and after the rollback). Chaos Toolkit
  checks it before and after the method only, never during the incident, so no expectation is in it:
  each is a metric of the incident (a duration, a statistic over its samples, or the lowest or highest
  value during it: ``web_us.min_ready >= 2`` as ``ready >= 2`` afterwards would pass a design that
  dropped to 0). They are left out, and the experiment's description and its ``drill`` extension say
  which and why;
* method: the steps in order; a fault applies it (journaled as ``drill run`` journals it), a wait for a
  duration sleeps on the environment's clock, a wait for a condition samples its probe until it holds,
  an undo step reverts its fault;
* rollbacks: each fault's undo, newest first, run whatever happened (the experiment's ``runtime``
  sets the rollback strategy ``always``; Chaos Toolkit's default skips them when the experiment failed
  or was interrupted, as ``drill abort`` interrupts it).

Refused, with the reason: a ``parallel`` step (Chaos Toolkit has no point where the steps after it
wait for its branches) and ``rollback: manual`` (an experiment's rollbacks always run). Guards are not
exported (Chaos Toolkit watches nothing while the method runs): the description says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drills.errors import DrillError
from drills.scenario import Comparison, FaultStep, ParallelStep, ProbeSpec, Scenario, Step, UndoStep, WaitStep
from drills.units import format_duration

ENVIRONMENT_KEY = "drill_environment"
"""The experiment's configuration key naming drill's environment file."""
ENVIRONMENT_VARIABLE = "DRILL_ENVIRONMENT"
"""The process environment variable the configuration reads it from (a default when exported with one)."""
SCENARIO_KEY = "drill_scenario"
"""The configuration key naming the scenario, journaled as the run's scenario."""

_ACTIONS = "drills.chaostoolkit.actions"
_PROBES = "drills.chaostoolkit.probes"


class ExportRefused(DrillError):
    """The scenario uses something a Chaos Toolkit experiment cannot express."""


def experiment(scenario: Scenario, *, environment: str | None = None,
               output: Path | None = None) -> dict[str, Any]:
    """The Chaos Toolkit experiment (JSON-ready) of ``scenario``; ``environment`` is the environment
    file the experiment defaults to (None: ``$DRILL_ENVIRONMENT`` must name one when it runs);
    ``output`` the file it is written to, which the scenario's path is made relative to (None: the
    path as given). Raises :class:`ExportRefused` for what the experiment cannot express."""
    _refuse(scenario)
    scenario_path = _relative(scenario.file, output)
    checked, left_out = _hypothesis(scenario)
    if scenario.guards:
        why = "Chaos Toolkit watches nothing while the method runs; stop the experiment yourself if it trips"
        left_out += [{"item": f"guard: {g.text}", "why": why} for g in scenario.guards]
    text = "; ".join(f"{o['item']} ({o['why']})" for o in left_out)
    description = scenario.description + (f" Not exported: {text}." if left_out else "")
    env_config: dict[str, Any] = {"type": "env", "key": ENVIRONMENT_VARIABLE}
    if environment is not None:
        env_config["default"] = environment
    return {
        "version": "1.0.0",
        "title": scenario.name,
        "description": description.strip(),
        "tags": ["drill", f"drill-scenario:{scenario.name}"] + (["drill-partial"] if left_out else []),
        "configuration": {ENVIRONMENT_KEY: env_config, SCENARIO_KEY: scenario_path},
        "secrets": {},
        "extensions": [{"name": "drill", "scenario": scenario_path, "not_exported": left_out}],
        "steady-state-hypothesis": {
            "title": f"{scenario.name}: every probe sees the steady state",
            "probes": checked,
        },
        "method": [activity for step in scenario.steps for activity in _method(step, scenario)],
        "rollbacks": [_action(f"undo {step.id}", "revert_fault", step=step.id)
                      for step in reversed(scenario.fault_steps())],
        # Chaos Toolkit's default skips the rollbacks of a failed or interrupted experiment (a probe that
        # raised, SIGTERM from `drill abort`), leaving the faults in place; `chaos run` reads this.
        "runtime": {"rollbacks": {"strategy": "always"}, "hypothesis": {"strategy": "default"}},
    }


def _relative(file: str, output: Path | None) -> str:
    """``file`` relative to the folder of ``output``, so that it still names the scenario beside the
    experiment; as given when there is no output file, or no relative path (another drive)."""
    if output is None:
        return file
    try:
        return os.path.relpath(Path(file).resolve(), output.resolve().parent)
    except ValueError:
        return str(Path(file).resolve())


def _refuse(scenario: Scenario) -> None:
    where = f"{scenario.file}: scenario {scenario.name}"
    if scenario.rollback == "manual":
        raise ExportRefused(f"{where} has 'rollback: manual', but a Chaos Toolkit experiment always runs "
                            "its rollbacks; remove it to export the scenario (the rollbacks then undo each "
                            "fault)")
    for step in _walk(scenario.steps):
        if isinstance(step, ParallelStep):
            raise ExportRefused(f"{where}: step {step.id} is a 'parallel' step, which a Chaos Toolkit "
                                "method cannot express (a background activity has no point where later "
                                "ones wait for it); write its branches as steps one after another to "
                                "export it")


def _walk(steps: tuple[Step, ...]) -> list[Step]:
    found: list[Step] = []
    for step in steps:
        found.append(step)
        if isinstance(step, ParallelStep):
            found.extend(_walk(step.steps))
    return found


def _hypothesis(scenario: Scenario) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The hypothesis's probes (each probe's steady state), and the expectations left out, with why:
    every one is a metric of the incident, which the hypothesis, checked only before and after the
    method, never sees."""
    checked = [{**_signal(f"{spec.name} is steady", spec, "steady"), "tolerance": True}
               for spec in scenario.probes.values()]
    left_out = [{"item": f"expectation: {e.text}", "why": _why(e)} for e in scenario.expect]
    return checked, left_out


def _why(expectation: Comparison) -> str:
    if expectation.unit == "s":
        return "a duration: it needs the whole timeline of the incident"
    if expectation.name.startswith(("min_", "max_")):
        extreme = "lowest" if expectation.name.startswith("min_") else "highest"
        return (f"the {extreme} value during the incident: Chaos Toolkit checks the hypothesis before and "
                "after the method, never during it, when the value is back to normal")
    return "a statistic over the samples of the incident: no single instant shows it"


def _method(step: Step, scenario: Scenario) -> list[dict[str, Any]]:
    if isinstance(step, FaultStep):
        where = f" in {step.region}" if step.region else ""
        return [_action(f"{step.id}: {step.fault}{where}", "apply_fault", step=step.id, fault=step.fault,
                        params=step.params.model_dump(mode="json", by_alias=True))]
    if isinstance(step, UndoStep):
        return [_action(f"{step.id}: undo {step.target}", "revert_fault", step=step.target)]
    assert isinstance(step, WaitStep)
    if step.condition is None:
        return [_activity("probe", f"{step.id}: wait {format_duration(step.timeout)}", _PROBES, "wait",
                          {"seconds": step.timeout})]
    condition = step.condition
    spec = scenario.probes[condition.probe]
    return [_activity("probe", f"{step.id}: wait until {condition.text}", _PROBES, "wait_until",
                      {**_probe_arguments(spec), "signal": condition.name, "op": condition.op,
                       "bound": condition.value, "timeout": step.timeout})]


def _signal(title: str, spec: ProbeSpec, signal: str) -> dict[str, Any]:
    return _activity("probe", title, _PROBES, "signal", {**_probe_arguments(spec), "signal": signal})


def _probe_arguments(spec: ProbeSpec) -> dict[str, Any]:
    return {"probe": spec.name, "kind": spec.kind, "spec": spec.params.model_dump(mode="json", by_alias=True),
            "every": spec.every}


def _action(title: str, func: str, **arguments: Any) -> dict[str, Any]:
    return _activity("action", title, _ACTIONS, func, arguments)


def _activity(type_: str, title: str, module: str, func: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "name": title,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}}
