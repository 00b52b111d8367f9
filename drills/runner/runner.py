"""The runner: one drill from the first probe sample to ``run.json``.

:meth:`Runner.run` takes a scenario already bound to its environment (:mod:`drills.runner.setup`)
and walks it: probes start, the steady state is awaited (no steady state, no drill, unless forced);
no other run's marks may be on the environment (:mod:`drills.leftovers`: a crashed run's changes may
still be in place; otherwise no drill, unless forced); the design is reviewed (:mod:`drills.design`:
what the settings allow each expectation) and the regions expected to take over must be healthy
(:mod:`drills.runner.takeover`; otherwise no drill, unless forced); every fault is prepared once
(the pre-flight: a fault that cannot be prepared refuses the drill before any fault is applied); the
steps run in order on the scenario clock (:mod:`drills.runner.steps`) while guards watch every
sample; then, however the steps ended (done, a failed wait, a guard, a fault error, a bug, Ctrl-C or
SIGTERM), every fault not yet undone is reverted, newest first, every object the faults touched is
restored from its snapshot and verified, and the probes keep sampling until the steady state
returns, which measures failback. Metrics, expectations and the verdict follow; ``run.json`` and the
reports are written last.

A run of several trials (``RunOptions.trials``; on a lab 4 by default, elsewhere 1) repeats all of
that after the first steady state, on the same sampler and journal: each trial places its first fault
at its own phase of the failed region's Traffic Manager probe cycle (:mod:`drills.runner.probecycle`),
walks the steps, rolls every fault back and waits for the steady state to return, which is where the
next trial starts (no second pre-flight, no second steady-state wait). A trial that ends early (a
guard, a failed wait, an error, a signal, a rollback left incomplete, a steady state that did not
return) stops the trials left. Each probe computes its metrics per trial, over that trial's samples
and with its marks (``ended``: when its failback ended; ``failed_regions``: the regions of its
faults); :mod:`drills.runner.sweep` combines them, and an expectation holds only if it holds in every trial.

The journal is written ahead of every change (``fault_prepared`` with the undo record before
``inject``), so that ``drill recover`` can finish the job if this process dies.

Every way out ends the same: ``run.json``, the reports and ``run_ended`` are written (a cancelled run
raises CancelledError once they are). Signals arrive as presses (:mod:`drills.runner.interrupts`);
during the rollback a Ctrl-C warns and the next abandons it, and whatever is left in place (abandoned,
or a revert that failed) is printed with its by-hand undo and the ``drill recover`` command.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import os
import shutil
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote
from typing import Any, TypeVar

from drills.blast import BlastRadius, assess_drill
from drills.design import DesignReview, review_drill
from drills.errors import DrillError
from drills.faults.base import Undo
from drills.history import record_run
from drills.identity import Identity
from drills.journal import JOURNAL_FILE, Journal
from drills.leftovers import refusal as leftovers_refusal
from drills.lock import EnvironmentLock
from drills.runner import record
from drills.runner.faultrun import FaultRun, in_place_lines
from drills.runner.guards import GuardState, GuardWatch
from drills.runner.interrupts import Interrupts
from drills.runner.livestate import GuardLine, LiveState, ProbeLine, SignalHistory, incident_deadlines
from drills.runner.probecycle import (
    PLACEMENT_ATTEMPTS,
    PLACEMENT_TOLERANCE,
    CycleSchedule,
    ScheduleUnavailable,
    new_seed,
    read_schedule,
    trial_phases,
)
from drills.runner.progress import Progress, Silent
from drills.runner.readouts import readouts, time_base
from drills.runner.rundir import iso, runs_dir, write_record
from drills.runner.sampling import Sampler, SamplingSettings, read_samples
from drills.runner.setup import BoundDrill
from drills.runner.snapshots import RunSnapshots
from drills.runner.steps import RevertPolicy, StepFailed, Steps, first_failure
from drills.runner.sweep import DEFAULT_LAB_TRIALS, TrialMetrics, combine
from drills.runner.takeover import takeover_refusal
from drills.runner.verdict import Ending, decide, judge
from drills.scenario import FaultStep
from drills.units import format_duration
from probes.base import Marks, Metric, Sample, SignalValue
from probes.blindness import BlindInterval, blind_metrics
from reports import ReportersFailed
from reports.base import describe_trial
from reports.record import RunRecord, TimelineEvent, TimelineRecord
from reports.samples import SAMPLES_FILE

T = TypeVar("T")
ABANDON_GRACE_S = 1.0
"""Real seconds an abandoned rollback is given to stop before the run is recorded without it."""
Render = Callable[[Path], list[Path]]
"""Renders the reports of a finished run directory; returns the files written."""


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves beyond what its scenario says. Durations in scenario seconds."""

    force: bool = False
    """Override drill's refusals to start (no steady state, an unhealthy takeover region, a run pending
    recovery on the environment: :func:`~drills.runner.session.refuse_pending`); the verdict then
    means less, and the run says so loudly."""
    steady_timeout_s: float = 120.0
    """How long to wait for the steady state before the first fault: a healthy system shows it
    within a few probe periods; two minutes allows slow probes a handful of samples."""
    steady_timeout_min_real_s: float = 15.0
    """The wait for the first steady state is never shorter than this in real seconds: connecting,
    starting watches and a first few samples take real time however fast a lab's clock runs."""
    failback_timeout_s: float = 300.0
    """How long to keep sampling after rollback for the steady state to return: five minutes covers
    health-check recovery plus a DNS TTL for the usual settings; past it failback is reported missing."""
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    revert: RevertPolicy = field(default_factory=RevertPolicy)
    junit: Path | None = None
    """Also copy ``junit.xml`` here (CI)."""
    handle_signals: bool = True
    """Turn SIGINT, SIGTERM and SIGHUP into an orderly abort and rollback (main thread only)."""
    interrupts: Interrupts | None = None
    """The process's signal handlers, when its caller installed them for longer than the run (the
    command line: until the process has its exit code); None: the run installs its own for its
    duration."""
    trials: int | None = None
    """How many times the steps run (None: :data:`~drills.runner.sweep.DEFAULT_LAB_TRIALS` on a lab,
    1 on a real environment, where every trial is an outage of production)."""
    seed: int | None = None
    """Rotates the trials' phases of the probe cycle (None: a new one, recorded in ``run.json``)."""

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"trials must be at least 1, not {self.trials}")


@dataclass(eq=False)
class Trial:
    """One pass of the steps, from its steady state to the steady state's return."""

    index: int
    """From 1."""
    target_phase: float | None
    """Where in the probe cycle its first fault is to start (None: not placed)."""
    steps: Steps
    started: float
    """Scenario time its samples begin (the previous trial's end; 0 for the first)."""
    cycle: CycleSchedule | None = None
    """The failed region's probe cycle, when it was read to place the first fault."""
    phase: float | None = None
    """Where in the probe cycle the incident started, as measured (None: unknown)."""
    ended: float | None = None
    returned_t: float | None = None


@dataclass(frozen=True)
class RunResult:
    """A finished run."""

    run_dir: Path
    record: RunRecord
    reports: tuple[Path, ...]

    @property
    def exit_code(self) -> int:
        return self.record["exit_code"]

    @property
    def verdict(self) -> str:
        return self.record["verdict"]


class Runner:
    """Runs one bound drill into ``run_dir`` (see the module docstring)."""

    def __init__(self, drill: BoundDrill, run_dir: Path, *, render: Render,
                 options: RunOptions = RunOptions(), progress: Progress | None = None,
                 identity: Identity | None = None) -> None:
        """``identity``: the environment's, read before anything changed; recorded in ``run_started``
        so that ``drill recover`` undoes nothing in another environment (None: not known)."""
        self.drill = drill
        self.identity = identity
        self.run_dir = run_dir
        self.options = options
        self.progress = progress or Silent()
        self.timeline: list[TimelineRecord] = []
        self.steady_before = False
        self.returned_t: float | None = None
        self.count = options.trials or (DEFAULT_LAB_TRIALS if drill.env.is_lab else 1)
        """How many trials the run makes (fewer run when one ends early)."""
        self.seed = options.seed if options.seed is not None else new_seed()
        self.trials: list[Trial] = []
        """The trials run so far."""
        self.blast: BlastRadius | None = None
        """The scenario's blast radius, once the pre-flight has prepared every fault."""
        self._phases = trial_phases(self.count, self.seed)
        self._interval: float | None = None
        """The probe cycle's length, once read from the lab."""
        self._placement_off = False
        self._render = render
        self._clock = drill.clock
        self._scenario = drill.scenario
        self._steps: Steps | None = None
        self._journal: Journal | None = None
        self._snapshots: RunSnapshots | None = None
        self._baseline: dict[str, dict[str, SignalValue]] = {}
        self._phase = "starting"
        self._design: DesignReview | None = None
        self._abandoned = asyncio.Event()
        """Set by the Ctrl-C after the warning: the rollback stops, what is left stays in place."""
        self._warned = False
        self._cancelled = False
        self._ended = False
        self._abort_ending: Ending | None = None
        self._aborted = asyncio.Event()
        self._skip_failback = asyncio.Event()
        self._lock: EnvironmentLock | None = None
        self.sampler = Sampler(drill.probes, self._clock, run_dir / SAMPLES_FILE, settings=options.sampling)
        self.guards = GuardWatch(self._scenario.guards, self.sampler, on_trip=self._guard_tripped)
        self._history = SignalHistory()
        if self.progress.draws_trends:
            self._history.follow(self.sampler)
        self._deadlines = incident_deadlines(self._scenario.expect,
                                             {name: probe for name, (probe, _) in drill.probes.items()})
        """The RTO-like expectations: the live view times the incident against them."""

    def hold(self, lock: EnvironmentLock) -> None:
        """Run under the environment's ``lock`` (:mod:`drills.lock`), taken before :meth:`run`: the run
        records it, and once the lock is lost or an abort is asked through it the drill stops and rolls
        back, as on SIGTERM."""
        self._lock = lock
        lock.on_stop(self._lock_stopped)

    async def run(self) -> RunResult:
        """Run the drill; returns (with the verdict) after rolling back whatever it did.

        Cancelled, it still rolls back and writes the record, its reports and ``run_ended``, then
        raises CancelledError; an error of the runner itself is the run's error, recorded likewise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = self.drill.env
        journal = self._journal = Journal(self.run_dir / JOURNAL_FILE, self._clock)
        self.drill.targets.run_id = self.run_dir.name
        self._snapshots = RunSnapshots(self.drill.targets, journal, self.run_dir.name, event=self._event,
                                       note=lambda text: self.progress.note(text, loud=True))
        await journal.awrite("run_started", scenario=self._scenario.file, environment=env.path,
                             run_dir=str(self.run_dir.resolve()), time_scale=env.time_scale,
                             rollback=self._scenario.rollback, trials=self.count, seed=self.seed,
                             pid=os.getpid(), host=socket.gethostname(),
                             identity=self.identity.to_json() if self.identity is not None else None)
        if env.is_lab:
            self.progress.note(time_base(self._clock.time_scale))
        if self._lock is not None:
            await journal.awrite("lock_held", regions=self._lock.regions, holder=self._lock.owner.identity)
            self._event("lock_held", None, self._lock.describe())
        # Installed until the record is written: a signal while it is being written waits its turn
        # instead of interrupting it.
        restore_signals = self._install_signals()
        try:
            watcher = asyncio.create_task(self.progress.watch(self._live), name="progress")
            try:
                ending = await self._drill()
            except asyncio.CancelledError:
                self._cancelled = True
                ending = Ending("interrupted", "the run was cancelled")
            except Exception as exc:  # drill's own bug: recorded as the run's error all the same
                self.progress.note("".join(traceback.format_exception(exc)).rstrip(), loud=True)
                ending = Ending("error", f"unexpected error: {type(exc).__name__}: {exc}")
                await self._salvage()
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                try:
                    await self.sampler.stop()
                except asyncio.CancelledError:
                    self._cancelled = True
            try:
                result = self._finish(ending, journal)
            except BaseException:
                if not self._ended:
                    journal.write("run_ended", verdict="error", exit_code=2)
                raise
            if self._cancelled:
                raise asyncio.CancelledError
            return result
        finally:
            restore_signals()
            journal.close()

    # phases

    async def _drill(self) -> Ending:
        await self.sampler.start()
        self._event("probes_started", None, ", ".join(f"{n} ({s.kind} every {format_duration(s.period)})"
                                                      for n, s in self.sampler.states.items()))
        ending = Ending("completed")
        for index in range(1, self.count + 1):
            trial = self._new_trial(index)
            ending = await self._trial(trial)
            stop = self._stop(trial, ending)
            if stop is not None:
                return stop
        return ending

    def _new_trial(self, index: int) -> Trial:
        assert self._journal is not None
        # Each trial has faults of its own: where each got to (and its undo) belongs to one trial.
        faults = (self.drill.faults if index == 1 else
                  {sid: FaultRun(step=run.step, fault=run.fault) for sid, run in self.drill.faults.items()})
        previous = self.trials[-1].ended if self.trials else None
        target = self._phases[index - 1] if self.drill.env.is_lab else None

        async def place(step: FaultStep) -> None:
            await self._place(trial, step)

        steps = Steps(self.drill, self.sampler, self._journal, event=self._event,
                      note=lambda text: self.progress.note(text, loud=True), policy=self.options.revert,
                      faults=faults, place=place, snapshots=self._snapshots, trial=index)
        trial = Trial(index=index, target_phase=target, steps=steps, started=previous or 0.0)
        self.trials.append(trial)
        return trial

    def _stop(self, trial: Trial, ending: Ending) -> Ending | None:
        """Why the trials after ``trial`` must not run (None: they may)."""
        left = self.count - trial.index
        if ending.kind != "completed":
            return ending
        if left == 0:
            return None
        not_run = (f"trial {trial.index + 1} was not run" if left == 1
                   else f"trials {trial.index + 1}-{self.count} were not run")
        if trial.steps.left() or any(run.phase == "manual" for run in trial.steps.prepared):
            return Ending("completed", f"{not_run}: faults of trial {trial.index} are still in place")
        if self._skip_failback.is_set():
            return Ending("interrupted", f"interrupted while trial {trial.index} of {self.count} was failing "
                          f"back; {not_run}")
        if trial.steps.incident_start is not None and trial.returned_t is None:
            return Ending("wait_timed_out", f"the steady state did not return within "
                          f"{format_duration(self.options.failback_timeout_s)} after trial {trial.index} of "
                          f"{self.count} ({self._not_steady()}); {not_run}")
        return None

    async def _trial(self, trial: Trial) -> Ending:
        steps = self._steps = trial.steps
        if self.count > 1:
            self._event("trial_started", None, self._trial_words(trial, planned=True))
        try:
            ending = await self._before_and_steps(steps, first=trial.index == 1)
        except asyncio.CancelledError:
            # Cancelled from outside (not by a signal we handle): still undo what was done, and
            # record the run (run() raises CancelledError again once it is recorded).
            self._cancelled = True
            ending = Ending("interrupted", "the run was cancelled")
            self._abort(ending)
        except Exception as exc:  # a bug, in drill or a plugin: report it, then roll back all the same
            self.progress.note("".join(traceback.format_exception(exc)).rstrip(), loud=True)
            ending = Ending("error", f"unexpected error: {type(exc).__name__}: {exc}")
        await self._rollback(steps)
        in_place = steps.left() or any(run.phase == "manual" for run in steps.prepared)
        if steps.incident_start is not None and not in_place and not self._cancelled:
            self._phase = "failback"
            await self._failback(trial)
        trial.ended = self._clock.now()
        if trial.cycle is not None and steps.incident_start is not None:
            trial.phase = round(trial.cycle.phase_at(self._clock.real(steps.incident_start)), 4)
        # A refusal comes from the pre-flight, before any trial's fault: it belongs to the run.
        if ending.kind not in ("completed", "refused") and self.count > 1:
            ending = Ending(ending.kind, f"{self._trial_words(trial)}: {ending.reason}")
        return ending

    async def _before_and_steps(self, steps: Steps, *, first: bool) -> Ending:
        self._phase = steps.current = "waiting for the steady state"
        timeout = max(self.options.steady_timeout_s,
                      self.options.steady_timeout_min_real_s * self._clock.time_scale)
        # After the first trial the failback wait has already seen the steady state return: this
        # returns at once unless it was lost again since.
        steady = await self._unless_aborted(self.sampler.wait_until(self.sampler.all_steady, timeout))
        if self._abort_ending is not None:
            return self._abort_ending
        if first:
            self.steady_before = bool(steady)
        if steady and first:
            # What "back to normal" means after rollback: steady again, and every named signal (a DNS
            # answer, a serving region) back to the value it has now.
            self._baseline = {name: {k: v for k, v in state.signals.items() if isinstance(v, str)}
                              for name, state in self.sampler.states.items()}
            named = "; ".join(f"{n}: {_signals_text(b)}" for n, b in self._baseline.items() if b)
            self._event("steady_state", None,
                        "every probe shows the steady state" + (f" ({named})" if named else ""))
        elif not steady and not self.options.force:
            return Ending("refused", "the probes did not show the steady state within "
                          f"{format_duration(timeout)} ({self._not_steady()}); nothing was touched "
                          "(--force runs anyway)")
        elif not steady:
            self.progress.note(f"no steady state ({self._not_steady()}); going on because of --force",
                               loud=True)
        if first:
            self._phase = steps.current = "pre-flight: preparing every fault"
            faults = {run.step.fault for run in self.drill.faults.values()}
            leftovers = await self._unless_aborted(leftovers_refusal(
                self.drill.targets, self.run_dir.name, faults=faults, force=self.options.force,
                runs=self.run_dir.parent,
                note=lambda text: self.progress.note(text, loud=True)))
            if leftovers is not None:
                return Ending("refused", leftovers)
            if self._abort_ending is not None:
                return self._abort_ending
            self._design = await self._unless_aborted(review_drill(self._scenario, self.drill.targets))
            refusal = await self._unless_aborted(takeover_refusal(
                self._scenario, self.drill.targets, force=self.options.force, note=self.progress.note))
            if refusal is not None:
                return refusal
            try:
                undos = await self._unless_aborted(steps.preflight())
            except StepFailed as failure:
                return Ending(failure.kind, failure.reason)
            if self._abort_ending is not None:
                return self._abort_ending
            refusal = await self._blast_refusal(undos or {})
            if refusal is not None:
                return refusal
        self._phase = "steps"
        self.guards.active = True
        blind = asyncio.create_task(self._watch_blind(), name="guards: blind probes")
        walking = asyncio.create_task(steps.run(self._scenario.steps), name="steps")
        aborted = asyncio.create_task(self._aborted.wait(), name="abort")
        try:
            await asyncio.wait({walking, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.guards.active = False
            for task in (walking, aborted, blind):
                task.cancel()
            await asyncio.gather(walking, aborted, blind, return_exceptions=True)
        if self._abort_ending is not None:
            return self._abort_ending
        error = walking.exception() if not walking.cancelled() else None
        if error is None:
            return Ending("completed")
        failure = first_failure(error)
        if isinstance(failure, StepFailed):
            return Ending(failure.kind, failure.reason)
        raise failure

    async def _blast_refusal(self, undos: dict[str, Undo]) -> Ending | None:
        """The scenario's blast radius from the pre-flight's undo records (:mod:`drills.blast`), kept for
        ``run.json``; the ending that refuses the drill when it breaks a limit."""
        try:
            blast = await self._unless_aborted(assess_drill(self._scenario, undos, self.drill.targets))
        except DrillError as exc:  # the zones could not be read: no blast radius, no drill
            return Ending("refused", f"blast radius: {exc}; nothing was touched")
        if self._abort_ending is not None:
            return self._abort_ending
        self.blast = blast
        if blast is None or not blast.refused:
            return None
        return Ending("refused", blast.reason)

    async def _place(self, trial: Trial, step: FaultStep) -> None:
        """Wait until ``trial``'s first fault is due at its phase of the failed region's probe cycle."""
        if trial.target_phase is None or self._placement_off:
            return
        if not step.region:
            self._placement_stopped(f"step {step.id} names no region whose probe cycle to follow")
            return
        try:
            cycle = await read_schedule(self.drill.targets, self.drill.env, step.region)
        except ScheduleUnavailable as exc:
            self._placement_stopped(str(exc))
            return
        except Exception as exc:  # the lab's API failing to say is no reason to stop the drill
            self._placement_stopped(f"the lab's schedule could not be read: {type(exc).__name__}: {exc}")
            return
        trial.cycle, self._interval = cycle, cycle.interval
        steps = trial.steps
        steps.current = f"{step.id}: waiting for phase {trial.target_phase:.2f} of the probe cycle"
        late = 1.0
        for _ in range(PLACEMENT_ATTEMPTS):
            start = cycle.start_for(trial.target_phase, now_real=self._clock.real())
            await asyncio.sleep(max(0.0, start - self._clock.real()))
            late = cycle.late_by(trial.target_phase, self._clock.real())
            if late <= PLACEMENT_TOLERANCE:
                return
        self.progress.note(
            f"trial {trial.index}'s first fault starts {late:.2f} of the probe cycle after its phase "
            f"{trial.target_phase:.2f} ({PLACEMENT_ATTEMPTS} cycles tried): this machine is too busy for the "
            "lab's time scale, and the trials' phases may leave gaps (a lower --time-scale helps); the "
            "phase measured is recorded", loud=True)

    def _placement_stopped(self, why: str) -> None:
        self._placement_off = True
        self.progress.note(f"faults are not placed in the probe cycle (phases unknown): {why}")

    async def _failback(self, trial: Trial) -> None:
        steps = trial.steps
        steps.current = "waiting for the steady state to return"
        since = self._clock.now()

        def returned() -> bool:
            # Judge only samples started after the rollback: earlier ones predate the undo.
            return all(s.steady and s.recent and s.recent[-1].t >= since
                       and all(s.signals.get(k) == v for k, v in self._baseline.get(s.name, {}).items())
                       for s in self.sampler.states.values())

        skip = asyncio.create_task(self._skip_failback.wait())
        wait = asyncio.create_task(self.sampler.wait_until(returned, self.options.failback_timeout_s))
        try:
            await asyncio.wait({skip, wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            skip.cancel()
            wait.cancel()
            await asyncio.gather(skip, wait, return_exceptions=True)
        self.returned_t = None
        if not wait.cancelled() and wait.result():
            self.returned_t = trial.returned_t = self._clock.now()
            began = steps.recovery_start if steps.recovery_start is not None else since
            self._event("steady_state_returned", None,
                        f"{format_duration(self.returned_t - began)} after the undo began")
        elif self._skip_failback.is_set():
            self.progress.note("stopped waiting for the steady state to return", loud=True)
        else:
            self.progress.note(f"the steady state did not return within "
                               f"{format_duration(self.options.failback_timeout_s)} ({self._not_steady()})",
                               loud=True)

    # aborting

    async def _unless_aborted(self, work: Coroutine[Any, Any, T]) -> T | None:
        """Await ``work`` unless an abort comes first (then cancel it and return None)."""
        task = asyncio.create_task(work)
        aborted = asyncio.create_task(self._aborted.wait())
        try:
            await asyncio.wait({task, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            await asyncio.gather(aborted, return_exceptions=True)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None

    def _abort(self, ending: Ending) -> None:
        if self._abort_ending is None:
            self._abort_ending = ending
        self._aborted.set()

    def _lock_stopped(self, why: str) -> None:
        self.progress.note(f"{why}: stopping the drill and rolling back", loud=True)
        self._abort(Ending("interrupted", why))
        if self._phase == "failback":
            self._skip_failback.set()

    def _guard_tripped(self, state: GuardState) -> None:
        self._event("guard_tripped", None, f"{state.guard.text}: {state.reason}")
        self._abort(Ending("guard", f"guard {state.guard.text!r} tripped: {state.reason}"))

    async def _watch_blind(self) -> None:
        period = min((s.period for s in self.sampler.states.values()), default=1.0)
        while True:
            await self._clock.sleep(period)
            self.guards.check_blind(self._clock.now())

    def _install_signals(self) -> Callable[[], None]:
        """Take the signals for this run; returns what hands them back."""
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        interrupts = self.options.interrupts
        own = interrupts is None or not interrupts.installed
        if interrupts is None:
            interrupts = Interrupts()
        if own:
            interrupts.install()
        interrupts.attach(asyncio.get_running_loop(), self._on_signal)

        def detach() -> None:
            interrupts.detach()
            if own:
                interrupts.restore()

        return detach

    def _on_signal(self, sig: signal.Signals, press: bool) -> None:
        """One signal (see :mod:`drills.runner.interrupts`): the first stops the drill and rolls back;
        in the rollback a Ctrl-C press warns, the next abandons it; SIGTERM and SIGHUP never do (nobody
        may be there to decide); in failback a press stops waiting for the steady state."""
        if not press:
            return
        if self._phase in ("starting", "waiting for the steady state", "pre-flight: preparing every fault",
                           "steps"):
            if self._abort_ending is None:
                self.progress.note(f"{sig.name}: stopping the drill and rolling back", loud=True)
            self._abort(Ending("interrupted", f"interrupted by {sig.name}"))
        elif self._phase == "rollback":
            if sig != signal.SIGINT:
                self.progress.note(f"{sig.name}: rolling back, please wait (the faults are being undone)",
                                   loud=True)
            elif not self._warned:
                self._warned = True
                self.progress.note("rolling back: press Ctrl-C again to abandon the rollback and leave "
                                   "faults in place", loud=True)
            else:
                self.progress.note("Ctrl-C: abandoning the rollback; the faults not yet undone stay in place",
                                   loud=True)
                self._abandoned.set()
        elif self._phase == "failback":
            self.progress.note(f"{sig.name}: no longer waiting for the steady state to return", loud=True)
            self._skip_failback.set()
        else:
            self.progress.note("finishing the run record, please wait", loud=True)

    async def _rollback(self, steps: Steps) -> None:
        """Undo what ``steps`` left in place, unless abandoned (then what is left is marked as not
        undone, and stays journaled as pending for ``drill recover``)."""
        self._phase = "rollback"
        manual = self._scenario.rollback == "manual"
        work = asyncio.create_task(steps.rollback(manual=manual), name="rollback")
        abandon = asyncio.create_task(self._abandoned.wait(), name="abandon")
        try:
            while not work.done():
                try:
                    await asyncio.wait({work, abandon}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    # Cancelled from outside: the rollback goes on all the same (Ctrl-C abandons it).
                    self._cancelled = True
                    continue
                if abandon.done():
                    # Not awaited to its end: a cancelled API call still waits for its request on the
                    # wire (up to its timeout), and the person asked to leave now. What lands later is
                    # harmless: drill recover's undo is idempotent.
                    work.cancel()
                    await asyncio.wait({work}, timeout=ABANDON_GRACE_S)
                    break
        finally:
            abandon.cancel()
        if self._abandoned.is_set():
            self._abandon_left(steps)
        elif work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()  # type: ignore[misc]

    def _abandon_left(self, steps: Steps) -> None:
        assert self._journal is not None
        for run in steps.left():
            if run.phase != "revert_failed":
                run.phase, run.error = "revert_failed", "the rollback was abandoned (Ctrl-C)"
                self._journal.write("revert_failed", step=run.step.id, attempts=run.attempts, error=run.error)
                self._event("revert_failed", run.step.id, run.error)

    async def _salvage(self) -> None:
        """After the runner's own error: one more rollback of whatever any trial left in place."""
        for trial in reversed(self.trials):
            if trial.steps.left():
                try:
                    await self._rollback(trial.steps)
                except Exception as exc:  # what is left is reported as still in place
                    self.progress.note(f"the rollback failed: {type(exc).__name__}: {exc}", loud=True)

    # the end

    def _finish(self, ending: Ending, journal: Journal) -> RunResult:
        self._phase = "finishing"
        end = self.sampler.stopped_t or self._clock.now()
        per_trial, broken = self._trial_metrics(end)
        if broken and ending.kind == "completed":
            ending = Ending("error", "; ".join(broken))
        # The review predicts what the faults do: a run that applied none has nothing to compare.
        incident = any(t.steps.incident_start is not None for t in self.trials)
        reviews = self._design.by_expectation() if self._design and incident else None
        sweep = combine(self._scenario.expect, per_trial,
                        judge=functools.partial(judge, inconclusive=self._scenario.inconclusive,
                                                reviews=reviews),
                        interval=self._interval)
        prepared = [run for trial in self.trials for run in trial.steps.prepared]
        failed = list(dict.fromkeys(r.step.id for r in prepared if r.phase == "revert_failed"))
        if self._snapshots is not None:
            failed += [f"the restore of {key}" for key in self._snapshots.failed()]
        manual = list(dict.fromkeys(r.step.id for r in prepared if r.phase == "manual"))
        verdict, code, reason = decide(ending, sweep.expectations, revert_failed=failed, manual=manual)
        self._event("run_ended", None, f"{verdict} (exit {code})" + (f": {reason}" if reason else ""))
        first = self.trials[0].steps if self.trials else None
        outcome = record.Outcome(verdict=verdict, exit_code=code, reason=reason,
                                 steady_before=self.steady_before, returned_t=self.returned_t,
                                 incident_start=first.incident_start if first else None)
        trials = [record.TrialOutcome(index=t.index, phase=t.phase, target_phase=t.target_phase,
                                      incident_start=t.steps.incident_start,
                                      recovery_start=t.steps.recovery_start,
                                      ended=end if t is self.trials[-1] else (t.ended or end),
                                      returned_t=t.returned_t, metrics=m.metrics, faults=t.steps.prepared,
                                      blind=m.blind)
                  for t, m in zip(self.trials, per_trial, strict=True)]
        plan = record.SweepPlan(trials=self.count, seed=self.seed, probe_interval=self._interval,
                                endpoint=next((t.cycle.endpoint for t in self.trials if t.cycle), None))
        run_record = record.build(self.run_dir, self._scenario, self.drill.env, self._clock,
                                  outcome=outcome, timeline=self.timeline, sweep=sweep, plan=plan,
                                  trials=trials, guards=self.guards.states, probes=self.sampler.states,
                                  design=self._design, blast=self.blast)
        if self._snapshots is not None:
            run_record["restored"] = [{"object": r.key, "outcome": r.outcome, "detail": r.detail,
                                       "trial": r.trial} for r in self._snapshots.outcomes]
        try:
            run_record["history"] = record_run(self.run_dir.parent, run_record, self._scenario.regression)
        except DrillError as exc:  # the verdict stands without its history
            self.progress.note(f"the run could not be compared with past runs: {exc}", loud=True)
        write_record(self.run_dir, run_record)
        reports = self._reports()
        journal.write("run_ended", verdict=verdict, exit_code=code)
        self._ended = True
        left = [r for r in prepared if r.phase == "revert_failed"]
        if left:
            self.progress.note("\n".join(self._still_in_place(left)), loud=True)
        self.progress.summary(run_record, run_dir=self.run_dir, reports=reports)
        return RunResult(run_dir=self.run_dir, record=run_record, reports=tuple(reports))

    def _still_in_place(self, left: list[FaultRun]) -> list[str]:
        """What a rollback left (as ``rollback: manual`` says it) and the command that finishes it."""
        command = ["drill", "recover", self.run_dir.name]
        if self.run_dir.parent.resolve() != runs_dir().resolve():
            command += ["--runs-dir", str(self.run_dir.parent)]
        return ["ROLLBACK INCOMPLETE; still in place:",
                *in_place_lines(left, self.drill.env),
                f"finish the rollback with: {' '.join(quote(part) for part in command)}",
                "(or undo each by hand with the commands above)"]

    def _trial_metrics(self, end: float) -> tuple[list[TrialMetrics], list[str]]:
        """Each trial's metrics, each probe given the samples of that trial alone; what broke."""
        path = self.run_dir / SAMPLES_FILE
        samples = {name: read_samples(path, name) for name in self.sampler.states}
        per_trial: list[TrialMetrics] = []
        broken: list[str] = []
        scale, sampling = self._clock.time_scale, self.options.sampling
        stall, gap = sampling.stall_real_s * scale, sampling.gap_real_s * scale
        for trial in self.trials:
            steps = trial.steps
            ended = end if trial is self.trials[-1] else (trial.ended or end)
            marks = Marks(incident_start=steps.incident_start, recovery_start=steps.recovery_start,
                          ended=ended, undone=dict(steps.undone), failed_regions=steps.regions())
            metrics: dict[str, Metric] = {}
            blind: dict[str, list[BlindInterval]] = {}
            for name, state in self.sampler.states.items():
                window = _window(samples[name], trial.started, ended)
                try:
                    found = state.probe.metrics(window, marks)
                except Exception as exc:  # one probe's bug must not lose the others' metrics
                    text = f"probe {name} could not compute its metrics: {type(exc).__name__}: {exc}"
                    if text not in broken:
                        broken.append(text)
                        self.progress.note(text, loud=True)
                    continue
                # A metric whose window the probe was blind for is unmeasured, whatever it computed.
                found, blind[name] = blind_metrics(found, window, marks,
                                                   windows=state.probe.WINDOWS, probe=name,
                                                   period=state.period, start=trial.started, stall=stall,
                                                   gap=gap)
                metrics.update({f"{name}.{key}": metric for key, metric in found.items()})
            per_trial.append(TrialMetrics(index=trial.index, phase=trial.phase, metrics=metrics, blind=blind))
        return per_trial, broken

    def _reports(self) -> list[Path]:
        try:
            reports = list(self._render(self.run_dir))
        except ReportersFailed as exc:  # the run's verdict stands; the others' reports are there
            self.progress.note(str(exc), loud=True)
            reports = exc.written
        except DrillError as exc:
            self.progress.note(f"the reports could not be rendered: {exc}", loud=True)
            return []
        junit = next((p for p in reports if p.name == "junit.xml"), None)
        if self.options.junit is not None and junit is not None:
            self.options.junit.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(junit, self.options.junit)
            reports.append(self.options.junit)
        return reports

    # helpers

    def _trial_words(self, trial: Trial, *, planned: bool = False) -> str:
        phase = trial.target_phase if planned else trial.phase
        interval = self._interval
        if planned and phase is not None and interval is None:
            return f"trial {trial.index} of {self.count}, first fault at phase {phase:.2f} of the probe cycle"
        return describe_trial(trial.index, self.count, phase, interval)

    def _event(self, event: TimelineEvent, step: str | None, detail: str) -> None:
        t = self._clock.now()
        entry: TimelineRecord = {"t": round(t, 3), "at": iso(self._clock.real(t)), "event": event,
                                 "step": step, "detail": detail}
        self.timeline.append(entry)
        self.progress.event(entry)

    def _live(self) -> LiveState:
        now = self._clock.now()
        steps = self._steps
        step = steps.current if steps else self._phase
        trial = None
        if self.count > 1 and self.trials:
            last = self.trials[-1]
            planned = f" (phase {last.target_phase:.2f})" if last.target_phase is not None else ""
            trial = f"trial {last.index} of {self.count}{planned}"
        incident = steps.incident_start if steps else None
        recovery = steps.recovery_start if steps else None
        return LiveState(
            scenario=self._scenario.name, t=now, step=step, phase=self._phase_words(incident, recovery),
            trial=trial, incident_t=incident, incident_end_t=recovery, deadlines=self._deadlines,
            probes=[ProbeLine(name=s.name, kind=s.kind, signals=dict(s.signals), samples=s.samples,
                              error=s.error, lost=s.lost, skipped=s.skipped, history=self._history.of(s.name))
                    for s in self.sampler.states.values()],
            guards=[GuardLine(text=g.guard.text, unit=g.guard.condition.unit, for_seconds=g.guard.for_seconds,
                              value=g.value, tripped_t=g.tripped_t, reason=g.reason,
                              held_s=None if g.held_since is None else max(0.0, now - g.held_since))
                    for g in self.guards.states])

    def _phase_words(self, incident: float | None, recovery: float | None) -> str:
        """The drill's phase as the live view names it."""
        if self._phase in ("rollback", "failback", "finishing"):
            return "recovery" if self._phase == "failback" else self._phase
        if recovery is not None:
            return "recovery"
        if incident is not None:
            return "incident"
        if self._phase == "steps":
            return "steady state"
        return self._phase

    def _not_steady(self) -> str:
        waiting = [f"{s.name}: {'no sample yet' if not s.samples else _signals_text(s.signals)}"
                   for s in self.sampler.states.values() if not s.steady]
        return "; ".join(waiting) or "every probe is steady"


def _window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    """The samples started in [start, end] (sorted by ``t``)."""
    lo = bisect.bisect_left(samples, start, key=lambda s: s.t)
    hi = bisect.bisect_right(samples, end, key=lambda s: s.t)
    return samples[lo:hi]


def _signals_text(signals: dict[str, SignalValue]) -> str:
    return ", ".join(readouts(signals)) or "no signals"
