"""The official ``kubernetes`` Python client in the API server tests: it is synchronous, so its calls run
in worker threads while the server runs on the test's event loop, as it runs on the lab's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` (a client method) in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)
