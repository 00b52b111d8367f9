"""The runner: one drill from the first probe sample to ``run.json``.

:meth:`Runner.run` takes a scenario already bound to its environment (:mod:`drills.runner.setup`)
and walks it: probes start, the steady state is awaited (no steady state, no drill, unless forced);
the steps run in order on the scenario clock while guards watch every sample; then, however the
steps ended (done, a failed wait, a guard, a fault error, a bug, Ctrl-C or SIGTERM), every fault not
yet undone is reverted, newest first, and the probes keep sampling until the steady state returns,
which measures failback. Metrics, expectations and the verdict follow; ``run.json`` and the reports
are written last.

The journal is written ahead of every change (``fault_prepared`` with the undo record before
``inject``), so that ``drill recover`` can finish the job if this process dies.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import threading
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from drills.errors import DrillError, FaultError
from drills.journal import JOURNAL_FILE, Journal
from drills.recover import revert_with_retries
from drills.runner.guards import GuardState, GuardWatch
from drills.runner.progress import LiveState, ProbeLine, Progress, Silent
from drills.runner.rollback import FaultRun, by_hand
from drills.runner.rundir import iso, versions, write_record
from drills.runner.sampling import SAMPLES_FILE, Sampler, SamplingSettings, read_samples
from drills.runner.setup import BoundDrill
from drills.runner.verdict import Ending, EndingKind, ExpectationResult, decide, judge
from drills.scenario import FaultStep, ParallelStep, Step, UndoStep, WaitStep
from drills.units import format_duration
from probes.base import Marks, Metric, SignalValue
from reports.record import RollbackOutcome, RunRecord, TimelineEvent, TimelineRecord, Verdict

T = TypeVar("T")
Render = Callable[[Path], list[Path]]
"""Renders the reports of a finished run directory; returns the files written."""


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves beyond what its scenario says. Durations in scenario seconds."""

    force: bool = False
    """Run even when the probes never show the steady state (the verdict then means less)."""
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
    revert_attempts: int = 3
    """Tries per undo: enough to ride out an API server's brief hiccup, few enough to report quickly."""
    revert_backoff_real_s: float = 1.0
    """Real seconds before an undo's second try, doubled before each later one (APIs recover in real time)."""
    junit: Path | None = None
    """Also copy ``junit.xml`` here (CI)."""
    handle_signals: bool = True
    """Turn SIGINT and SIGTERM into an orderly abort and rollback (main thread only)."""


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


class _StepFailed(Exception):
    """A step ended the steps: how (``kind``) and why."""

    def __init__(self, kind: EndingKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Runner:
    """Runs one bound drill into ``run_dir`` (see the module docstring)."""

    def __init__(self, drill: BoundDrill, run_dir: Path, *, render: Render,
                 options: RunOptions = RunOptions(), progress: Progress | None = None) -> None:
        self.drill = drill
        self.run_dir = run_dir
        self.options = options
        self.progress = progress or Silent()
        self._render = render
        self._clock = drill.clock
        self._scenario = drill.scenario
        self.timeline: list[TimelineRecord] = []
        self.incident_start: float | None = None
        self.recovery_start: float | None = None
        self.undone: dict[str, float] = {}
        self.steady_before = False
        self.returned_t: float | None = None
        self._prepared: list[FaultRun] = []
        self._baseline: dict[str, dict[str, SignalValue]] = {}
        self._current = "starting"
        self._phase = "starting"
        self._abort_ending: Ending | None = None
        self._aborted = asyncio.Event()
        self._skip_failback = asyncio.Event()
        self._journal: Journal | None = None
        windows = {g.condition.probe: g.for_seconds + 10 * drill.probes[g.condition.probe][0].period
                   for g in self._scenario.guards if g.condition.probe in drill.probes}
        self.sampler = Sampler(drill.probes, self._clock, run_dir / SAMPLES_FILE, settings=options.sampling,
                               windows=windows)
        self.guards = GuardWatch(self._scenario.guards, self.sampler, on_trip=self._guard_tripped)

    async def run(self) -> RunResult:
        """Run the drill; always returns (with the verdict), after rolling back whatever it did."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started_real = self._clock.real(0.0)
        env = self.drill.env
        self._journal = Journal(self.run_dir / JOURNAL_FILE, self._clock)
        self._journal.write("run_started", scenario=self._scenario.file, environment=env.path,
                            run_dir=str(self.run_dir.resolve()), time_scale=env.time_scale,
                            rollback=self._scenario.rollback)
        restore_signals = self._install_signals()
        watcher = asyncio.create_task(self.progress.watch(self._live), name="progress")
        try:
            ending = await self._drill()
        finally:
            restore_signals()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await self.sampler.stop()
        return self._finish(ending, started_real)

    # phases

    async def _drill(self) -> Ending:
        await self.sampler.start()
        self._event("probes_started", None, ", ".join(f"{n} ({s.kind} every {format_duration(s.period)})"
                                                      for n, s in self.sampler.states.items()))
        try:
            ending = await self._before_and_steps()
        except asyncio.CancelledError:
            # Cancelled from outside (not by a signal we handle): still undo what was done.
            self._abort(Ending("interrupted", "the run was cancelled"))
            await self._rollback()
            raise
        except Exception as exc:  # a bug, in drill or a plugin: report it, then roll back all the same
            self.progress.note("".join(traceback.format_exception(exc)).rstrip(), loud=True)
            ending = Ending("error", f"unexpected error: {type(exc).__name__}: {exc}")
        await self._rollback()
        left = [run for run in self._prepared if run.needs_revert or run.phase == "manual"]
        if self.incident_start is not None and not left:
            await self._failback()
        return ending

    async def _before_and_steps(self) -> Ending:
        self._phase = self._current = "waiting for steady state"
        timeout = max(self.options.steady_timeout_s,
                      self.options.steady_timeout_min_real_s * self._clock.time_scale)
        steady = await self._unless_aborted(self.sampler.wait_until(self.sampler.all_steady, timeout))
        if self._abort_ending is not None:
            return self._abort_ending
        self.steady_before = bool(steady)
        if steady:
            # What "back to normal" means after rollback: steady again, and every named signal (a DNS
            # answer, a serving region) back to the value it had now.
            self._baseline = {name: {k: v for k, v in state.signals.items() if isinstance(v, str)}
                              for name, state in self.sampler.states.items()}
            self._event("steady_state", None, "every probe shows the steady state: "
                        + "; ".join(f"{n}: {_signals_text(b)}" for n, b in self._baseline.items() if b))
        elif not self.options.force:
            return Ending("refused", "the probes did not show the steady state within "
                          f"{format_duration(timeout)} ({self._not_steady()}); "
                          "nothing was touched (--force runs anyway)")
        else:
            self.progress.note(f"no steady state ({self._not_steady()}); going on because of --force", loud=True)
        self._phase = "steps"
        self.guards.active = True
        blind = asyncio.create_task(self._watch_blind(), name="guards: blind probes")
        steps = asyncio.create_task(self._steps(self._scenario.steps), name="steps")
        aborted = asyncio.create_task(self._aborted.wait(), name="abort")
        try:
            await asyncio.wait({steps, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.guards.active = False
            for task in (steps, aborted, blind):
                task.cancel()
            await asyncio.gather(steps, aborted, blind, return_exceptions=True)
        if self._abort_ending is not None:
            return self._abort_ending
        error = steps.exception() if not steps.cancelled() else None
        if error is None:
            return Ending("completed")
        failure = _first_failure(error)
        if isinstance(failure, _StepFailed):
            return Ending(failure.kind, failure.reason)
        raise failure

    async def _rollback(self) -> None:
        pending = [run for run in reversed(self._prepared) if run.needs_revert]
        if not pending:
            return
        self._phase = "rollback"
        self._current = "rolling back"
        if self.recovery_start is None:
            self.recovery_start = self._clock.now()
        if self._scenario.rollback == "manual":
            self._event("rollback_started", None, f"rollback is manual: {len(pending)} faults stay in place")
            lines = ["ROLLBACK IS MANUAL (the scenario says 'rollback: manual'); still in place:"]
            for run in pending:
                run.phase = "manual"
                assert run.undo is not None
                how = by_hand(run.fault, run.undo, self.drill.env)
                lines.append(f"  {run.step.id}: {run.undo.summary}"
                             + (f"\n      undo with: {how}" if how else f"\n      objects: {', '.join(run.undo.objects)}"))
            self.progress.note("\n".join(lines), loud=True)
            return
        self._event("rollback_started", None, f"undoing {len(pending)} faults, newest first: "
                    + ", ".join(run.step.id for run in pending))
        for run in pending:
            await self._revert(run)

    async def _failback(self) -> None:
        self._phase = "failback"
        self._current = "waiting for the steady state to return"
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
        if not wait.cancelled() and wait.result():
            self.returned_t = self._clock.now()
            self._event("steady_state_returned", None,
                        f"{format_duration(self.returned_t - (self.recovery_start or since))} after the undo began")
        elif self._skip_failback.is_set():
            self.progress.note("stopped waiting for the steady state to return", loud=True)
        else:
            self.progress.note(f"the steady state did not return within "
                               f"{format_duration(self.options.failback_timeout_s)} ({self._not_steady()})",
                               loud=True)

    # steps

    async def _steps(self, steps: Sequence[Step]) -> None:
        for step in steps:
            await self._step(step)

    async def _step(self, step: Step) -> None:
        self._current = f"{step.id}: {_describe(step)}"
        self._event("step_started", step.id, _describe(step))
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
        run = self.drill.faults[step.id]
        journal = self._journal_or_fail()
        what = f"{step.fault} in {step.region}" if step.region else step.fault
        run.phase = "preparing"
        try:
            undo = await run.fault.prepare(self.drill.targets)
        except Exception as exc:
            run.phase, run.error = "failed", _text(exc)
            journal.write("fault_failed", step=step.id, error=run.error)
            self._event("fault_failed", step.id, f"{what} could not be prepared: {run.error}")
            raise _StepFailed("error", f"step {step.id} ({what}) could not be prepared: {run.error}") from exc
        journal.write("fault_prepared", step=step.id, undo=undo, params=step.params)
        run.undo, run.phase = undo, "injecting"
        self._prepared.append(run)
        started = self._clock.now()
        if self.incident_start is None:
            self.incident_start = started
        try:
            await run.fault.inject(self.drill.targets, undo)
        except Exception as exc:
            run.phase, run.error = "failed", _text(exc)
            journal.write("fault_failed", step=step.id, error=run.error)
            self._event("fault_failed", step.id, f"{what}: {run.error}")
            # A permanent refusal is the design answering (a budget forbids the drain); anything
            # else is drill failing to do its job.
            kind: EndingKind = ("fault_refused" if isinstance(exc, FaultError) and not exc.transient
                                else "error")
            raise _StepFailed(kind, f"step {step.id} ({what}) failed: {run.error}") from exc
        run.phase, run.applied_t = "applied", self._clock.now()
        journal.write("fault_applied", step=step.id, inject_t=round(started, 3))
        self._event("fault_applied", step.id, undo.summary)

    async def _wait(self, step: WaitStep) -> None:
        start = self._clock.now()
        condition = step.condition
        if condition is None:
            await self._clock.sleep(step.timeout)
            self._event("wait_done", step.id, f"waited {format_duration(step.timeout)}")
            return
        held = await self.sampler.wait_until(
            lambda: condition.holds(self.sampler.signal(condition.probe, condition.name)), step.timeout)
        if held:
            self._event("wait_done", step.id, f"{condition.text} after {format_duration(self._clock.now() - start)}")
            return
        now = self.sampler.signal(condition.probe, condition.name)
        self._event("wait_timed_out", step.id, f"{condition.text} did not hold within "
                    f"{format_duration(step.timeout)} ({condition.subject} is {now})")
        raise _StepFailed("wait_timed_out", f"wait {step.id} ({condition.text}) timed out after "
                          f"{format_duration(step.timeout)}: {condition.subject} was {now}")

    async def _undo(self, step: UndoStep) -> None:
        run = self.drill.faults[step.target]
        if not run.needs_revert:
            return
        begun = self._clock.now()
        if self.recovery_start is None:
            self.recovery_start = begun
        self.undone[step.target] = begun
        if not await self._revert(run):
            raise _StepFailed("error", f"step {step.id} could not undo {step.target}: {run.error}")

    async def _revert(self, run: FaultRun) -> bool:
        journal = self._journal_or_fail()
        undo = run.undo
        assert undo is not None
        journal.write("revert_started", step=run.step.id, fault=undo.fault, region=undo.region)
        attempts, error = await revert_with_retries(run.fault, self.drill.targets, undo,
                                                    attempts=self.options.revert_attempts,
                                                    backoff_s=self.options.revert_backoff_real_s)
        run.attempts = attempts
        if error is None:
            run.phase, run.error, run.reverted_t = "reverted", None, self._clock.now()
            journal.write("fault_reverted", step=run.step.id, attempts=attempts)
            self._event("fault_reverted", run.step.id, f"{undo.fault} in {undo.region} undone")
            return True
        run.phase, run.error, run.reverted_t = "revert_failed", str(error), self._clock.now()
        journal.write("revert_failed", step=run.step.id, attempts=attempts, error=run.error)
        self._event("revert_failed", run.step.id, f"{undo.fault} in {undo.region}: {run.error}")
        return False

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

    def _guard_tripped(self, state: GuardState) -> None:
        self._event("guard_tripped", None, f"{state.guard.text}: {state.reason}")
        self._abort(Ending("guard", f"guard {state.guard.text!r} tripped: {state.reason}"))

    async def _watch_blind(self) -> None:
        period = min((s.period for s in self.sampler.states.values()), default=1.0)
        while True:
            await self._clock.sleep(period)
            self.guards.check_blind(self._clock.now())

    def _install_signals(self) -> Callable[[], None]:
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)

        def restore() -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)

        return restore

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._phase in ("starting", "steps", "waiting for steady state"):
            self.progress.note(f"{sig.name}: stopping the drill and rolling back", loud=True)
            self._abort(Ending("interrupted", f"interrupted by {sig.name}"))
        elif self._phase == "rollback":
            self.progress.note("rolling back, please wait (the faults are being undone)", loud=True)
        elif self._phase == "failback":
            self.progress.note(f"{sig.name}: no longer waiting for the steady state to return", loud=True)
            self._skip_failback.set()
        else:
            self.progress.note("finishing the run record, please wait", loud=True)

    # the end

    def _finish(self, ending: Ending, started_real: float) -> RunResult:
        self._phase = "finishing"
        marks = Marks(incident_start=self.incident_start, recovery_start=self.recovery_start,
                      ended=self.sampler.stopped_t or self._clock.now(), undone=dict(self.undone))
        metrics, broken = self._metrics(marks)
        if broken and ending.kind == "completed":
            ending = Ending("error", "; ".join(broken))
        expectations = judge(self._scenario.expect, metrics)
        reverted_failed = [r.step.id for r in self._prepared if r.phase == "revert_failed"]
        manual = [r.step.id for r in self._prepared if r.phase == "manual"]
        verdict, code, reason = decide(ending, expectations, revert_failed=reverted_failed, manual=manual)
        self._event("run_ended", None, f"{verdict} (exit {code})" + (f": {reason}" if reason else ""))
        record = self._record(verdict, code, reason, started_real, metrics, expectations)
        write_record(self.run_dir, record)
        reports = self._reports()
        journal = self._journal_or_fail()
        journal.write("run_ended", verdict=verdict, exit_code=code)
        journal.close()
        self.progress.summary(record, run_dir=self.run_dir, reports=reports)
        return RunResult(run_dir=self.run_dir, record=record, reports=tuple(reports))

    def _metrics(self, marks: Marks) -> tuple[dict[str, Metric], list[str]]:
        metrics: dict[str, Metric] = {}
        broken: list[str] = []
        path = self.run_dir / SAMPLES_FILE
        for name, state in self.sampler.states.items():
            try:
                found = state.probe.metrics(read_samples(path, name), marks)
            except Exception as exc:  # one probe's bug must not lose the others' metrics
                broken.append(f"probe {name} could not compute its metrics: {type(exc).__name__}: {exc}")
                self.progress.note(broken[-1], loud=True)
                continue
            metrics.update({f"{name}.{key}": metric for key, metric in found.items()})
        return metrics, broken

    def _reports(self) -> list[Path]:
        try:
            reports = list(self._render(self.run_dir))
        except DrillError as exc:
            self.progress.note(f"the reports could not be rendered: {exc}", loud=True)
            return []
        junit = next((p for p in reports if p.name == "junit.xml"), None)
        if self.options.junit is not None and junit is not None:
            self.options.junit.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(junit, self.options.junit)
            reports.append(self.options.junit)
        return reports

    def _record(self, verdict: Verdict, code: int, reason: str, started_real: float, metrics: dict[str, Metric],
                expectations: list[ExpectationResult]) -> RunRecord:
        env, scenario = self.drill.env, self._scenario
        incident = self.incident_start
        return {
            "run_id": self.run_dir.name,
            "scenario": {"name": scenario.name, "file": str(Path(scenario.file).resolve()),
                         "description": scenario.description},
            "environment": {"name": env.name, "file": env.path, "lab": env.is_lab},
            "time_scale": env.time_scale,
            "started_at": iso(started_real),
            "incident_start": iso(self._clock.real(incident)) if incident is not None else None,
            "incident_start_t": _round(incident),
            "ended_at": iso(self._clock.real()),
            "verdict": verdict,
            "exit_code": code,
            "reason": reason,
            "timeline": self.timeline,
            "metrics": {name: {"value": _round(m.value) if isinstance(m.value, float) else m.value,
                               "unit": m.unit, "error": _round(m.error), "note": m.note}
                        for name, m in sorted(metrics.items())},
            "expectations": [{"expect": e.comparison.text, "metric": e.comparison.subject,
                              "value": None if e.metric is None else
                              (_round(e.metric.value) if isinstance(e.metric.value, float) else e.metric.value),
                              "unit": None if e.metric is None else e.metric.unit,
                              "passed": e.passed, "note": e.note} for e in expectations],
            "guards": [{"guard": g.guard.text, "tripped": g.tripped, "t": _round(g.tripped_t)}
                       for g in self.guards.states],
            "rollback": [{"step": r.step.id, "fault": r.step.fault, "region": r.step.region,
                          "summary": r.undo.summary if r.undo else "",
                          "objects": list(r.undo.objects) if r.undo else [],
                          "outcome": _OUTCOMES.get(r.phase, "failed"),
                          "attempts": r.attempts, "error": r.error, "t": _round(r.reverted_t)}
                         for r in self._prepared],
            "steady_state": {"before": self.steady_before, "returned": self.returned_t is not None,
                             "returned_t": _round(self.returned_t)},
            "probes": {name: {"kind": s.kind, "every": s.period, "samples": s.samples}
                       for name, s in self.sampler.states.items()},
            "versions": versions(),
        }

    # helpers

    def _event(self, event: TimelineEvent, step: str | None, detail: str) -> None:
        t = self._clock.now()
        entry: TimelineRecord = {"t": round(t, 3), "at": iso(self._clock.real(t)), "event": event,
                                 "step": step, "detail": detail}
        self.timeline.append(entry)
        self.progress.event(entry)

    def _live(self) -> LiveState:
        now = self._clock.now()
        return LiveState(
            scenario=self._scenario.name, t=now, step=self._current,
            probes=[ProbeLine(name=s.name, kind=s.kind, signals=dict(s.signals), samples=s.samples,
                              error=s.error) for s in self.sampler.states.values()],
            guards=[(g.guard.text, g.describe(now)) for g in self.guards.states])

    def _not_steady(self) -> str:
        waiting = [f"{s.name}: {'no sample yet' if not s.samples else _signals_text(s.signals)}"
                   for s in self.sampler.states.values() if not s.steady]
        return "; ".join(waiting) or "every probe is steady"

    def _journal_or_fail(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("the journal is opened when the run starts")
        return self._journal


_OUTCOMES: dict[str, RollbackOutcome] = {"reverted": "reverted", "manual": "manual"}
"""Rollback outcomes by fault phase; any other phase after rollback means it was not undone."""


def _describe(step: Step) -> str:
    if isinstance(step, FaultStep):
        return f"fault {step.fault}" + (f" in {step.region}" if step.region else "")
    if isinstance(step, WaitStep):
        if step.condition is None:
            return f"wait {format_duration(step.timeout)}"
        return f"wait until {step.condition.text} (timeout {format_duration(step.timeout)})"
    if isinstance(step, ParallelStep):
        return "parallel: " + ", ".join(s.id for s in step.steps)
    return f"undo {step.target}"


def _first_failure(error: BaseException) -> BaseException:
    """The error that ended the steps; inside a parallel step's group, the first step failure."""
    if isinstance(error, BaseExceptionGroup):
        leaves = [_first_failure(e) for e in error.exceptions]
        return next((e for e in leaves if isinstance(e, _StepFailed)), leaves[0])
    return error


def _signals_text(signals: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in signals.items()) or "no signals"


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _round(value: float | str | None) -> float | None:
    return round(value, 3) if isinstance(value, float | int) else None

