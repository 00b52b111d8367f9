"""Do probes keep their period under load? Many dns and http probes at lab rates, against loopback servers.

The servers (Traffic Manager's DNS server from the lab, an HTTP service on two loopback addresses that
answers ``/`` and hangs on ``/hang``) run in a child process, as the lab does, so that the probes' process
measures only itself. Probes are driven as the runner drives them: a ticker per probe on absolute
deadlines of the scenario clock, each sample launched as a task of its own and never awaited by the
ticker. For each probe kind the bench prints the achieved rate, the launch lateness (how late a sample
started against its tick, real milliseconds), the sample duration and the share of failed samples; and
the process's CPU use. ``--clients`` compares the HTTP clients the http probe could use, at the probes'
request rates, with a new connection per request as the probe makes them. Run it alone on the machine
for meaningful numbers. The target, checked for every load: the healthy probes (dns, http) launch at
least 95% of their ticks, no healthy sample fails, and the p99 launch lateness stays under half the
fastest probe's real period. It is checked on the ``lab`` and ``hang`` loads (``heavy`` shows the
headroom). Exit 1 when it is missed::

    .venv/bin/python bench/probe_period.py                    # the three standard loads
    .venv/bin/python bench/probe_period.py --http 10 --dns 10 --hang 2 --seconds 10
    .venv/bin/python bench/probe_period.py --clients          # httpx and aiohttp, request for request
    .venv/bin/python bench/probe_period.py --users 1          # one simulated user per http probe

Loads: ``lab`` is what a drill in the lab asks of the probes (time scale 30: an http probe every 500 ms
is 60 requests a real second); ``heavy`` is three times that; ``hang`` adds http probes whose server
never answers, so that each keeps about ``timeout / period`` samples in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.targets import Targets
from probes.base import Probe
from probes.dns import DnsProbe
from probes.http import HttpProbe

FQDN = "shop.trafficmanager.net"
HOSTS = {"us": "127.0.0.1", "eu": "127.0.0.2"}


@dataclass(frozen=True)
class Load:
    """One configuration: how many probes of each kind, how often (scenario seconds), for how long."""

    name: str
    dns: int
    http: int
    hang: int
    scale: float = 30.0
    dns_every: float = 1.0
    http_every: float = 0.5
    timeout: float = 10.0
    users: int = 100
    """Simulated users per http probe."""
    seconds: float = 8.0
    """Real seconds of sampling."""
    checked: bool = True
    """Whether the target applies; ``heavy`` is three times what a drill asks, shown for headroom."""


LOADS = (
    Load("lab", dns=3, http=3, hang=0),
    Load("heavy", dns=10, http=10, hang=0, checked=False),
    Load("hang", dns=3, http=3, hang=3),
)


@dataclass
class Tally:
    """What one kind of probe did."""

    launched: int = 0
    failed: int = 0
    lateness_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    """Why samples failed: each distinct error, how many times."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dns", type=int, help="dns probes (default: the three standard loads)")
    parser.add_argument("--http", type=int, default=3)
    parser.add_argument("--hang", type=int, default=0, help="http probes whose server hangs")
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=8.0, help="real seconds per load")
    parser.add_argument("--users", type=int, default=100, help="simulated users per http probe")
    parser.add_argument("--clients", action="store_true", help="compare httpx and aiohttp instead")
    args = parser.parse_args(argv)
    loads = tuple(dataclasses.replace(load, users=args.users) for load in LOADS) if args.dns is None else (
        Load("custom", dns=args.dns, http=args.http, hang=args.hang, scale=args.scale, seconds=args.seconds,
             users=args.users),)
    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    dns_port, http_port = parent.recv()
    try:
        if args.clients:
            asyncio.run(_clients(http_port))
        misses = [miss for load in (() if args.clients else loads)
                  for miss in asyncio.run(_run(load, dns_port, http_port))]
    finally:
        parent.send("stop")
        server.join(5)
    for miss in misses:
        print(f"TARGET MISSED: {miss}")
    return 1 if misses else 0


async def _run(load: Load, dns_port: int, http_port: int) -> list[str]:
    env = Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "bench", "timeScale": load.scale,
        "regions": {r: {"context": r, "ingress": {"namespace": "i", "deployment": "i"}, "endpoint": r,
                        "target": f"{r}.endpoints.drill.test"} for r in HOSTS},
        "trafficManager": {"fqdn": FQDN, "nameservers": [f"127.0.0.1:{dns_port}"]},
        "service": {"scheme": "http", "port": http_port, "path": "/"},
    })
    clock = ScenarioClock(load.scale)
    targets = Targets(env, clock)
    timeout = f"{load.timeout:g}s"
    probes: list[tuple[str, Probe, float]] = []
    for i in range(load.dns):
        dns = DnsProbe(f"dns{i}", DnsProbe.Spec(), targets, every=load.dns_every)
        probes.append(("dns", dns, load.dns_every))
    for i in range(load.http):
        spec = HttpProbe.Spec.model_validate({"timeout": timeout, "users": load.users})
        probes.append(("http", HttpProbe(f"http{i}", spec, targets, every=load.http_every), load.http_every))
    for i in range(load.hang):
        spec = HttpProbe.Spec.model_validate({"timeout": timeout, "path": "/hang", "users": load.users})
        probes.append(("hang", HttpProbe(f"hang{i}", spec, targets, every=load.http_every), load.http_every))
    tallies: dict[str, Tally] = {kind: Tally() for kind, _, _ in probes}
    heartbeat: list[float] = []
    in_flight: set[asyncio.Task[None]] = set()
    cpu0 = _cpu()
    wall0 = time.monotonic()
    tickers = [asyncio.create_task(_tick(p, every, clock, tallies[kind], in_flight), name=f"tick {p.name}")
               for kind, p, every in probes]
    beat = asyncio.create_task(_heartbeat(heartbeat), name="heartbeat")
    await asyncio.sleep(load.seconds)
    for task in (*tickers, beat):
        task.cancel()
    await asyncio.gather(*tickers, beat, return_exceptions=True)
    cpu = _cpu() - cpu0
    wall = time.monotonic() - wall0
    await asyncio.gather(*in_flight, return_exceptions=True)
    for _, p, _ in probes:
        close = getattr(p, "aclose", None)
        if close is not None:
            await close()
    targets.close()
    return _report(load, tallies, heartbeat, cpu=cpu, wall=wall)


async def _tick(probe: Probe, every: float, clock: ScenarioClock, tally: Tally,
                in_flight: set[asyncio.Task[None]]) -> None:
    # The runner's ticker (drills/runner/sampling.py): absolute deadlines, one task per sample.
    loop = asyncio.get_running_loop()
    start_real = loop.time()
    start = clock.now()
    tick = 0
    while True:
        await clock.sleep_until(start + tick * every)
        due = start_real + clock.to_real(tick * every)
        task = asyncio.create_task(_take(probe, due, tally))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        tick += 1


async def _take(probe: Probe, due: float, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    tally.launched += 1
    tally.lateness_ms.append((began - due) * 1000)
    values = await probe.sample()
    tally.duration_ms.append((loop.time() - began) * 1000)
    if values.get("failed") or ("answer" in values and values.get("answer") is None):
        tally.failed += 1
        outcomes = values.get("outcomes") or [values]
        tally.errors.update(str(o.get("error")) for o in outcomes if isinstance(o, dict) and o.get("error"))


async def _heartbeat(lateness: list[float]) -> None:
    # How late the loop runs a 10 ms timer: the loop's own health, whatever the probes do.
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.01
        await asyncio.sleep(0.01)
        lateness.append((loop.time() - due) * 1000)


def _report(load: Load, tallies: dict[str, Tally], heartbeat: list[float], *, cpu: float,
            wall: float) -> list[str]:
    """Print one load's numbers; return the targets it missed."""
    print(f"\n== {load.name}: {load.dns} dns every {load.dns_every:g}s, {load.http} http every "
          f"{load.http_every:g}s ({load.users} users each), {load.hang} hanging http; scale {load.scale:g}, "
          f"timeout {load.timeout:g}s, "
          f"{wall:.1f} real s; CPU {100 * cpu / wall:.0f}% of one core")
    print(f"{'kind':<6}{'rate/s':>9}{'target/s':>10}{'late p50':>10}{'p99':>8}{'max':>8}"
          f"{'dur p50':>10}{'p99':>8}{'failed':>8}   (ms, real)")
    for kind, tally in tallies.items():
        every = load.dns_every if kind == "dns" else load.http_every
        count = {"dns": load.dns, "http": load.http, "hang": load.hang}[kind]
        target = count * load.scale / every
        late, dur = sorted(tally.lateness_ms), sorted(tally.duration_ms)
        print(f"{kind:<6}{tally.launched / wall:>9.0f}{target:>10.0f}{_pct(late, 50):>10.1f}"
              f"{_pct(late, 99):>8.1f}{(late[-1] if late else 0):>8.1f}{_pct(dur, 50):>10.1f}"
              f"{_pct(dur, 99):>8.1f}"
              f"{100 * tally.failed / max(1, len(dur)):>7.1f}%")
        for error, count in tally.errors.most_common(3):
            print(f"      {count} x {error}")
    misses: list[str] = []
    budget_ms = 1000 * min(load.dns_every, load.http_every) / load.scale / 2
    for kind in ("dns", "http") if load.checked else ():
        tally = tallies.get(kind)
        if tally is None:
            continue
        every = load.dns_every if kind == "dns" else load.http_every
        count = {"dns": load.dns, "http": load.http}[kind]
        late = sorted(tally.lateness_ms)
        if tally.launched / wall < 0.95 * count * load.scale / every:
            misses.append(f"{load.name}: {kind} launched {tally.launched / wall:.0f}/s of "
                          f"{count * load.scale / every:.0f}/s")
        if tally.failed:
            misses.append(f"{load.name}: {tally.failed} healthy {kind} samples failed")
        if _pct(late, 99) > budget_ms:
            misses.append(f"{load.name}: {kind} launch lateness p99 {_pct(late, 99):.1f} ms "
                          f"> {budget_ms:.1f} ms")
    beat = sorted(heartbeat)
    print(f"loop heartbeat lateness p50 {_pct(beat, 50):.1f} ms, p99 {_pct(beat, 99):.1f} ms, "
          f"max {beat[-1] if beat else 0:.1f} ms")
    return misses


async def _clients(port: int, seconds: float = 4.0) -> None:
    """Each client at the request rates of 1, 3 and 10 http probes at the lab's pace (60 a real second)."""
    import aiohttp
    import httpx

    url = f"http://127.0.0.1:{port}/"
    print(f"\n{'client':<10}{'rate/s':>8}{'done/s':>8}{'CPU ms/req':>12}{'CPU % core':>12}{'failed':>8}")
    for rate in (60, 180, 600):
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                                     trust_env=False) as client:
            async def with_httpx(client: httpx.AsyncClient = client) -> None:
                (await client.get(url, headers={"Host": FQDN})).raise_for_status()

            await _pace("httpx", with_httpx, rate, seconds)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                         trust_env=False) as session:
            async def with_aiohttp(session: aiohttp.ClientSession = session) -> None:
                async with session.get(url, headers={"Host": FQDN}) as response:
                    await response.read()
                    response.raise_for_status()

            await _pace("aiohttp", with_aiohttp, rate, seconds)


async def _pace(name: str, request: Callable[[], Awaitable[None]], rate: float, seconds: float) -> None:
    # Launch on absolute deadlines like the probes' tickers; a loop that falls behind launches fewer.
    loop = asyncio.get_running_loop()
    failed = 0
    done = 0
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal failed, done
        try:
            async with asyncio.timeout(1.0):
                await request()
            done += 1
        except Exception:  # any failure of the client counts, whatever it is
            failed += 1

    cpu0, start, k = _cpu(), loop.time(), 0
    while loop.time() - start < seconds:
        await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        k += 1
    await asyncio.gather(*pending)
    cpu = _cpu() - cpu0
    print(f"{name:<10}{rate:>8.0f}{done / seconds:>8.0f}{1000 * cpu / max(1, k):>12.2f}"
          f"{100 * cpu / seconds:>12.0f}{failed:>8}")


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q / 100))] if q < 100 else ordered[-1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(conn: Connection) -> None:
    """The child process: the lab's DNS server and an HTTP service on both loopback addresses."""
    asyncio.run(_servers(conn))


async def _servers(conn: Connection) -> None:
    from aiohttp import web

    from drills.lab.dnsserver import DnsServer, make_zone
    from drills.lab.trafficmanager import PROFILE_APEX

    zone = make_zone(FQDN, answer="us", target="us.endpoints.drill.test", ttl_s=30,
                     addresses={f"{r}.endpoints.drill.test": host for r, host in HOSTS.items()},
                     zones={"trafficmanager.net": PROFILE_APEX, "endpoints.drill.test": PROFILE_APEX})
    dns = DnsServer(lambda _client: zone)
    dns_port = await dns.start("127.0.0.1")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="served by us\n", headers={"X-Drill-Region": "us"})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    port = 0
    for host in HOSTS.values():
        site = web.TCPSite(runner, host, port)
        await site.start()
        port = runner.addresses[0][1]
    conn.send((dns_port, port))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await runner.cleanup()
    await dns.close()


if __name__ == "__main__":
    sys.exit(main())
