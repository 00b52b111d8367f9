"""Traffic Manager: monitoring timing against the predicted windows, routing, and its DNS on the wire."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.ingress import Ingress
from drills.lab.kube.api import start_api_server
from drills.lab.kube.endpoints import follow
from drills.lab.kube.exposure import exposure, seed
from drills.lab.kube.store import DEPLOYMENTS, PODS, Store
from drills.lab.topology import DEFAULT as TOPOLOGY
from drills.lab.topology import Topology
from drills.lab.trafficmanager import Endpoint, TrafficManager

FQDN = "shop.trafficmanager.net"
SCALE = 60.0
"""Lab seconds per real second: a 10 s interval is 167 ms, wide enough for the loop's jitter on 2 cores."""
SLACK_S = 0.01
"""Real seconds allowed past a prediction: loop lateness, a probe's connect and write (~1 ms measured)."""

Mode = Literal["ok", "hang", "error", "redirect", "no-content"]


class _Backend(asyncio.Protocol):
    def __init__(self, server: FakeEndpoint) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._transport is not None
        self._server.transports.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if b"\r\n\r\n" not in data:
            return
        self._server.requested()
        status = {"ok": "200 OK", "error": "500 Internal Server Error", "redirect": "302 Found",
                  "no-content": "204 No Content"}.get(self._server.mode)
        if status is not None:
            head = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            self._transport.write(head.encode())
            self._transport.close()


class FakeEndpoint:
    """A region's HTTP front door whose behaviour the test switches: serve, hang, fail, refuse."""

    def __init__(self, host: str, clock: LabClock) -> None:
        self.host = host
        self.port = 0
        self.mode: Mode = "ok"
        self.requests = 0
        self.arrivals: list[float] = []
        """Real time (the ground truth's clock) at which each request arrived."""
        self._clock = clock
        self.transports: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None
        self._requested = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Backend(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        """Stop listening: new connections are refused at once."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            await self.refuse()
        for transport in list(self.transports):
            transport.abort()

    def requested(self) -> None:
        self.requests += 1
        self.arrivals.append(self._clock.real())
        self._requested.set()

    async def wait_requests(self, count: int) -> None:
        """Return once ``count`` requests have arrived in all."""
        while self.requests < count:
            self._requested.clear()
            await self._requested.wait()


class WatchedGroundTruth(GroundTruth):
    """The real ground-truth log, plus a way for the test to await a line."""

    def __init__(self, path: Path, clock: LabClock) -> None:
        super().__init__(path, clock)
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def record(self, event: str, **fields: Any) -> None:
        super().record(event, **fields)
        self.lines.append({"real": self._clock.real(), "lab": self._clock.now(), "event": event, **fields})
        self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, after: int = 0,
                       timeout_s: float = 5.0) -> dict[str, Any]:
        """The first line from index ``after`` on that satisfies ``predicate``, waiting for it."""
        async with asyncio.timeout(timeout_s):
            while True:
                for line in self.lines[after:]:
                    if predicate(line):
                        return line
                self._changed.clear()
                await self._changed.wait()


@dataclass
class Lab:
    tm: TrafficManager
    truth: WatchedGroundTruth
    clock: LabClock
    us: FakeEndpoint
    eu: FakeEndpoint
    dns_host: str
    dns_port: int


def _topology(*, tolerated: int = 1, interval: str = "10s", timeout: str = "5s", ttl: str = "30s",
              routing: str = "Priority", path: str = "/healthz",
              expected: list[dict[str, int]] | None = None) -> Topology:
    return Topology.model_validate({"timeScale": SCALE, "trafficManager": {
        "fqdn": FQDN, "routing": routing, "ttl": ttl,
        "monitor": {"interval": interval, "timeout": timeout, "toleratedFailures": tolerated, "path": path,
                    "expectedStatusCodeRanges": expected or []}}})


@pytest.fixture
def block() -> str:
    """A random 127.A.B block, so that parallel tests never share an address."""
    return f"127.{random.randint(20, 250)}.{random.randint(0, 255)}"


@pytest.fixture
def topology() -> Topology:
    return _topology()


@pytest.fixture
async def lab(block: str, topology: Topology, tmp_path: Path) -> AsyncIterator[Lab]:
    clock = LabClock(SCALE)
    truth = WatchedGroundTruth(tmp_path / "ground-truth.jsonl", clock)
    us, eu = FakeEndpoint(f"{block}.11", clock), FakeEndpoint(f"{block}.12", clock)
    await us.serve()
    await eu.serve()
    endpoints = [Endpoint("us", "us.endpoints.drill.test", us.host, us.port, priority=1),
                 Endpoint("eu", "eu.endpoints.drill.test", eu.host, eu.port, priority=2)]
    tm = TrafficManager(topology, endpoints, clock=clock, ground_truth=truth)
    port = await tm.start(f"{block}.53")
    try:
        yield Lab(tm, truth, clock, us, eu, f"{block}.53", port)
    finally:
        await tm.close()
        await us.close()
        await eu.close()
        truth.close()


async def _both_online(lab: Lab) -> None:
    for name in ("us", "eu"):
        await lab.truth.wait_for(lambda line, name=name: line["event"] == "endpoint_status"
                                 and line["endpoint"] == name and line.get("status") == "Online")


def _answer_is(name: str | None) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line["event"] == "dns_answer" and line["answer"] == name


async def _mid_interval(lab: Lab) -> float:
    """Wait until half an interval after the next probe of ``us`` and return the real time then.

    Faults land mid-interval so that a measurement sits inside its window, away from the edges where
    one millisecond of loop lateness would decide the test.
    """
    probes = lab.us.requests
    await lab.us.wait_requests(probes + 1)
    await lab.clock.sleep(_topology().traffic_manager.monitor.interval / 2)
    return lab.clock.real()


async def _query(lab: Lab, name: str, rdtype: str = "A", *, tcp: bool = False,
                 options: list[dns.edns.Option] | None = None) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0 if options else None, options=options)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, lab.dns_host, port=lab.dns_port, timeout=2)


def _window(topology: Topology, *, hangs: bool) -> tuple[float, float]:
    """The predicted detection window in real seconds (docs/protocol-facts.md), whatever the fault's phase."""
    monitor = topology.traffic_manager.monitor
    n, i, t = monitor.tolerated_failures, monitor.interval, monitor.timeout if hangs else 0.0
    return (n * i + t) / SCALE, ((n + 1) * i + t) / SCALE


def _since_first_failed_probe(topology: Topology, *, hangs: bool) -> float:
    """Real seconds from the first failing probe's start to Degraded: N more probes one interval apart
    on the monitor's fixed schedule, the last failing after T if it hangs. A schedule that drifts, or a
    timeout counted from the wrong instant, shows here whatever the fault's phase."""
    monitor = topology.traffic_manager.monitor
    t = monitor.timeout if hangs else 0.0
    return (monitor.tolerated_failures * monitor.interval + t) / SCALE


def _first_after(arrivals: list[float], moment: float) -> float:
    return next(t for t in arrivals if t > moment)


# --- DNS on the wire -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_a_query_gets_the_cname_to_the_endpoint_and_the_target_its_address(lab: Lab, tcp: bool) -> None:
    response = await _query(lab, FQDN, tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    (cname,) = response.answer  # as Traffic Manager answers: the resolver asks for the target itself
    assert (cname.rdtype, cname.name.to_text(), cname.ttl) == (dns.rdatatype.CNAME, f"{FQDN}.", 30)
    assert cname[0].target.to_text() == "us.endpoints.drill.test."
    target = await _query(lab, cname[0].target.to_text(), tcp=tcp)
    (address,) = target.answer
    assert (address.rdtype, address.name.to_text(), address.ttl) == (
        dns.rdatatype.A, "us.endpoints.drill.test.", 300)
    assert address[0].address == lab.us.host


async def test_names_compare_case_insensitively_and_other_names_do_not_exist(lab: Lab) -> None:
    response = await _query(lab, "SHOP.TrafficManager.NET.")
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.CNAME]
    aaaa = await _query(lab, FQDN, "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in aaaa.answer] == [dns.rdatatype.CNAME]
    target = await _query(lab, "eu.endpoints.drill.test", tcp=True)
    assert [(r.rdtype, r[0].address, r.ttl) for r in target.answer] == [(dns.rdatatype.A, lab.eu.host, 300)]
    for name in ("www.trafficmanager.net", "xx.endpoints.drill.test"):
        other = await _query(lab, name)
        assert other.rcode() == dns.rcode.NXDOMAIN
        assert other.flags & dns.flags.AA
    assert (await _query(lab, "drill.test")).rcode() == dns.rcode.REFUSED  # outside the lab's zones


async def test_client_subnet_is_echoed_with_scope_zero(lab: Lab) -> None:
    for subnet, prefix in (("203.0.113.7", 24), ("198.51.100.0", 22), ("2001:db8::1", 56)):
        response = await _query(lab, FQDN, options=[dns.edns.ECSOption(subnet, prefix)])
        echoed = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
        assert len(echoed) == 1
        assert (echoed[0].srclen, echoed[0].scopelen) == (prefix, 0)
        assert echoed[0] == dns.edns.ECSOption(subnet, prefix, 0)
        assert response.answer[0][0].target.to_text() == "us.endpoints.drill.test."


async def test_dig_shows_the_cname(lab: Lab) -> None:
    dig = await asyncio.create_subprocess_exec(
        "dig", f"@{lab.dns_host}", "-p", str(lab.dns_port), FQDN, "+time=2", "+tries=1",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await dig.communicate()
    text = out.decode()
    assert "status: NOERROR" in text
    assert "flags: qr aa" in text
    assert re.search(r"^shop\.trafficmanager\.net\.\s+30\s+IN\s+CNAME\s+us\.endpoints\.drill\.test\.$",
                     text, re.M)
    assert "ANSWER: 1," in text


async def test_bursts_of_queries_are_answered_each_with_its_own_id(lab: Lab) -> None:
    """Replies are kept and reused by question: each must still carry its own query's ID."""
    loop = asyncio.get_running_loop()
    received: dict[int, bytes] = {}
    arrived = asyncio.Event()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received[int.from_bytes(data[:2], "big")] = data
            arrived.set()

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(lab.dns_host, lab.dns_port))
    sent: dict[int, str] = {}
    try:
        for burst in range(20):
            # Bursts of 25 in flight: the client shares the server's loop, so more would only overflow
            # the socket buffers of the test itself.
            for ident in range(burst * 25 + 1, burst * 25 + 26):
                sent[ident] = FQDN if ident % 2 else "eu.endpoints.drill.test"
                transport.sendto(dns.message.make_query(sent[ident], "A", id=ident).to_wire())
            async with asyncio.timeout(2):
                while len(received) < len(sent):
                    arrived.clear()
                    await arrived.wait()
    finally:
        transport.close()
    assert received.keys() == sent.keys()
    for ident, wire in received.items():
        reply = dns.message.from_wire(wire)
        assert reply.id == ident
        assert reply.question[0].name.to_text() == sent[ident] + "."
        if ident % 2:
            assert reply.answer[0][0].target.to_text() == "us.endpoints.drill.test."
        else:
            assert reply.answer[0][0].address == lab.eu.host


# --- health monitoring and failover timing ---------------------------------------------------------------


async def test_starts_checking_and_routed_then_online(lab: Lab) -> None:
    assert lab.truth.lines[0]["event"] == "endpoint_status"
    assert [(line["event"], line.get("status", line.get("answer"))) for line in lab.truth.lines[:3]] == [
        ("endpoint_status", "CheckingEndpoint"), ("endpoint_status", "CheckingEndpoint"),
        ("dns_answer", "us")]
    await _both_online(lab)
    assert lab.tm.statuses() == {"us": "Online", "eu": "Online"}
    assert lab.tm.answer() == "us"


async def test_hanging_endpoint_fails_over_within_the_predicted_window_and_one_success_returns(
        lab: Lab, topology: Topology) -> None:
    await _both_online(lab)
    fault = await _mid_interval(lab)
    lab.us.mode = "hang"
    mark = len(lab.truth.lines)
    degraded = await lab.truth.wait_for(_answer_is("eu"), after=mark)
    low, high = _window(topology, hangs=True)
    detection = degraded["real"] - fault
    assert low - SLACK_S <= detection < high + SLACK_S, (detection, low, high)
    first_failed = _first_after(lab.us.arrivals, fault)
    assert degraded["real"] - first_failed == pytest.approx(_since_first_failed_probe(topology, hangs=True),
                                                            abs=SLACK_S)
    status = lab.truth.lines[lab.truth.lines.index(degraded) - 1]
    assert (status["event"], status["endpoint"], status["status"]) == ("endpoint_status", "us", "Degraded")
    assert abs(degraded["real"] - status["real"]) < 0.001  # re-routed at the status change itself
    response = await _query(lab, FQDN)
    assert response.answer[0][0].target.to_text() == "eu.endpoints.drill.test."

    healed = lab.clock.real()
    lab.us.mode = "ok"
    back = await lab.truth.wait_for(_answer_is("us"), after=len(lab.truth.lines))
    interval = topology.traffic_manager.monitor.interval / SCALE
    assert back["real"] - healed < interval + SLACK_S  # the next probe, which succeeds, is enough
    assert lab.tm.statuses()["us"] == "Online"


@pytest.mark.parametrize("failure", ["refuse", "error", "redirect"])
async def test_fast_failures_fail_over_within_the_predicted_window(
        lab: Lab, topology: Topology, failure: str) -> None:
    await _both_online(lab)
    fault = await _mid_interval(lab)
    if failure == "refuse":
        await lab.us.refuse()
    else:
        lab.us.mode = "error" if failure == "error" else "redirect"
    degraded = await lab.truth.wait_for(_answer_is("eu"), after=len(lab.truth.lines))
    low, high = _window(topology, hangs=False)
    detection = degraded["real"] - fault
    assert low - SLACK_S <= detection < high + SLACK_S, (detection, low, high)
    if failure != "refuse":  # a refused probe never arrives
        first_failed = _first_after(lab.us.arrivals, fault)
        assert degraded["real"] - first_failed == pytest.approx(
            _since_first_failed_probe(topology, hangs=False), abs=SLACK_S)


@pytest.mark.parametrize("topology", [_topology(tolerated=0)])
async def test_every_endpoint_degraded_answers_as_if_all_were_online(lab: Lab) -> None:
    await _both_online(lab)
    lab.us.mode = "error"
    mark = len(lab.truth.lines)
    await lab.truth.wait_for(_answer_is("eu"), after=mark)
    lab.eu.mode = "error"
    line = await lab.truth.wait_for(_answer_is("us"), after=mark)
    assert line["previous"] == "eu"
    assert lab.tm.statuses() == {"us": "Degraded", "eu": "Degraded"}
    response = await _query(lab, FQDN)
    assert response.answer[0][0].target.to_text() == "us.endpoints.drill.test."
    lab.eu.mode = "ok"  # the healthy one wins again, though of lower priority
    await lab.truth.wait_for(_answer_is("eu"), after=len(lab.truth.lines))


@pytest.mark.parametrize(("topology", "mode", "status"), [
    (_topology(tolerated=0), "no-content", "Degraded"),  # no ranges: only 200 succeeds
    (_topology(tolerated=0, expected=[{"min": 200, "max": 299}]), "no-content", "Online"),
    (_topology(tolerated=0, expected=[{"min": 200, "max": 299}]), "redirect", "Degraded"),
    (_topology(tolerated=0, expected=[{"min": 200, "max": 299}, {"min": 302, "max": 302}]), "redirect",
     "Online"),
], ids=["204-default", "204-in-2xx", "302-outside", "302-listed"])
async def test_a_probe_succeeds_only_with_an_expected_status(lab: Lab, mode: Mode, status: str) -> None:
    await _both_online(lab)
    lab.us.mode = mode
    await lab.us.wait_requests(lab.us.requests + 3)  # with no failure tolerated, one would degrade it
    assert lab.tm.statuses()["us"] == status
    assert lab.tm.answer() == ("us" if status == "Online" else "eu")


async def test_disabled_endpoint_is_never_probed_nor_returned(lab: Lab) -> None:
    await _both_online(lab)
    mark = len(lab.truth.lines)
    lab.tm.set_enabled("us", False)
    assert lab.tm.statuses()["us"] == "Disabled"
    assert lab.tm.answer() == "eu"
    assert [(line["event"], line.get("status", line.get("answer", line.get("enabled"))))
            for line in lab.truth.lines[mark:]] == [
        ("endpoint_enabled", False), ("endpoint_status", "Disabled"), ("dns_answer", "eu")]
    probes = lab.us.requests
    await lab.eu.wait_requests(lab.eu.requests + 3)
    assert lab.us.requests == probes
    response = await _query(lab, FQDN)
    assert response.answer[0][0].target.to_text() == "eu.endpoints.drill.test."

    lab.tm.set_enabled("eu", False)
    response = await _query(lab, FQDN)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert (lab.truth.lines[-1]["event"], lab.truth.lines[-1]["answer"]) == ("dns_answer", None)

    lab.tm.set_enabled("us", True)
    assert lab.tm.statuses()["us"] == "CheckingEndpoint"
    assert lab.tm.answer() == "us"
    await lab.truth.wait_for(lambda line: line.get("endpoint") == "us" and line.get("status") == "Online",
                             after=mark)


async def test_a_priority_change_reroutes_at_once(lab: Lab) -> None:
    await _both_online(lab)
    mark = len(lab.truth.lines)
    lab.tm.set_routing("us", priority=3)
    assert lab.tm.answer() == "eu"
    assert [e.name for e in lab.tm.endpoints()] == ["eu", "us"]
    response = await _query(lab, FQDN)
    assert response.answer[0][0].target.to_text() == "eu.endpoints.drill.test."
    lab.tm.set_routing("us", priority=1)
    assert lab.tm.answer() == "us"
    assert [(line["event"], line.get("priority", line.get("answer"))) for line in lab.truth.lines[mark:]] == [
        ("endpoint_routing", 3), ("dns_answer", "eu"), ("endpoint_routing", 1), ("dns_answer", "us")]
    with pytest.raises(ValueError, match="priority must be 1 to 1000"):
        lab.tm.set_routing("us", priority=0)


async def test_ground_truth_file_has_real_and_lab_times(lab: Lab) -> None:
    await _both_online(lab)
    lab.tm.set_enabled("us", False)
    lines = read(lab.truth.path)
    assert [line["event"] for line in lines][-2:] == ["endpoint_status", "dns_answer"]
    assert (lines[-1]["answer"], lines[-1]["previous"]) == ("eu", "us")
    assert all({"real", "lab"} <= line.keys() for line in lines)


def _region(clock: LabClock) -> Store:
    """A region's store where the ingress controller and the app each run one Ready pod."""
    store = Store(clock)
    for workload in (TOPOLOGY.ingress, TOPOLOGY.app):
        store.create(DEPLOYMENTS, {"metadata": {"namespace": workload.namespace, "name": workload.name},
                                   "spec": {"selector": {"matchLabels": {"app": workload.name}}}})
        store.create(PODS, {"metadata": {"namespace": workload.namespace, "name": f"{workload.name}-0",
                                         "labels": {"app": workload.name}},
                            "status": {"podIP": "10.244.0.2",
                                       "conditions": [{"type": "Ready", "status": "True"}]}})
    seed(store, exposure(TOPOLOGY.app, TOPOLOGY.ingress))
    follow(store, clock)
    return store


@dataclass
class IngressLab:
    """Traffic Manager probing the lab's real ingresses, each over an object store of its own."""

    tm: TrafficManager
    truth: WatchedGroundTruth
    clock: LabClock
    stores: dict[str, Store]
    ingresses: dict[str, Ingress]
    dns_port: int


@asynccontextmanager
async def _ingress_lab(topology: Topology, block: str, tmp_path: Path) -> AsyncIterator[IngressLab]:
    clock = LabClock(SCALE)
    truth = WatchedGroundTruth(tmp_path / "ground-truth.jsonl", clock)
    stores = {"us": _region(clock), "eu": _region(clock)}
    ingresses = {name: Ingress(name, store, TOPOLOGY) for name, store in stores.items()}
    await ingresses["us"].start(f"{block}.11", 0)
    port = ingresses["us"].port or 0
    await ingresses["eu"].start(f"{block}.12", port)
    tm = TrafficManager(topology, [
        Endpoint("us", "us.endpoints.drill.test", f"{block}.11", port, priority=1),
        Endpoint("eu", "eu.endpoints.drill.test", f"{block}.12", port, priority=2)],
        clock=clock, ground_truth=truth)
    dns_port = await tm.start(f"{block}.53")
    try:
        yield IngressLab(tm, truth, clock, stores, ingresses, dns_port)
    finally:
        await tm.close()
        async with asyncio.timeout(2):
            await ingresses["us"].wait_idle()  # a probe cancelled in flight released its connection too
        for ingress in ingresses.values():
            await ingress.close()
        truth.close()


async def test_a_blackholed_ingress_fails_over_like_a_hanging_endpoint(block: str, tmp_path: Path) -> None:
    """The lab's real ingress, its controller scaled to nothing: probes time out, as in Azure."""
    topology = _topology()
    async with _ingress_lab(topology, block, tmp_path) as lab:
        await lab.truth.wait_for(lambda line: line.get("endpoint") == "us" and line.get("status") == "Online")
        await lab.clock.sleep(topology.traffic_manager.monitor.interval / 2)
        fault = lab.clock.real()
        lab.stores["us"].delete(PODS, TOPOLOGY.ingress.namespace, f"{TOPOLOGY.ingress.name}-0")
        moved = await lab.truth.wait_for(_answer_is("eu"), after=len(lab.truth.lines))
        low, high = _window(topology, hangs=True)
        assert low - SLACK_S <= moved["real"] - fault < high + SLACK_S
        assert lab.ingresses["us"].open_connections <= 1  # each timed-out probe let its connection go


async def test_a_monitor_path_typo_degrades_every_endpoint_and_the_name_never_moves(
        block: str, tmp_path: Path) -> None:
    """The lab's real ingresses answer /healthzz from the default backend (404): every endpoint is
    Degraded from the first probes on, so the name is answered as if all were Online and stays on the
    first priority while its region dies, as in Azure."""
    topology = _topology(tolerated=0, path="/healthzz")
    async with _ingress_lab(topology, block, tmp_path) as lab:
        for name in ("us", "eu"):
            await lab.truth.wait_for(lambda line, name=name: line.get("endpoint") == name
                                     and line.get("status") == "Degraded")
        lab.stores["us"].delete(PODS, TOPOLOGY.app.namespace, f"{TOPOLOGY.app.name}-0")  # us: 503 now
        mark = len(lab.truth.lines)
        await lab.clock.sleep(5 * topology.traffic_manager.monitor.interval)
        assert lab.tm.statuses() == {"us": "Degraded", "eu": "Degraded"}
        assert [line for line in lab.truth.lines[mark:] if line["event"] == "dns_answer"] == []
        response = await dns.asyncquery.udp(dns.message.make_query(FQDN, "A"), f"{block}.53",
                                            port=lab.dns_port, timeout=2)
        assert response.answer[0][0].target.to_text() == "us.endpoints.drill.test."


# --- routing without the wire --------------------------------------------------------------------------


def test_weighted_routing_picks_by_weight_among_available() -> None:
    clock = LabClock(SCALE)
    endpoints = [Endpoint("us", "us.endpoints.drill.test", "127.0.0.11", 80, priority=1, weight=3),
                 Endpoint("eu", "eu.endpoints.drill.test", "127.0.0.12", 80, priority=2, weight=1)]
    tm = TrafficManager(_topology(routing="Weighted"), endpoints, clock=clock)
    picks = Counter(tm.answer() for _ in range(4000))
    assert 0.70 < picks["us"] / 4000 < 0.80
    tm.set_enabled("us", False)
    assert {tm.answer() for _ in range(100)} == {"eu"}


def test_invalid_endpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        Endpoint("us", "us.endpoints.drill.test", "127.0.0.11", 80, priority=0)
    same = Endpoint("us", "us.endpoints.drill.test", "127.0.0.11", 80, priority=1)
    with pytest.raises(ValueError, match="unique"):
        TrafficManager(_topology(), [same, same], clock=LabClock(SCALE))


async def test_the_api_server_tells_when_each_endpoint_is_probed_next(lab: Lab) -> None:
    """``GET /lab/v1/trafficmanager`` on a region's API server, over a socket: the monitor settings, and
    per endpoint the real time of its next probe, which is when that probe arrives."""
    await _both_online(lab)
    api = await start_api_server(Store(lab.clock), host=lab.us.host, token="t0ken",
                                 monitor=lab.tm.monitor_schedule)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t0ken"}) as http:
            async def schedule() -> dict[str, Any]:
                async with http.get(f"{api.url}/lab/v1/trafficmanager") as response:
                    assert response.status == 200
                    document: dict[str, Any] = await response.json()
                    return document

            before = lab.us.requests
            answer = await schedule()
            assert {k: v for k, v in answer.items() if k != "endpoints"} == {
                "interval": 10.0, "timeout": 5.0, "toleratedFailures": 1, "ttl": 30.0, "routing": "Priority",
                "timeScale": SCALE}
            endpoints = {e["name"]: e for e in answer["endpoints"]}
            assert [(e["status"], e["enabled"]) for e in endpoints.values()] == [("Online", True)] * 2
            next_us = endpoints["us"]["nextProbe"]
            # One probe may be in flight as the schedule is read; the one after it is due at ``nextProbe``.
            await lab.us.wait_requests(before + 3)
            interval_real = 10.0 / SCALE
            arrival = _first_after(lab.us.arrivals, next_us - interval_real / 2)
            assert arrival == pytest.approx(next_us, abs=SLACK_S)
            lab.tm.set_enabled("eu", False)
            eu = next(e for e in (await schedule())["endpoints"] if e["name"] == "eu")
            assert (eu["status"], eu["enabled"], eu["nextProbe"]) == ("Disabled", False, None)
        async with aiohttp.ClientSession() as anonymous, \
                anonymous.get(f"{api.url}/lab/v1/trafficmanager") as response:
            assert response.status == 401
    finally:
        await api.close()


@pytest.mark.parametrize("topology", [_topology(tolerated=0)])
async def test_a_probe_that_times_out_only_because_the_lab_stalled_is_taken_again(lab: Lab) -> None:
    """The lab's clock multiplies its own stalls: a 5 s timeout is 83 real ms at scale 60. A probe whose
    answer was late only because the process was blocked says nothing about the endpoint; with no
    tolerated failure, counting it would fail the endpoint over."""
    await lab.truth.wait_for(lambda line: line.get("status") == "Online" and line.get("endpoint") == "us")
    seen = lab.us.requests
    original = lab.us.requested

    def stall_once() -> None:
        lab.us.requested = original  # type: ignore[method-assign]
        original()
        time.sleep(0.2)  # blocks the loop while the answer is being written: it arrives after the timeout

    lab.us.requested = stall_once  # type: ignore[method-assign]
    line = await lab.truth.wait_for(lambda line: line["event"] == "monitor_probe_retaken")
    assert line["endpoint"] == "us"
    await lab.us.wait_requests(seen + 3)  # the stalled probe, its retake, and the next round's
    assert lab.tm.statuses()["us"] == "Online"
    assert not any(line["event"] == "endpoint_status" and line["status"] == "Degraded"
                   for line in lab.truth.lines)


@pytest.mark.parametrize("answering", [True, False])
async def test_a_stalled_probe_is_judged_by_what_the_endpoint_did_when_it_was_sent(
        answering: bool, block: str, tmp_path: Path) -> None:
    """The lab stalls past a probe's timeout and, meanwhile, the endpoint stops answering: the probe
    Azure would have made was answered if the front door answered when it was sent, and would have
    timed out if it held requests then. Nothing else would tell the two apart."""
    clock = LabClock(SCALE)
    truth = WatchedGroundTruth(tmp_path / "ground-truth.jsonl", clock)
    us, eu = FakeEndpoint(f"{block}.11", clock), FakeEndpoint(f"{block}.12", clock)
    await us.serve()
    await eu.serve()
    state = {"us": True, "eu": True}
    tm = TrafficManager(_topology(tolerated=0), [
        Endpoint("us", "us.endpoints.drill.test", us.host, us.port, priority=1),
        Endpoint("eu", "eu.endpoints.drill.test", eu.host, eu.port, priority=2)],
        clock=clock, ground_truth=truth, answers=lambda name: state[name])
    await tm.start(f"{block}.53")
    try:
        await truth.wait_for(lambda line: line.get("endpoint") == "us" and line.get("status") == "Online")
        state["us"] = answering
        original = us.requested

        def stall_then_die() -> None:
            us.requested = original  # type: ignore[method-assign]
            original()
            us.mode = "hang"  # dies while the lab is stalled: the answer below is never read
            state["us"] = False  # and the lab knows its front door holds requests from now on
            time.sleep(0.2)

        us.requested = stall_then_die  # type: ignore[method-assign]
        # The stall holds eu's probe of the same round too; only us's is followed here.
        line = await truth.wait_for(lambda line: line["event"] == "monitor_probe_retaken"
                                    and line["endpoint"] == "us")
        assert line["answering"] is answering
        await truth.wait_for(lambda line: line["event"] == "endpoint_status"
                             and line["endpoint"] == "us" and line["status"] == "Degraded")
        # Answering when sent: the stalled probe counts as healthy, and a later one (which hangs)
        # degrades it. Holding requests when sent: the stalled probe itself is the failure.
        failed = [f["deadline"] for f in truth.lines if f["event"] == "monitor_probe_failed"
                  and f["endpoint"] == "us"]
        assert (line["deadline"] in failed) is not answering, (line, failed)
        assert failed, truth.lines
    finally:
        await tm.close()
        await us.close()
        await eu.close()
