"""Do the probes keep their period while the lab serves 200 canary writes a second?

A lab (:class:`drills.lab.world.World`, what ``drill lab up`` runs, default topology) starts in a child
process, with a heartbeat that measures how late its event loop runs. This process drives three probes
through the runner's own sampling machinery (:class:`drills.runner.sampling.Sampler`: a ticker per probe
on absolute deadlines, each sample a task of its own, samples streamed to a ``samples.jsonl``) against the
lab's environment file, as a drill would:

- ``data``, the replication probe (``every: 1s``), with ``rate`` set so that it writes ``--rate`` canaries
  a REAL second (200 by default: ``rate: 6.67`` at time scale 30) through the real ``azure-cosmos`` aio
  client, and reads each canary back in the other region through a pinned reader client;
- ``dns`` (``every: 1s``) and ``users``, an http probe (``every: 500ms``), at their usual periods.

After a warm-up (the clients' first account reads and connections), for ``--seconds`` real seconds, the
bench counts the canary writes acknowledged (by their acknowledgement instant), the failed ones and the
ticks the writer skipped (``max_in_flight`` pending), and for each probe the launch lateness of its samples
(start against its tick, real milliseconds) and their duration; and the CPU of this process and of the
lab's, and both event loops' lateness (a 10 ms sleep's overrun).

Target (exit 1 when missed): at least ``--target-share`` (97.5 %) of the asked writes acknowledged a real
second (195 of 200), none failed; every probe launches at least 99 % of its ticks, loses no sample, and
keeps its p99 launch lateness under half the fastest probe's real period (8.3 ms at the lab's default
time scale 30, as ``probe_period.py`` asks)::

    .venv/bin/python bench/canary_rate.py                    # ~35 s
    .venv/bin/python bench/canary_rate.py --seconds 60 --rate 300
    .venv/bin/python bench/canary_rate.py --scale 60         # every probe samples twice as often
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.runner.sampling import Sampler
from drills.targets import Targets
from probes.base import Probe, Sample
from probes.dns import DnsProbe
from probes.http import HttpProbe
from probes.replication import ReplicationProbe

TARGET_SHARE = 0.975
"""The share of the asked canary writes that must be acknowledged a second (195 of 200)."""
LATENESS_SHARE = 0.5
"""Every probe's p99 launch lateness must stay under this share of the fastest probe's period (as in
``probe_period.py``): a sample launched that late still falls in its own half of the period."""
LAUNCHED_SHARE = 0.99
"""The share of its ticks each probe must launch."""
WARM_UP_S = 3.0
"""Real seconds of sampling before the measurement starts: the clients' first account reads, TLS
handshakes and the SDK's import are not the steady state."""
DRAIN_S = 1.0
"""Real seconds of sampling after the measurement: writes acknowledged before its end are reported by
the next sample."""
_HEARTBEAT_S = 0.01


@dataclass
class Tally:
    """What one probe did during the measurement."""

    period: float
    lateness_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit code (0 target met, 1 missed, 2 could not run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="canary writes a real second (default 200)")
    parser.add_argument("--scale", type=float, default=30.0,
                        help="the lab's time scale (default 30, the lab's own default)")
    parser.add_argument("--seconds", type=float, default=25.0, help="real seconds measured (default 25)")
    parser.add_argument("--target-share", type=float, default=TARGET_SHARE,
                        help=f"share of the asked writes that must be acknowledged (default {TARGET_SHARE})")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with tempfile.TemporaryDirectory(prefix="drill-bench-") as directory:
        lab = context.Process(target=_lab, args=(child, args.scale, directory), daemon=True)
        lab.start()
        try:
            ready = parent.recv() if parent.poll(60) else "the lab did not start within 60 s"
            if not str(ready).endswith(".yaml"):
                print(f"could not run: {ready}")
                return 2
            misses = asyncio.run(_bench(args, Path(str(ready)), parent, Path(directory)))
        except EOFError:
            print("could not run: the lab process died")
            return 2
        finally:
            parent.send("stop")
            lab.join(10)
            if lab.is_alive():
                lab.kill()
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    if not misses:
        print("target met")
    return 1 if misses else 0


async def _bench(args: argparse.Namespace, environment: Path, lab: Connection, directory: Path) -> list[str]:
    env = load_environment(environment)
    clock = ScenarioClock(env.time_scale)
    targets = Targets(env, clock)
    rate = args.rate / env.time_scale
    spec = ReplicationProbe.Spec.model_validate({"rate": rate})
    probes: dict[str, tuple[Probe, str]] = {
        "data": (ReplicationProbe("data", spec, targets, every=1.0), "replication"),
        "dns": (DnsProbe("dns", DnsProbe.Spec(), targets, every=1.0), "dns"),
        "users": (HttpProbe("users", HttpProbe.Spec(), targets, every=0.5), "http"),
    }
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the bench; "
          f"lab time scale {env.time_scale:g}")
    print(f"probes: data (replication, every 1s, rate {rate:.3g}/s = {args.rate:g} canary writes a real "
          f"second), dns (every 1s), users (http, every 500ms); {args.seconds:g} real s measured")
    sampler = Sampler(probes, clock, directory / "samples.jsonl")
    samples: list[Sample] = []
    sampler.listen(lambda _state, sample: samples.append(sample))
    heartbeat: list[float] = []
    beat = asyncio.create_task(_heartbeat(heartbeat))
    await sampler.start()
    try:
        await asyncio.sleep(WARM_UP_S)
        lab.send("mark")
        skipped0 = {name: state.skipped for name, state in sampler.states.items()}
        lost0 = {name: state.lost for name, state in sampler.states.items()}
        heartbeat.clear()
        cpu0, waited0, w0, wall0 = _cpu(), _waited(), clock.now(), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu, waited, w1, wall = _cpu() - cpu0, _waited() - waited0, clock.now(), time.monotonic() - wall0
        lab.send("report")
        lab_cpu, lab_waited, lab_beats = lab.recv()
        beats = sorted(heartbeat)
        skipped = {name: state.skipped - skipped0[name] for name, state in sampler.states.items()}
        lost = {name: state.lost - lost0[name] for name, state in sampler.states.items()}
        await asyncio.sleep(DRAIN_S)
    finally:
        await sampler.stop()
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        await targets.aclose()
    started = sampler.started_t or 0.0
    tallies = {name: Tally(probe.period) for name, (probe, _) in probes.items()}
    for sample in samples:
        if not w0 <= sample.t < w1:
            continue
        tally = tallies[sample.probe]
        # The ticker never runs a period late (it skips missed ticks): the sample belongs to the tick before.
        tick = math.floor((sample.t - started) / tally.period)
        tally.lateness_ms.append(1000 * clock.to_real(sample.t - (started + tick * tally.period)))
        tally.duration_ms.append(1000 * clock.to_real(sample.duration))
    writes = [w for s in samples if s.probe == "data" for w in s.values.get("writes") or []]  # type: ignore[union-attr]
    failed = [f for s in samples if s.probe == "data" for f in s.values.get("failed") or []]  # type: ignore[union-attr]
    skipped_writes = sum(int(s.values.get("skipped") or 0) for s in samples  # type: ignore[arg-type]
                         if s.probe == "data" and w0 <= s.t < w1)
    acked = [w for w in writes if w0 <= w[2] < w1]
    failed_in = [f for f in failed if w0 <= f[2] < w1]
    latency = sorted(1000 * clock.to_real(w[2] - w[1]) for w in acked)
    acked_rate = len(acked) / wall
    print(f"\ncanary writes: {acked_rate:.1f}/s acknowledged of {args.rate:g}/s asked; {len(failed_in)} "
          f"failed, {skipped_writes / wall:.1f} ticks/s skipped (max_in_flight {spec.max_in_flight}); write "
          f"round trip p50 {_pct(latency, 50):.1f} ms, p99 {_pct(latency, 99):.1f} ms (real)")
    print(f"{'probe':<7}{'period':>8}{'ticks/s':>9}{'launched':>10}{'late p50':>10}{'p99':>7}{'max':>7}"
          f"{'budget':>8}{'dur p50':>9}{'p99':>8}{'lost':>6}   (ms, real)")
    misses: list[str] = []
    budget = 1000 * LATENESS_SHARE * clock.to_real(min(t.period for t in tallies.values()))
    for name, tally in tallies.items():
        real_period = clock.to_real(tally.period)
        ticks = wall / real_period
        late, dur = sorted(tally.lateness_ms), sorted(tally.duration_ms)
        launched = len(late) / ticks
        print(f"{name:<7}{1000 * real_period:>8.1f}{1 / real_period:>9.1f}{100 * launched:>9.1f}%"
              f"{_pct(late, 50):>10.2f}{_pct(late, 99):>7.2f}{(late[-1] if late else 0):>7.1f}{budget:>8.2f}"
              f"{_pct(dur, 50):>9.1f}{_pct(dur, 99):>8.1f}{lost[name]:>6}")
        if launched < LAUNCHED_SHARE:
            misses.append(f"{name} launched {100 * launched:.1f}% of its ticks ({skipped[name]} skipped)")
        if lost[name]:
            misses.append(f"{name} lost {lost[name]} samples")
        if _pct(late, 99) > budget:
            misses.append(f"{name}: p99 launch lateness {_pct(late, 99):.2f} ms > {budget:.2f} ms "
                          f"({100 * LATENESS_SHARE:g}% of the fastest probe's period)")
    lab_beats.sort()
    per_write = 1000 * cpu / max(1, len(acked))
    print(f"CPU: probes' process {100 * cpu / wall:.0f}% of one core ({per_write:.2f} ms a canary write, all "
          f"probes' work included), lab's {100 * lab_cpu / wall:.0f}%; runnable but waiting for a CPU: "
          f"probes' loop {100 * waited / wall:.0f}% of the time, lab's "
          f"{100 * lab_waited / wall:.0f}%")
    print(f"loop lateness (10 ms sleep) probes p50 {_pct(beats, 50):.1f} / p99 {_pct(beats, 99):.1f} / max "
          f"{(beats[-1] if beats else 0):.1f} ms, lab p50 {_pct(lab_beats, 50):.1f} / p99 "
          f"{_pct(lab_beats, 99):.1f} / max {(lab_beats[-1] if lab_beats else 0):.1f} ms")
    print(f"load average {os.getloadavg()[0]:.1f} after the bench")
    if acked_rate < args.target_share * args.rate:
        misses.append(f"{acked_rate:.1f} canary writes acknowledged a second < "
                      f"{args.target_share * args.rate:.1f}")
    if failed_in:
        misses.append(f"{len(failed_in)} canary writes failed, e.g. {failed_in[0][3]}")
    return misses


async def _heartbeat(lateness: list[float]) -> None:
    # How late the loop runs a 10 ms timer: the loop's own health, whatever else it runs.
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _HEARTBEAT_S
        await asyncio.sleep(_HEARTBEAT_S)
        lateness.append((loop.time() - due) * 1000)


def _pct(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100))]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _waited() -> float:
    """Seconds this thread (the event loop's) has spent runnable but waiting for a CPU: how much other
    processes took from it (Linux's schedstat; 0 where there is none)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _lab(conn: Connection, scale: float, directory: str) -> None:
    """The child process: a lab, its loop's heartbeat, its CPU; told ``mark``, ``report``, ``stop``."""
    asyncio.run(_serve_lab(conn, scale, Path(directory) / "lab"))


async def _serve_lab(conn: Connection, scale: float, directory: Path) -> None:
    from drills.errors import LabError
    from drills.lab.topology import DEFAULT
    from drills.lab.world import World

    loop = asyncio.get_running_loop()
    world = World(DEFAULT.model_copy(update={"time_scale": scale}), directory)
    try:
        await world.start()
    except LabError as exc:
        conn.send(str(exc))
        return
    heartbeat: list[float] = []
    beat = asyncio.create_task(_heartbeat(heartbeat))
    conn.send(str(world.environment_file))
    cpu0, waited0 = _cpu(), _waited()
    try:
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "mark":
                heartbeat.clear()
                cpu0, waited0 = _cpu(), _waited()
            elif command == "report":
                conn.send((_cpu() - cpu0, _waited() - waited0, list(heartbeat)))
            else:
                break
    finally:
        beat.cancel()
        await world.close()


if __name__ == "__main__":
    sys.exit(main())
