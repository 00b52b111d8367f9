"""``drill abort [RUN] [--env E] [--runs-dir DIR]``: make a running drill stop and roll back.

Meant for another terminal while a drill runs. Two routes, both ending the drill as Ctrl-C does (it
stops injecting, undoes every fault, writes its record and exits 2):

- ``--env E``: marks the environment's lock (:mod:`drills.lock`) with an abort request. Works from any
  machine that reaches the environment's clusters; the drill holding the lock sees the mark at its
  next check of it, within :attr:`~drills.lock.LockTiming.check_s` seconds. With ``RUN`` too, only that
  run is asked.
- ``RUN``, or nothing (the one live run in the runs directory): sends SIGTERM to the run's process, whose
  pid and host its journal records (``run_started``); at once, on the machine the run started on.

Prints what was done. Exit 0 when a drill was asked to stop, 2 when no live drill was found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

from drills.environment import load_environment
from drills.errors import DrillError
from drills.journal import JOURNAL_FILE, first, read_journal
from drills.lock import LockTiming, default_identity, holders, request_abort
from drills.recover import is_live
from drills.runner.rundir import DEFAULT_RUNS_DIR, RUNS_DIR_VARIABLE, find_run, runs_dir
from drills.runner.session import environment_file


class NoLiveDrill(DrillError):
    """Nothing to abort: no drill is running where the user pointed."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``abort`` command."""
    parser = commands.add_parser("abort", help="make a running drill stop and roll back",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="the run (a run directory, a run id or a unique prefix of one; default: the one "
                             "live run in the runs directory)")
    parser.add_argument("--env", metavar="NAME|PATH",
                        help="ask through the environment's lock instead (works from any machine)")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR",
                        help=f"where runs are kept (default: ${RUNS_DIR_VARIABLE} or ./{DEFAULT_RUNS_DIR})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Ask the drill to stop; 0 when one was asked, 2 when none was found."""
    if args.env is not None:
        print(asyncio.run(_through_lock(environment_file(args.env), args.run)))
    else:
        print(_by_signal(args.run, runs_dir(args.runs_dir)))
    return 0


async def _through_lock(path: Path, run: str | None) -> str:
    env = load_environment(path)
    asked = await request_abort(env, default_identity(), run=run)
    if not asked:
        now = datetime.now(UTC)
        found = "; ".join(
            f"region {h.region}: {h.describe(now)}, "
            + ("another run" if h.live(now) else "not renewed in time: its drill has stopped (drill recover)")
            for h in await holders(env))
        whose = f" run {run}" if run else ""
        raise NoLiveDrill(f"no live drill{whose} holds environment {env.name}'s lock"
                          + (f" ({found})" if found else ""))
    holder = asked[0]
    regions = ", ".join(h.region for h in asked)
    return (f"asked run {holder.run_id} (scenario {holder.scenario}, held by {holder.identity}) to stop "
            f"through its lock in {regions}: it notices within {LockTiming().check_s:g} s, then stops "
            "and rolls back")


def _by_signal(ref: str | None, runs: Path) -> str:
    run_dir = find_run(ref, runs) if ref else _the_live_run(runs)
    started = _live_start(run_dir)
    if started is None:
        raise NoLiveDrill(f"run {run_dir.name} is not running (no live process holds its journal); if it "
                          f"left faults in place: drill recover {run_dir.name}")
    pid, host = started
    here = socket.gethostname()
    if host != here:
        raise NoLiveDrill(f"run {run_dir.name} runs on host {host}, not {here}: abort it through its "
                          "environment's lock instead (drill abort --env ENV)")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError as exc:
        raise NoLiveDrill(f"run {run_dir.name}: its process {pid} is gone") from exc
    except PermissionError as exc:
        raise DrillError(f"run {run_dir.name}: not allowed to signal its process {pid} (another user's "
                         "drill); ask through the environment's lock: drill abort --env ENV") from exc
    return f"sent SIGTERM to run {run_dir.name} (pid {pid}): it stops, rolls back and exits"


def _the_live_run(runs: Path) -> Path:
    """The one run of ``runs`` whose drill is live."""
    candidates = sorted(p for p in runs.iterdir() if (p / JOURNAL_FILE).is_file()) if runs.is_dir() else []
    live = [p for p in candidates if _live_start(p) is not None]
    if not live:
        raise NoLiveDrill(f"no live drill in {runs} (a drill elsewhere: --runs-dir DIR, or drill abort "
                          "--env ENV)")
    if len(live) > 1:
        names = ", ".join(p.name for p in live)
        raise DrillError(f"{len(live)} drills are running in {runs}: {names}; name one (drill abort RUN)")
    return live[0]


def _live_start(run_dir: Path) -> tuple[int, str] | None:
    """The live drill process of ``run_dir``: its pid and host; None if the drill is not running."""
    path = run_dir / JOURNAL_FILE
    if not path.is_file():
        return None
    entries = read_journal(path)
    started = first(entries, "run_started")
    ended = first(entries, "run_ended") or first(entries, "recovered")
    if started is None or ended is not None or not is_live(run_dir):
        return None  # a held journal with no run going is drill recover's, not a drill's
    pid, host = started.fields.get("pid"), started.fields.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
        raise DrillError(f"run {run_dir.name} is running but its journal does not say its process (a drill "
                         "older than drill abort): stop it with Ctrl-C or kill -TERM")
    if host == socket.gethostname() and _lockers(path) not in (None, {pid}):
        return None  # another process (drill recover) holds it; the drill's pid may belong to anyone now
    return pid, host


def _lockers(path: Path) -> set[int] | None:
    """The processes holding a ``flock`` on ``path``, from Linux's ``/proc/locks`` (None elsewhere)."""
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    stat = path.stat()
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    return {int(fields[4]) for fields in (line.split() for line in table.splitlines())
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device}
