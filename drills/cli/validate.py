"""``drill validate FILE... [--env NAME|PATH]``: check scenario files, touching nothing.

Each good file gets ``FILE: ok (N probes, M steps)`` on stdout; each problem of a bad one a line
``file:line:col: message (hint)`` on stderr, every problem of every file in one pass. The exit
status is 2 when any file is bad. Regions and ``{{ env.NAME }}`` values come from the environment:
the built-in lab's unless ``--env`` names another.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drills import plugins as _plugins
from drills.errors import SourceErrors
from drills.runner.session import LAB, Where, validate


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` command."""
    parser = commands.add_parser("validate", help="check scenario files without running them",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario files")
    parser.add_argument("--env", metavar="NAME|PATH", default=LAB,
                        help="the environment whose regions and variables the files use (default: lab)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate every file; 0 when all are good, 2 otherwise."""
    where = Where.parse(args.env)
    plugins = _plugins.installed()
    bad = 0
    for file in args.files:
        try:
            scenario, _ = validate(Path(file), where, plugins=plugins)
        except SourceErrors as exc:
            bad += 1
            for error in exc.errors:
                print(error, file=sys.stderr)
            continue
        print(f"{file}: ok ({_count(len(scenario.probes), 'probe')}, {_count(len(scenario.steps), 'step')})")
    return 2 if bad else 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
