"""``drill recover [RUN_ID ...]``: undo what crashed runs left in place.

With no run id it looks at every run in the runs directory (the same one ``drill run`` uses:
:func:`~drills.runner.rundir.runs_dir`) whose journal has undos pending or that never ended,
skipping runs still going (they roll themselves back). For each it prints what it reverted and, for
what it could not, exactly what to do by hand. A damaged journal is reported (file:line, what is
wrong, how to recover that run by hand) and skipped; the other runs are recovered all the same.

``--env E`` needs no journal: it finds the marks runs left on E's objects (:mod:`drills.leftovers`),
restores each object from its mark, verifies it and removes the marks.

Exit codes, highest wins: 0 everything is undone; 2 an environment could not be reached or is not the
one the run changed (nothing was done there); 3 something remains that drill could not undo.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from drills.environment import load_environment
from drills.errors import DrillError, EnvironmentUnreachable
from drills.identity import IdentityMismatch
from drills.journal import DamagedJournal, JournalBusy
from drills.leftovers import recover_environment
from drills.recover import RecoveryReport, is_live, needs_recovery, recover
from drills.runner.rundir import RUNS_DIR_HELP, chosen_runs_dir, runs_dir
from drills.runner.session import environment_file
from drills.snapshot import Restored
from drills.yamlsource import suggest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``recover`` command."""
    parser = subparsers.add_parser(
        "recover", help="undo the faults that crashed runs left in place",
        description="Revert every fault a run's journal records as not yet undone, last first.")
    parser.add_argument("runs", nargs="*", metavar="RUN_ID",
                        help="runs to recover (default: every run that needs it)")
    parser.add_argument("--runs-dir", type=Path, default=None, metavar="DIR", help=RUNS_DIR_HELP)
    parser.add_argument("--env", default=None, metavar="ENV",
                        help="find what runs left in this environment by the marks on its objects, with no "
                             "journal needed, and undo it (NAME or environment file)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    runs = runs_dir(args.runs_dir)
    if args.env is not None:
        if args.runs:
            raise DrillError("give either RUN_IDs or --env: --env recovers every run that left marks there")
        return _recover_environment(args.env, runs)
    if not runs.is_dir() and (chosen_runs_dir(args.runs_dir) or not args.runs):
        if chosen_runs_dir(args.runs_dir):
            # A typo here must not read as "all clear" while faults stay in place.
            source = "--runs-dir" if args.runs_dir else "$DRILL_RUNS_DIR"
            raise DrillError(f"no runs directory {runs} (from {source}): check the path; drill run keeps its "
                             "runs there, and nothing was recovered")
        print(f"nothing to recover: no drill has run as this user ({runs} does not exist)")
        return 0
    if args.runs:
        run_dirs = [_named(runs, run) for run in args.runs]
        codes = []
    else:
        run_dirs, codes = _candidates(runs)
        if not run_dirs and not codes:
            print(f"nothing to recover in {runs}")
            return 0
    return max([*codes, *(asyncio.run(_recover_one(run_dir)) for run_dir in run_dirs)])


async def _recover_one(run_dir: Path) -> int:
    """Recover one run, print what happened; its exit code."""
    try:
        report = await recover(run_dir)
    except DamagedJournal as exc:
        _print_damaged(exc)
        return exc.exit_code
    except JournalBusy:
        print(f"run {run_dir.name}: still running; it rolls itself back (stop it with Ctrl-C or SIGTERM)")
        return 2
    except EnvironmentUnreachable as exc:
        print(f"run {run_dir.name}: {exc}")
        return 2
    except IdentityMismatch as exc:
        print(f"run {run_dir.name}: refused: {exc}")
        return 2
    except DrillError as exc:
        print(f"run {run_dir.name}: {exc}")
        return 3
    _print(report)
    return 0 if report.complete else 3


def _print(report: RecoveryReport) -> None:
    if not report.outcomes:
        print(f"run {report.run_id}: nothing left to undo")
        return
    print(f"run {report.run_id}:")
    for o in report.outcomes:
        tries = f"{o.attempts} attempt{'s' if o.attempts != 1 else ''}"
        if o.reverted:
            print(f"  reverted  {o.fault} in {o.region}: {o.summary}" + (f" ({tries})" if o.attempts else ""))
            continue
        print(f"  FAILED    {o.fault} in {o.region}: {o.summary} ({tries})")
        print(f"            error: {o.error}")
        if o.objects:
            print(f"            objects: {', '.join(o.objects)}")
        if o.by_hand:
            print(f"            undo by hand: {o.by_hand}")
        else:
            print("            undo by hand: restore the objects above as the summary describes")
    _print_objects(report.objects)
    if not report.complete:
        print(f"  then run `drill recover {report.run_id}` again to record that it is done")


def _print_objects(objects: Sequence[Restored]) -> None:
    """What became of each object a run touched: restored, as before, drifted, gone, not verified."""
    words = {"restored": "restored", "unchanged": "ok      ", "drift": "DRIFT   ", "gone": "gone    ",
             "failed": "FAILED  "}
    for o in objects:
        print(f"  {words[o.outcome]}  {o.key}: {o.detail}")


def _recover_environment(env_name: str, runs_dir: Path) -> int:
    """``drill recover --env E``: every run's marks in E, restored; its exit code."""
    env = load_environment(environment_file(env_name))
    done = asyncio.run(recover_environment(env, runs=runs_dir))
    for error in done.errors:
        print(f"could not scan {error}")
    if not done.runs:
        print(f"no run left marks in environment {env.name} ({env.path}): nothing to recover")
    for run in done.runs:
        if run.live:
            print(f"run {run.run_id}: still running here; its marks are left alone (it rolls itself back)")
            continue
        if run.journal is not None:
            _print(run.journal)
        elif run.journal_error is not None:
            print(f"run {run.run_id}: its journal could not be used ({run.journal_error})")
        if run.objects:
            print(f"run {run.run_id}, from the marks in {env.name}:")
            _print_objects([r for _, r in run.objects])
        if run.unmark_error:
            print(f"  FAILED    removing the marks: {run.unmark_error}")
    return done.exit_code


def _named(runs_dir: Path, run: str) -> Path:
    """A run named by id (in ``runs_dir``) or by its folder's path."""
    as_path = Path(run)
    if (as_path / "events.jsonl").is_file():
        return as_path
    if (runs_dir / run).is_dir():
        return runs_dir / run
    known = [p.name for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    hint = suggest(run, known)
    raise DrillError(f"no run {run!r} in {runs_dir}" + (f" ({hint})" if hint else ""))


def _print_damaged(error: DamagedJournal) -> None:
    print(f"run {error.run_dir.name}: skipped, {error.location}: {error.message}")
    print(f"  {error.hint}")


def _candidates(runs_dir: Path) -> tuple[list[Path], list[int]]:
    """The runs that may have left something in place, oldest first, live runs skipped; and the exit
    codes of the damaged journals found, each reported here and skipped."""
    found: list[Path] = []
    codes: list[int] = []
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        try:
            if not needs_recovery(run_dir):
                continue
        except DamagedJournal as exc:
            if is_live(run_dir):
                continue  # a live run's journal is being written: it is not damaged, only read mid-line
            _print_damaged(exc)
            codes.append(exc.exit_code)
            continue
        if is_live(run_dir):
            print(f"run {run_dir.name}: still running; skipped (it rolls itself back)")
            continue
        found.append(run_dir)
    return found, codes
