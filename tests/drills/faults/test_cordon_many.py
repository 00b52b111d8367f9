"""cordon-zone on a zone of 40 nodes: concurrent, yet within the client-side rate limit.

Prints what it measured (run with ``-s`` to see it): the time to cordon and to uncordon the zone
with a deliberately tight limit, and with drill's defaults.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import V1Node, V1ObjectMeta

from drills.clock import ScenarioClock
from drills.environment import load_environment
from drills.faults.nodes import CordonZone
from drills.targets import Kube, RateLimits, Targets

pytestmark = pytest.mark.lab

EXTRA_NODES = 40


class _Meter:
    """Wraps a region's ``Kube.call`` to record when each request really went out, and how many at once."""

    def __init__(self, kube: Kube) -> None:
        self.starts: list[float] = []
        self.peak = 0
        self._running = 0
        self._lock = threading.Lock()
        original = kube.call

        async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            def measured(*a: Any, **kw: Any) -> Any:
                with self._lock:
                    self.starts.append(time.monotonic())
                    self._running += 1
                    self.peak = max(self.peak, self._running)
                try:
                    return fn(*a, **kw)
                finally:
                    with self._lock:
                        self._running -= 1
            return await original(measured, *args, **kwargs)

        kube.call = call  # type: ignore[method-assign]

    def most_in_any_second(self) -> int:
        return max(sum(1 for s in self.starts if t <= s < t + 1.0) for t in self.starts)


async def _cordon_and_back(env_file: Any, limits: RateLimits) -> tuple[float, float, _Meter]:
    env = load_environment(env_file)
    targets = Targets(env, ScenarioClock(env.time_scale), limits=limits)
    try:
        meter = _Meter(targets.kube("us"))
        fault = CordonZone(CordonZone.Params(cluster="us", zone="zone-big"))
        undo = await fault.prepare(targets)
        assert len(undo.data["nodes"]) == EXTRA_NODES
        t0 = time.monotonic()
        await fault.inject(targets, undo)
        t1 = time.monotonic()
        await fault.revert(targets, undo)
        t2 = time.monotonic()
        kube = targets.kube("us")
        listed = await kube.call(kube.core.list_node, label_selector="topology.kubernetes.io/zone=zone-big")
        assert not any(n.spec and n.spec.unschedulable for n in listed.items)
        return t1 - t0, t2 - t1, meter
    finally:
        targets.close()


async def test_a_large_zone_is_cordoned_concurrently_within_the_rate_limit(lab: Any) -> None:
    env = load_environment(lab.environment_file)
    # The test's own set-up is not what is measured: it may go as fast as the lab takes it.
    setup = Targets(env, ScenarioClock(env.time_scale), limits=RateLimits(qps=1000.0, burst=1000))
    kube = setup.kube("us")
    names = [f"big-{i:02d}" for i in range(EXTRA_NODES)]
    await asyncio.gather(*(kube.call(kube.core.create_node, V1Node(metadata=V1ObjectMeta(
        name=name, labels={"topology.kubernetes.io/zone": "zone-big"}))) for name in names))
    try:
        tight = RateLimits(qps=50.0, burst=10, in_flight=8)
        cordon_s, uncordon_s, meter = await _cordon_and_back(lab.environment_file, tight)
        # 40 patches after a burst of 10 at 50/s cannot take less than 0.6 s ...
        assert cordon_s >= (EXTRA_NODES - tight.burst) / tight.qps * 0.95
        assert meter.most_in_any_second() <= tight.burst + tight.qps
        # ... and they were sent side by side, up to the in-flight cap, not one after another.
        assert 1 < meter.peak <= tight.in_flight
        default_cordon_s, default_uncordon_s, default_meter = await _cordon_and_back(
            lab.environment_file, RateLimits())
        print(f"\ncordon-zone, {EXTRA_NODES} nodes: qps 50/burst 10/in-flight 8: cordon {cordon_s:.2f}s, "
              f"uncordon {uncordon_s:.2f}s, peak {meter.peak} in flight, at most "
              f"{meter.most_in_any_second()} requests in any second; "
              "defaults (qps 20/burst 40/in-flight 16): "
              f"cordon {default_cordon_s:.2f}s, uncordon {default_uncordon_s:.2f}s, "
              f"peak {default_meter.peak} in flight")
    finally:
        await asyncio.gather(*(kube.call(kube.core.delete_node, name) for name in names))
        setup.close()
