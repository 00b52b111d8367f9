"""Benchmark: queries a second and round trips of the lab's Traffic Manager DNS server.

A lab (:class:`drills.lab.world.World`, what ``drill lab up`` runs: both regions' API servers,
controllers and ingresses, Traffic Manager and its health checks) starts in this process, on a random
loopback block. A separate process then queries its DNS server over UDP (``bench/_udpload.py``), one
load after another:

- ``repeated``: the profile's name, the same question every time, as drill's DNS probes ask it, with
  ``--window`` queries kept in flight: the most the server answers a second;
- ``distinct-ecs``: the same name, each query with its own EDNS Client Subnet (``10.a.b.0/24``), so no
  two questions in a row are alike and every one takes the server's slow path (a reply built by
  dnspython, not a kept one);
- ``repeated-1``, ``distinct-ecs-1``: the same questions one at a time, for the round trip with no
  queue in front of it.

For each it prints the answered queries a second, the client's round trip (p50, p99, max), the queries
the server counted, and how late the lab's own event loop ran meanwhile (a 5 ms sleep, p99 and max): the
loop that also times Traffic Manager's probes. Every reply is checked (``_udpload``).

Target: ``repeated`` answers at least ``--target-qps`` (5,000) queries a second, with no wrong reply.
Exit 0 when met, 1 when missed (or a reply was wrong), 2 when the lab could not start::

    .venv/bin/python bench/dns_throughput.py                  # ~20 s
    .venv/bin/python bench/dns_throughput.py --seconds 30     # longer loads, steadier numbers
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _udpload import LoadProcess, LoadResult, LoadSpec

from drills.errors import LabError
from drills.lab.topology import DEFAULT
from drills.lab.world import World

TARGET_QPS = 5000.0
"""What a lab must answer. A DNS probe asking once a scenario second asks 30 times a real second at time
scale 30; the target leaves room for many probes, several drills against one lab, and a busy machine."""

_LATENESS_TICK_S = 0.005
"""The sleep whose overrun measures the lab loop's lateness."""


@dataclass(frozen=True)
class _Case:
    name: str
    subnets: int
    subnet_octet: int
    """Each distinct load its own subnets, so that none is answered from replies another load left."""
    window: int
    seconds: float
    checked: bool
    """Whether the target applies to this load."""


@dataclass(frozen=True)
class _Outcome:
    case: _Case
    load: LoadResult
    server_queries: int
    lateness_p99_ms: float
    lateness_max_ms: float


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit code (0 target met, 1 missed, 2 could not run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="real seconds of each windowed load (default 5; one-at-a-time loads: 2/5 of it)")
    parser.add_argument("--window", type=int, default=32, help="queries in flight in the windowed loads")
    parser.add_argument("--target-qps", type=float, default=TARGET_QPS,
                        help=f"queries a second the repeated load must reach (default {TARGET_QPS:.0f})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.window < 1:
        parser.error("--seconds must be positive and --window at least 1")
    single_s = max(1.0, args.seconds * 0.4)
    cases = [_Case("repeated", 0, 10, args.window, args.seconds, checked=True),
             _Case("distinct-ecs", 65536, 10, args.window, args.seconds, checked=False),
             _Case("repeated-1", 0, 10, 1, single_s, checked=False),
             _Case("distinct-ecs-1", 65536, 11, 1, single_s, checked=False)]
    try:
        outcomes = asyncio.run(_bench(cases))
    except (LabError, OSError, RuntimeError) as exc:
        print(f"dns_throughput: could not run: {exc}", file=sys.stderr)
        return 2
    return _verdict(outcomes, target_qps=args.target_qps)


async def _bench(cases: list[_Case]) -> list[_Outcome]:
    with tempfile.TemporaryDirectory(prefix="drill-bench-") as directory:
        began = time.monotonic()
        async with World(DEFAULT, Path(directory)) as world:
            addresses = world.addresses
            print(f"lab up in {time.monotonic() - began:.1f} s (time scale {DEFAULT.time_scale:g}); "
                  f"DNS server {addresses.nameserver}; load from a separate process, UDP")
            print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the bench")
            if world.unsettled:
                print(f"  (not settled: {'; '.join(world.unsettled)})")
            fqdn = DEFAULT.traffic_manager.fqdn
            targets = tuple(f"{r.name}.endpoints.drill.test." for r in addresses.regions)
            print(f"{'':<23}{'answered':>10}{'round trip, ms':>21}{'':>20}{'lab loop late, ms':>19}")
            print(f"{'load':<16}{'window':>7}{'q/s':>10}{'p50':>7}{'p99':>7}{'max':>7}"
                  f"{'lost':>6}{'wrong':>6}{'server':>8}{'p99':>10}{'max':>9}")
            outcomes = []
            for case in cases:
                spec = LoadSpec(addresses.dns_address, addresses.dns_port, fqdn, targets,
                                subnets=case.subnets, subnet_octet=case.subnet_octet, window=case.window,
                                seconds=case.seconds)
                outcome = await _run_case(case, spec, world)
                _print(outcome)
                outcomes.append(outcome)
            return outcomes


async def _run_case(case: _Case, spec: LoadSpec, world: World) -> _Outcome:
    """One load from its own process, while this loop notes how late it runs."""
    load = LoadProcess(spec)
    await load.start()
    before = world.traffic_manager.dns_queries
    lateness: list[float] = []
    watcher = asyncio.create_task(_watch_lateness(lateness), name="loop lateness")
    try:
        result = await load.finish(stop=False)
    finally:
        watcher.cancel()
    lateness.sort()
    p99 = lateness[int(len(lateness) * 0.99)] if lateness else 0.0
    return _Outcome(case, result, world.traffic_manager.dns_queries - before, p99 * 1e3,
                    (lateness[-1] if lateness else 0.0) * 1e3)


async def _watch_lateness(lateness: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(_LATENESS_TICK_S)
        lateness.append(loop.time() - asked - _LATENESS_TICK_S)


def _print(outcome: _Outcome) -> None:
    load = outcome.load
    print(f"{outcome.case.name:<16}{outcome.case.window:>7}{load.answered_qps:>10,.0f}{load.rtt_p50_ms:>7.2f}"
          f"{load.rtt_p99_ms:>7.2f}{load.rtt_max_ms:>7.1f}{load.lost:>6}{load.wrong:>6}{outcome.server_queries:>8}"
          f"{outcome.lateness_p99_ms:>10.1f}{outcome.lateness_max_ms:>9.1f}")
    if load.first_wrong:
        print(f"  first wrong reply: {load.first_wrong}")


def _verdict(outcomes: list[_Outcome], *, target_qps: float) -> int:
    failed = False
    for outcome in outcomes:
        if outcome.load.wrong:
            print(f"FAIL {outcome.case.name}: {outcome.load.wrong} wrong replies")
            failed = True
        if outcome.case.checked:
            qps = outcome.load.answered_qps
            met = qps >= target_qps
            print(f"{'PASS' if met else 'FAIL'} {outcome.case.name}: {qps:,.0f} q/s answered, target >= "
                  f"{target_qps:,.0f}")
            failed = failed or not met
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
