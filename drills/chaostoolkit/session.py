"""The drill run behind one ``chaos run``: its environment, clients, lock and write-ahead journal.

Chaos Toolkit calls each activity as a plain function, one after another in one process; what they
share lives here, one :class:`ChaosRun` per process and environment file. Its event loop runs in a
thread of its own for the whole experiment, so that the API clients built for the first activity serve
the others and the environment's lock is renewed between activities too.

When the first fault is applied, the run starts as ``drill run`` starts one: it refuses while a crashed
run needs recovery on the environment (``drill recover``), takes the environment's lock
(:mod:`drills.lock`: no other drill meanwhile; ``drill abort`` reaches it), and makes a run directory in
the runs directory (``$DRILL_RUNS_DIR``, as ``drill run``'s) whose ``events.jsonl`` gets ``run_started``
and then, per fault, the lines ``drill run`` writes (the undo record, fsynced, before the fault is
injected; the objects' snapshots and marks), held locked while the process lives. If the process dies,
``drill recover RUN`` finishes the rollback; if it ends with a fault still in place, it says on stderr
which, and that command. Once the rollbacks leave nothing in place, the objects are restored from their
snapshots and verified, ``run_ended`` closes the journal and the lock is released. ``drill abort``
(through the lock, or SIGTERM) makes every activity from then on fail, so that the rollbacks follow.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import socket
import sys
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from drills.chaostoolkit.experiment import ENVIRONMENT_KEY, ENVIRONMENT_VARIABLE, SCENARIO_KEY
from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import DrillError
from drills.identity import read_identity
from drills.journal import JOURNAL_FILE, Journal, pending_undos, read_journal
from drills.lock import EnvironmentLock, LockOwner
from drills.runner.rundir import new_run_dir, runs_dir
from drills.runner.session import refuse_pending
from drills.runner.snapshots import RunSnapshots
from drills.targets import Targets
from reports.record import TimelineEvent

T = TypeVar("T")

_current: ChaosRun | None = None


class DrillStopped(DrillError):
    """The drill must stop (its lock lost, ``drill abort``): the activity under way fails."""


class ChaosRun:
    """The drill side of one experiment run (see the module docstring)."""

    def __init__(self, environment: Path, scenario: str) -> None:
        self.env: Environment = load_environment(environment)
        self.scenario = scenario
        self.clock = ScenarioClock(self.env.time_scale)
        self.targets = Targets(self.env, self.clock)
        self.run_dir: Path | None = None
        self.stop_reason: str | None = None
        """Why the drill must stop (its lock lost, ``drill abort``), once it must."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="drill chaos run", daemon=True)
        self._thread.start()
        self._stopped = asyncio.Event()
        self._lock: EnvironmentLock | None = None
        self._journal: Journal | None = None
        self._snapshots: RunSnapshots | None = None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run one activity's coroutine on the experiment's event loop; its result or its exception."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` scenario seconds, or raise once the drill must stop (the rollbacks follow)."""
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=self.clock.to_real(max(0.0, seconds)))
        except TimeoutError:
            return
        self.check()

    def check(self) -> None:
        """Raise once the drill must stop."""
        if self.stop_reason is not None:
            raise DrillStopped(f"the drill must stop: {self.stop_reason}")

    async def journal(self) -> tuple[Journal, RunSnapshots]:
        """The run's journal and snapshots; the run started first (see the module docstring)."""
        if self._journal is None or self._snapshots is None:
            identity = await read_identity(self.targets)
            runs = runs_dir()
            refuse_pending(runs, self.env, identity, force=False, progress=None)
            run_dir = new_run_dir(runs, f"chaos-{Path(self.scenario).stem}")
            owner = LockOwner(run_id=run_dir.name, scenario=self.scenario)
            lock = EnvironmentLock(self.env, owner, warn=_note)
            await lock.acquire()
            lock.on_stop(self.stop)
            self._lock, self.run_dir = lock, run_dir
            journal = Journal(run_dir / JOURNAL_FILE, self.clock)
            await journal.awrite("run_started", scenario=self.scenario, environment=self.env.path,
                                 run_dir=str(run_dir.resolve()), time_scale=self.env.time_scale,
                                 rollback="auto", trials=1, seed=None, pid=os.getpid(),
                                 host=socket.gethostname(), identity=identity.to_json())
            await journal.awrite("lock_held", regions=lock.regions, holder=lock.owner.identity)
            self.targets.run_id = run_dir.name
            self._snapshots = RunSnapshots(self.targets, journal, run_dir.name, event=_timeline, note=_note)
            self._journal = journal
        return self._journal, self._snapshots

    async def finish_if_done(self) -> None:
        """Once no undo is pending: restore and verify the snapshotted objects, write ``run_ended``,
        release the lock and the clients; this process's next activity starts another run."""
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
        self._journal.close()
        self._journal = self._snapshots = None
        if self._lock is not None:
            await self._lock.release()
        await self.targets.aclose()
        _forget(self)

    def stop(self, reason: str) -> None:
        """Make the drill stop: the activity under way, and every later one, fails; the rollbacks run."""
        self.stop_reason = reason
        self._loop.call_soon_threadsafe(self._stopped.set)
        _note(f"{reason}: the experiment's next activity fails and its rollbacks run")

    def close(self) -> None:
        """At the process's exit: say on stderr what is still in place and how to finish it, release the
        journal's file lock (the run stays pending for ``drill recover``) and the clients; the
        environment lock lapses by itself."""
        if self._journal is not None:
            self._journal.close()
            left = _left_in_place(self._journal.path)
            if left:
                print(left, file=sys.stderr, flush=True)
        self.targets.close()


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
        _stop_on_sigterm(_current)
    return _current


def _stop_on_sigterm(run: ChaosRun) -> None:
    """Make SIGTERM (``drill abort RUN``) stop the drill, then do what Chaos Toolkit does with it.

    Chaos Toolkit turns SIGTERM into an exception in the activity under way, which fails that activity
    alone: the next ones would go on injecting and waiting. Activities run in the main thread, where
    a handler may be set; elsewhere (a background activity) the drill keeps Chaos Toolkit's handling."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: FrameType | None) -> None:
        run.stop("SIGTERM (drill abort)")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)


def existing() -> ChaosRun | None:
    """This process's run, if an activity made one."""
    return _current


def _forget(run: ChaosRun) -> None:
    global _current
    if _current is run:
        _current = None


def _left_in_place(journal: Path) -> str | None:
    """What the run's journal says is still in place, each with how a person undoes it, and the command
    that finishes the rollback; None when nothing is."""
    pending = pending_undos(read_journal(journal))
    if not pending:
        return None
    lines = [f"drill: the experiment ended with {len(pending)} fault(s) still in place (rollbacks that did "
             "not run or failed):"]
    for item in reversed(pending):
        lines.append(f"  {item.step}: {item.undo.summary}")
        if item.by_hand:
            lines.append(f"      undo with: {item.by_hand}")
    lines.append(f"drill: finish the rollback with `drill recover {journal.parent.name}`")
    return "\n".join(lines)


def _timeline(event: TimelineEvent, step: str | None, detail: str) -> None:
    """The snapshots' timeline events: a ``chaos run`` has no timeline; its journal says it all."""


def _note(text: str) -> None:
    print(f"drill: {text}", flush=True)


@atexit.register
def _release() -> None:
    if _current is not None:
        _current.close()
