"""``drill doctor --env NAME|PATH [SCENARIO]``: may this identity drill this environment? Touches nothing.

Checks that every API the environment names answers (each region's Kubernetes API, the Traffic
Manager name servers, Azure Resource Manager and the Cosmos DB account when configured) and, per
fault of the scenario (or every installed fault kind without one), whether the kubeconfig's identity
may do what the fault needs, printing what is missing and the exact RBAC rules to add
(:mod:`drills.doctor`). Exit 0 when all is fine, 2 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from drills import plugins as _plugins
from drills.doctor import diagnose
from drills.environment import load_environment
from drills.labproof import prove_lab
from drills.runner.session import environment_file, variables
from drills.scenario import load_scenario


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``doctor`` command."""
    parser = commands.add_parser("doctor", help="check an environment's APIs and the identity's permissions",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("scenario", type=Path, nargs="?", metavar="SCENARIO",
                        help="check the permissions this scenario's faults need (default: every fault kind)")
    parser.add_argument("--env", required=True, metavar="NAME|PATH",
                        help="the environment: a NAME found in ./environments/ or scenarios/environments/, "
                             "or an environment file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis; 0 when all is fine, 2 otherwise."""
    env = load_environment(environment_file(args.env))
    plugins = _plugins.installed()
    scenario = None
    if args.scenario is not None:
        scenario = load_scenario(args.scenario, regions=set(env.regions), variables=variables(env),
                                 plugins=plugins)

    async def check() -> tuple[list[str], bool]:
        proven = await prove_lab(env)
        diagnosis = await diagnose(proven, plugins, scenario)
        return diagnosis.lines(proven), diagnosis.healthy

    lines, healthy = asyncio.run(check())
    print("\n".join(lines))
    return 0 if healthy else 2
