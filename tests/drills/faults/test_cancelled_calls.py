"""A fault cancelled mid-request (Ctrl-C, a guard, a failing sibling in a ``parallel``) must not have
its undo overtaken by the request it had on the wire: the client's call runs in a worker thread that
cancelling cannot stop, so the call returns only once that request is done."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client as k8s

from drills.faults.kube import call
from drills.targets import Kube, RateLimits


async def test_a_cancelled_call_returns_only_once_its_request_is_done() -> None:
    executor = ThreadPoolExecutor(max_workers=4)
    kube = Kube(k8s.ApiClient(), RateLimits(), executor)
    landed: list[str] = []
    sent = threading.Event()

    def cordon(*, _request_timeout: object) -> None:
        sent.set()
        time.sleep(0.3)  # the API server takes its time: the request is on the wire
        landed.append("cordon")

    try:
        inject = asyncio.create_task(call(kube, cordon, what="cordon node us/node-1"))
        assert await asyncio.to_thread(sent.wait, 5.0)
        inject.cancel()
        await asyncio.gather(inject, return_exceptions=True)
        assert inject.cancelled()
        landed.append("uncordon")  # the undo goes out now
        assert landed == ["cordon", "uncordon"]
    finally:
        kube.api_client.close()
        executor.shutdown(wait=True)
