"""``drill schedule FILE [--list] [--runs-dir DIR]``: run a schedule of drills, or list its next runs.

The service fires each drill of the schedule file (docs/schedule.md) at its cron times, inside its
windows and never on a blackout date, one drill at a time per environment, each as a ``drill run
--yes`` of its own, and posts each result to the schedule's webhooks. Its calendar persists, so a
restart neither loses nor repeats a fire. SIGTERM or Ctrl-C stops it after the running drills have
rolled back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drills.cli import at_least_one
from drills.runner.rundir import RUNS_DIR_HELP, runs_dir


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``schedule`` command."""
    parser = commands.add_parser("schedule", help="run drills on a schedule",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("file", type=Path, metavar="FILE", help="the schedule file")
    parser.add_argument("--list", action="store_true",
                        help="print each drill's next runs (in its time zone and UTC) and exit")
    parser.add_argument("--count", type=at_least_one("run"), default=5, metavar="N",
                        help="with --list, how many runs per drill (default: 5)")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR", help=RUNS_DIR_HELP)
    parser.set_defaults(handler=schedule)


def schedule(args: argparse.Namespace) -> int:
    """Serve the schedule (or list it); 0 once stopped."""
    # Imported here: SQLAlchemy and apscheduler take a fifth of a second to import, which every other
    # drill command (and every drill run the service starts) would pay.
    from drills.schedule import load_schedule
    from drills.scheduler import Service, upcoming

    loaded = load_schedule(args.file)
    if args.list:
        for line in upcoming(loaded, count=args.count):
            print(line)
        return 0
    return Service(loaded, runs_dir(args.runs_dir)).run()
