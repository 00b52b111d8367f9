"""``drill report RUN [--runs-dir DIR] [--format NAME ...]``: render a finished run's reports again.

``RUN`` is a run directory, a run id in the runs dir, or a unique prefix of one. The reports are
rendered from the run directory alone (``run.json``, ``samples.jsonl``), so an old run re-renders
with today's reporters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import reports
from drills.runner.rundir import RUNS_DIR_HELP, find_run, runs_dir


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` command."""
    parser = commands.add_parser("report", help="render a run's reports again",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("run", metavar="RUN", help="a run directory, a run id, or a unique prefix of one")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR",
                        help=RUNS_DIR_HELP)
    parser.add_argument("--format", action="append", metavar="NAME", dest="formats",
                        help="a reporter to render (repeatable; default: every installed one)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Render; 0, or 2 when the run cannot be found, its record is broken or a reporter failed."""
    run_dir = find_run(args.run, runs_dir(args.runs_dir))
    try:
        written = reports.render(run_dir, args.formats)
    except reports.ReportersFailed as exc:  # the others' files are there: say so, then why not all
        for path in exc.written:
            print(path)
        raise
    for path in written:
        print(path)
    return 0
