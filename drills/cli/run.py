"""``drill run FILE [--env lab|NAME|PATH] [--topology F] [--time-scale N] [--trials N] ...``: run a drill.

With no ``--env`` (or ``--env lab``) a private lab process is started for the run and stopped after
it. On a lab the steps run in several trials (``--trials``, 4 by default), each starting its incident
at another phase of Traffic Manager's probe cycle (``--seed`` repeats a run's phases); on a real
environment once, unless ``--trials`` says otherwise. A real environment asks for confirmation
first, unless ``--yes``; with no terminal to ask on it refuses at once. An environment is a lab only
when its API servers prove it (:mod:`drills.labproof`), whatever its file says. The terminal shows the drill
live (plain lines when it is not a terminal) and ends with the verdict; the exit status is the
run's: 0 passed, 1 failed, 2 could not run or aborted, 3 rollback incomplete.

Ctrl-C, SIGTERM or SIGHUP stop the drill and roll it back (exit 2); during the rollback Ctrl-C warns,
and Ctrl-C once more abandons it (exit 3, printing the ``drill recover`` command and what is still in
place). Signals less than a second apart count as one press (:mod:`drills.runner.interrupts`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from drills.cli import at_least_one, time_scale
from drills.environment import Environment
from drills.errors import DrillError
from drills.runner import RunOptions
from drills.runner.interrupts import Interrupts
from drills.runner.progress import for_stream
from drills.runner.rundir import RUNS_DIR_HELP
from drills.runner.session import LAB, Where, run_scenario
from drills.runner.sweep import DEFAULT_LAB_TRIALS
from reports.stepsummary import VARIABLE as STEP_SUMMARY
from reports.stepsummary import append_step_summary

EPILOG = f"""\
exit codes:
  0  passed: every expectation held and every fault was undone
  1  failed: the design missed an expectation, a wait timed out or a fault was refused
  2  could not run, aborted (Ctrl-C, SIGTERM, a guard, drill abort) or refused (a mistake in a file or
     argument, no confirmation, the blast radius, another drill's lock)
  3  rollback incomplete: faults may still be in place; drill recover RUN_ID finishes the undo

CI: --junit PATH copies the run's junit.xml there; when ${STEP_SUMMARY} is set (GitHub Actions), a
Markdown summary of the run is appended to the file it names."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command."""
    parser = commands.add_parser("run", help="run a drill",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, metavar="FILE", help="the scenario file")
    add_environment_arguments(parser)
    parser.add_argument("--runs-dir", type=Path, metavar="DIR",
                        help=RUNS_DIR_HELP)
    parser.add_argument("--junit", type=Path, metavar="PATH",
                        help="also write the JUnit XML report here (CI)")
    parser.add_argument("--force", action="store_true",
                        help="override drill's refusals to start, saying so loudly: no steady state before "
                             "the first fault, an unhealthy region expected to take over, a crashed run "
                             "pending recovery on this environment")
    parser.add_argument("--trials", type=at_least_one("trial"), metavar="N",
                        help=f"run the steps N times, each at another phase of the probe cycle (default: "
                             f"{DEFAULT_LAB_TRIALS} on a lab, 1 on a real environment)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="rotate the trials' phases by this seed (default: a new one, in run.json)")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask before injecting faults into a real (non-lab) environment")
    parser.set_defaults(handler=run)


def run_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """``drill run ARGV`` parsed as the command line parses it, for commands that start drills (drill
    schedule, the CronJob's test), but no option abbreviated (``--en`` for ``--env``): what a program
    reads must say what it means. A mistake, or ``--help``, is a :class:`DrillError` saying what is wrong."""
    if help_asked := sorted({"-h", "--help"} & set(argv)):
        raise DrillError(f"{help_asked[0]} prints drill run's help: it is not an option for a drill to run "
                         "with (see drill run --help for those)")
    parser = argparse.ArgumentParser(prog="drill", exit_on_error=False)
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    commands.choices["run"].allow_abbrev = False
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(["run", *argv])
    except (SystemExit, argparse.ArgumentError) as exc:
        said_last = said.getvalue().strip().splitlines()[-1:] or [str(exc)]
        message = said_last[0].removeprefix("drill run: error: ").removeprefix("drill: error: ")
        raise DrillError(message) from None


def add_environment_arguments(parser: argparse.ArgumentParser) -> None:
    """``--env``, ``--topology`` and ``--time-scale``, shared with ``drill plan``."""
    parser.add_argument("--env", metavar="lab|NAME|PATH", default=LAB,
                        help="where to run: 'lab' (default: a private lab for this run), a NAME found in "
                             "./environments/ or scenarios/environments/, or an environment file")
    parser.add_argument("--topology", type=Path, metavar="FILE",
                        help="the private lab's design (default: the built-in sound one)")
    parser.add_argument("--manifests", type=Path, metavar="DIR",
                        help="a team's Kubernetes manifests the private lab applies after its defaults (a "
                             "folder of YAML files; a subfolder per region for what differs there)")
    parser.add_argument("--time-scale", type=time_scale, metavar="N",
                        help="how many times faster than real time the private lab runs "
                             "(default: the topology's)")


def run(args: argparse.Namespace) -> int:
    """Run the drill; the run's exit code."""
    where = Where.parse(args.env, topology=args.topology, time_scale=args.time_scale,
                        manifests=args.manifests)
    # Installed before the loop starts and kept until there is an exit code (for the process's own
    # command line, until it exits): a signal of a burst that arrives after the rollback, while the
    # record is written or the private lab stops, cannot kill the process (see drills.runner.interrupts).
    interrupts = Interrupts()
    interrupts.install()
    options = RunOptions(force=args.force, junit=args.junit, trials=args.trials, seed=args.seed,
                         interrupts=interrupts)

    def confirm(env: Environment) -> None:
        if env.lab_doubt is not None:
            print(f"drill: environment {env.name!r} says it is a lab, but it is treated as a real one: "
                  f"{env.lab_doubt}", file=sys.stderr)
        if not args.yes:
            _confirm(env, trials=args.trials or 1)

    try:
        result = asyncio.run(run_scenario(args.file, where, runs=args.runs_dir, options=options,
                                          progress=for_stream(sys.stdout), confirm=confirm))
    finally:
        if getattr(args, "owns_process", False):
            interrupts.ignore()
        else:
            interrupts.restore()
    _step_summary(result.run_dir)
    return result.exit_code


def _step_summary(run_dir: Path) -> None:
    """Append the run's summary for the CI job's page; a failure to write it is only a warning: the
    drill's outcome is the run's."""
    try:
        append_step_summary(run_dir)
    except (OSError, DrillError) as exc:
        print(f"drill: warning: no summary appended to ${STEP_SUMMARY}: {exc}", file=sys.stderr)



def _confirm(env: Environment, *, trials: int) -> None:
    """Ask a person before touching a real environment; refuse when nobody can be asked."""
    regions = ", ".join(f"{name} ({r.context})" for name, r in env.regions.items())
    if not sys.stdin.isatty():
        raise DrillError(f"refusing to inject faults into environment {env.name!r} ({regions}) without "
                         "confirmation: there is no terminal to ask on; pass --yes to confirm in advance")
    times = f" {trials} times over (--trials {trials})" if trials > 1 else ""
    answer = _ask(f"Inject faults into environment {env.name!r}: {regions}{times}? Type the environment's "
                  "name to go on: ")
    if answer is None or answer.strip() != env.name:
        raise DrillError("not confirmed; nothing was touched")


def _ask(prompt: str) -> str | None:
    """The line typed at ``prompt``; None when the person pressed Ctrl-C or Ctrl-D instead."""
    # The event loop is running: its own SIGINT handling would only cancel the run once the prompt
    # returns. At the prompt, Ctrl-C is a plain "no".
    try:
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: signals are not ours to handle
        previous = None
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)  # end the prompt's line
        return None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
