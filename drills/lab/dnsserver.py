"""An authoritative DNS server on UDP and TCP, built on dnspython's message layer.

It serves a :class:`Zone`: the records that hold for one routing decision of Traffic Manager (the
profile's name as a CNAME to the chosen endpoint's target, and every target's address), in the DNS
zones they belong to, each with its SOA and NS records at its apex (:class:`Apex`). The server asks its
owner for the zone of each query, so a routing change shows in the very next answer.

It answers as an authoritative server does (RFC 1034 section 4.3.2, RFC 2308, RFC 6891):

- a name outside every zone it holds: REFUSED, without ``aa`` or records; inside: ``aa``;
- a CNAME alone for the name that has one, whatever the type asked: Traffic Manager's targets live in
  other servers' zones, so the resolver asks for the target itself (here the same server answers it,
  standing for the target's own DNS);
- a name that does not exist: NXDOMAIN; a name without the type asked: NOERROR with no answer
  (NODATA); both with the zone's SOA in the authority section, its TTL the negative-caching TTL,
  min(SOA TTL, SOA minimum);
- EDNS: BADVERS for a version above 0, the DO bit echoed, :data:`PAYLOAD` advertised. A UDP answer
  larger than the client's buffer (512 bytes without EDNS, else the size it advertises, at most
  :data:`PAYLOAD`) is cut to whole RRsets that fit and flagged TC; over TCP it goes whole;
- a message that does not parse, or does not ask exactly one question: FORMERR; an opcode other than
  QUERY: NOTIMP; a class other than IN, or a zone transfer: REFUSED.

The owner is told where the client is: the address of the query's EDNS Client Subnet option (RFC
7871) when it has one with a source prefix, else the address the query came from (a recursive
resolver's, in the real world). The Client Subnet option is echoed with the scope prefix length the
answer holds for: the source prefix length when the zone's routing went by the client's subnet
(``Zone.scoped``), else 0 (RFC 7871 section 7.2.1: the answer holds for every client).

Building a reply with dnspython costs ~0.2 ms on this kind of machine, too slow for a few thousand
queries a second, so the reply to a query is kept by the query's bytes minus its ID, by the transport
and by the zone it was answered from: probes repeat the same few questions, and a repeat costs a dict
look-up and a copy. The client subnet and buffer size are inside the query's bytes, so a reply kept
for one subnet or size never answers another; the subnet of each distinct question is kept too, so
that a repeat is routed without parsing it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, cast

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

PAYLOAD = 1232
"""The UDP payload size the server advertises, and the most it sends over UDP: DNS Flag Day 2020's
value, BIND's default since 9.16."""

_CLASSIC_UDP = 512
"""The most a UDP answer may hold for a client without EDNS (RFC 1035 section 4.2.1), and the least
any EDNS client is taken to accept (RFC 6891 section 6.2.5)."""

_TCP_MAX = 65535

_TRANSFERS = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
"""Zone transfers: refused to everyone (Azure's name servers serve none, per the Azure DNS FAQ)."""

_CACHE_SIZE = 4096
"""Distinct (question, routing answer) replies kept; probes ask a handful of distinct questions."""

_BIND_ATTEMPTS = 20
"""Tries to find a port free on both UDP and TCP when any port will do."""


@dataclass(frozen=True)
class Apex:
    """What a zone says of itself at its apex: its SOA record's fields and its name servers."""

    mname: str
    """The zone's primary name server."""
    rname: str
    """The mailbox of the zone's administrator, its ``@`` written as the first dot."""
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int
    """The SOA minimum: the most a resolver may cache a negative answer (RFC 2308 section 4)."""
    ttl_s: int
    """The TTL of the SOA and NS records."""
    nameservers: tuple[str, ...]


class Found(NamedTuple):
    """What a zone holds for one question."""

    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    authoritative: bool
    """Whether the name lies in one of the zones (``aa``); not: REFUSED."""


@dataclass(frozen=True)
class Zone:
    """The records served while Traffic Manager's answer is ``answer``, in the zones they belong to."""

    fqdn: dns.name.Name
    answer: str | None
    """The endpoint the profile's name points to; None: no record for it (see ``exists``)."""
    records: Mapping[dns.name.Name, Mapping[int, dns.rrset.RRset]]
    """Each name the zones hold, with its records by type (none: the name exists, with no data)."""
    negative: Mapping[dns.name.Name, dns.rrset.RRset]
    """Each zone's apex -> its SOA with the negative-caching TTL, min(SOA TTL, minimum) (RFC 2308)."""
    exists: bool = True
    """Without ``answer``: True answers the name with no records (NODATA), False with NXDOMAIN."""
    scoped: bool = False
    """Whether the answer was chosen by the client's subnet (its scope prefix is then echoed)."""

    def lookup(self, qname: dns.name.Name, qtype: int) -> Found:
        """What answers one question (names compare case-insensitively)."""
        apex = max((a for a in self.negative if qname.is_subdomain(a)), key=len, default=None)
        if apex is None:
            return Found(dns.rcode.REFUSED, [], [], authoritative=False)
        node = self.records.get(qname)
        if node is None:
            # A name above others of the zone exists even without records of its own (RFC 8020).
            if any(name.is_subdomain(qname) for name in self.records):
                return Found(dns.rcode.NOERROR, [], [self.negative[apex]], authoritative=True)
            return Found(dns.rcode.NXDOMAIN, [], [self.negative[apex]], authoritative=True)
        cname = node.get(dns.rdatatype.CNAME)
        if cname is not None:
            # A CNAME answers every type, alone: its target lies in another server's zone, which the
            # resolver asks next (an AAAA query too: the targets have no AAAA).
            return Found(dns.rcode.NOERROR, [cname], [], authoritative=True)
        if qtype == dns.rdatatype.ANY:
            records = list(node.values())
        else:
            records = [node[qtype]] if qtype in node else []
        return Found(dns.rcode.NOERROR, records, [] if records else [self.negative[apex]], authoritative=True)


def make_zone(fqdn: str, *, answer: str | None, target: str | None, ttl_s: int,
              addresses: Mapping[str, str], zones: Mapping[str, Apex], address_ttl_s: int = 300,
              exists: bool = False, scoped: bool = False) -> Zone:
    """The zones ``zones`` (apex -> its SOA and NS) where ``fqdn`` is a CNAME to ``target`` (if any;
    else NXDOMAIN, or NODATA if ``exists``) and each target name has its address; ``scoped``: the
    answer depends on the client's subnet."""
    records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
    negative = {}
    for text, apex in zones.items():
        owner = dns.name.from_text(text)
        soa = dns.rrset.from_text(owner, apex.ttl_s, dns.rdataclass.IN, dns.rdatatype.SOA,
                                  f"{_absolute(apex.mname)} {_absolute(apex.rname)} {apex.serial} "
                                  f"{apex.refresh} {apex.retry} {apex.expire} {apex.minimum}")
        ns = dns.rrset.from_text_list(owner, apex.ttl_s, dns.rdataclass.IN, dns.rdatatype.NS,
                                      [_absolute(server) for server in apex.nameservers])
        records[owner] = {dns.rdatatype.SOA: soa, dns.rdatatype.NS: ns}
        negative[owner] = dns.rrset.from_rdata(owner, min(apex.ttl_s, apex.minimum), soa[0])
    for host, address in addresses.items():
        owner = dns.name.from_text(host)
        records.setdefault(owner, {})[dns.rdatatype.A] = dns.rrset.from_text(
            owner, address_ttl_s, dns.rdataclass.IN, dns.rdatatype.A, address)
    name = dns.name.from_text(fqdn)
    if target is not None:
        records[name] = {dns.rdatatype.CNAME: dns.rrset.from_text(
            name, ttl_s, dns.rdataclass.IN, dns.rdatatype.CNAME, _absolute(target))}
    elif exists:
        records.setdefault(name, {})
    return Zone(fqdn=name, answer=answer, records=records, negative=negative, exists=exists, scoped=scoped)


def _absolute(name: str) -> str:
    return dns.name.from_text(name).to_text()


_NOT_SEEN = object()


class DnsServer:
    """Answers queries over UDP and TCP on one port from the zone ``zone(client)`` returns at that
    moment, ``client`` being where the query comes from (see the module docstring; None: unknown)."""

    def __init__(self, zone: Callable[[str | None], Zone]) -> None:
        self._zone = zone
        self._cache: dict[tuple[str | None, bool, bool, bool, bytes], bytes] = {}
        self._subnets: dict[bytes, str | None] = {}
        """Per question (bytes minus the ID), the address of its client subnet (None: it has none)."""
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._streams: set[asyncio.Transport] = set()
        self.queries = 0
        """Queries answered since start, both transports."""

    async def start(self, host: str, port: int = 0) -> int:
        """Bind UDP and TCP on the same port (a free one if ``port`` is 0) and return it.

        Raises OSError when ``port`` is given and taken, or when no free port is found.
        """
        if port:
            await self._bind(host, port)
            return port
        for _ in range(_BIND_ATTEMPTS - 1):
            try:
                return await self._bind(host, 0)
            except OSError:
                continue  # the UDP port was taken on TCP: try another
        return await self._bind(host, 0)

    async def close(self) -> None:
        """Stop both transports and drop open TCP connections."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for transport in list(self._streams):
                transport.abort()
            await self._tcp.wait_closed()
            self._tcp = None

    def reply(self, wire: bytes, source: str | None = None, *, tcp: bool = False) -> bytes | None:
        """The reply to one query in wire form, from the address ``source``, over TCP or UDP; None when
        it deserves none (not a query at all)."""
        if len(wire) < 12 or wire[2] & 0x80:  # too short for a header, or a response (QR set)
            return None
        question = wire[2:]
        query: dns.message.Message | None = None
        subnet = self._subnets.get(question, _NOT_SEEN)
        if subnet is _NOT_SEEN:
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                return _error(wire, dns.rcode.FORMERR)
            option = _client_subnet(query)
            subnet = option.address if option is not None and option.srclen > 0 else None
            if len(self._subnets) >= _CACHE_SIZE:
                self._subnets.clear()
            self._subnets[question] = subnet
        zone = self._zone(subnet if isinstance(subnet, str) else source)
        key = (zone.answer, zone.exists, zone.scoped, tcp, question)
        cached = self._cache.get(key)
        if cached is not None:
            self.queries += 1
            return wire[:2] + cached[2:]
        if query is None:
            query = dns.message.from_wire(wire)
        response = _respond(query, zone, tcp=tcp)
        if response is None:
            return _error(wire, dns.rcode.FORMERR)
        self.queries += 1
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = response
        return response

    async def _bind(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=(host, port))
        bound = udp.get_extra_info("sockname")[1]
        try:
            tcp = await loop.create_server(lambda: _Stream(self), host, bound)
        except OSError:
            udp.close()
            raise
        self._udp, self._tcp = udp, tcp
        return int(bound)


def _respond(query: dns.message.Message, zone: Zone, *, tcp: bool) -> bytes | None:
    """The reply to a parsed query; None when it does not ask exactly one question (FORMERR)."""
    if len(query.question) != 1:
        return None
    response = dns.message.make_response(query, our_payload=PAYLOAD)
    if query.edns >= 0:
        subnet = _client_subnet(query)
        options: list[dns.edns.Option] = []
        if subnet is not None:
            options.append(dns.edns.ECSOption(subnet.address, subnet.srclen,
                                              subnet.srclen if zone.scoped else 0))
        # RFC 3225: the DO bit is copied into the response; RFC 6891: the OPT says what the server takes.
        response.use_edns(0, query.ednsflags & dns.flags.DO, PAYLOAD, query.payload, options=options)
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 section 6.1.3: the OPT says version 0
            return response.to_wire()
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    question = query.question[0]
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY) or question.rdtype in _TRANSFERS:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    found = zone.lookup(question.name, question.rdtype)
    if found.authoritative:
        response.flags |= dns.flags.AA
    response.set_rcode(found.rcode)
    response.answer.extend(found.answer)
    response.authority.extend(found.authority)
    # Cut to the RRsets that fit whole and set TC when the client's buffer cannot hold the rest.
    return response.to_wire(max_size=_limit(query, tcp=tcp), prefer_truncation=True)


def _limit(query: dns.message.Message, *, tcp: bool) -> int:
    """The most a reply to ``query`` may hold: a TCP message's, or the UDP buffer the client advertises
    (512 bytes without EDNS), at most the server's own :data:`PAYLOAD`."""
    if tcp:
        return _TCP_MAX
    if query.edns < 0:
        return _CLASSIC_UDP
    return max(_CLASSIC_UDP, min(query.payload, PAYLOAD))


def _client_subnet(query: dns.message.Message) -> dns.edns.ECSOption | None:
    return next((o for o in query.options if isinstance(o, dns.edns.ECSOption)), None)


def _error(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A bare header with the query's ID and ``rcode``: all one can say to a message that does not parse."""
    ident, flags = struct.unpack("!HH", wire[:4])
    flags = (flags & 0x7900) | 0x8000 | rcode  # keep opcode and RD, set QR
    return struct.pack("!HHHHHH", ident, flags, 0, 0, 0, 0)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport: cast, not assert.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self._server.reply(data, str(addr[0]))
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


class _Stream(asyncio.Protocol):
    """DNS over TCP: messages framed by a two-byte length, several per connection (RFC 7766)."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._streams.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server._streams.discard(self._transport)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2 and self._transport is not None:
            size = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + size:
                return
            message = bytes(self._buffer[2:2 + size])
            del self._buffer[:2 + size]
            peer = self._transport.get_extra_info("peername")
            reply = self._server.reply(message, str(peer[0]) if peer else None, tcp=True)
            if reply is None:
                self._transport.close()
                return
            self._transport.write(len(reply).to_bytes(2, "big") + reply)
