"""Walking a scenario's steps, and undoing what they did: everything in a run that changes the world.

A fault step prepares its fault (reading, changing nothing), journals the undo record, and only then
injects it; the first injection to begin is the incident start. A wait lasts its duration, or until
its condition holds at some sample of its probe (failing the run, by name, after its timeout). A
parallel step runs its branches together; an undo step reverts one earlier fault now, which starts
recovery (failback is counted from it). :meth:`Steps.rollback` reverts, newest first, whatever is
still in place when the steps end, each revert retried and journaled, then restores and verifies every
object the faults touched from the run's snapshots (:mod:`drills.runner.snapshots`, taken before each
injection); or, for ``rollback: manual``, lists what is in place with the commands a person runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.errors import FaultError
from drills.faults.base import Fault, Undo
from drills.journal import Journal
from drills.plugins import FAULTS, reference
from drills.recover import revert_with_retries
from drills.runner.faultrun import FaultRun, by_hand, in_place_lines
from drills.runner.sampling import Sampler
from drills.runner.setup import BoundDrill
from drills.runner.snapshots import RunSnapshots
from drills.runner.verdict import EndingKind
from drills.scenario import FaultStep, ParallelStep, Step, UndoStep, WaitStep
from drills.units import format_duration
from reports.record import TimelineEvent

Event = Callable[[TimelineEvent, str | None, str], None]
"""Records one timeline event: its kind, the step id (or None), a sentence."""
Note = Callable[[str], None]
"""Tells the person watching something that needs their attention."""
Place = Callable[[FaultStep], Awaitable[None]]
"""Waits until the first fault of a trial is due (its chosen phase of the probe cycle)."""


class StepFailed(Exception):
    """A step ended the steps: how (``kind``) and why."""

    def __init__(self, kind: EndingKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class RevertPolicy:
    """How hard an undo is tried (real seconds: APIs recover in real time)."""

    attempts: int = 3
    backoff_real_s: float = 1.0


class Steps:
    """The steps of one run, with the marks metrics count from (see the module docstring)."""

    def __init__(self, drill: BoundDrill, sampler: Sampler, journal: Journal, *, event: Event, note: Note,
                 policy: RevertPolicy, faults: Mapping[str, FaultRun] | None = None,
                 place: Place | None = None, snapshots: RunSnapshots | None = None, trial: int = 1) -> None:
        """``faults``: this run's (or trial's) fault of each step, by step id (default the drill's);
        ``place``: awaited once the first fault's undo is journaled, just before it is injected;
        ``snapshots``: the run's, taken before each injection and restored after the rollback."""
        self.drill = drill
        self.faults: Mapping[str, FaultRun] = drill.faults if faults is None else faults
        self.incident_start: float | None = None
        """When the first fault's injection began (scenario seconds)."""
        self.recovery_start: float | None = None
        """When the first undo began: an undo step, or the rollback."""
        self.undone: dict[str, float] = {}
        """When each fault undone by an undo step was undone, by its step id."""
        self.prepared: list[FaultRun] = []
        """Every fault whose undo was journaled, in that order."""
        self.current = ""
        """What is happening now, for the live view."""
        self._clock: ScenarioClock = drill.clock
        self._sampler = sampler
        self._journal = journal
        self._event = event
        self._note = note
        self._policy = policy
        self._place = place
        self._snapshots = snapshots
        self._trial = trial

    async def run(self, steps: Sequence[Step]) -> None:
        """Run ``steps`` in order; raises :class:`StepFailed` (inside an ExceptionGroup when it came
        from a parallel branch) for the step that ended them."""
        for step in steps:
            await self._step(step)

    async def preflight(self) -> dict[str, Undo]:
        """Prepare every fault of the scenario now (each reads, none changes anything), so that a fault
        that cannot be prepared (a zone the cluster lacks, a blast-radius limit) refuses the drill before
        the first one is applied; raises :class:`StepFailed` ("refused") naming the first such step.
        Returns the undo records by step id, for the scenario's blast radius; the run does not use them
        otherwise: each step prepares again just before it injects, against the world as the earlier
        steps left it."""
        undos: dict[str, Undo] = {}
        for run in self.faults.values():
            step = run.step
            try:
                undos[step.id] = await run.fault.prepare(self.drill.targets)
            except Exception as exc:  # whatever stops a prepare now would stop it mid-run
                what = f"{step.fault} in {step.region}" if step.region else step.fault
                error = _text(exc)
                self._event("fault_failed", step.id, f"{what} could not be prepared: {error}")
                raise StepFailed("refused", f"pre-flight: step {step.id} ({what}) could not be prepared: "
                                 f"{error}; nothing was touched") from exc
        return undos

    def regions(self) -> frozenset[str]:
        """The regions of the faults this run prepared (so maybe applied)."""
        return frozenset(run.step.region for run in self.prepared if run.step.region)

    def left(self) -> list[FaultRun]:
        """The faults still (maybe) in place, newest first."""
        return [run for run in reversed(self.prepared) if run.needs_revert]

    async def rollback(self, *, manual: bool) -> None:
        """Undo every fault still in place, newest first; with ``manual``, say what a person must undo."""
        pending = self.left()
        if not pending:
            await self._restore(manual=manual)
            return
        self.current = "rolling back"
        if manual:
            self._event("rollback_started", None, f"rollback is manual: {len(pending)} faults stay in place")
            for run in pending:
                run.phase = "manual"
            title = "ROLLBACK IS MANUAL (the scenario says 'rollback: manual'); still in place:"
            self._note("\n".join([title, *in_place_lines(pending, self.drill.env)]))
            return
        # Recovery starts with the first undo: a manual rollback leaves every fault in place.
        if self.recovery_start is None:
            self.recovery_start = self._clock.now()
        count = "1 fault" if len(pending) == 1 else f"{len(pending)} faults, newest first"
        names = ", ".join(run.step.id for run in pending)
        self._event("rollback_started", None, f"undoing {count}: {names}")
        for run in pending:
            await self.revert(run)
        await self._restore(manual=manual)

    async def _restore(self, *, manual: bool) -> None:
        """Put every object the faults touched back as it was before the drill, and verify it."""
        if self._snapshots is None or manual:
            return
        self.current = "restoring and verifying what the faults touched"
        await self._snapshots.restore(trial=self._trial)

    async def revert(self, run: FaultRun) -> bool:
        """Revert one fault, retried and journaled; whether it is undone."""
        undo = run.undo
        if undo is None:
            return True
        needless = await self._snapshots.needless_revert(undo) if self._snapshots is not None else None
        if needless is not None:
            run.phase, run.error, run.attempts, run.reverted_t = "reverted", None, 0, self._clock.now()
            await self._journal.awrite("fault_reverted", step=run.step.id, attempts=0, skipped=needless)
            self._event("fault_reverted", run.step.id,
                        f"{undo.fault} in {undo.region}: not reverted from its record: {needless}")
            return True
        await self._journal.awrite("revert_started", step=run.step.id, fault=undo.fault, region=undo.region)
        attempts, error = await revert_with_retries(run.fault, self.drill.targets, undo,
                                                    attempts=self._policy.attempts,
                                                    backoff_s=self._policy.backoff_real_s)
        run.attempts, run.reverted_t = attempts, self._clock.now()
        if error is None:
            run.phase, run.error = "reverted", None
            await self._journal.awrite("fault_reverted", step=run.step.id, attempts=attempts)
            self._event("fault_reverted", run.step.id, f"{undo.fault} in {undo.region} undone")
            return True
        run.phase, run.error = "revert_failed", str(error)
        await self._journal.awrite("revert_failed", step=run.step.id, attempts=attempts, error=run.error)
        self._event("revert_failed", run.step.id, f"{undo.fault} in {undo.region}: {run.error}")
        return False

    async def _step(self, step: Step) -> None:
        self.current = f"{step.id}: {describe(step)}"
        self._event("step_started", step.id, describe(step))
        if isinstance(step, FaultStep):
            await self._fault(step)
        elif isinstance(step, WaitStep):
            await self._wait(step)
        elif isinstance(step, ParallelStep):
            async with asyncio.TaskGroup() as group:
                for child in step.steps:
                    group.create_task(self._step(child), name=f"step {child.id}")
        else:
            await self._undo(step)
        self._event("step_done", step.id, "")

    async def _fault(self, step: FaultStep) -> None:
        run = self.faults[step.id]
        what = f"{step.fault} in {step.region}" if step.region else step.fault
        run.phase = "preparing"
        try:
            undo = await run.fault.prepare(self.drill.targets)
        except Exception as exc:  # any failure to prepare ends the steps; nothing was changed
            run.phase, run.error = "failed", _text(exc)
            await self._journal.awrite("fault_failed", step=step.id, error=run.error)
            self._event("fault_failed", step.id, f"{what} could not be prepared: {run.error}")
            raise StepFailed("error", f"step {step.id} ({what}) could not be prepared: {run.error}") from exc
        # Known to the rollback before the line is written: a cancellation while it is being written
        # (the line lands all the same) must not leave a journaled undo the rollback does not know.
        run.undo, run.phase = undo, "injecting"
        self.prepared.append(run)
        await journal_prepared(self._journal, step, run.fault, undo, self.drill.env)
        if self._snapshots is not None:
            try:
                await self._snapshots.before_inject(step.id, undo)
            except Exception as exc:  # not snapshotted, not marked: not injected
                run.phase, run.error = "failed", _text(exc)
                await self._journal.awrite("fault_failed", step=step.id, error=run.error)
                self._event("fault_failed", step.id, f"{what}: cannot snapshot what it changes: {run.error}")
                raise StepFailed("error", f"step {step.id} ({what}): cannot snapshot what it changes: "
                                 f"{run.error}; it was not injected") from exc
        if self.incident_start is None and self._place is not None:
            # After the journal's fsync, so that the incident starts at the phase chosen; an abort
            # while waiting reverts a fault not yet injected, which restores what is already there.
            await self._place(step)
        started = self._clock.now()
        if self.incident_start is None:
            self.incident_start = started
        try:
            await run.fault.inject(self.drill.targets, undo)
        except Exception as exc:  # maybe partly applied: the rollback reverts it all the same
            run.phase, run.error = "failed", _text(exc)
            await self._journal.awrite("fault_failed", step=step.id, error=run.error)
            self._event("fault_failed", step.id, f"{what}: {run.error}")
            # A permanent refusal is the design answering (a budget forbids the drain); anything
            # else is drill failing to do its job.
            kind: EndingKind = ("fault_refused" if isinstance(exc, FaultError) and not exc.transient
                                else "error")
            raise StepFailed(kind, f"step {step.id} ({what}) failed: {run.error}") from exc
        run.phase = "applied"
        await self._journal.awrite("fault_applied", step=step.id, inject_t=round(started, 3))
        self._event("fault_applied", step.id, undo.summary)

    async def _wait(self, step: WaitStep) -> None:
        start = self._clock.now()
        condition = step.condition
        if condition is None:
            await self._clock.sleep(step.timeout)
            self._event("wait_done", step.id, f"waited {format_duration(step.timeout)}")
            return
        signal = (condition.probe, condition.name)
        if await self._sampler.wait_until(lambda: condition.holds(self._sampler.signal(*signal)),
                                          step.timeout):
            took = format_duration(self._clock.now() - start)
            self._event("wait_done", step.id, f"{condition.text} after {took}")
            return
        now = self._sampler.signal(*signal)
        self._event("wait_timed_out", step.id, f"{condition.text} did not hold within "
                    f"{format_duration(step.timeout)} ({condition.subject} is {now})")
        raise StepFailed("wait_timed_out", f"wait {step.id} ({condition.text}) timed out after "
                         f"{format_duration(step.timeout)}: {condition.subject} was {now}")

    async def _undo(self, step: UndoStep) -> None:
        run = self.faults[step.target]
        if not run.needs_revert:
            return
        begun = self._clock.now()
        if self.recovery_start is None:
            self.recovery_start = begun
        self.undone[step.target] = begun
        if not await self.revert(run):
            raise StepFailed("error", f"step {step.id} could not undo {step.target}: {run.error}")


def describe(step: Step) -> str:
    """A step in a few words, for the timeline."""
    if isinstance(step, FaultStep):
        return f"fault {step.fault}" + (f" in {step.region}" if step.region else "")
    if isinstance(step, WaitStep):
        if step.condition is None:
            return f"wait {format_duration(step.timeout)}"
        return f"wait until {step.condition.text} (timeout {format_duration(step.timeout)})"
    if isinstance(step, ParallelStep):
        return "parallel: " + ", ".join(s.id for s in step.steps)
    return f"undo {step.target}"


async def journal_prepared(journal: Journal, step: FaultStep, fault: Fault, undo: Undo,
                           env: Environment) -> None:
    """Journal (fsynced) that ``step`` prepared ``fault``, before it is injected: its undo record, its
    parameters, where its code was found (so that ``drill recover`` finds it again whatever it calls
    itself) and the command a person runs to undo it."""
    await journal.awrite("fault_prepared", step=step.id, undo=undo, params=step.params,
                         plugin=reference(FAULTS, step.fault, type(fault)), by_hand=by_hand(fault, undo, env))


def first_failure(error: BaseException) -> BaseException:
    """The error that ended the steps; inside a parallel step's group, the first step failure."""
    if isinstance(error, BaseExceptionGroup):
        leaves = [first_failure(e) for e in error.exceptions]
        return next((e for e in leaves if isinstance(e, StepFailed)), leaves[0])
    return error


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
