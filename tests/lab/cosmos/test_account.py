"""The account's replication and failover on a clock the test moves: apply order, lag, what a planned
failover keeps and a forced one loses, Strong acknowledgement, and the ground truth of each."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drills.lab.clock import LabClock
from drills.lab.cosmos.account import AccountError, CosmosAccount
from drills.lab.groundtruth import GroundTruth, read
from drills.lab.topology import Topology


class _Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock(LabClock):
    """Lab time that moves only when the test says."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.t = 0.0
        self._due: list[tuple[float, int, _Handle, Callable[[], object]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.t

    def call_later(self, lab_seconds: float, callback: Callable[[], object]) -> Any:
        handle = _Handle()
        heapq.heappush(self._due, (self.t + max(0.0, lab_seconds), next(self._order), handle, callback))
        return handle

    def advance(self, seconds: float) -> None:
        end = self.t + seconds
        while self._due and self._due[0][0] <= end:
            when, _, handle, callback = heapq.heappop(self._due)
            self.t = max(self.t, when)
            if not handle.cancelled:
                callback()
        self.t = end


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def truth(tmp_path: Path, clock: FakeClock) -> Iterator[GroundTruth]:
    log = GroundTruth(tmp_path / "truth.jsonl", clock)
    yield log
    log.close()


def _account(clock: FakeClock, truth: GroundTruth, **cosmos: Any) -> CosmosAccount:
    topology = Topology.model_validate({"cosmos": {"lag": {"p50": "1s", "p99": "4s"}, **cosmos}})
    account = CosmosAccount(topology, clock=clock, ground_truth=truth, rng=random.Random(7))
    for i, location in enumerate(account.locations()):
        account.attach_endpoint(location, f"https://127.0.0.{11 + i}:4430{i}/")
    account.attach_global_endpoint("https://127.0.0.11:44310/")
    return account


def _events(truth: GroundTruth, name: str) -> list[dict[str, Any]]:
    return [e for e in read(truth.path) if e["event"] == name]


async def _write(account: CosmosAccount, doc_id: str, location: str = "East US") -> int:
    stored, _ = await account.write(location, {"id": doc_id, "pk": doc_id}, partition_key=doc_id, upsert=True)
    return stored.lsn


async def test_a_read_region_applies_writes_in_lsn_order_after_their_lag(
        clock: FakeClock, truth: GroundTruth) -> None:
    account = _account(clock, truth)
    assert account.write_region() == "East US"
    for i in range(200):
        await _write(account, f"doc-{i}")
        clock.advance(0.1 if i % 2 else 9.9)  # pairs of writes share a lag (drawn every 2 x p99 = 8 s)
    assert account.lsn("East US") == 200
    seen = []
    while account.lsn("West Europe") < 200:
        clock.advance(0.5)
        seen.append(account.lsn("West Europe"))
    assert seen == sorted(seen)
    applies = _events(truth, "cosmos_apply")
    ranges = [tuple(e["lsns"]) for e in applies]
    assert [first for first, _ in ranges] == [1] + [last + 1 for _, last in ranges[:-1]]
    commits = {e["lsn"]: e["lab"] for e in _events(truth, "cosmos_write")}
    lags = sorted(e["lab"] - commits[lsn] for e in applies for lsn in range(e["lsns"][0], e["lsns"][1] + 1))
    # Log-normal with p50 1 s; applying in order only delays a write, never hastens it.
    assert 0.8 < lags[len(lags) // 2] < 1.25
    assert 2.5 < lags[int(len(lags) * 0.99)] < 6.0
    assert lags[0] >= 0.0


async def test_a_planned_failover_catches_up_first_and_loses_nothing(
        clock: FakeClock, truth: GroundTruth) -> None:
    account = _account(clock, truth)
    for i in range(20):
        await _write(account, f"doc-{i}")
    change = asyncio.create_task(account.failover_priority_change({"westeurope": 0, "East US": 1}))
    await asyncio.sleep(0)
    late = asyncio.create_task(_write(account, "late"))
    await asyncio.sleep(0)
    assert account.write_region() == "East US"
    assert not late.done()  # writes wait while Europe catches up
    clock.advance(60)
    await change
    with pytest.raises(AccountError) as refused:
        await late
    assert (refused.value.status, refused.value.substatus) == (403, 3)
    assert account.write_region() == "West Europe"
    assert all(account.read("West Europe", f"doc-{i}") is not None for i in range(20))
    assert await _write(account, "after", "West Europe") == 21
    [moved] = _events(truth, "cosmos_write_region")
    assert (moved["location"], moved["previous"], moved["reason"]) == ("West Europe", "East US", "planned")
    assert _events(truth, "cosmos_lost") == []
    described = account.describe()
    assert described["writeLocations"][0]["locationName"] == "West Europe"
    assert [p["locationName"] for p in described["failoverPolicies"]] == ["West Europe", "East US"]


@pytest.mark.parametrize("priorities", [
    {"West Europe": 0},
    {"West Europe": 0, "East US": 0},
    {"West Europe": 1, "East US": 2},
    {"West Europe": 0, "East US": 1, "Mars": 2},
])
async def test_failover_priorities_must_be_unique_complete_and_start_at_zero(
        clock: FakeClock, truth: GroundTruth, priorities: dict[str, int]) -> None:
    account = _account(clock, truth)
    with pytest.raises(AccountError) as refused:
        await account.failover_priority_change(priorities)
    assert refused.value.status == 400
    assert account.write_region() == "East US"


async def test_a_forced_outage_of_the_write_region_loses_exactly_the_writes_not_yet_applied(
        clock: FakeClock, truth: GroundTruth) -> None:
    account = _account(clock, truth)
    for i in range(10):
        await _write(account, f"old-{i}")
    clock.advance(120)  # every old write reached Europe
    for i in range(7):
        await _write(account, f"new-{i}")
    changes: list[tuple[str, bool]] = []

    async def listen(location: str, online: bool) -> None:
        changes.append((location, online))
    account.on_region_change(listen)
    await account.offline_region("East US")
    assert changes == [("East US", False)]
    assert account.write_region() == "West Europe"
    [lost] = _events(truth, "cosmos_lost")
    assert lost["ids"] == [f"new-{i}" for i in range(7)]
    assert lost["lsns"] == list(range(11, 18))
    assert lost["acknowledged"] == 7
    clock.advance(120)
    assert all(account.read("West Europe", f"new-{i}") is None for i in range(7))
    assert await _write(account, "after", "West Europe") == 18  # lost LSNs are never reused
    await account.online_region("East US")
    assert account.read("East US", "new-0") is None  # not resurrected
    assert account.read("East US", "after") is not None
    assert account.write_region() == "West Europe"
    states = [(e["location"], e["state"]) for e in _events(truth, "cosmos_region")]
    assert states == [("East US", "offline"), ("East US", "online")]
    with pytest.raises(AccountError) as refused:
        await _write(account, "to-the-old-region", "East US")
    assert (refused.value.status, refused.value.substatus) == (403, 3)


async def test_strong_acknowledges_a_write_only_once_every_online_region_has_it(
        clock: FakeClock, truth: GroundTruth) -> None:
    account = _account(clock, truth, consistency="Strong")
    pending = asyncio.create_task(_write(account, "a"))
    await asyncio.sleep(0)
    assert not pending.done()
    clock.advance(120)
    await asyncio.sleep(0)
    assert pending.done()
    unacknowledged = asyncio.create_task(_write(account, "b"))
    await asyncio.sleep(0)
    await account.offline_region("East US")
    with pytest.raises(AccountError):
        await unacknowledged
    [lost] = _events(truth, "cosmos_lost")
    assert (lost["ids"], lost["acknowledged"]) == (["b"], 0)


async def test_the_last_online_region_cannot_go_offline(clock: FakeClock, truth: GroundTruth) -> None:
    account = _account(clock, truth)
    await account.offline_region("West Europe")
    with pytest.raises(AccountError, match="last online"):
        await account.offline_region("East US")
    assert account.describe()["readLocations"][0]["locationName"] == "East US"
    assert len(account.describe()["readLocations"]) == 1

