"""Offered load: the users' requests per second, sent where Traffic Manager sends them, TTL-delayed.

Each region's users send ``load`` requests/s (the topology's regions) to the endpoint their cached DNS
answer names. Their caches are at uniformly random phases of the TTL, so at lab time ``t`` a user's
answer is the one Traffic Manager gave at their last refresh, a uniformly random instant of
``(t - TTL, t]``: the share of users on endpoint ``e`` is the time average of ``e``'s routing share
over the last TTL. When the answer moves at ``t0``, the moved share grows linearly from 0 at ``t0`` to
1 at ``t0 + TTL``. A routing share is 1 for the answer of Priority routing, the weight's share for
Weighted; with no endpoint enabled (NXDOMAIN) the users' requests go nowhere. Each region's users
follow the answer THEY get (:meth:`OfferedLoad.moved` with ``users``): with Priority and Weighted
routing every region's users get the same, with Performance and Geographic routing the answer depends
on where they are (US users may move to Europe while Europe's users stay), so the load a region is
offered is the sum over every region's users of their ``load`` times their share on it.

Past a region's capacity (Ready app pods x the app's ``capacity``), each request fails with the
probability ``1 - capacity/offered``: the share an overloaded service sheds. Probes are requests too:
Traffic Manager's and drill's are shed alike.

Ground truth: ``load`` (region, offered, capacity, ready, serving, failing) for every region when the
lab starts following Traffic Manager, when the DNS answer moves, when a region's Ready app pods or its
ingress's serving state change, and every tenth of the TTL while a shift is under way (at most 10
lines per region per move). ``offered`` and ``capacity`` are requests/s (``capacity`` null:
unlimited), ``serving`` the ingress's state (``serving``, ``unavailable``: no app pod, ``blackhole``:
no controller pod), ``failing`` the share of the users' requests there that fail (0 to 1; all of them
unless ``serving``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth
from drills.lab.topology import Topology

Shares = dict[str, float]
"""Endpoint name -> share of the users' queries answered with it (sums to 1, or empty: NXDOMAIN)."""

SHIFT_STEPS = 10
"""Ground-truth ``load`` lines per region while a shift runs its TTL."""


@dataclass(frozen=True)
class RegionLoad:
    """One region's load now."""

    offered: float
    """Requests per second sent to the region."""
    capacity: float | None
    """Requests per second its Ready app pods serve (None: unlimited)."""
    ready: int
    """Ready app pods."""
    serving: str = "serving"
    """The ingress's serving state (:data:`drills.lab.ingress.ServingState`)."""

    @property
    def shed(self) -> float:
        """The share of requests the app sheds for want of capacity (0 to 1)."""
        if self.capacity is None or self.offered <= self.capacity:
            return 0.0
        return 1.0 - self.capacity / self.offered

    @property
    def failing(self) -> float:
        """The share of the users' requests that fail: every one unless the ingress serves."""
        return self.shed if self.serving == "serving" else 1.0


class OfferedLoad:
    """Where the users' load goes: follows Traffic Manager's answers, shifting over the TTL."""

    def __init__(self, topology: Topology, *, clock: LabClock,
                 ground_truth: GroundTruth | None = None) -> None:
        self._clock = clock
        self._ground_truth = ground_truth
        self._ttl = float(topology.traffic_manager.ttl)
        self._users = {region: r.load for region, r in topology.regions.items()}
        """Requests per second each region's users send."""
        self._per_pod = {region: topology.app_in(region).capacity for region in topology.regions}
        self._history: dict[str, list[tuple[float, Shares]]] = {}
        """Per region's users: (lab time, routing shares from then on), oldest first; pruned to the
        last TTL."""
        self._status: dict[str, Callable[[], tuple[str, int]]] = {}
        self._recorded: dict[str, tuple[float, float | None, int, str, float]] = {}
        self._shift: asyncio.Task[None] | None = None

    def add_region(self, region: str, status: Callable[[], tuple[str, int]]) -> None:
        """Let the region's ingress tell its serving state and how many Ready app pods it sends to."""
        self._status[region] = status

    def follow(self, shares: Shares, *, users: str | None = None) -> None:
        """Start from Traffic Manager's routing shares now for region ``users``'s users (every region's
        if None), as if they had always had them."""
        for region in self._whose(users):
            self._history[region] = [(float("-inf"), dict(shares))]
        self.record()

    def follow_each(self, routes: Mapping[str, Shares]) -> None:
        """Start from Traffic Manager's routing shares now for each region's users (``routes``: region ->
        the shares of the answer its users get), as if they had always had them."""
        for users, shares in routes.items():
            self._history[self._whose(users)[0]] = [(float("-inf"), dict(shares))]
        self.record()

    def moved(self, shares: Shares, *, at: float | None = None, users: str | None = None) -> None:
        """Traffic Manager's answer to region ``users``'s users (every region's if None) changed at lab
        time ``at`` (now if None): they follow as their caches expire."""
        self.moved_each({region: shares for region in self._whose(users)}, at=at)

    def moved_each(self, routes: Mapping[str, Shares], *, at: float | None = None) -> None:
        """The answers to some regions' users changed at lab time ``at`` (now if None): ``routes`` maps
        each of those regions to the shares its users get now; they follow as their caches expire."""
        now = self._clock.now() if at is None else at
        for region, shares in routes.items():
            self._whose(region)  # a region with no users is a KeyError
            self._history.setdefault(region, []).append((now, dict(shares)))
            self._prune(region, now)
        self.record()
        if self._shift is not None:
            self._shift.cancel()
        if self._ttl > 0 and self._ground_truth is not None:
            self._shift = asyncio.create_task(self._record_shift(now), name="offered load shift")

    async def close(self) -> None:
        """Stop recording a shift under way."""
        if self._shift is not None:
            self._shift.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shift
            self._shift = None

    def shares(self, at: float | None = None, *, users: str | None = None) -> Shares:
        """The share of region ``users``'s users on each endpoint at lab time ``at`` (now if None);
        ``users`` None: of every region's users, weighted by the load they send."""
        t = self._clock.now() if at is None else at
        if users is not None:
            return self._shares(self._history.get(users, []), t)
        total = sum(self._users[r] for r in self._history)
        result: Shares = {}
        for region, history in self._history.items():
            weight = self._users[region] / total if total else 1 / len(self._history)
            for name, share in self._shares(history, t).items():
                result[name] = result.get(name, 0.0) + weight * share
        return result

    def offered(self, region: str, at: float | None = None) -> float:
        """Requests per second the users send to ``region``'s endpoint at ``at`` (now if None)."""
        t = self._clock.now() if at is None else at
        return sum(self._users[users] * self._shares(history, t).get(region, 0.0)
                   for users, history in self._history.items())

    def _shares(self, history: list[tuple[float, Shares]], t: float) -> Shares:
        """The share on each endpoint at ``t`` of users whose answers were ``history``."""
        if not history:
            return {}
        if self._ttl <= 0:
            return dict(next((s for since, s in reversed(history) if since <= t), {}))
        start = t - self._ttl
        result: Shares = {}
        for i, (since, routed) in enumerate(history):
            until = history[i + 1][0] if i + 1 < len(history) else t
            overlap = min(until, t) - max(since, start)
            if overlap <= 0:
                continue
            for name, share in routed.items():
                result[name] = result.get(name, 0.0) + share * overlap / self._ttl
        return result

    def _whose(self, users: str | None) -> list[str]:
        """The regions whose users ``users`` names (every region's if None)."""
        if users is None:
            return list(self._users)
        if users not in self._users:
            raise KeyError(f"no region {users!r} has users")
        return [users]

    def region_load(self, region: str) -> RegionLoad:
        """``region``'s offered load, capacity and Ready app pods now."""
        serving, ready = self._status[region]() if region in self._status else ("blackhole", 0)
        per_pod = self._per_pod.get(region)
        return RegionLoad(offered=self.offered(region), ready=ready, serving=serving,
                          capacity=None if per_pod is None else ready * per_pod)

    def record(self, region: str | None = None) -> None:
        """Write a ``load`` line for ``region`` (every region if None) whose load changed."""
        if self._ground_truth is None or not self._history:
            return
        for name in [region] if region is not None else list(self._status):
            load = self.region_load(name)
            # 0.1 request/s and 0.1% are below anything a probe can tell apart: no line for less.
            state = (round(load.offered, 1), None if load.capacity is None else round(load.capacity, 1),
                     load.ready, load.serving, round(load.failing, 3))
            if self._recorded.get(name) != state:
                self._recorded[name] = state
                self._ground_truth.record("load", region=name, offered=state[0], capacity=state[1],
                                          ready=state[2], serving=state[3], failing=state[4])

    async def _record_shift(self, began: float) -> None:
        for step in range(1, SHIFT_STEPS + 1):
            delay = began + self._ttl * step / SHIFT_STEPS - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            self.record()

    def _prune(self, users: str, now: float) -> None:
        """Drop what no cache of region ``users``'s users can hold any more: changes followed by another
        before ``now - TTL``."""
        start = now - self._ttl
        history = self._history[users]
        while len(history) > 1 and history[1][0] <= start:
            del history[0]
