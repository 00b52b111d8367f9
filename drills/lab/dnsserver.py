"""An authoritative DNS server on UDP and TCP, built on dnspython's message layer.

It serves a :class:`Zone`: the records that hold for one routing decision of Traffic Manager
(the profile's name as a CNAME to the chosen endpoint's target, and every target's address). The
server asks its owner for the zone of each query, so a routing change shows in the very next answer.

The owner is told where the client is: the address of the query's EDNS Client Subnet option (RFC
7871) when it has one with a source prefix, else the address the query came from (a recursive
resolver's, in the real world). Answers are authoritative (``aa``); the Client Subnet option is echoed
with the scope prefix length the answer holds for: the source prefix length when the zone's routing
went by the client's subnet (``Zone.scoped``), else 0 (RFC 7871 section 7.2.1: the answer holds for
every client).

Building a reply with dnspython costs ~0.2 ms on this kind of machine, too slow for a few thousand
queries a second, so the reply to a query is kept by the query's bytes minus its ID and by the zone it
was answered from: probes repeat the same few questions, and a repeat costs a dict look-up and a copy.
The client subnet is inside the query's bytes, so a reply kept for one subnet never answers another;
the subnet of each distinct question is kept too, so that a repeat is routed without parsing it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

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

_CACHE_SIZE = 4096
"""Distinct (question, routing answer) replies kept; probes ask a handful of distinct questions."""

_BIND_ATTEMPTS = 20
"""Tries to find a port free on both UDP and TCP when any port will do."""


@dataclass(frozen=True)
class Zone:
    """The records served while Traffic Manager's answer is ``answer``."""

    fqdn: dns.name.Name
    answer: str | None
    """The endpoint the profile's name points to; None: no record for it (see ``exists``)."""
    cname: dns.rrset.RRset | None
    """``fqdn CNAME target`` for ``answer``."""
    addresses: Mapping[dns.name.Name, dns.rrset.RRset]
    """Each endpoint target's A record."""
    exists: bool = True
    """Without ``answer``: True answers the name with no records (NODATA), False with NXDOMAIN."""
    scoped: bool = False
    """Whether the answer was chosen by the client's subnet (its scope prefix is then echoed)."""

    def lookup(self, qname: dns.name.Name, qtype: int) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset]]:
        """The rcode and answer records for one question (names compare case-insensitively)."""
        wants_address = qtype in (dns.rdatatype.A, dns.rdatatype.ANY)
        if qname == self.fqdn:
            if self.cname is None:
                return (dns.rcode.NOERROR if self.exists else dns.rcode.NXDOMAIN), []
            # A CNAME answers every type; a resolver then looks its target up for the type it wants,
            # which is why an AAAA query gets the CNAME alone (the targets have no AAAA).
            records = [self.cname]
            target = self.addresses.get(self.cname[0].target)
            if wants_address and target is not None:
                records.append(target)
            return dns.rcode.NOERROR, records
        address = self.addresses.get(qname)
        if address is not None:
            return dns.rcode.NOERROR, [address] if wants_address else []
        return dns.rcode.NXDOMAIN, []


def make_zone(fqdn: str, *, answer: str | None, target: str | None, ttl_s: int,
              addresses: Mapping[str, str], address_ttl_s: int = 300, exists: bool = False,
              scoped: bool = False) -> Zone:
    """The zone where ``fqdn`` is a CNAME to ``target`` (if any; else NXDOMAIN, or NODATA if ``exists``)
    and each target name has its address; ``scoped``: the answer depends on the client's subnet."""
    name = dns.name.from_text(fqdn)
    cname = None
    if target is not None:
        cname = dns.rrset.from_text(name, ttl_s, dns.rdataclass.IN, dns.rdatatype.CNAME,
                                    dns.name.from_text(target).to_text())
    records = {}
    for host, address in addresses.items():
        owner = dns.name.from_text(host)
        records[owner] = dns.rrset.from_text(owner, address_ttl_s, dns.rdataclass.IN, dns.rdatatype.A,
                                             address)
    return Zone(fqdn=name, answer=answer, cname=cname, addresses=records, exists=exists, scoped=scoped)


_NOT_SEEN = object()


class DnsServer:
    """Answers queries over UDP and TCP on one port from the zone ``zone(client)`` returns at that
    moment, ``client`` being where the query comes from (see the module docstring; None: unknown)."""

    def __init__(self, zone: Callable[[str | None], Zone]) -> None:
        self._zone = zone
        self._cache: dict[tuple[str | None, bool, bool, bytes], bytes] = {}
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

    def reply(self, wire: bytes, source: str | None = None) -> bytes | None:
        """The reply to one query in wire form, from the address ``source``; None when it deserves none
        (not a query at all)."""
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
        key = (zone.answer, zone.exists, zone.scoped, question)
        cached = self._cache.get(key)
        if cached is not None:
            self.queries += 1
            return wire[:2] + cached[2:]
        if query is None:
            query = dns.message.from_wire(wire)
        response = _respond(query, zone)
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


def _respond(query: dns.message.Message, zone: Zone) -> bytes | None:
    if len(query.question) != 1:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response.to_wire()
    question = query.question[0]
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    rcode, records = zone.lookup(question.name, question.rdtype)
    response.set_rcode(rcode)
    response.answer.extend(records)
    subnet = _client_subnet(query)
    if subnet is not None:
        echo = dns.edns.ECSOption(subnet.address, subnet.srclen, subnet.srclen if zone.scoped else 0)
        response.use_edns(0, 0, response.payload, options=[echo])
    return response.to_wire()


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
            reply = self._server.reply(message, str(peer[0]) if peer else None)
            if reply is None:
                self._transport.close()
                return
            self._transport.write(len(reply).to_bytes(2, "big") + reply)
