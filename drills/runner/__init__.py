"""The runner: executes a scenario against an environment and leaves a run directory behind.

::

    await check_reachable(env)                            # each region's API answers
    drill = bind(scenario, env, plugins=installed())      # every probe and fault built; nothing touched
    result = await Runner(drill, run_dir, render=reports.render).run()
    result.exit_code                                      # 0 passed, 1 failed, 2 aborted, 3 rollback incomplete

Modules: :mod:`~drills.runner.setup` (binding, reachability, plan), :mod:`~drills.runner.runner`
(the run itself), :mod:`~drills.runner.sampling` (probes on their periods, ``samples.jsonl``),
:mod:`~drills.runner.guards`, :mod:`~drills.runner.faultrun`, :mod:`~drills.runner.verdict`,
:mod:`~drills.runner.rundir` (run ids, ``run.json``), :mod:`~drills.runner.progress` (what the
terminal shows).
"""

from drills.runner.rundir import find_run, new_run_dir, runs_dir
from drills.runner.runner import Runner, RunOptions, RunResult
from drills.runner.setup import BoundDrill, PlannedFault, bind, check_reachable, plan

__all__ = [
    "BoundDrill",
    "PlannedFault",
    "RunOptions",
    "RunResult",
    "Runner",
    "bind",
    "check_reachable",
    "find_run",
    "new_run_dir",
    "plan",
    "runs_dir",
]
