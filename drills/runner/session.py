"""A whole run or plan from file names: environment found (or a private lab started), scenario
validated against it, reachability checked, then a run takes the environment's lock
(:mod:`drills.lock`: refused while another drill holds it) and the drill is bound and run, or planned.

``--env lab`` (the default) means a private lab process for this run alone, started from the
built-in topology or ``--topology`` and stopped afterwards; its files (environment, kubeconfig,
ground truth) are kept in the run directory's ``lab/`` folder as evidence. Any other value is an
environment file: ``NAME`` is found as ``environments/NAME.yaml`` or
``scenarios/environments/NAME.yaml``, anything else is a path. The scenario is validated before
the lab starts (against the topology's regions), so a bad file costs no lab.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import reports
from drills import plugins as _plugins
from drills.blast import BlastRadius, assess_drill
from drills.design import DesignReview, review_drill
from drills.environment import Environment, load_environment
from drills.errors import DrillError
from drills.identity import Identity, read_identity
from drills.journal import JOURNAL_FILE
from drills.lab.manifests import load_manifests
from drills.lab.topology import load_topology
from drills.labprocess import LabProcess
from drills.labproof import prove_lab
from drills.lock import LockOwner, hold
from drills.plugins import Plugins
from drills.recover import pending_runs
from drills.runner.progress import Progress
from drills.runner.rundir import new_run_dir, runs_dir
from drills.runner.runner import Runner, RunOptions, RunResult
from drills.runner.setup import BoundDrill, PlannedFault, bind, check_reachable, plan
from drills.scenario import Scenario, load_scenario

LAB = "lab"
ENVIRONMENT_DIRS = (Path("environments"), Path("scenarios/environments"))
"""Where ``--env NAME`` looks for ``NAME.yaml``, relative to the working directory."""


@dataclass(frozen=True)
class Where:
    """Where a scenario runs: an environment file, or a private lab (``env`` None)."""

    env: Path | None = None
    topology: Path | None = None
    """The private lab's topology (None: the built-in sound design)."""
    time_scale: float | None = None
    """The private lab's time scale (None: the topology's)."""
    manifests: Path | None = None
    """A team's manifests the private lab applies after its defaults (None: only the topology's)."""

    @classmethod
    def parse(cls, env: str | None, *, topology: Path | None = None, time_scale: float | None = None,
              manifests: Path | None = None) -> Where:
        """From ``--env lab|NAME|PATH``; ``--topology``, ``--time-scale`` and ``--manifests`` apply to a
        lab only."""
        if env in (None, LAB):
            return cls(topology=topology, time_scale=time_scale, manifests=manifests)
        if topology is not None or time_scale is not None or manifests is not None:
            raise DrillError("--topology, --time-scale and --manifests shape a private lab; they do not "
                             f"apply to --env {env} (start that lab with them instead: drill lab up "
                             "--topology ...)")
        return cls(env=environment_file(env))


def environment_file(env: str) -> Path:
    """The file ``--env NAME|PATH`` names."""
    path = Path(env)
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1 or path.is_file():
        if not path.is_file():
            raise DrillError(f"no environment file {path}")
        return path
    for folder in ENVIRONMENT_DIRS:
        candidate = folder / f"{env}.yaml"
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(folder / f"{env}.yaml") for folder in ENVIRONMENT_DIRS)
    raise DrillError(f"no environment named {env!r} (looked for {looked}; or give a path, or 'lab')")


def variables(env: Environment) -> dict[str, str]:
    """What ``{{ env.NAME }}`` may name in a scenario run in ``env``."""
    return {**env.vars, "name": env.name, "fqdn": env.traffic_manager.fqdn}


def validate(file: Path, where: Where, *, plugins: Plugins) -> tuple[Scenario, Environment | None]:
    """The scenario checked against the environment (a lab's: its topology's regions); and the
    environment when it is a file. Raises SourceErrors, touching nothing."""
    if where.env is None:
        topology = load_topology(where.topology)
        if where.manifests is not None:
            # Every problem now, before a lab starts; what the lab will keep out, said once.
            line = load_manifests(where.manifests, topology.regions).not_modelled_line()
            if line is not None:
                print(line, file=sys.stderr)
        known = {"name": LAB, "fqdn": topology.traffic_manager.fqdn}
        scenario = load_scenario(file, regions=set(topology.regions), variables=known, plugins=plugins)
        return scenario, None
    env = load_environment(where.env)
    return load_scenario(file, regions=set(env.regions), variables=variables(env), plugins=plugins), env


async def run_scenario(file: Path, where: Where = Where(), *, runs: Path | None = None,
                       options: RunOptions | None = None, progress: Progress | None = None,
                       plugins: Plugins | None = None,
                       confirm: Callable[[Environment], None] | None = None) -> RunResult:
    """Run the scenario in ``file`` where ``where`` says; the finished run.

    ``confirm`` is called with a non-lab environment before anything is touched (it raises to
    refuse); a lab is one that proves it (:func:`drills.labproof.prove_lab`), whatever its file says.
    Raises :class:`DrillError` when the drill cannot start (bad file, unreachable environment, a run
    pending recovery there: see :func:`refuse_pending`); from then on every outcome is a
    :class:`RunResult`. The environment's identity is read before the journal's first line, which
    records it.
    """
    plugins = plugins or _plugins.installed()
    options = options or RunOptions()
    scenario, env = validate(file, where, plugins=plugins)
    if env is not None:
        env = await _proven(env, confirm)
    runs = runs_dir(runs)
    run_dir = new_run_dir(runs, scenario.name)
    try:
        async with _environment(where, env, lab_dir=run_dir / "lab", confirm=confirm) as running:
            scenario = _revalidate(file, running, plugins=plugins)
            await check_reachable(running)
            # One drill per environment (a private lab too: cheap, and it keeps the path tested).
            owner = LockOwner(run_id=run_dir.name, scenario=scenario.name)
            async with hold(running, owner, warn=_warner(progress)) as lock, \
                    _bound(scenario, running, plugins=plugins) as drill:
                identity = await read_identity(drill.targets)
                refuse_pending(runs, running, identity, force=options.force, progress=progress)
                runner = Runner(drill, run_dir, render=reports.render, options=options, progress=progress,
                                identity=identity)
                runner.hold(lock)
                return await runner.run()
    finally:
        if run_dir.exists() and not (run_dir / JOURNAL_FILE).exists():
            # The drill never started: only a private lab's files are there, of no use to anyone.
            shutil.rmtree(run_dir, ignore_errors=True)


async def plan_scenario(file: Path, where: Where = Where(), *,
                        plugins: Plugins | None = None
                        ) -> tuple[Scenario, Environment, list[PlannedFault], DesignReview, BlastRadius]:
    """What running ``file`` would do to which objects, what the design allows, and the scenario's blast
    radius; touches nothing (a lab is started and stopped for it when ``where`` says lab)."""
    plugins = plugins or _plugins.installed()
    scenario, env = validate(file, where, plugins=plugins)
    if env is not None:
        env = await _proven(env, None)
    with tempfile.TemporaryDirectory(prefix="drill-plan-") as folder:
        async with _environment(where, env, lab_dir=Path(folder) / "lab", confirm=None) as running:
            scenario = _revalidate(file, running, plugins=plugins)
            await check_reachable(running)
            async with _bound(scenario, running, plugins=plugins) as drill:
                planned = await plan(drill)
                blast = await assess_drill(scenario, {p.step.id: p.undo for p in planned}, drill.targets)
                return scenario, running, planned, await review_drill(scenario, drill.targets), blast


async def _proven(env: Environment, confirm: Callable[[Environment], None] | None) -> Environment:
    """The environment with its lab proof checked; ``confirm`` asked unless it proved to be a lab."""
    proven = await prove_lab(env)
    if not proven.is_lab and confirm is not None:
        confirm(proven)
    return proven


def _warner(progress: Progress | None) -> Callable[[str], None]:
    """Where the lock's warnings go: the run's terminal, else stderr (never silenced: a stale lock
    taken over may mean a crashed drill's changes are still in place)."""
    if progress is not None:
        return lambda text: progress.note(text, loud=True)
    return lambda text: print(text, file=sys.stderr)


def refuse_pending(runs: Path, env: Environment, identity: Identity, *, force: bool,
                   progress: Progress | None) -> None:
    """Refuse (DrillError, nothing touched) to start while a run in ``runs`` needs recovery on this
    environment: a drill over what a crashed run left in place measures that, not the design (a
    cordon already there is "cordoning 0 nodes"). ``force`` starts anyway, saying so loudly."""
    pending = pending_runs(runs, env, identity)
    if not pending:
        return
    names = ", ".join(p.name for p in pending)
    commands = "; ".join(f"drill recover {p.name}" for p in pending)
    what = "run" if len(pending) == 1 else "runs"
    if not force:
        need = "needs" if len(pending) == 1 else "need"
        raise DrillError(f"refusing to start: {what} {names} in {runs} may have left faults in place in "
                         f"environment {env.name!r} ({env.path}) and {need} recovery first: {commands} "
                         "(or pass --force to drill over them anyway); nothing was touched")
    warning = (f"WARNING: --force: starting although {what} {names} may have left faults in place in this "
               f"environment; the results measure them too. Recover later with: {commands}")
    if progress is not None:
        progress.note(warning, loud=True)
    else:
        print(warning, file=sys.stderr)


def _revalidate(file: Path, env: Environment, *, plugins: Plugins) -> Scenario:
    """The scenario against the environment itself (a private lab's is known once it runs)."""
    return load_scenario(file, regions=set(env.regions), variables=variables(env), plugins=plugins)


@asynccontextmanager
async def _environment(where: Where, env: Environment | None, *, lab_dir: Path,
                       confirm: Callable[[Environment], None] | None) -> AsyncIterator[Environment]:
    """The environment file's environment, or a private lab's (proven, as every lab must be) for as
    long as the block runs."""
    if env is not None:
        yield env
        return
    await asyncio.to_thread(lab_dir.mkdir, parents=True, exist_ok=True)
    async with LabProcess(topology=where.topology, time_scale=where.time_scale, directory=lab_dir,
                          manifests=where.manifests) as lab:
        yield await _proven(load_environment(lab.environment_file), confirm)


@asynccontextmanager
async def _bound(scenario: Scenario, env: Environment, *, plugins: Plugins) -> AsyncIterator[BoundDrill]:
    drill = bind(scenario, env, plugins=plugins)
    try:
        yield drill
    finally:
        await drill.aclose()

