"""The caching stub resolver: TTLs on the environment's clock, CNAMEs followed, failures explained."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from probeservers import ADDRESSES, FQDN, TARGETS, DnsStub, dns_stub

from probes.resolver import CachingResolver, NameServer, ResolveError, parse_nameserver


class FakeClock:
    """Real monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stub() -> AsyncIterator[DnsStub]:
    async with dns_stub() as found:
        yield found


def resolver(stub: DnsStub, clock: FakeClock, *, scale: float = 30.0) -> CachingResolver:
    return CachingResolver([NameServer("127.0.0.1", stub.port)], time_scale=scale, query_timeout_s=0.5,
                           clock=clock)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.53", NameServer("127.0.0.53", 53)),
    ("127.0.0.53:5353", NameServer("127.0.0.53", 5353)),
    ("tm1.trafficmanager.net:53", NameServer("tm1.trafficmanager.net", 53)),
    ("[::1]:5353", NameServer("::1", 5353)),
])
def test_parse_nameserver(text: str, expected: NameServer) -> None:
    assert parse_nameserver(text) == expected


def test_parse_nameserver_refuses_a_bad_port() -> None:
    with pytest.raises(ValueError, match="port"):
        parse_nameserver("127.0.0.1:99999")


async def test_the_cname_is_followed_to_the_address(stub: DnsStub) -> None:
    found = await resolver(stub, FakeClock()).resolve(FQDN)
    assert (found.address, found.target, found.cached) == (ADDRESSES["us"], TARGETS["us"], False)


async def test_an_answer_is_kept_for_its_ttl_divided_by_the_time_scale(stub: DnsStub) -> None:
    clock = FakeClock()
    client = resolver(stub, clock, scale=30.0)
    await client.resolve(FQDN)
    stub.target = TARGETS["eu"]
    clock.now += 30 / 30 - 0.01  # the 30 s TTL is one real second at scale 30
    cached = await client.resolve(FQDN)
    assert (cached.address, cached.cached) == (ADDRESSES["us"], True)
    assert stub.queries_for(FQDN) == 1
    clock.now += 0.02
    fresh = await client.resolve(FQDN)
    assert (fresh.address, fresh.target, fresh.cached) == (ADDRESSES["eu"], TARGETS["eu"], False)
    assert stub.queries_for(FQDN) == 2


async def test_a_zero_ttl_answer_serves_its_own_question_only(stub: DnsStub) -> None:
    stub.ttl = 0
    client = resolver(stub, FakeClock())
    assert (await client.resolve(FQDN)).address == ADDRESSES["us"]
    assert (await client.resolve(FQDN)).address == ADDRESSES["us"]
    assert stub.queries_for(FQDN) == 2


async def test_concurrent_resolutions_share_one_query(stub: DnsStub) -> None:
    client = resolver(stub, FakeClock())
    found = await asyncio.gather(*(client.resolve(FQDN) for _ in range(20)))
    assert {f.address for f in found} == {ADDRESSES["us"]}
    assert stub.queries_for(FQDN) == 1


async def test_a_target_without_its_address_is_asked_for(stub: DnsStub) -> None:
    stub.with_address = False
    stub.target = "localhost"  # not served by the stub: the system's resolver knows it
    found = await resolver(stub, FakeClock()).resolve(FQDN)
    assert (found.address, found.target) == ("127.0.0.1", "localhost")
    assert stub.queries_for("localhost") == 1


async def test_nxdomain_is_an_error_that_says_so(stub: DnsStub) -> None:
    stub.target = None
    with pytest.raises(ResolveError, match="NXDOMAIN"):
        await resolver(stub, FakeClock()).resolve(FQDN)


async def test_the_next_name_server_answers_when_the_first_does_not() -> None:
    async with dns_stub() as silent, dns_stub() as live:
        silent.mode = "drop"
        client = CachingResolver([NameServer("127.0.0.1", silent.port), NameServer("127.0.0.1", live.port)],
                                 query_timeout_s=0.1, clock=FakeClock())
        assert (await client.resolve(FQDN)).address == ADDRESSES["us"]
        assert (silent.queries_for(), live.queries_for()) == (1, 1)


async def test_no_answer_from_any_server_names_each_one(stub: DnsStub) -> None:
    stub.mode = "refuse"
    with pytest.raises(ResolveError, match=f"127.0.0.1:{stub.port} answered REFUSED"):
        await resolver(stub, FakeClock()).resolve(FQDN)
