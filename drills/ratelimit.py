"""Client-side rate limits: what keeps a fault acting on many objects within an API's limits.

Neither the Python Kubernetes client nor the Azure SDKs limit their own rate, so every call a fault or
probe makes goes through a :class:`RateLimiter`: a token bucket (sustained rate and burst) and a cap on
requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType


class TokenBucket:
    """An asyncio token bucket: ``await acquire()`` returns when a request may be sent."""

    def __init__(self, qps: float, burst: int) -> None:
        self._qps = qps
        self._burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._qps)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._qps)


class RateLimiter:
    """``async with limiter:`` around one request: at most ``in_flight`` at once, ``qps`` sustained."""

    def __init__(self, *, qps: float, burst: int, in_flight: int) -> None:
        self._bucket = TokenBucket(qps, burst)
        self._slots = asyncio.Semaphore(in_flight)

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        try:
            await self._bucket.acquire()
        except BaseException:
            self._slots.release()
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._slots.release()
