"""``drill recover [RUN_ID ...]``: undo what crashed runs left in place.

With no run id it looks at every run in the runs directory whose journal has undos pending or
that never ended, skipping runs still going (they roll themselves back). For each it prints what
it reverted and, for what it could not, exactly what to do by hand. Exit codes, highest wins: 0
everything is undone; 2 an environment could not be reached (nothing was done there: run it again
when it is back); 3 something remains that drill could not undo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from drills.errors import DrillError, EnvironmentUnreachable
from drills.journal import JournalBusy
from drills.recover import RecoveryReport, is_live, needs_recovery, recover
from drills.yamlsource import suggest

DEFAULT_RUNS_DIR = "drill-runs"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``recover`` command."""
    parser = subparsers.add_parser(
        "recover", help="undo the faults that crashed runs left in place",
        description="Revert every fault a run's journal records as not yet undone, last first.")
    parser.add_argument("runs", nargs="*", metavar="RUN_ID",
                        help="runs to recover (default: every run that needs it)")
    parser.add_argument("--runs-dir", type=Path, default=None, metavar="DIR",
                        help=f"where runs are kept (default: $DRILL_RUNS_DIR or ./{DEFAULT_RUNS_DIR})")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    runs_dir: Path = args.runs_dir or Path(os.environ.get("DRILL_RUNS_DIR") or DEFAULT_RUNS_DIR)
    if args.runs:
        run_dirs = [_named(runs_dir, run) for run in args.runs]
    else:
        run_dirs = _candidates(runs_dir)
        if not run_dirs:
            print(f"nothing to recover in {runs_dir}")
            return 0
    return max(asyncio.run(_recover_one(run_dir)) for run_dir in run_dirs)


async def _recover_one(run_dir: Path) -> int:
    """Recover one run, print what happened; its exit code."""
    try:
        report = await recover(run_dir)
    except JournalBusy:
        print(f"run {run_dir.name}: still running; it rolls itself back (stop it with Ctrl-C or SIGTERM)")
        return 2
    except EnvironmentUnreachable as exc:
        print(f"run {run_dir.name}: {exc}")
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
            print(f"  reverted  {o.fault} in {o.region}: {o.summary} ({tries})")
            continue
        print(f"  FAILED    {o.fault} in {o.region}: {o.summary} ({tries})")
        print(f"            error: {o.error}")
        if o.objects:
            print(f"            objects: {', '.join(o.objects)}")
        if o.by_hand:
            print(f"            undo by hand: {o.by_hand}")
        else:
            print("            undo by hand: restore the objects above as the summary describes")
    if not report.complete:
        print(f"  then run `drill recover {report.run_id}` again to record that it is done")


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


def _candidates(runs_dir: Path) -> list[Path]:
    """The runs that may have left something in place, oldest first; live runs are skipped."""
    if not runs_dir.is_dir():
        return []
    found = []
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        try:
            if not needs_recovery(run_dir):
                continue
        except DrillError:
            pass  # a damaged journal: recover() reports it
        if is_live(run_dir):
            print(f"run {run_dir.name}: still running; skipped (it rolls itself back)")
            continue
        found.append(run_dir)
    return found
