"""Small loopback servers the probe tests talk to over the real protocols, and an environment for them.

Not a ``conftest.py``: this folder mirrors the ``probes`` package, and pytest would import one here
under a name that hides it. Test modules import what they use.

- :class:`DnsStub`: an authoritative UDP name server built on dnspython's message layer, answering the
  profile's name with a CNAME to the target it is told (per EDNS Client Subnet if asked) plus the
  target's A record; it can also answer NXDOMAIN, REFUSED, or nothing at all.
- :class:`HttpStub`: an HTTP server on one loopback address that answers 200 (naming its region), 503,
  every other request 503 (an overloaded server shedding load), or hangs, and remembers from which
  client port each request came.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiohttp import web

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.targets import Targets

FQDN = "shop.trafficmanager.net"
TARGETS = {"us": "us.endpoints.drill.test", "eu": "eu.endpoints.drill.test"}
ADDRESSES = {"us": "127.0.0.1", "eu": "127.0.0.2"}


class DnsStub(asyncio.DatagramProtocol):
    """A name server for :data:`FQDN`; change :attr:`target`, :attr:`mode` or :attr:`ttl` at any time."""

    def __init__(self) -> None:
        self.target: str | None = TARGETS["us"]
        """What the name points to (None: NXDOMAIN)."""
        self.by_subnet: dict[str, str] = {}
        """Client subnet (``203.0.113.0/24``) -> target, for queries carrying that subnet."""
        self.ttl = 30
        self.with_address = True
        """Whether an answer carries the target's A record beside the CNAME."""
        self.mode: Literal["answer", "drop", "refuse"] = "answer"
        self.queries: list[tuple[str, str | None]] = []
        """Each query's name and client subnet (None without ECS)."""
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._addresses = {dns.name.from_text(TARGETS[r]): ADDRESSES[r] for r in TARGETS}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        query = dns.message.from_wire(data)
        qname = query.question[0].name
        ecs = next((o for o in query.options if isinstance(o, dns.edns.ECSOption)), None)
        subnet = f"{ecs.address}/{ecs.srclen}" if ecs is not None else None
        self.queries.append((qname.to_text(omit_final_dot=True), subnet))
        if self.mode == "drop":
            return
        response = dns.message.make_response(query)
        if self.mode == "refuse":
            response.set_rcode(dns.rcode.REFUSED)
        elif qname == dns.name.from_text(FQDN):
            target = self.by_subnet.get(subnet or "", self.target)
            if target is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                owner = dns.name.from_text(target)
                response.answer.append(dns.rrset.from_text(qname, self.ttl, "IN", "CNAME", owner.to_text()))
                if self.with_address and owner in self._addresses:
                    response.answer.append(dns.rrset.from_text(owner, 300, "IN", "A", self._addresses[owner]))
        elif qname in self._addresses and self.with_address:
            response.answer.append(dns.rrset.from_text(qname, 300, "IN", "A", self._addresses[qname]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if ecs is not None:
            response.use_edns(0, 0, 1232, options=[dns.edns.ECSOption(ecs.address, ecs.srclen, 0)])
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), addr)

    def queries_for(self, name: str = FQDN) -> int:
        return sum(1 for qname, _ in self.queries if qname == name)


@contextlib.asynccontextmanager
async def dns_stub(host: str = "127.0.0.1") -> AsyncIterator[DnsStub]:
    """A :class:`DnsStub` listening on ``host`` (a free port), closed after."""
    stub = DnsStub()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: stub,
                                                                             local_addr=(host, 0))
    stub.port = transport.get_extra_info("sockname")[1]
    try:
        yield stub
    finally:
        transport.close()


@dataclass
class HttpStub:
    """One region's web server; change :attr:`mode` at any time."""

    region: str
    mode: Literal["ok", "fail", "shed", "hang"] = "ok"
    peers: list[int] = field(default_factory=list)
    """The client port of each request: distinct ports are distinct connections."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to let hanging requests go (at shutdown)."""

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers.append(peer[1] if peer else 0)
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "ok" or (self.mode == "shed" and len(self.peers) % 2):
            return web.Response(text=f"served by {self.region}\n", headers={"X-Drill-Region": self.region})
        return web.Response(status=503, text="no healthy upstream\n", headers={"X-Drill-Region": self.region})


@dataclass
class Service:
    """The service in both regions, on the same port of each region's address."""

    port: int
    us: HttpStub
    eu: HttpStub
    runners: list[web.AppRunner]

    def region(self, name: str) -> HttpStub:
        return self.us if name == "us" else self.eu

    async def stop(self, name: str) -> None:
        """Take one region's server down: connections to it are refused from now on."""
        index = 0 if name == "us" else 1
        self.region(name).release.set()
        await self.runners[index].cleanup()


@contextlib.asynccontextmanager
async def service() -> AsyncIterator[Service]:
    """The two regions' servers (us on 127.0.0.1, eu on 127.0.0.2, one port), stopped after."""
    for _ in range(20):
        stubs = (HttpStub("us"), HttpStub("eu"))
        runners: list[web.AppRunner] = []
        try:
            port = 0
            for stub, host in zip(stubs, (ADDRESSES["us"], ADDRESSES["eu"]), strict=True):
                app = web.Application()
                app.router.add_get("/{tail:.*}", stub.handle)
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, host, port)
                await site.start()
                port = runner.addresses[0][1]
        except OSError as exc:
            for runner in runners:
                await runner.cleanup()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue  # the port free on 127.0.0.1 was taken on 127.0.0.2: try another
        break
    else:
        raise OSError("no port free on both loopback addresses")
    found = Service(port=port, us=stubs[0], eu=stubs[1], runners=runners)
    try:
        yield found
    finally:
        for stub, runner in zip(stubs, runners, strict=True):
            stub.release.set()
            await runner.cleanup()


def environment(*, nameservers: list[str], port: int = 80, scale: float = 60.0,
                kubeconfig: Path | None = None) -> Environment:
    """An environment with regions us and eu behind :data:`FQDN`, served over HTTP on ``port``; their
    contexts ``ctx-us`` and ``ctx-eu`` are in ``kubeconfig`` (see :func:`write_kubeconfig`)."""
    regions = {
        name: {"context": f"ctx-{name}", "ingress": {"namespace": "ingress", "deployment": "ingress"},
               "endpoint": name, "target": TARGETS[name],
               "kubeconfig": str(kubeconfig) if kubeconfig is not None else None}
        for name in TARGETS
    }
    return Environment.model_validate({
        "apiVersion": "drill/v1", "kind": "Environment", "name": "probe-test", "timeScale": scale,
        "regions": regions,
        "trafficManager": {"fqdn": FQDN, "nameservers": nameservers},
        "service": {"scheme": "http", "port": port, "path": "/"},
    })


def write_kubeconfig(path: Path, server: str = "http://127.0.0.1:9") -> Path:
    """A kubeconfig with contexts ``ctx-us`` and ``ctx-eu`` for one API ``server`` (by default a port
    where nothing listens: for probes built but never sampled)."""
    clusters = "".join(f"- name: {r}\n  cluster: {{server: '{server}'}}\n" for r in TARGETS)
    contexts = "".join(f"- name: ctx-{r}\n  context: {{cluster: {r}, user: test}}\n" for r in TARGETS)
    path.write_text(f"apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}"
                    "users:\n- name: test\n  user: {token: test}\ncurrent-context: ctx-us\n")
    return path


@contextlib.contextmanager
def targets_for(env: Environment) -> Iterator[Targets]:
    """The run's view of ``env`` on a clock at its time scale, closed after."""
    targets = Targets(env, ScenarioClock(env.time_scale))
    try:
        yield targets
    finally:
        targets.close()
