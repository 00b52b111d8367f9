"""``drill validate FILE... [--env NAME|PATH]``: check scenario files, touching nothing.

Each good file gets ``FILE: ok (N probes, M steps)`` on stdout; each problem of a bad one a line
``file:line:col: message (hint)`` on stderr, every problem of every file in one pass. The exit
status is 2 when any file is bad. Regions and ``{{ env.NAME }}`` values come from the environment:
the built-in lab's unless ``--env`` names another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from drills.environment import load_environment
from drills.errors import SourceErrors
from drills.lab.topology import DEFAULT
from drills.runner.session import LAB, environment_file, variables
from drills.scenario import load_scenario


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
    context = _context(args.env)
    bad = 0
    for file in args.files:
        try:
            scenario = load_scenario(file, regions=context.regions, variables=context.variables)
        except SourceErrors as exc:
            bad += 1
            for error in exc.errors:
                print(error, file=sys.stderr)
            continue
        print(f"{file}: ok ({_count(len(scenario.probes), 'probe')}, {_count(len(scenario.steps), 'step')})")
    return 2 if bad else 0


@dataclass(frozen=True)
class _Context:
    """What a scenario may refer to in its environment."""

    regions: frozenset[str]
    variables: Mapping[str, str]


def _context(env: str) -> _Context:
    if env == LAB:
        return _Context(regions=frozenset(DEFAULT.regions),
                        variables={"name": LAB, "fqdn": DEFAULT.traffic_manager.fqdn})
    environment = load_environment(environment_file(env))
    return _Context(regions=frozenset(environment.regions), variables=variables(environment))


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
