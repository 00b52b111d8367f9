"""DNS load over UDP from a separate process, shared by the benchmarks in this folder.

A benchmark's server runs in the benchmark's own asyncio loop, as it does in the lab; a client in
that loop would take its CPU from the server and measure the two together. The load therefore runs in
a child process (``spawn``: no copy of the parent's running loop), on one socket, in one of two modes:

- windowed: ``window`` queries always in flight, a new one sent as each answer arrives, so the rate is
  whatever the server sustains (throughput; round trips then include queueing behind the window);
- paced: ``rate_qps`` queries a second on a fixed schedule, whatever the answers do (background load).

Every reply is checked: its ID must be one in flight, and its header must say a NOERROR answer with one
record (the CNAME alone, as Traffic Manager answers). Every ``_PARSE_EVERY``-th reply is parsed whole: its
CNAME must point to one of the expected targets and an EDNS Client Subnet query must get its subnet echoed.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import select
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.edns
import dns.message
import dns.rdatatype

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

_LOST_AFTER_S = 1.0
"""A query unanswered this long is counted lost and its slot reused (loopback answers in well under 1 ms)."""

_DRAIN_S = 0.2
"""How long the client waits for answers still in flight once told to stop."""

_PARSE_EVERY = 997
"""Replies between two full parses: often enough to catch a wrong answer, rarely enough to cost nothing."""

_SELECT_S = 0.001
"""The paced client's longest wait for a reply before it looks at the schedule again."""

_RESULT_TIMEOUT_S = 30.0
"""Real seconds allowed, past the load's own duration, for the child to start and report."""

_POLL_S = 0.5
"""How often the parent, awaiting the result, checks that the child still lives."""


@dataclass(frozen=True)
class LoadSpec:
    """What to send, where, and how hard."""

    host: str
    port: int
    fqdn: str
    targets: tuple[str, ...]
    """CNAME targets a reply may carry (absolute names, ``us.endpoints.drill.test.``)."""
    subnets: int = 0
    """0: the same question every time, without EDNS; N: query i carries the ECS subnet ``X.a.b.0/24``
    (``X`` = ``subnet_octet``, ``a.b`` = i mod N), so that up to 65,536 queries in a row all differ."""
    subnet_octet: int = 10
    """The subnets' first octet: loads that must not hit each other's kept replies use different ones."""
    window: int = 0
    """Queries kept in flight (windowed mode); 0 in paced mode."""
    rate_qps: float = 0.0
    """Queries a second (paced mode); 0 in windowed mode."""
    seconds: float = 5.0
    """The longest the load runs; :meth:`LoadProcess.stop` ends it earlier."""

    def __post_init__(self) -> None:
        if (self.window > 0) == (self.rate_qps > 0):
            raise ValueError("give exactly one of window and rate_qps")
        if not 0 <= self.subnets <= 65536 or not 1 <= self.subnet_octet <= 223:
            raise ValueError("subnets must be 0 to 65536, subnet_octet 1 to 223")


@dataclass(frozen=True)
class LoadResult:
    """What the client saw."""

    sent: int
    answered: int
    wrong: int
    """Replies that did not say what the server should have (see the module's docstring)."""
    lost: int
    seconds: float
    """From the first query sent to the last answer awaited."""
    rtt_p50_ms: float
    rtt_p99_ms: float
    rtt_max_ms: float
    first_wrong: str
    """The first wrong reply, described; empty when none was wrong."""

    @property
    def answered_qps(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


class LoadProcess:
    """One load client in a child process: ``await start()``, then ``await finish()`` for its result."""

    def __init__(self, spec: LoadSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self.spec = spec
        self._stop = context.Event()
        self._sending = context.Event()
        self._results: multiprocessing.Queue[LoadResult] = context.Queue()
        self._process = context.Process(target=_run, args=(spec, self._stop, self._sending, self._results),
                                        name="dns load", daemon=True)

    async def start(self) -> None:
        """Start the child and return once it is about to send its first query (a fresh interpreter
        takes most of a second to get there).

        Raises RuntimeError when it does not get there in time.
        """
        self._process.start()
        if not await asyncio.to_thread(self._sending.wait, _RESULT_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError(f"the load process did not start (exit code {self._process.exitcode})")

    async def finish(self, *, stop: bool = True) -> LoadResult:
        """Stop the load now (or, with ``stop=False``, let it run its course) and return its result.

        Raises RuntimeError when the child dies or does not report in time.
        """
        if stop:
            self._stop.set()
        allowed_s = _RESULT_TIMEOUT_S + (0.0 if stop else self.spec.seconds)
        try:
            return await asyncio.to_thread(self._collect, time.monotonic() + allowed_s)
        finally:
            await asyncio.to_thread(self._process.join, _RESULT_TIMEOUT_S)
            if self._process.is_alive():
                self._process.kill()

    def _collect(self, deadline: float) -> LoadResult:
        """The child's result, waiting for it no longer than the child lives or ``deadline`` comes."""
        while True:
            try:
                return self._results.get(timeout=_POLL_S)
            except queue.Empty:
                # A child puts its result before it exits: dead and still nothing means it never will.
                if not self._process.is_alive() or time.monotonic() >= deadline:
                    raise RuntimeError(f"the load process did not report (exit code "
                                       f"{self._process.exitcode})") from None


def _run(spec: LoadSpec, stop: Event, sending: Event, results: multiprocessing.Queue[LoadResult]) -> None:
    client = _Client(spec)
    sending.set()
    results.put(client.run(stop))


class _Client:
    def __init__(self, spec: LoadSpec) -> None:
        self._spec = spec
        if spec.subnets:
            # The ECS option is the message's last bytes, its /24 address last of all: patch bytes 2-3 of it.
            option = dns.edns.ECSOption(f"{spec.subnet_octet}.0.0.0", 24)
            self._wire = dns.message.make_query(spec.fqdn, "A", use_edns=0, options=[option]).to_wire()
        else:
            self._wire = dns.message.make_query(spec.fqdn, "A").to_wire()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.connect((spec.host, spec.port))
        self._socket.setblocking(False)
        self._pending: dict[int, tuple[float, int]] = {}
        """In flight: ID -> (real time sent, query number)."""
        self._rtts: list[float] = []
        self._sent = self._wrong = self._lost = self._replies = 0
        self._first_wrong = ""

    def run(self, stop: Event) -> LoadResult:
        spec = self._spec
        started = time.monotonic()
        end = started + spec.seconds
        while not stop.is_set() and (now := time.monotonic()) < end:
            if spec.window:
                while len(self._pending) < spec.window and self._send(now):
                    pass
                wait_s = _LOST_AFTER_S / 4
            else:
                due = int((now - started) * spec.rate_qps)
                while self._sent < due and self._send(now):
                    pass
                wait_s = _SELECT_S
            readable, _, _ = select.select([self._socket], [], [], wait_s)
            if readable:
                self._receive()
            self._expire(time.monotonic())
        drain_until = time.monotonic() + _DRAIN_S
        while self._pending and (now := time.monotonic()) < drain_until:
            if select.select([self._socket], [], [], drain_until - now)[0]:
                self._receive()
        last = time.monotonic()
        self._lost += len(self._pending)
        self._socket.close()
        rtts = sorted(self._rtts)
        return LoadResult(
            sent=self._sent, answered=len(rtts), wrong=self._wrong, lost=self._lost, seconds=last - started,
            rtt_p50_ms=_percentile(rtts, 50) * 1e3, rtt_p99_ms=_percentile(rtts, 99) * 1e3,
            rtt_max_ms=(rtts[-1] if rtts else 0.0) * 1e3, first_wrong=self._first_wrong)

    def _send(self, now: float) -> bool:
        """Send the next query; False when the socket's buffer is full (try again after a receive)."""
        number = self._sent
        ident = number & 0xFFFF
        if ident in self._pending:
            return False  # 65,536 in flight: only when the server has stopped answering
        wire = ident.to_bytes(2, "big") + self._wire[2:]
        if self._spec.subnets:
            subnet = number % self._spec.subnets
            wire = wire[:-2] + subnet.to_bytes(2, "big")
        try:
            self._socket.send(wire)
        except BlockingIOError:
            return False
        self._pending[ident] = (now, number)
        self._sent += 1
        return True

    def _receive(self) -> None:
        while True:
            try:
                data = self._socket.recv(4096)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                continue  # an ICMP error for an earlier datagram: that query is counted lost later
            received = time.monotonic()
            if len(data) < 12:
                self._fail(f"a {len(data)}-byte reply")
                continue
            entry = self._pending.pop(int.from_bytes(data[:2], "big"), None)
            if entry is None:
                continue  # a late answer to a query already counted lost
            sent_at, number = entry
            self._rtts.append(received - sent_at)
            self._check(data, number)

    def _check(self, data: bytes, number: int) -> None:
        flags = int.from_bytes(data[2:4], "big")
        answers = int.from_bytes(data[6:8], "big")
        if not flags & 0x8000 or flags & 0x000F or answers != 1:
            self._fail(f"reply to query {number}: flags {flags:#06x}, {answers} answer records")
            return
        self._replies += 1
        if self._replies % _PARSE_EVERY != 1:
            return
        reply = dns.message.from_wire(data)
        cname = reply.answer[0]
        if cname.rdtype != dns.rdatatype.CNAME or cname[0].target.to_text() not in self._spec.targets:
            self._fail(f"reply to query {number}: answer {cname.to_text()!r}")
        if self._spec.subnets:
            subnet = number % self._spec.subnets
            echoed = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
            expected = dns.edns.ECSOption(f"{self._spec.subnet_octet}.{subnet >> 8}.{subnet & 0xFF}.0", 24, 0)
            if echoed != [expected]:
                self._fail(f"reply to query {number}: ECS {[o.to_text() for o in echoed]}, not {expected}")

    def _expire(self, now: float) -> None:
        if not self._pending:
            return
        oldest = next(iter(self._pending.values()))[0]  # dicts keep order: the first was sent first
        if now - oldest < _LOST_AFTER_S:
            return
        for ident in [i for i, (sent_at, _) in self._pending.items() if now - sent_at >= _LOST_AFTER_S]:
            del self._pending[ident]
            self._lost += 1

    def _fail(self, what: str) -> None:
        self._wrong += 1
        if not self._first_wrong:
            self._first_wrong = what


def _percentile(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    return ordered[max(1, math.ceil(len(ordered) * percent / 100)) - 1]
