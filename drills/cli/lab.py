"""``drill lab up [--topology F] [--manifests DIR] [--time-scale N] [--dir D]``: run a lab in the foreground.

The lab (two regions' Kubernetes API servers and ingresses, Traffic Manager's DNS, the ground-truth
log) runs in this process until Ctrl-C or SIGTERM, which stop it cleanly (exit 0). Once it is ready
the first line on stdout is ``environment: <absolute path>``, the environment file that ``drill run
--env`` and the tests drive the lab through; human guidance follows (ingress URLs, ``kubectl`` and
``dig`` commands, how to stop). A bad topology file gets one ``file:line:col: message`` line per
problem on stderr and exit 2, before anything starts. ``--manifests DIR`` applies a team's own
Kubernetes manifests after the lab's defaults (:mod:`drills.lab.manifests`); the kinds the lab does not
model are named on stderr first (``lab: not modelled, kept out: ...``), and a manifest that does not
parse or that an API server refuses is an error at its ``file:line:col`` (exit 2, no lab left running).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from drills.cli import time_scale
from drills.errors import SourceError, SourceErrors
from drills.lab.files import IDENTITIES_DIR
from drills.lab.topology import Topology, load_topology
from drills.labprocess import ENVIRONMENT_LINE

if TYPE_CHECKING:
    from drills.lab.manifests import Manifests
    from drills.lab.world import World


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lab`` command and its ``up`` subcommand."""
    lab = commands.add_parser("lab", help="run the built-in lab", description="The built-in lab.")
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start a lab in the foreground (Ctrl-C stops it)",
                            description=__doc__.splitlines()[0].split(": ", 1)[1])
    up.add_argument("--topology", metavar="FILE", type=Path,
                    help="the design to rehearse; states only what differs from the built-in default")
    up.add_argument("--manifests", metavar="DIR", type=Path,
                    help="a team's Kubernetes manifests to apply after the lab's defaults: a folder of YAML "
                         "files for every region, with a subfolder per region for what differs there")
    up.add_argument("--time-scale", metavar="N", type=time_scale,
                    help="how many times faster than real time the lab's clock runs (default: the "
                         "topology's, 30 unless it says otherwise)")
    up.add_argument("--dir", metavar="DIR", type=Path,
                    help="where to write environment.yaml, kubeconfig and ground-truth.jsonl (default: a new "
                         "drill-lab-XXXX folder in the system's temporary directory)")
    # A runner that starts a lab keeps its stdin open; when the runner dies, the lab sees EOF and stops.
    up.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the lab and serve until stopped; 0 after a clean stop, 2 for a bad topology."""
    try:
        topology = load_topology(args.topology)
    except SourceErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 2
    except SourceError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.time_scale is not None:
        topology = topology.model_copy(update={"time_scale": args.time_scale})
    manifests = None
    if args.manifests is not None:
        from drills.lab.manifests import load_manifests  # the lab's client side: only when asked

        try:
            manifests = load_manifests(args.manifests, topology.regions)
        except SourceErrors as exc:
            for error in exc.errors:
                print(error, file=sys.stderr)
            return 2
        topology = manifests.adopt_roles(topology)
        line = manifests.not_modelled_line()
        if line is not None:
            print(line, file=sys.stderr, flush=True)
    directory = args.dir if args.dir is not None else Path(tempfile.mkdtemp(prefix="drill-lab-"))
    logging.basicConfig(level=logging.WARNING, format="lab: %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(topology, directory.resolve(), exit_on_stdin_eof=args.exit_on_stdin_eof,
                              manifests=manifests))


async def _serve(topology: Topology, directory: Path, *, exit_on_stdin_eof: bool,
                 manifests: Manifests | None = None) -> int:
    # Imported here, not at the top: the lab's servers (aiohttp, TLS) cost half a second to import, which
    # every other drill command would pay at each start.
    from drills.lab.world import World

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if exit_on_stdin_eof:
        await loop.connect_read_pipe(lambda: _Lifeline(stop), sys.stdin)
    world = World(topology, directory, manifests=manifests)
    starting = asyncio.create_task(world.start(), name="lab start")
    stopped = asyncio.create_task(stop.wait(), name="lab stop signal")
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here, after the world cleaned up after itself
            _announce(world)
            await stopped
        else:
            starting.cancel()  # stopped while starting: start() stops whatever had started
            await asyncio.gather(starting, return_exceptions=True)
    finally:
        stopped.cancel()
        await world.close()
    with contextlib.suppress(OSError):  # whoever read our output may be gone by now
        print("lab stopped", file=sys.stderr, flush=True)
    return 0


def _announce(world: World) -> None:
    """The environment line (what runners wait for), then what a person can do with the lab."""
    a = world.addresses
    fqdn = world.topology.traffic_manager.fqdn
    kubectl = _kubectl()
    first = a.regions[0]
    lines = [
        f"{ENVIRONMENT_LINE}{world.environment_file}",
        "",
        f"lab up in {world.start_s or 0:.1f} s: {len(a.regions)} regions, time scale "
        f"{world.topology.time_scale:g} (1 real second = {world.topology.time_scale:g} lab seconds), "
        f"pid {os.getpid()}",
    ]
    lines += [f"  {r.name:<4} kubernetes {r.api_url}  (context {r.context})   "
              f"ingress http://{r.address}:{a.service_port}/" for r in a.regions]
    lines += [
        f"  traffic manager: {fqdn} on DNS server {a.dns_address} port {a.dns_port}",
        f"  cosmos db: account {world.cosmos.name} at {world.cosmos.global_endpoint} (write region "
        f"{world.cosmos.write_region()}; key in {world.cosmos_key_file})",
        f"  ground truth: {world.ground_truth_file}",
    ]
    lines += [f"  identity {name}: environment {world.directory / IDENTITIES_DIR / name}.yaml (RBAC enforced)"
              for name in world.identity_tokens]
    if world.manifests is not None:
        counts = ", ".join(f"{len(m)} in {region}" for region, m in world.manifests.regions.items())
        lines.append(f"  manifests applied: {counts} (app {world.topology.app.namespace}/"
                     f"{world.topology.app.name}, ingress controller {world.topology.ingress.namespace}/"
                     f"{world.topology.ingress.name})")
    lines += [f"  not settled yet: {item}" for item in world.unsettled]
    lines += [
        "",
        "try:",
        f"  {kubectl} --kubeconfig {world.kubeconfig_file} --context {first.context} get nodes",
        f"  dig @{a.dns_address} -p {a.dns_port} {fqdn}",
        f"  curl -i http://{first.address}:{a.service_port}/",
        "",
        "stop: Ctrl-C, or kill -TERM " + str(os.getpid()),
    ]
    print("\n".join(lines), flush=True)


def _kubectl() -> str:
    """How the user should spell kubectl: the one installed beside drill (plain ``kubectl`` if that is
    the one PATH finds), else whatever PATH finds."""
    beside = Path(sys.executable).parent / "kubectl"
    if not beside.exists():
        return "kubectl"
    found = shutil.which("kubectl")
    return "kubectl" if found is not None and Path(found).resolve() == beside.resolve() else str(beside)


class _Lifeline(asyncio.Protocol):
    """Stops the lab when its stdin closes (the runner that started it is gone)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def data_received(self, data: bytes) -> None:
        """Input means nothing; only its end does."""

    def eof_received(self) -> bool:
        self._stop.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop.set()
