"""``drill export FILE --to chaostoolkit [--env NAME|PATH] [-o OUT]``: a scenario as another tool's format.

For Chaos Toolkit, a JSON experiment (docs/chaostoolkit.md) whose activities call drill's own faults and
probes: the steady-state hypothesis from the probes' steady states and the expectations checkable at an
instant, the method from the steps, the rollbacks from the faults' undos. What could not be exported is
printed on stderr and said in the experiment. With ``--env`` naming an environment file, the experiment
uses it unless ``$DRILL_ENVIRONMENT`` names another; without, ``$DRILL_ENVIRONMENT`` must name one when
the experiment runs (for a lab: the environment file ``drill lab up`` prints). Touches nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drills import plugins as _plugins
from drills.chaostoolkit.experiment import experiment
from drills.errors import DrillError
from drills.runner.session import LAB, Where, validate

FORMATS = ("chaostoolkit",)
"""What ``--to`` may name."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``export`` command."""
    parser = commands.add_parser("export", help="write a scenario as a Chaos Toolkit experiment",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("file", type=Path, metavar="FILE", help="the scenario file")
    parser.add_argument("--to", required=True, choices=FORMATS, help="the format to write")
    parser.add_argument("--env", metavar="lab|NAME|PATH", default=LAB,
                        help="the environment whose regions and variables the scenario uses, and that the "
                             "experiment runs against by default (default: lab, named when it runs)")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT",
                        help="the file to write (default: stdout)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the experiment; 0, or 2 when the scenario is wrong, cannot be exported or the output file
    cannot be written."""
    where = Where.parse(args.env)
    plugins = _plugins.installed()
    scenario, env = validate(args.file, where, plugins=plugins)
    exported = experiment(scenario, environment=env.path if env is not None else None,
                          output=args.output)
    for left in exported["extensions"][0]["not_exported"]:
        print(f"drill: not exported: {left['item']}: {left['why']}", file=sys.stderr)
    text = json.dumps(exported, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DrillError(f"cannot write {args.output}: {exc.strerror or exc}; give -o a file in an "
                             "existing, writable directory") from exc
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
