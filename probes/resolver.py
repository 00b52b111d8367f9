"""A caching stub resolver, as the client of a user sees DNS: answers kept for their TTL.

Users do not ask Traffic Manager for every request: their resolver caches the CNAME for the
profile's TTL, so a failover reaches them only as cached answers expire. The http probe resolves
through :class:`CachingResolver` to measure exactly that. It asks the environment's name servers
(in order, the next one on a timeout or a refusal), follows the CNAME chain, and caches every CNAME
and A record of an answer for its TTL. TTLs are real-world seconds; on a lab whose clock runs
``time_scale`` times faster a record lives ``ttl / time_scale`` real seconds, which is what makes a
30 s TTL cost 30 s of scenario time.

A CNAME's target outside what the name servers answer for (Traffic Manager's targets live in other
zones, ``*.cloudapp.azure.com``) is looked up through the system's resolver instead, as the user's
recursive resolver would. Negative answers are not cached: an NXDOMAIN is asked again at the next
resolution, so an outage of the name is never stretched by the probe itself.

Concurrent resolutions of one expired name share one query, so a burst of samples after an expiry
sends one question, not fifty. Questions go over a UDP socket kept open per name server
(:mod:`probes.dnschannel`), which costs a quarter of the CPU of a socket per question.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from drills.environment import VANTAGE_NAME
from probes.dnschannel import DnsChannel

MAX_CHAIN = 8
"""CNAME hops followed before giving up: a loop, or a chain no real profile has."""


class ResolveError(Exception):
    """The name could not be resolved; the message says why, for a sample's ``error``."""


class Unanswered(ResolveError):
    """No name server replied at all (timeouts, refused or unreachable): the question got no answer,
    which says nothing of what the name servers would answer."""


class ResolveTimeout(Unanswered):
    """No name server answered in time: a stub resolver asks again (glibc: ``attempts:2``)."""


@dataclass(frozen=True, slots=True)
class NameServer:
    """A name server's address and port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_nameserver(text: str) -> NameServer:
    """``host``, ``host:port`` or ``[v6]:port`` as an environment file writes it (port 53 if omitted).

    Raises ValueError for an unusable port.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"name server {text!r}: the port must be a number from 1 to 65535")
    return NameServer(host, int(port))


async def server_address(server: NameServer) -> str:
    """The IP address to send queries to (dnspython wants an address, a name server may be a name)."""
    try:
        ipaddress.ip_address(server.host)
        return server.host
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


def check_vantage_names(value: list[str]) -> list[str]:
    """Vantage point names (``vantage: [us, eu]``) as a probe's spec gives them. Raises ValueError."""
    for name in value:
        if not VANTAGE_NAME.fullmatch(name):
            raise ValueError(f"vantage point {name!r}: use lower-case letters, digits, '-' and '_'")
    repeated = sorted({n for n in value if value.count(n) > 1})
    if repeated:
        raise ValueError(f"each vantage point is named once; repeated: {', '.join(repeated)}")
    return value


def vantage_subnets(explicit: Mapping[str, str], named: Sequence[str],
                    known: Mapping[str, str]) -> dict[str, str]:
    """The vantage points of a probe: those its spec maps to subnets (``vantage_points``), then those it
    names (``vantage``) with the subnets the environment gives them (``known``, its Traffic Manager's
    ``vantagePoints``). Raises ValueError for a name the environment lacks or one given both ways."""
    found = dict(explicit)
    for name in named:
        if name in found:
            raise ValueError(f"vantage point {name!r} is both named in 'vantage' and given a subnet in "
                             "'vantage_points': give it once")
        if name not in known:
            have = ", ".join(sorted(known)) or "none"
            raise ValueError(f"vantage point {name!r} is not one of the environment's (trafficManager."
                             f"vantagePoints: {have}); name one of those, or give its subnet in "
                             "'vantage_points'")
        found[name] = known[name]
    return found


def client_subnet(subnet: str) -> dns.edns.ECSOption:
    """The EDNS Client Subnet option (RFC 7871) that says a question comes from ``subnet``."""
    network = ipaddress.ip_network(subnet, strict=False)
    return dns.edns.ECSOption(str(network.network_address), network.prefixlen)


@dataclass(frozen=True, slots=True)
class Resolution:
    """An address for a name, and how it was found."""

    address: str
    target: str | None
    """The first CNAME's target (the Traffic Manager endpoint), without the final dot; None if the
    name had an address of its own."""
    cached: bool
    """Whether no query was sent for this resolution."""
    ttl: int | None = None
    """The TTL of the name's own record (the CNAME, or the A record), as served; None when cached."""


@dataclass(frozen=True, slots=True)
class _Entry:
    values: tuple[str, ...]
    expires: float
    """Real monotonic seconds."""
    ttl: int
    """As served (real-world seconds)."""


_Key = tuple[dns.name.Name, int]


class CachingResolver:
    """Resolves names to IPv4 addresses through ``nameservers``, caching answers for their TTL.

    ``time_scale`` divides every TTL (a lab's compressed clock); ``query_timeout_s`` bounds each
    question to one server, in real seconds; ``clock`` gives real monotonic seconds (tests pass a
    fake one).
    """

    def __init__(self, nameservers: Sequence[NameServer], *, time_scale: float = 1.0,
                 query_timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not nameservers:
            raise ValueError("a resolver needs at least one name server")
        self._servers = tuple(nameservers)
        self._addresses: dict[NameServer, str] = {}
        self._scale = time_scale
        self._timeout = query_timeout_s
        self._clock = clock
        self._cache: dict[_Key, _Entry] = {}
        self._queries: dict[tuple[dns.name.Name, str | None], asyncio.Task[dict[_Key, _Entry]]] = {}
        self._channels: dict[NameServer, DnsChannel] = {}

    def close(self) -> None:
        """Close the sockets kept open to the name servers."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    async def resolve(self, name: str, *, fresh: bool = False, option: dns.edns.Option | None = None
                      ) -> Resolution:
        """An address of ``name``. Raises :class:`ResolveError` saying why there is none.

        ``fresh``: ask the name servers for ``name`` itself whatever the cache holds (what they answer
        now; the rest of the chain may still come from the cache). ``option``: an EDNS option (a
        client subnet) sent with the question for ``name``; its answer is not cached, since it holds
        for that client only.
        """
        origin = current = dns.name.from_text(name)
        # Records of the answers this resolution fetched: usable by it even with a TTL of 0.
        answered: dict[_Key, _Entry] = {}
        first_target: str | None = None
        first_ttl: int | None = None
        cached = True
        for _ in range(MAX_CHAIN):
            asked = current == origin and (fresh or option is not None)
            cname = None if asked else self._record(current, dns.rdatatype.CNAME, answered)
            address = None if cname is not None or asked else self._record(current, dns.rdatatype.A, answered)
            if cname is None and address is None:
                cached = False
                try:
                    found = await self._ask(current, option if current == origin else None)
                except ResolveError:
                    if first_target is None:
                        raise
                    return Resolution(await self._system(current), first_target, cached=False, ttl=first_ttl)
                answered.update(found)
                cname = answered.get((current, dns.rdatatype.CNAME))
                address = answered.get((current, dns.rdatatype.A))
                if current == origin:
                    first_ttl = next((e.ttl for e in (cname, address) if e is not None), None)
            if cname is not None:
                current = dns.name.from_text(cname.values[0])
                first_target = first_target or current.to_text(omit_final_dot=True)
                continue
            if address is not None:
                return Resolution(address.values[0], first_target, cached=cached, ttl=first_ttl)
            if first_target is None:
                raise ResolveError(f"dns: no address for {name}")
            # The target lies outside what the name servers answer for: ask as a recursive resolver would.
            return Resolution(await self._system(current), first_target, cached=False, ttl=first_ttl)
        raise ResolveError(f"dns: more than {MAX_CHAIN} CNAMEs from {name}")

    def _record(self, name: dns.name.Name, rdtype: int, answered: dict[_Key, _Entry]) -> _Entry | None:
        entry = answered.get((name, rdtype))
        if entry is not None:
            return entry
        entry = self._cache.get((name, rdtype))
        if entry is not None and entry.expires > self._clock():
            return entry
        return None

    async def _ask(self, name: dns.name.Name, option: dns.edns.Option | None = None) -> dict[_Key, _Entry]:
        # One query per name (and client subnet) at a time; the others await it. Shielded, so that a
        # sample cancelled by its own timeout does not cancel the answer every other sample awaits.
        key = (name, option.to_text() if option is not None else None)
        task = self._queries.get(key)
        if task is None:
            task = asyncio.create_task(self._query(name, option), name=f"resolve {name}")
            self._queries[key] = task
            task.add_done_callback(lambda _t: self._queries.pop(key, None))
            # Read the outcome even when every awaiter was cancelled, so that it is not logged as lost.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(task)

    async def _query(self, name: dns.name.Name, option: dns.edns.Option | None) -> dict[_Key, _Entry]:
        response = await self._exchange(name, option)
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise ResolveError(f"dns: {name.to_text(omit_final_dot=True)} does not exist (NXDOMAIN)")
        if rcode != dns.rcode.NOERROR:
            raise ResolveError(f"dns: {dns.rcode.to_text(rcode)} for {name.to_text(omit_final_dot=True)}")
        # Every record of the answer goes to the cache, but this resolution uses the answer itself:
        # a TTL of 0 is valid for the question that fetched it, and only for that one.
        now = self._clock()
        fresh: dict[_Key, _Entry] = {}
        for rrset in response.answer:
            if rrset.rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.A):
                continue
            values = tuple(r.target.to_text() if rrset.rdtype == dns.rdatatype.CNAME else r.address
                           for r in rrset)
            entry = _Entry(values, now + rrset.ttl / self._scale, rrset.ttl)
            if option is None:
                self._cache[(rrset.name, rrset.rdtype)] = entry
            fresh[(rrset.name, rrset.rdtype)] = entry
        return fresh

    async def _exchange(self, name: dns.name.Name, option: dns.edns.Option | None) -> dns.message.Message:
        problems = []
        timeouts = 0
        replied = False
        for server in self._servers:
            try:
                where = self._addresses.get(server) or await server_address(server)
                self._addresses[server] = where
                query = (dns.message.make_query(name, dns.rdatatype.A) if option is None else
                         dns.message.make_query(name, dns.rdatatype.A, use_edns=0, options=[option]))
                channel = self._channels.get(server)
                if channel is None:
                    channel = self._channels[server] = DnsChannel(where, server.port)
                response = await channel.ask(query, self._timeout)
            except dns.exception.Timeout:
                problems.append(f"{server} timed out")
                timeouts += 1
                continue
            except (OSError, dns.exception.DNSException) as exc:
                problems.append(f"{server}: {exc or type(exc).__name__}")
                continue
            if response.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                problems.append(f"{server} answered {dns.rcode.to_text(response.rcode())}")
                replied = True
                continue
            return response
        text = f"dns: no answer for {name.to_text(omit_final_dot=True)}: {'; '.join(problems)}"
        if replied:
            raise ResolveError(text)
        raise ResolveTimeout(text) if timeouts == len(problems) else Unanswered(text)

    async def _system(self, name: dns.name.Name) -> str:
        loop = asyncio.get_running_loop()
        host = name.to_text(omit_final_dot=True)
        try:
            infos = await loop.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ResolveError(f"dns: {host}: {exc}") from exc
        return str(infos[0][4][0])
