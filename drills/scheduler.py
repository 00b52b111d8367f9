"""The ``drill schedule`` service: fires a schedule's drills, one at a time per environment, each as a
``drill run --yes`` child process, and posts each result.

The calendar lives in SQLite (apscheduler's ``SQLAlchemyJobStore``), one job per drill under the drill's
name; on start the jobs are matched with the file: a drill whose cron and zone are unchanged keeps its
stored next fire (so a fire due while the service was down is still due), a changed or new one is
(re)planned from now, and a drill gone from the file is dropped. Beside the jobs, the ``drill_fires``
table records every fire by its scheduled time and what became of it (waiting, running, done, missed,
interrupted, or skipped when its drill left the file): a fire already recorded is never run again,
and a fire still waiting when the service stopped is run when it starts again.

The rules (docs/schedule.md states them for users):

- misfires: fires missed while the service was down coalesce into one, which runs if it is at most the
  schedule's ``misfireGrace`` late, else is reported (logged and posted as ``missed``) and not run;
- a fire outside the drill's windows or on a blackout date is skipped and logged;
- one environment, one drill at a time: a fire whose environment is busy waits its turn (in fire
  order); a fire of a drill whose previous fire still waits or runs is skipped and logged;
- SIGTERM or SIGINT: no new drill starts, the running ones get SIGTERM (``drill run`` rolls back and
  exits), the service waits for them, posts their results and exits; fires still waiting stay recorded;
- a fire that fails in the service itself (``drill run`` cannot start, the runs dir cannot be read) is
  logged and posted as ``error``, and its environment's next fires run all the same.

Results are posted by a thread of their own, in order: a slow webhook holds back neither the calendar
nor the next drill.
"""

from __future__ import annotations

import fcntl
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select, update
from sqlalchemy.exc import IntegrityError

from drills.errors import DrillError
from drills.notify import Outcome, metric_summaries, send
from drills.schedule import LOOKAHEAD, Schedule, ScheduledDrill, fire_time_text
from reports.record import RUN_FILE, RunRecord, load_run

_RUN_LINE = "run: "
"""How ``drill run``'s closing summary names its run directory (:mod:`drills.runner.summary`)."""
_SIGNAL_CHECK_S = 0.2
"""How soon the service notices SIGTERM or SIGINT at the latest."""
_WAITING, _RUNNING, _DONE, _SKIPPED, _MISSED, _INTERRUPTED = (
    "waiting", "running", "done", "skipped", "missed", "interrupted")
_ERROR = "error"


class _Fires:
    """The ``drill_fires`` table: each fire of each drill, by scheduled time, and what became of it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        metadata = MetaData()
        self._table = Table("drill_fires", metadata,
                            Column("drill", String(64), primary_key=True),
                            Column("scheduled", String(32), primary_key=True),
                            Column("state", String(16), nullable=False),
                            Column("run_id", String(255)),
                            Column("verdict", String(16)),
                            Column("exit_code", Integer),
                            Column("updated", String(32), nullable=False))
        metadata.create_all(engine)

    def claim(self, drill: str, at: datetime) -> str | None:
        """Record the fire as waiting; None, or the state it already has when it was recorded before."""
        with self._lock, self._engine.begin() as db:
            try:
                db.execute(self._table.insert().values(drill=drill, scheduled=_iso(at), state=_WAITING,
                                                       updated=_iso(_now())))
            except IntegrityError:
                db.rollback()
                return str(db.execute(select(self._table.c.state).where(
                    self._table.c.drill == drill, self._table.c.scheduled == _iso(at))).scalar_one())
        return None

    def record(self, drill: str, at: datetime, state: str, *, run_id: str | None = None,
               verdict: str | None = None, exit_code: int | None = None) -> None:
        """Set the fire's state (recording it if it is not yet)."""
        values = {"state": state, "run_id": run_id, "verdict": verdict, "exit_code": exit_code,
                  "updated": _iso(_now())}
        with self._lock, self._engine.begin() as db:
            done = db.execute(update(self._table).where(self._table.c.drill == drill,
                                                        self._table.c.scheduled == _iso(at)).values(**values))
            if done.rowcount == 0:
                db.execute(self._table.insert().values(drill=drill, scheduled=_iso(at), **values))

    def in_state(self, state: str) -> list[tuple[str, datetime]]:
        """The fires in ``state``, oldest first."""
        with self._lock, self._engine.begin() as db:
            rows = db.execute(select(self._table.c.drill, self._table.c.scheduled)
                              .where(self._table.c.state == state).order_by(self._table.c.scheduled))
            return [(drill, datetime.fromisoformat(at)) for drill, at in rows]


@dataclass(frozen=True)
class _Fire:
    drill: ScheduledDrill
    at: datetime


class _Dispatch(BaseExecutor):
    """The executor of the service's jobs: hands each due fire (the latest of those coalesced) to the
    service, which queues it for its environment. The service, not apscheduler's instance count, keeps
    one fire per drill waiting or running."""

    def __init__(self, service: Service) -> None:
        super().__init__()
        self._service = service

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        job.func(*job.args, service=self._service, at=run_times[-1])


def _due(drill: str, calendar: str, **fired: Any) -> None:
    """What each drill's job calls at its fire, with the ``service`` and the fire's time ``at``
    (``calendar`` is in the stored args so that a changed cron or zone shows in the stored job)."""
    service: Service = fired["service"]
    service.fire(drill, fired["at"])


class Service:
    """A running schedule. :meth:`run` blocks until SIGTERM or SIGINT has stopped it."""

    def __init__(self, schedule: Schedule, runs: Path, *, out: TextIO = sys.stdout) -> None:
        self._schedule = schedule
        self._runs = runs
        self._out = out
        self._print = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopping = False
        self._signals = 0
        self._busy: set[str] = set()
        self._queues: dict[str, queue.Queue[_Fire | None]] = {}
        self._workers: list[threading.Thread] = []
        self._children: dict[str, subprocess.Popen[str]] = {}
        self._fires: _Fires | None = None
        self._posts: queue.Queue[Outcome | None] = queue.Queue()

    def run(self) -> int:
        """Serve the schedule until a signal stops it; 0 once the running drills rolled back and exited."""
        try:
            self._runs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DrillError(f"cannot make the runs dir {self._runs}: {exc.strerror or exc}; give "
                             "drill schedule a --runs-dir it may write in") from None
        store = self._schedule.store_path(self._runs)
        with _sole_service(store):
            return self._serve(store)

    def _serve(self, store: Path) -> int:
        engine = create_engine(f"sqlite:///{store}", connect_args={"check_same_thread": False})
        self._fires = _Fires(engine)
        scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=engine)},
                                        executors={"default": _Dispatch(self)},
                                        job_defaults={"coalesce": True}, timezone=UTC)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        poster = threading.Thread(target=self._post, name="webhooks")
        poster.start()
        try:
            self._say(f"{len(self._schedule.drills)} drills; calendar in {store}, runs in {self._runs}")
            scheduler.start(paused=True)
            self._plan(scheduler)
            self._resume_recorded()
            scheduler.resume()
            self._say("ready: waiting for the next fire (SIGTERM or Ctrl-C stops the service)")
            # Timed: a signal may be delivered to any of the service's threads, and its handler runs in
            # this one only once this one runs Python again; a wait without timeout could outlast it.
            while not self._stop.wait(_SIGNAL_CHECK_S):
                pass
            # Waited for: no fire is still being handed over once the drills are told to stop.
            scheduler.shutdown(wait=True)
            self._halt()
        finally:
            self._posts.put(None)
            poster.join()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            engine.dispose()
        self._say("stopped")
        return 0

    def fire(self, name: str, at: datetime) -> None:
        """A fire of drill ``name`` scheduled at ``at`` is due: skip it, report it missed, or queue it."""
        drill = self._schedule.drill(name)
        when = fire_time_text(at, drill.zone)
        if reason := drill.skipped(at):
            # Not recorded: a skipped fire would be skipped again, and a per-second cron outside its
            # windows would fill the table.
            self._say(f"{name}: fire of {when} skipped: {reason}")
            return
        late = (_now() - at).total_seconds()
        if late > self._schedule.misfire_grace:
            self._missed(drill, at, late)
            return
        with self._lock:
            if name in self._busy:
                self._say(f"{name}: fire of {when} skipped: its previous fire still waits or runs")
                return
            if (state := self._table.claim(name, at)) is not None:
                self._say(f"{name}: fire of {when} skipped: already {state} (recorded in the calendar)")
                return
        self._queue(_Fire(drill, at))

    def _plan(self, scheduler: BackgroundScheduler) -> None:
        """Match the stored jobs with the file's drills (see the module's docstring)."""
        wanted = {d.name: d for d in self._schedule.drills}
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                scheduler.remove_job(job.id)
                self._say(f"{job.id}: no longer in the schedule: dropped from the calendar")
        for drill in self._schedule.drills:
            job = scheduler.get_job(drill.name)
            if job is None or tuple(job.args) != (drill.name, drill.calendar):
                scheduler.add_job(_due, trigger=drill.trigger(), args=[drill.name, drill.calendar],
                                  id=drill.name, name=drill.name, replace_existing=True)
                job = scheduler.get_job(drill.name)
            upcoming = job.next_run_time if job is not None else None
            shown = fire_time_text(upcoming, drill.zone) if upcoming is not None else "none"
            self._say(f"{drill.name}: {Path(drill.scenario).name} on {drill.env}, cron {drill.cron!r} "
                      f"{drill.timezone}; next fire {shown}")

    def _resume_recorded(self) -> None:
        """Fires the previous service left: a waiting one runs (if not too late), a running one was cut
        short by a crash of the service, which ``drill recover`` handles."""
        for name, at in self._table.in_state(_RUNNING):
            self._say(f"{name}: the fire of {_iso(at)} was running when the service stopped without "
                      "waiting for it: see drill recover")
            self._table.record(name, at, _INTERRUPTED)
        for name, at in self._table.in_state(_WAITING):
            drill = next((d for d in self._schedule.drills if d.name == name), None)
            if drill is None:
                self._say(f"{name}: no longer in the schedule: its waiting fire of {_iso(at)} is dropped")
                self._table.record(name, at, _SKIPPED)
                continue
            late = (_now() - at).total_seconds()
            if late > self._schedule.misfire_grace:
                self._missed(drill, at, late)
                continue
            self._say(f"{name}: the fire of {fire_time_text(at, drill.zone)} was waiting when the service "
                      "stopped: it runs now")
            self._queue(_Fire(drill, at))

    def _missed(self, drill: ScheduledDrill, at: datetime, late: float) -> None:
        self._say(f"{drill.name}: fire of {fire_time_text(at, drill.zone)} missed: {late:.0f} s late, more "
                  f"than the misfire grace of {self._schedule.misfire_grace:g} s; not run")
        self._table.record(drill.name, at, _MISSED)
        self._notify(Outcome(drill=drill.name, scenario=Path(drill.scenario).stem, environment=drill.env,
                             scheduled_at=_iso(at), verdict=_MISSED, exit_code=None,
                             reason=f"the service was down: {late:.0f} s late, beyond the misfire grace"))

    def _queue(self, fire: _Fire) -> None:
        """Queue ``fire`` behind those of its environment, starting that environment's worker if needed;
        once the service is stopping, leave it waiting in the calendar for the next start instead."""
        with self._lock:
            if self._stopping:
                when = fire_time_text(fire.at, fire.drill.zone)
                self._say(f"{fire.drill.name}: fire of {when} not started: the service is stopping; it runs "
                          "at the next start")
                return
            self._busy.add(fire.drill.name)
            waiting = self._queues.get(fire.drill.env)
            if waiting is None:
                waiting = self._queues[fire.drill.env] = queue.Queue()
                worker = threading.Thread(target=self._work, args=(waiting,), name=f"env {fire.drill.env}")
                self._workers.append(worker)
                worker.start()
            if self._children.get(fire.drill.env) is not None:
                self._say(f"{fire.drill.name}: environment {fire.drill.env} is busy: this fire waits")
        waiting.put(fire)

    def _work(self, waiting: queue.Queue[_Fire | None]) -> None:
        """One environment's drills, one after the other, until the service stops."""
        while (fire := waiting.get()) is not None:
            try:
                self._run(fire)
            except Exception as exc:  # one fire's failure must not stop its environment's next fires
                self._failed(fire, exc)
            finally:
                with self._lock:
                    self._busy.discard(fire.drill.name)

    def _failed(self, fire: _Fire, exc: Exception) -> None:
        """Record and post a fire that failed in the service itself, not in its drill."""
        drill = fire.drill
        reason = f"the service could not run it: {type(exc).__name__}: {exc}"
        self._say(f"{drill.name}: {_ERROR}: {reason}")
        self._table.record(drill.name, fire.at, _DONE, verdict=_ERROR)
        self._notify(Outcome(drill=drill.name, scenario=Path(drill.scenario).stem, environment=drill.env,
                             scheduled_at=_iso(fire.at), verdict=_ERROR, exit_code=None, reason=reason))

    def _run(self, fire: _Fire) -> None:
        drill = fire.drill
        # The service's own options last: they win over any a drill's options might repeat.
        argv = [sys.executable, "-m", "drills", "run", drill.scenario, *drill.options, "--env", drill.env,
                "--yes", "--runs-dir", str(self._runs)]
        with self._lock:
            if self._stopping:
                return  # stays waiting in the table: the next start runs it
            self._table.record(drill.name, fire.at, _RUNNING)
            command = " ".join(["drill run", Path(drill.scenario).name, "--env", drill.env, "--yes",
                                *drill.options])
            self._say(f"{drill.name}: fire of {fire_time_text(fire.at, drill.zone)}: {command}")
            # A session of its own: a Ctrl-C at the service's terminal reaches the service alone, which
            # forwards one SIGTERM (drill run would count a second signal as a second press).
            # Unbuffered: its lines reach the service's log as they happen, not when it exits.
            child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._children[drill.env] = child
        assert child.stdout is not None
        named: Path | None = None
        try:
            for line in child.stdout:
                text = line.rstrip()
                self._say(f"[{drill.name}] {text}")
                if text.startswith(_RUN_LINE):
                    named = Path(text.removeprefix(_RUN_LINE))
            code = child.wait()
        finally:
            with self._lock:
                self._children.pop(drill.env, None)
        outcome = self._outcome(fire, code, self._made(named))
        self._table.record(drill.name, fire.at, _DONE, run_id=outcome.run_id, verdict=outcome.verdict,
                           exit_code=code)
        run = f", run {outcome.run_id}" if outcome.run_id else ""
        reason = f": {outcome.reason}" if outcome.reason else ""
        self._say(f"{drill.name}: {outcome.verdict} (exit {code}){run}{reason}")
        self._notify(outcome)

    def _made(self, named: Path | None) -> RunRecord | None:
        """The record of the run the child made: the one its summary names (not just any new run of
        its scenario, which a drill on another environment may have made meanwhile)."""
        if named is None:
            return None
        if named.parent.resolve() != self._runs.resolve() or not (named / RUN_FILE).is_file():
            return None
        try:
            return load_run(named)
        except DrillError:
            return None

    def _outcome(self, fire: _Fire, code: int, record: RunRecord | None) -> Outcome:
        drill = fire.drill
        if record is None:
            ended = (f"drill run was ended by {signal.Signals(-code).name} before it started"
                     if code < 0 else "drill run left no run record")
            return Outcome(drill=drill.name, scenario=Path(drill.scenario).stem, environment=drill.env,
                           scheduled_at=_iso(fire.at), verdict="error", exit_code=code,
                           reason=f"{ended}: see the service's log")
        run_dir = self._runs / record["run_id"]
        reports = sorted(str(p) for p in run_dir.iterdir()
                         if p.name.startswith("report.") or p.suffix == ".xml")
        return Outcome(drill=drill.name, scenario=record["scenario"]["name"],
                       environment=record["environment"]["name"], scheduled_at=_iso(fire.at),
                       verdict=record["verdict"], exit_code=code, reason=record["reason"],
                       run_id=record["run_id"], metrics=metric_summaries(record), reports=reports,
                       started_at=record["started_at"], ended_at=record["ended_at"])

    def _notify(self, outcome: Outcome) -> None:
        """Post ``outcome`` from the poster's thread."""
        self._posts.put(outcome)

    def _post(self) -> None:
        """The poster: each outcome to the webhooks, in order, until the service stops."""
        while (outcome := self._posts.get()) is not None:
            for problem in send(self._schedule.notify, outcome):
                self._say(f"{outcome.drill}: could not post the result: {problem}")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags (and a raw write): the main thread does the stopping once its wait returns, and may
        # hold the log's lock when the signal comes.
        self._signals += 1
        if self._signals > 1:
            os.write(sys.stderr.fileno(), f"{signal.Signals(signum).name}: already stopping; waiting for the "
                     "running drills to roll back (the service never cuts a rollback short)\n".encode())
        self._stop.set()

    def _halt(self) -> None:
        """Start no drill, forward SIGTERM to the running ones, wait for them and their results."""
        with self._lock:
            self._stopping = True
            for env, child in self._children.items():
                self._say(f"stopping: SIGTERM to the drill on {env} (pid {child.pid}); it rolls back first")
                child.send_signal(signal.SIGTERM)
            for waiting in self._queues.values():
                waiting.put(None)
        for worker in self._workers:
            worker.join()

    @property
    def _table(self) -> _Fires:
        assert self._fires is not None, "the service is not running"
        return self._fires

    def _say(self, text: str) -> None:
        with self._print:
            print(f"{_now():%Y-%m-%dT%H:%M:%SZ} {text}", file=self._out, flush=True)


@contextmanager
def _sole_service(store: Path) -> Iterator[None]:
    """Hold ``<store>.lock`` while serving: two services on one calendar would run each fire twice."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        lock = open(f"{store}.lock", "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        where = f"{exc.filename or store}: {exc.strerror or exc}"
        raise DrillError(f"cannot keep the calendar at {store}: {where}; give the schedule a 'store:' in a "
                         "folder this user may write in") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise DrillError(f"another drill schedule serves the calendar {store} ({holder}); stop it first, "
                             "or give this schedule its own store") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        yield


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def upcoming(schedule: Schedule, *, count: int = 5, now: datetime | None = None) -> Iterator[str]:
    """``drill schedule --list``: per drill, its next ``count`` runs (windows and blackouts applied), in
    its zone and in UTC."""
    after = now or _now()
    for drill in schedule.drills:
        yield f"{drill.name}: {drill.scenario} on {drill.env}, cron {drill.cron!r} in {drill.timezone}"
        if drill.windows:
            yield "  windows: " + "; ".join(str(w) for w in drill.windows)
        if drill.blackouts:
            yield "  blackouts: " + ", ".join(d.isoformat() for d in drill.blackouts)
        runs = drill.next_runs(after, count)
        yield from (f"  {fire_time_text(at, drill.zone)}" for at in runs)
        if not runs:
            end = drill.lookahead_end(after)
            yield (f"  none in the next {LOOKAHEAD} fires (until {fire_time_text(end, drill.zone)})"
                   if end is not None else "  no fire ahead")

