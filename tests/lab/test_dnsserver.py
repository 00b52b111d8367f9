"""The lab's DNS server answers as an authoritative server does, seen through dnspython and dig.

Most checks ask the lab's Traffic Manager (the profile ``shop.trafficmanager.net``, its endpoints'
targets in ``endpoints.drill.test``); truncation needs an answer larger than any Traffic Manager gives,
so it asks a server holding a zone with many name servers.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from drills.lab.clock import LabClock
from drills.lab.dnsserver import Apex, DnsServer, make_zone
from drills.lab.topology import DEFAULT
from drills.lab.trafficmanager import Endpoint, TrafficManager
from probes.resolver import CachingResolver, NameServer

FQDN = "shop.trafficmanager.net"
TARGETS = {"us": "us.endpoints.drill.test", "eu": "eu.endpoints.drill.test"}
PAYLOAD = 1232
"""The UDP payload size the server advertises (DNS Flag Day 2020)."""


@dataclass
class Server:
    host: str
    port: int
    tm: TrafficManager | None
    """None: a bare DNS server."""
    addresses: dict[str, str]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """The lab's Traffic Manager, its endpoints refusing connections (routing stays on ``us``)."""
    block = f"127.{random.randint(20, 250)}.{random.randint(0, 255)}"
    addresses = {"us": f"{block}.11", "eu": f"{block}.12"}
    endpoints = [Endpoint(name, TARGETS[name], addresses[name], 9, priority=i + 1)
                 for i, name in enumerate(("us", "eu"))]
    tm = TrafficManager(DEFAULT, endpoints, clock=LabClock(60.0))
    port = await tm.start(f"{block}.53")
    try:
        yield Server(f"{block}.53", port, tm, addresses)
    finally:
        await tm.close()


async def _ask(server: Server, name: str, rdtype: str = "A", *, tcp: bool = False, edns: int = -1,
               payload: int = PAYLOAD, dnssec: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload, want_dnssec=dnssec)
    if tcp:
        return await dns.asyncquery.tcp(query, server.host, port=server.port, timeout=2)
    return await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2,
                                    raise_on_truncation=False)


async def _dig(server: Server, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "dig", f"@{server.host}", "-p", str(server.port), "+time=2", "+tries=1", *args,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return out.decode()


def _section(text: str, name: str) -> list[list[str]]:
    """The records of one section of dig's output, each split into fields."""
    if f";; {name} SECTION:" not in text:
        return []
    body = text.split(f";; {name} SECTION:\n")[1].split("\n\n")[0]
    return [line.split() for line in body.splitlines()]


def _flags(text: str) -> set[str]:
    found = re.search(r"^;; flags: ([a-z ]*);", text, re.M)
    assert found is not None, text
    return set(found.group(1).split())


async def test_names_outside_the_zones_are_refused_without_authority(server: Server) -> None:
    for name in ("example.com", "drill.test", "net", "trafficmanager.net.example"):
        reply = await _ask(server, name)
        assert reply.rcode() == dns.rcode.REFUSED, name
        assert not reply.flags & dns.flags.AA
        assert (reply.answer, reply.authority) == ([], [])
    text = await _dig(server, "www.example.com")
    assert "status: REFUSED" in text
    assert "aa" not in _flags(text)
    assert "ANSWER: 0, AUTHORITY: 0" in text
    # nor does it give its zones away
    transfer = await _ask(server, "trafficmanager.net", "AXFR", tcp=True)
    assert (transfer.rcode(), transfer.answer) == (dns.rcode.REFUSED, [])
    assert "Transfer failed." in await _dig(server, "AXFR", "trafficmanager.net")


async def test_each_zone_apex_has_its_soa_and_ns(server: Server) -> None:
    soa = await _ask(server, "trafficmanager.net", "SOA")
    assert soa.flags & dns.flags.AA
    assert [r.to_text() for r in soa.answer] == [
        "trafficmanager.net. 30 IN SOA tm1.msft.net. hostmaster.trafficmanager.net. 2003080800 900 300 "
        "2419200 30"]
    text = await _dig(server, "NS", "trafficmanager.net")
    assert "aa" in _flags(text)
    assert sorted(r[4] for r in _section(text, "ANSWER")) == [
        "tm1.dns-tm.com.", "tm1.edgedns-tm.info.", "tm2.dns-tm.com.", "tm2.edgedns-tm.info."]
    targets = await _dig(server, "SOA", "endpoints.drill.test")
    (record,) = _section(targets, "ANSWER")
    assert record[:4] == ["endpoints.drill.test.", "3600", "IN", "SOA"]
    assert record[10:] == ["300"]  # the zone's minimum: its negative-caching TTL
    assert len(_section(await _dig(server, "NS", "endpoints.drill.test"), "ANSWER")) == 4


async def test_nxdomain_carries_the_soa_with_the_negative_caching_ttl(server: Server) -> None:
    # RFC 2308 section 3: the SOA goes into the authority section with TTL min(SOA TTL, SOA minimum).
    for name, apex, ttl in (("other.trafficmanager.net", "trafficmanager.net.", 30),
                            ("xx.endpoints.drill.test", "endpoints.drill.test.", 300),
                            (f"www.{FQDN}", "trafficmanager.net.", 30)):
        reply = await _ask(server, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN, name
        assert reply.flags & dns.flags.AA
        assert reply.answer == []
        (authority,) = reply.authority
        assert (authority.name.to_text(), authority.rdtype, authority.ttl) == (apex, dns.rdatatype.SOA, ttl)
    text = await _dig(server, "other.trafficmanager.net")
    assert "status: NXDOMAIN" in text
    assert [r[:4] for r in _section(text, "AUTHORITY")] == [["trafficmanager.net.", "30", "IN", "SOA"]]
    # with every endpoint disabled the profile is Inactive: its own name does not exist either
    assert server.tm is not None
    for name in TARGETS:
        server.tm.set_enabled(name, False)
    inactive = await _ask(server, FQDN)
    assert inactive.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in inactive.authority] == [dns.rdatatype.SOA]


async def test_nodata_is_noerror_with_no_answer_and_the_soa(server: Server) -> None:
    for name, rdtype, apex, ttl in (("trafficmanager.net", "TXT", "trafficmanager.net.", 30),
                                    (TARGETS["us"], "AAAA", "endpoints.drill.test.", 300)):
        reply = await _ask(server, name, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert reply.answer == []
        (authority,) = reply.authority
        assert (authority.name.to_text(), authority.rdtype, authority.ttl) == (apex, dns.rdatatype.SOA, ttl)
    text = await _dig(server, "AAAA", TARGETS["us"])
    assert "status: NOERROR" in text
    assert "ANSWER: 0, AUTHORITY: 1" in text


async def test_the_profile_name_is_answered_with_the_cname_alone(server: Server) -> None:
    reply = await _ask(server, FQDN)
    assert reply.flags & dns.flags.AA
    assert [r.to_text() for r in reply.answer] == [f"{FQDN}. 30 IN CNAME {TARGETS['us']}."]
    text = await _dig(server, FQDN)
    assert [(r[0], r[3], r[4]) for r in _section(text, "ANSWER")] == [
        (f"{FQDN}.", "CNAME", f"{TARGETS['us']}.")]
    # the target is its own zone's name, answered on its own (Azure: another server's zone)
    target = await _ask(server, TARGETS["us"])
    assert [r.to_text() for r in target.answer] == [f"{TARGETS['us']}. 300 IN A {server.addresses['us']}"]
    # a stub resolver follows the chain with a second question, as the http probe's does
    resolver = CachingResolver([NameServer(server.host, server.port)], query_timeout_s=2)
    try:
        found = await resolver.resolve(FQDN)
    finally:
        resolver.close()
    assert (found.address, found.target, found.ttl) == (server.addresses["us"], TARGETS["us"], 30)


async def test_an_edns_version_above_zero_gets_badvers(server: Server) -> None:
    reply = await _ask(server, FQDN, edns=1)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0  # the highest version the server implements (RFC 6891 section 6.1.3)
    assert reply.answer == []
    text = await _dig(server, "+edns=1", "+noednsnegotiation", FQDN)
    assert "status: BADVERS" in text
    assert "EDNS: version: 0" in text


async def test_the_do_bit_is_echoed_and_the_payload_size_advertised(server: Server) -> None:
    plain = await _ask(server, FQDN, edns=0, payload=4096)
    assert (plain.edns, plain.payload, plain.ednsflags & dns.flags.DO) == (0, PAYLOAD, 0)
    signed = await _ask(server, FQDN, edns=0, dnssec=True)
    assert signed.ednsflags & dns.flags.DO
    assert [r.rdtype for r in signed.answer] == [dns.rdatatype.CNAME]
    text = await _dig(server, "+dnssec", FQDN)
    assert re.search(rf"^; EDNS: version: 0, flags: do; udp: {PAYLOAD}$", text, re.M)


async def test_malformed_queries_get_formerr_and_other_opcodes_notimp(server: Server) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (server.host, server.port))
        # a header claiming one question, followed by a name that runs past the message
        await loop.sock_sendall(sock, struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07shop")
        reply = dns.message.from_wire(await loop.sock_recv(sock, 512))
    assert (reply.id, reply.rcode()) == (0x4242, dns.rcode.FORMERR)
    assert not reply.flags & dns.flags.AA
    two = dns.message.make_query(FQDN, "A")
    two.question.append(dns.rrset.RRset(dns.name.from_text(TARGETS["us"]), 1, dns.rdatatype.A))
    assert (await dns.asyncquery.udp(two, server.host, port=server.port, timeout=2)).rcode() == \
        dns.rcode.FORMERR
    status = dns.message.make_query(FQDN, "A")
    status.set_opcode(dns.opcode.STATUS)
    notimp = await dns.asyncquery.udp(status, server.host, port=server.port, timeout=2)
    assert notimp.rcode() == dns.rcode.NOTIMP
    assert not notimp.flags & dns.flags.AA
    text = await _dig(server, "+opcode=status", FQDN)
    assert "status: NOTIMP" in text


@pytest.fixture
async def big() -> AsyncIterator[Server]:
    """A server whose zone ``big.test`` has 40 name servers (an NS answer of 839 bytes) and whose
    zone ``huge.test`` has 100 (2,039 bytes)."""
    zones = {apex: Apex(mname=f"ns-00.{apex}", rname=f"hostmaster.{apex}", serial=1, refresh=3600, retry=300,
                        expire=2419200, minimum=300, ttl_s=3600,
                        nameservers=tuple(f"ns-{i:02d}.name-servers.{apex}" for i in range(count)))
             for apex, count in (("big.test", 40), ("huge.test", 100))}
    zone = make_zone("www.big.test", answer=None, target=None, ttl_s=30, addresses={}, zones=zones)
    dns_server = DnsServer(lambda _client: zone)
    port = await dns_server.start("127.0.0.1")
    try:
        yield Server("127.0.0.1", port, None, {})
    finally:
        await dns_server.close()


async def test_udp_answers_are_truncated_at_the_clients_buffer_and_tcp_serves_them_whole(big: Server) -> None:
    whole = await _ask(big, "big.test", "NS", tcp=True)
    assert len(whole.answer[0]) == 40
    assert 600 < len(whole.to_wire()) < PAYLOAD
    # no EDNS: 512 bytes, the rest over TCP; EDNS: the client's buffer, up to the server's own
    plain = await _ask(big, "big.test", "NS")
    assert plain.flags & dns.flags.TC
    assert plain.answer == []
    assert not (await _ask(big, "big.test", "NS", edns=0)).flags & dns.flags.TC
    assert (await _ask(big, "big.test", "NS", edns=0, payload=600)).flags & dns.flags.TC
    assert (await _ask(big, "huge.test", "NS", edns=0, payload=4096)).flags & dns.flags.TC
    assert len((await _ask(big, "huge.test", "NS", tcp=True)).answer[0]) == 100
    # dig sees TC, says so, asks again over TCP and shows the whole answer
    text = await _dig(big, "+noedns", "NS", "big.test")
    assert "Truncated, retrying in TCP mode" in text
    assert len(_section(text, "ANSWER")) == 40
    assert "(TCP)" in text
