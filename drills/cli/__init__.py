"""The ``drill`` command line.

Each command lives in its own module of this package and registers itself in :data:`_COMMANDS`.
Errors a user can act on (:class:`~drills.errors.DrillError`) are printed without a traceback and
turn into the documented exit codes; anything else is a bug in drill and is shown as such.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence

from drills.errors import DrillError, SourceErrors

_COMMANDS = ("drills.cli.abort", "drills.cli.doctor", "drills.cli.export", "drills.cli.history",
             "drills.cli.lab", "drills.cli.plan", "drills.cli.recover", "drills.cli.report", "drills.cli.run",
             "drills.cli.schedule", "drills.cli.validate")
"""Modules with a ``register(subparsers)`` that adds their command."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``drill`` command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="drill", description="Multi-region failover drills.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        importlib.import_module(module).register(commands)
    args = parser.parse_args(argv)
    # No argv: this is the process's own command line, so a command may keep its signal handlers
    # until the process exits (drill run does: see drills.runner.interrupts).
    args.owns_process = argv is None
    try:
        return int(args.handler(args))
    except DrillError as exc:
        print(_problems(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # A signal before a run took the signals over (drills.runner.interrupts): nothing was touched.
        print("drill: interrupted", file=sys.stderr)
        return 2


def _problems(exc: DrillError) -> str:
    """What the user reads: one error as ``drill: message`` (which may take several lines), several
    problems in files counted first."""
    if isinstance(exc, SourceErrors) and len(exc.errors) > 1:
        return f"drill: {len(exc.errors)} problems:\n{exc}"
    return f"drill: {exc}"


def time_scale(text: str) -> float:
    """The ``--time-scale N`` argument of commands that start a lab."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"the time scale must be a finite number, not {text!r}")
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError("the time scale must be more than 0 and at most 1000")
    return value


def at_least_one(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least 1 ``what`` (``--trials N``, ``--limit N``)."""
    def parse(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if count < 1:
            raise argparse.ArgumentTypeError(f"at least 1 {what}, not {count}")
        return count
    return parse
