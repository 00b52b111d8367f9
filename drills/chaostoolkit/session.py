"""The drill run behind one ``chaos run``: its environment, clients and write-ahead journal.

Chaos Toolkit calls each activity as a plain function, one after another in one process; what they
share lives here, one :class:`ChaosRun` per process and environment file. Its event loop is kept for the
whole experiment, so that the API clients built for the first activity serve the others.

The run directory is made in the runs directory (``$DRILL_RUNS_DIR``, as ``drill run``'s) when the first
fault is applied: its ``events.jsonl`` gets ``run_started`` and then, per fault, the same lines ``drill
run`` writes (the undo record, fsynced, before the fault is injected; the objects' snapshots and marks),
held locked while the process lives. If the process dies, ``drill recover RUN`` finishes the rollback;
once the rollbacks leave nothing in place, the objects are restored from their snapshots and verified,
and ``run_ended`` closes the journal.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from drills.chaostoolkit.experiment import ENVIRONMENT_KEY, ENVIRONMENT_VARIABLE, SCENARIO_KEY
from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import DrillError
from drills.identity import read_identity
from drills.journal import JOURNAL_FILE, Journal, pending_undos, read_journal
from drills.runner.rundir import new_run_dir, runs_dir
from drills.runner.snapshots import RunSnapshots
from drills.targets import Targets
from reports.record import TimelineEvent

T = TypeVar("T")

_current: ChaosRun | None = None


class ChaosRun:
    """The drill side of one experiment run (see the module docstring)."""

    def __init__(self, environment: Path, scenario: str) -> None:
        self.env: Environment = load_environment(environment)
        self.scenario = scenario
        self.loop = asyncio.new_event_loop()
        self.clock = ScenarioClock(self.env.time_scale)
        self.targets = Targets(self.env, self.clock)
        self.run_dir: Path | None = None
        self._journal: Journal | None = None
        self._snapshots: RunSnapshots | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one activity's coroutine on the experiment's event loop."""
        return self.loop.run_until_complete(work)

    async def journal(self) -> tuple[Journal, RunSnapshots]:
        """The run's journal and snapshots, the run directory made (and ``run_started`` written) first."""
        if self._journal is None or self._snapshots is None:
            identity = await read_identity(self.targets)
            self.run_dir = new_run_dir(runs_dir(), f"chaos-{Path(self.scenario).stem}")
            journal = Journal(self.run_dir / JOURNAL_FILE, self.clock)
            await journal.awrite("run_started", scenario=self.scenario, environment=self.env.path,
                                 run_dir=str(self.run_dir.resolve()), time_scale=self.env.time_scale,
                                 rollback="auto", trials=1, seed=None, pid=os.getpid(),
                                 host=socket.gethostname(), identity=identity.to_json())
            self.targets.run_id = self.run_dir.name
            self._snapshots = RunSnapshots(self.targets, journal, self.run_dir.name, event=_timeline,
                                           note=_note)
            self._journal = journal
        return self._journal, self._snapshots

    async def finish_if_done(self) -> None:
        """Once no undo is pending: restore and verify the snapshotted objects, write ``run_ended``."""
        if self._journal is None or self._snapshots is None or self.run_dir is None:
            return
        if pending_undos(read_journal(self._journal.path)):
            return
        restored = await self._snapshots.restore()
        failed = [r.key for r in restored if r.outcome == "failed"]
        if failed:
            raise DrillError(f"could not restore {', '.join(failed)}: finish with `drill recover "
                             f"{self.run_dir.name}`")
        await self._journal.awrite("run_ended", verdict="completed", exit_code=0)
        await self.targets.aclose()
        self.close()

    def close(self) -> None:
        """Release the journal (and its lock); this process's next activity starts another run."""
        global _current
        if self._journal is not None:
            self._journal.close()
        self._journal = self._snapshots = None
        self.targets.close()
        if _current is self:
            _current = None


def current(configuration: Mapping[str, Any] | None) -> ChaosRun:
    """This process's run for the experiment's ``configuration`` (made on first use)."""
    global _current
    config = configuration or {}
    named = config.get(ENVIRONMENT_KEY)
    if not named:
        raise DrillError("the experiment's configuration names no drill environment file "
                         f"({ENVIRONMENT_KEY}; set {ENVIRONMENT_VARIABLE} to the environment file, a lab's "
                         "included)")
    path = Path(str(named)).expanduser().resolve()
    if not path.is_file():
        raise DrillError(f"no environment file {path} ({ENVIRONMENT_KEY} of the experiment's configuration)")
    if _current is None or Path(_current.env.path or "") != path:
        _current = ChaosRun(path, str(config.get(SCENARIO_KEY) or "chaostoolkit"))
    return _current


def existing() -> ChaosRun | None:
    """This process's run, if an activity made one."""
    return _current


def _timeline(event: TimelineEvent, step: str | None, detail: str) -> None:
    """The snapshots' timeline events: a ``chaos run`` has no timeline; its journal says it all."""


def _note(text: str) -> None:
    print(f"drill: {text}", flush=True)


@atexit.register
def _release() -> None:
    if _current is not None:
        _current.close()
