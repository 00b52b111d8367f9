"""Benchmark: when a region's ingress fails, does Traffic Manager fail over inside the predicted window?

docs/protocol-facts.md predicts when Azure Traffic Manager marks a failed endpoint Degraded and answers
with the next one: within ``[N*I + T, (N+1)*I + T)`` of the failure when the endpoint hangs (every probe waits
its timeout T) and within ``[N*I, (N+1)*I)`` when it refuses connections (every probe fails at once),
for N tolerated failures and a probe interval I; where in the window depends on the failure's phase
against the probe schedule. drill's DNS metrics are judged against the lab's ground truth, so the lab
must keep to these windows in real time too, whatever the phase and whatever else its loop is doing.

This runs the lab's own parts in this process and loop: a :class:`~drills.lab.trafficmanager.TrafficManager`
(its DNS server and its monitor, writing a real ground-truth log) probing two
:class:`~drills.lab.ingress.Ingress` servers, ``us`` (priority 1) and ``eu``, each in front of a region
whose object store has a Ready ingress-controller pod and a Ready app pod, on a random loopback block.
Each trial waits a random part of an interval (the phase), fails ``us``, and times the ground truth's
``dns_answer`` line that moves the answer to ``eu``; then the DNS server is asked on the wire, ``us`` is
healed, and the answer must come back to ``us`` (on the wire too) before the next trial. Failures:

- ``hang``: the controller pod turns not Ready, so the ingress holds every connection unanswered (an
  Azure load balancer with no healthy backend: what ``kill-ingress`` does);
- ``refuse``: the ingress stops listening, so every probe's connection is refused.

Both run twice: on an idle loop, then while a separate process sends ``--load-qps`` DNS queries a
second to the same server (``bench/_udpload.py``), since a drill's probes query it while it fails over.

For each set the bench prints the window and the measured detection times in lab seconds (min, mean,
max), how many fell inside, by how much the worst fell outside (real ms), and the offset from the exact
instant the monitor's fixed schedule predicts for that trial (real ms; the monitor probes at
``start + k*I``, so the (N+1)th failing probe is known from the failure's instant).

Target: every trial inside its window within ``--tolerance-ms`` (10) real milliseconds, and every DNS
answer on the wire as the ground truth says. Exit 0 when met, 1 when missed, 2 when it could not run::

    .venv/bin/python bench/failover_detection.py                     # 4 x 15 trials, ~35 s
    .venv/bin/python bench/failover_detection.py --trials 100 --scale 30 --tolerated 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dns.asyncquery
import dns.exception
import dns.message
from _udpload import LoadProcess, LoadResult, LoadSpec

from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth
from drills.lab.ingress import Ingress
from drills.lab.kube.endpoints import follow
from drills.lab.kube.exposure import exposure, seed
from drills.lab.kube.store import DEPLOYMENTS, PODS, Obj, Store
from drills.lab.topology import Topology, Workload
from drills.lab.trafficmanager import ONLINE, Endpoint, TrafficManager

Kind = Literal["hang", "refuse"]

TOLERANCE_MS = 10.0
"""Real milliseconds a detection may fall outside its window: the ground truth promises probes a
judgement to well within 10 ms (drills.lab.groundtruth)."""

_FQDN = "shop.trafficmanager.net"
_WAIT_MARGIN_S = 2.0
"""Real seconds, past the window's end, after which a failover (or a return) counts as never happening."""
_DNS_TIMEOUT_S = 2.0
_LOAD_LIMIT_S = 3600.0
"""The load runs until the loaded sets are done; this only bounds it should the bench die first."""


@dataclass(frozen=True)
class _Settings:
    scale: float
    tolerated: int
    interval_s: float
    timeout_s: float
    trials: int
    load_qps: float
    tolerance_ms: float
    seed: int
    verbose: bool


@dataclass(frozen=True)
class _Trial:
    detection_lab_s: float
    """From the failure to the ground truth's ``dns_answer eu`` line, lab seconds."""
    phase_lab_s: float
    """When in the monitor's interval the failure came: lab seconds after a probe was due."""
    offset_ms: float
    """Real milliseconds after the instant the monitor's schedule predicts for this trial."""
    wire_ok: bool
    """Whether DNS on the wire answered ``eu`` right after, and ``us`` again once healed."""


@dataclass(frozen=True)
class _Set:
    kind: Kind
    loaded: bool
    window_lab_s: tuple[float, float]
    trials: list[_Trial]


@dataclass(frozen=True)
class _Outcome:
    sets: list[_Set]
    load: LoadResult | None
    """What the load's client saw over both loaded sets; None when there were none."""


class _WatchedTruth(GroundTruth):
    """The lab's ground-truth log, written as the lab writes it, that the bench can also await.

    Each line is kept with the real time taken in the same call that writes it (microseconds apart).
    """

    def __init__(self, path: Path, clock: LabClock) -> None:
        super().__init__(path, clock)
        self._real = clock.real
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def record(self, event: str, **fields: Any) -> None:
        real = self._real()
        super().record(event, **fields)
        self.lines.append({"real": real, "event": event, **fields})
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, after: int,
                       timeout_s: float) -> dict[str, Any]:
        """The first line from index ``after`` on that satisfies ``predicate``; TimeoutError if none comes."""
        async with asyncio.timeout(timeout_s):
            while True:
                for line in self.lines[after:]:
                    if predicate(line):
                        return line
                self._changed.clear()
                await self._changed.wait()


class _Region:
    """One region as its ingress sees it: a store with a controller pod and an app pod, and the ingress."""

    def __init__(self, name: str, host: str, topology: Topology, clock: LabClock) -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.store = Store(clock)
        self.ingress = Ingress(name, self.store, topology)
        self._controller = topology.ingress
        for workload in (topology.ingress, topology.app):
            self.store.create(DEPLOYMENTS, _deployment(workload))
            self.store.create(PODS, _pod(workload))
        seed(self.store, exposure(topology.app, topology.ingress))
        follow(self.store, clock)

    async def start(self) -> None:
        await self.ingress.start(self.host, self.port)
        self.port = self.ingress.port or 0

    async def fail(self, kind: Kind) -> None:
        if kind == "hang":
            self._set_controller_ready(False)
        else:
            await self.ingress.close()

    async def heal(self, kind: Kind) -> None:
        if kind == "hang":
            self._set_controller_ready(True)
        else:
            await self.ingress.start(self.host, self.port)  # the same port: the endpoint's, as configured

    def _set_controller_ready(self, ready: bool) -> None:
        def change(pod: Obj) -> None:
            pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        self.store.mutate(PODS, self._controller.namespace, f"{self._controller.name}-0", change)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the exit code (0 target met, 1 missed, 2 could not run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per set; 4 sets (default 20)")
    parser.add_argument("--scale", type=float, default=60.0,
                        help="lab time scale (default 60, as the lab's tests; the lab's own default is 30)")
    parser.add_argument("--tolerated", type=int, default=1, help="monitor's tolerated failures N (default 1)")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="probe interval I, s: 10 or 30 (default 10)")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout T, s (default 5)")
    parser.add_argument("--load-qps", type=float, default=2000.0,
                        help="DNS queries a second in the loaded sets (default 2000); 0 skips them")
    parser.add_argument("--tolerance-ms", type=float, default=TOLERANCE_MS,
                        help=f"real ms a detection may fall outside its window (default {TOLERANCE_MS:g})")
    parser.add_argument("--seed", type=int,
                        help="seed for the block and the waits before each fault (default: random, printed)")
    parser.add_argument("--verbose", action="store_true", help="print every trial")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.load_qps < 0:
        parser.error("--trials must be at least 1 and --load-qps not negative")
    settings = _Settings(scale=args.scale, tolerated=args.tolerated, interval_s=args.interval,
                         timeout_s=args.timeout, trials=args.trials, load_qps=args.load_qps,
                         tolerance_ms=args.tolerance_ms, verbose=args.verbose,
                         seed=args.seed if args.seed is not None else random.SystemRandom().randrange(2**31))
    try:
        monitor = {"interval": f"{settings.interval_s:g}s", "timeout": f"{settings.timeout_s:g}s",
                   "toleratedFailures": settings.tolerated}
        topology = Topology.model_validate({"timeScale": settings.scale,
                                            "trafficManager": {"fqdn": _FQDN, "monitor": monitor}})
    except ValueError as exc:
        parser.error(str(exc))
    began = time.monotonic()
    try:
        outcome = asyncio.run(_bench(topology, settings))
    except TimeoutError as exc:  # before OSError, its base class: a failover that never came is a miss
        print(f"FAIL: {exc}")
        return 1
    except (OSError, RuntimeError) as exc:
        print(f"failover_detection: could not run: {exc}", file=sys.stderr)
        return 2
    code = _verdict(outcome, settings)
    print(f"({time.monotonic() - began:.1f} s)")
    return code


async def _bench(topology: Topology, settings: _Settings) -> _Outcome:
    rng = random.Random(settings.seed)
    block = f"127.{rng.randint(20, 250)}.{rng.randint(0, 255)}"
    clock = LabClock(settings.scale)
    async with contextlib.AsyncExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="drill-bench-"))
        truth = _WatchedTruth(Path(directory) / "ground-truth.jsonl", clock)
        stack.callback(truth.close)
        us, eu = (_Region(name, f"{block}.{11 + i}", topology, clock) for i, name in enumerate(("us", "eu")))
        for region in (us, eu):
            await region.start()
            stack.push_async_callback(region.ingress.close)
        tm = TrafficManager(topology, [Endpoint("us", "us.endpoints.drill.test", us.host, us.port, 1),
                                       Endpoint("eu", "eu.endpoints.drill.test", eu.host, eu.port, 2)],
                            clock=clock, ground_truth=truth)
        dns_port = await tm.start(f"{block}.53")
        stack.push_async_callback(tm.close)
        # The monitors take their first deadline when they first run, a loop turn from here.
        origin = clock.now()
        first_probes_s = clock.to_real(topology.traffic_manager.monitor.timeout) + _WAIT_MARGIN_S
        for name in ("us", "eu"):
            await truth.wait_for(lambda line, name=name: line["event"] == "endpoint_status"
                                 and line["endpoint"] == name and line["status"] == ONLINE,
                                 after=0, timeout_s=first_probes_s)
        print(f"lab parts on {block}.0: scale {settings.scale:g}, N={settings.tolerated}, "
              f"I={settings.interval_s:g}s, T={settings.timeout_s:g}s; {settings.trials} trials a set, "
              f"seed {settings.seed}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        runner = _Runner(settings, clock, truth, us, rng, origin=origin, dns=(f"{block}.53", dns_port))
        sets = [await runner.run_set(kind, loaded=False) for kind in ("hang", "refuse")]
        if settings.load_qps <= 0:
            return _Outcome(sets, None)
        load = LoadProcess(LoadSpec(f"{block}.53", dns_port, _FQDN,
                                    ("us.endpoints.drill.test.", "eu.endpoints.drill.test."),
                                    rate_qps=settings.load_qps, seconds=_LOAD_LIMIT_S))
        await load.start()
        try:
            sets += [await runner.run_set(kind, loaded=True) for kind in ("hang", "refuse")]
        finally:
            result = await load.finish()
        _print_load(result)
        return _Outcome(sets, result)


class _Runner:
    """Runs the trials of one set after another against the same lab parts."""

    def __init__(self, settings: _Settings, clock: LabClock, truth: _WatchedTruth, region: _Region,
                 rng: random.Random, *, origin: float, dns: tuple[str, int]) -> None:
        self._settings = settings
        self._clock = clock
        self._truth = truth
        self._region = region
        self._rng = rng
        self._origin = origin
        self._dns = dns

    async def run_set(self, kind: Kind, *, loaded: bool) -> _Set:
        settings = self._settings
        n, i = settings.tolerated, settings.interval_s
        t = settings.timeout_s if kind == "hang" else 0.0
        window = (n * i + t, (n + 1) * i + t)
        trials = [await self._trial(kind, window) for _ in range(settings.trials)]
        result = _Set(kind, loaded, window, trials)
        _print_set(result, settings)
        return result

    async def _trial(self, kind: Kind, window: tuple[float, float]) -> _Trial:
        settings, clock = self._settings, self._clock
        wait_s = clock.to_real(window[1]) + _WAIT_MARGIN_S
        await clock.sleep(self._rng.uniform(0.0, settings.interval_s))
        mark = len(self._truth.lines)
        failed_real, failed_lab = clock.real(), clock.now()
        await self._region.fail(kind)
        try:
            moved = await self._truth.wait_for(_answer_is("eu"), after=mark, timeout_s=wait_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{kind}: no failover to eu within {wait_s:.1f} real s") from exc
        wire_ok = await self._answer_on_wire() == "eu"
        mark = len(self._truth.lines)
        await self._region.heal(kind)
        try:
            await self._truth.wait_for(_answer_is("us"), after=mark, timeout_s=wait_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{kind}: us healed, not answered again within {wait_s:.1f} real s") from exc
        wire_ok = wire_ok and await self._answer_on_wire() == "us"
        detection_lab = (moved["real"] - failed_real) * settings.scale
        phase = (failed_lab - self._origin) % settings.interval_s
        trial = _Trial(detection_lab, phase, self._offset_ms(kind, failed_lab, detection_lab), wire_ok)
        if settings.verbose:
            print(f"  {kind}: failed {phase:6.3f} lab s after a probe was due; detected after "
                  f"{detection_lab:6.3f} lab s, {trial.offset_ms:+.2f} ms real from the schedule"
                  + ("" if wire_ok else "; DNS on the wire disagreed"))
        return trial

    def _offset_ms(self, kind: Kind, failed_lab: float, detection_lab: float) -> float:
        """Real ms from the predicted instant to the measured one.

        The first probe to fail is the first one due at or after the failure, and Degraded comes with the
        (N+1)th, N intervals later, plus T when it hangs. A probe in flight at the very instant of the
        failure (its ~1 ms round trip) may fail too, one interval earlier: the nearer prediction counts.
        """
        settings = self._settings
        i = settings.interval_s
        first_due = self._origin + math.ceil((failed_lab - self._origin) / i) * i
        hang_s = settings.timeout_s if kind == "hang" else 0.0
        predictions = [first_due + k * i + settings.tolerated * i + hang_s - failed_lab for k in (0, -1)]
        offset = min((detection_lab - p for p in predictions), key=abs)
        return offset / settings.scale * 1e3

    async def _answer_on_wire(self) -> str:
        """The region DNS answers with now, asked over UDP."""
        host, port = self._dns
        try:
            reply = await dns.asyncquery.udp(dns.message.make_query(_FQDN, "A"), host, port=port,
                                             timeout=_DNS_TIMEOUT_S)
        except dns.exception.Timeout:
            return "no answer"
        target = reply.answer[0][0].target.to_text() if reply.answer else ""
        return target.split(".", 1)[0]


def _answer_is(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line["event"] == "dns_answer" and line["answer"] == name


def _outside_ms(trial: _Trial, window: tuple[float, float], scale: float) -> float:
    """Real ms by which a detection falls outside ``[low, high)``; 0 inside."""
    low, high = window
    return max(low - trial.detection_lab_s, trial.detection_lab_s - high, 0.0) / scale * 1e3


def _print_set(result: _Set, settings: _Settings) -> None:
    low, high = result.window_lab_s
    times = [t.detection_lab_s for t in result.trials]
    offsets = sorted(t.offset_ms for t in result.trials)
    inside = sum(low <= d < high for d in times)
    worst = max(_outside_ms(t, result.window_lab_s, settings.scale) for t in result.trials)
    label = f"{result.kind}, {'loaded' if result.loaded else 'idle'}"
    print(f"{label:<15} window [{low:g}, {high:g}) lab s; measured min {min(times):.2f} mean "
          f"{statistics.mean(times):.2f} max {max(times):.2f}; inside {inside}/{len(times)}, worst outside "
          f"{worst:.1f} ms real; offset from schedule ms real: min {offsets[0]:+.2f} median "
          f"{statistics.median(offsets):+.2f} max {offsets[-1]:+.2f}"
          + ("" if all(t.wire_ok for t in result.trials) else "; DNS ON THE WIRE DISAGREED"))


def _print_load(result: LoadResult) -> None:
    print(f"{'':<15} load: {result.sent / result.seconds:,.0f} q/s sent for {result.seconds:.1f} s, "
          f"{result.answered / max(1, result.sent):.1%} answered, {result.lost} lost, {result.wrong} wrong; "
          f"round trip p50 {result.rtt_p50_ms:.2f} ms, p99 {result.rtt_p99_ms:.2f} ms")


def _verdict(outcome: _Outcome, settings: _Settings) -> int:
    trials = [(s, t) for s in outcome.sets for t in s.trials]
    worst = max(_outside_ms(t, s.window_lab_s, settings.scale) for s, t in trials)
    late = sum(_outside_ms(t, s.window_lab_s, settings.scale) > settings.tolerance_ms for s, t in trials)
    wire = sum(not t.wire_ok for _, t in trials)
    wrong = outcome.load.wrong if outcome.load is not None else 0
    met = late == 0 and wire == 0 and wrong == 0
    print(f"{'PASS' if met else 'FAIL'}: {len(trials) - late}/{len(trials)} trials inside the window within "
          f"{settings.tolerance_ms:g} ms real (worst outside by {worst:.1f} ms); {wire} wrong DNS answers on "
          f"the wire; {wrong} wrong replies to the load")
    return 0 if met else 1


def _deployment(workload: Workload) -> Obj:
    return {"metadata": {"namespace": workload.namespace, "name": workload.name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": workload.name}}}}


def _pod(workload: Workload) -> Obj:
    return {"metadata": {"namespace": workload.namespace, "name": f"{workload.name}-0",
                         "labels": {"app": workload.name}},
            "spec": {"nodeName": "zone-1-0"},
            "status": {"phase": "Running", "podIP": "10.244.0.2",
                       "conditions": [{"type": "Ready", "status": "True"}]}}


if __name__ == "__main__":
    sys.exit(main())
