"""The runner: executes a scenario against an environment and leaves a run directory behind.

::

    result = await run_scenario(Path("scenarios/us-outage.yaml"))    # a private lab, started and stopped
    result.exit_code            # 0 passed, 1 failed, 2 aborted, 3 rollback incomplete

or, a step at a time, with a scenario and environment already loaded::

    await check_reachable(env)                          # each region's API answers
    drill = bind(scenario, env, plugins=installed())    # every probe and fault built; nothing touched
    result = await Runner(drill, run_dir, render=reports.render).run()

Modules: :mod:`~drills.runner.session` (a run or plan from file names, private labs),
:mod:`~drills.runner.setup` (binding, reachability, plan), :mod:`~drills.runner.runner` (the run
itself), :mod:`~drills.runner.steps` (faults, waits, undo, rollback), :mod:`~drills.runner.sampling`
(probes on their periods, ``samples.jsonl``), :mod:`~drills.runner.guards`,
:mod:`~drills.runner.faultrun`, :mod:`~drills.runner.verdict`, :mod:`~drills.runner.record` and
:mod:`~drills.runner.rundir` (``run.json``, run ids); what the person watching sees:
:mod:`~drills.runner.progress` (terminal or plain lines), :mod:`~drills.runner.liveview` (the panel),
:mod:`~drills.runner.livestate` (what the runner hands it), :mod:`~drills.runner.readouts` (values with
units), :mod:`~drills.runner.summary` (the end of the run), :mod:`~drills.runner.offloop` (writes that
never stall the probes).
"""

from drills.runner.rundir import find_run, new_run_dir, runs_dir
from drills.runner.runner import Runner, RunOptions, RunResult
from drills.runner.session import Where, plan_scenario, run_scenario
from drills.runner.setup import BoundDrill, PlannedFault, bind, check_reachable, plan

__all__ = [
    "BoundDrill",
    "PlannedFault",
    "RunOptions",
    "RunResult",
    "Runner",
    "Where",
    "bind",
    "check_reachable",
    "find_run",
    "new_run_dir",
    "plan",
    "plan_scenario",
    "run_scenario",
    "runs_dir",
]
