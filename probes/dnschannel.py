"""A UDP socket to one name server, kept open, that matches answers to questions by their ID.

dnspython's asyncio ``udp()`` builds a datagram endpoint per question: about 1.3 ms of CPU on the
development machine, three quarters of a question's cost, which the http probe's users pay in nearly
every sample (bench/probe_period.py). A channel opens its socket once; a question costs building and
parsing the message (about 0.4 ms). A truncated answer is asked again over TCP, as stub resolvers do.
"""

from __future__ import annotations

import asyncio
import random
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message


class DnsChannel(asyncio.DatagramProtocol):
    """Questions to one name server over one kept UDP socket (see the module docstring)."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._ids = random.SystemRandom()

    async def ask(self, query: dns.message.Message, within_s: float) -> dns.message.Message:
        """The server's answer to ``query`` (its ID is replaced by a free one). Raises
        :class:`dns.exception.Timeout` after ``within_s`` real seconds, OSError if the socket fails."""
        transport = await self._open()
        loop = asyncio.get_running_loop()
        query.id = self._free_id()
        answer: asyncio.Future[bytes] = loop.create_future()
        self._waiting[query.id] = answer
        try:
            transport.sendto(query.to_wire())
            try:
                async with asyncio.timeout(within_s):
                    data = await answer
            except TimeoutError as exc:
                raise dns.exception.Timeout(timeout=within_s) from exc
        finally:
            self._waiting.pop(query.id, None)
        response = dns.message.from_wire(data, keyring=None, request_mac=b"", one_rr_per_rrset=False,
                                         ignore_trailing=True, raise_on_truncation=False)
        if response.flags & dns.flags.TC:
            return await dns.asyncquery.tcp(query, self.address, timeout=within_s, port=self.port)
        return response

    def close(self) -> None:
        """Close the socket; questions still waiting fail."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        # An answer nobody waits for (late, or not for us) is dropped, as a stub resolver drops it.
        if len(data) >= 2:
            waiting = self._waiting.get(int.from_bytes(data[:2], "big"))
            if waiting is not None and not waiting.done():
                waiting.set_result(data)

    def error_received(self, exc: Exception) -> None:
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(exc or ConnectionResetError("the name server's socket closed"))

    def _fail(self, exc: Exception) -> None:
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(OSError(str(exc)) if not isinstance(exc, OSError) else exc)

    async def _open(self) -> asyncio.DatagramTransport:
        async with self._opening:
            if self._transport is None:
                loop = asyncio.get_running_loop()
                await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.address, self.port))
            assert self._transport is not None
            return self._transport

    def _free_id(self) -> int:
        while True:
            candidate = self._ids.randrange(65536)
            if candidate not in self._waiting:
                return candidate
