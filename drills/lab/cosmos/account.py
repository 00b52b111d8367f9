"""The lab's Cosmos DB account: every region's copy of the data, replication between them, failover.

One :class:`CosmosAccount` holds the whole account, driven by the lab clock. Writes commit in the
write region (log sequence number ``n``, at a lab instant); each other online region applies them at
commit + the lag of its replication stream, in LSN order: a region never applies ``n+1`` before
``n``. The stream's lag follows the topology's log-normal (``cosmos.lag``), drawn afresh now and then
(:data:`_LAG_HOLD_P99S`) so that ordering does not inflate it. The consistency level decides what a
write's acknowledgement waits for (Strong: every online region has applied it) and what a read may see
(Session: the server compares a region's LSN with the request's session token; see
:mod:`drills.lab.cosmos.server`).

Failover as the service does it:

- :meth:`CosmosAccount.failover_priority_change` (planned): writes pause, the new write region
  catches up on every committed write, then takes over; nothing is lost. The old write region then
  answers writes with 403 substatus 3.
- :meth:`CosmosAccount.offline_region` (forced): the region stops serving at once. If it held the
  writes, the next online region by priority takes them over at once, and the writes it had not yet
  applied are LOST: never applied anywhere, recorded in the ground truth.
- :meth:`CosmosAccount.online_region`: the region returns as a read region with a copy of the write
  region's data (writes lost in it are not resurrected).

Locations are named as the account names them (``East US``); the failover methods also take ARM's
compact form (``eastus``). Taking an offline location offline, or an online one online, changes
nothing. Bounded staleness reads as consistent prefix does: the lab does not throttle writes when a
region falls further behind than the bound.

The ARM surface reads :meth:`CosmosAccount.describe` (the account's ARM ``properties``). The REST
servers follow region changes through :meth:`CosmosAccount.on_region_change`.

Ground truth, one line each: ``cosmos_write`` (id, lsn, location, region; the line's time is the
commit), ``cosmos_apply`` (location, region, ``lsns: [first, last]`` applied at that instant),
``cosmos_write_region`` (location, previous, reason ``planned|forced``), ``cosmos_region`` (location,
state ``online|offline``), ``cosmos_lost`` (location that lost them, lsns, ids, how many had been
acknowledged).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drills.errors import LabError
from drills.lab.clock import LabClock
from drills.lab.groundtruth import GroundTruth
from drills.lab.topology import Topology

RegionListener = Callable[[str, bool], Awaitable[None]]
"""Called with a location and whether it is now online, after the account changed it."""

BOUNDED_STALENESS_PREFIX = 100_000
BOUNDED_STALENESS_INTERVAL_S = 300
"""Bounded staleness of a multi-region account: at least 100,000 writes or 300 s (the service's minimum)."""
_LAG_HOLD_P99S = 2.0
"""A region's lag is drawn afresh at most every 2 x p99: drawn per write, applying in LSN order would make
every write wait for the slowest draw of the writes just before it, and at 200 writes/s the realised
median would be near the p99. Held this long, the realised p50 stays the topology's and the p99 within
about 10% below it, at any write rate (a simulation at 1 to 1,000 writes/s)."""
DEFAULT_STALENESS_PREFIX = 100
DEFAULT_STALENESS_INTERVAL_S = 5
"""What ARM reports for the staleness bounds when the level is not BoundedStaleness."""


class AccountError(LabError):
    """A request the account refuses, with the HTTP status (and substatus) the service answers it with."""

    def __init__(self, message: str, *, status: int, code: str, substatus: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.substatus = substatus


def _not_write_region(location: str) -> AccountError:
    return AccountError(f"The requested operation cannot be performed at this region ({location}): it is not "
                        "the account's write region.", status=403, code="Forbidden", substatus=3)


@dataclass(frozen=True, slots=True)
class Document:
    """One stored version of a document; shared between regions (never changed in place)."""

    id: str
    partition_key: Any
    body: bytes
    """The whole document as JSON, system properties included: served as it is."""
    lsn: int
    etag: str
    ts: int


@dataclass(slots=True)
class _Write:
    """A committed write on its way to the other regions."""

    lsn: int
    document: Document
    acknowledged: bool = False


@dataclass(eq=False)
class _Region:
    """One location's copy of the data."""

    location: str
    region: str
    """The lab region it belongs to (``us``)."""
    online: bool = True
    documents: dict[str, Document] = field(default_factory=dict)
    lsn: int = 0
    """The last LSN applied here."""
    pending: deque[tuple[float, _Write]] = field(default_factory=deque)
    """Writes due here (lab time of apply, write), in LSN order, hence in time order."""
    last_due: float = 0.0
    lag: float = 0.0
    """The replication stream's current lag (lab seconds), drawn afresh at ``lag_until``."""
    lag_until: float = -1.0
    timer: asyncio.TimerHandle | None = None
    endpoint: str | None = None
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    """Who waits for this region to reach an LSN (a planned failover's catch-up)."""

    def stop_replication(self) -> list[_Write]:
        """Forget what was due here; what was pending, oldest first."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        dropped = [write for _, write in self.pending]
        self.pending.clear()
        return dropped


class CosmosAccount:
    """One Cosmos DB account over the topology's regions (see the module docstring)."""

    def __init__(self, topology: Topology, *, clock: LabClock, ground_truth: GroundTruth,
                 rng: random.Random | None = None) -> None:
        settings = topology.cosmos
        self.name = settings.account
        self.database = settings.database
        self.container = settings.container
        self.partition_key_path = settings.partition_key
        self.consistency = settings.consistency
        self.primary_key = base64.b64encode(secrets.token_bytes(64)).decode("ascii")
        """The account's primary master key (base64, as the service gives it)."""
        self._clock = clock
        self._truth = ground_truth
        self._rng = rng or random.Random()
        self._lag = settings.lag
        order = topology.cosmos_failover_order()
        self._regions = {topology.cosmos_location(r): _Region(topology.cosmos_location(r), r) for r in order}
        self._priorities = {location: i for i, location in enumerate(self._regions)}
        self._write = next(iter(self._regions))
        self._global_endpoint: str | None = None
        self._lsn = 0
        self._strong: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._writes_open = asyncio.Event()
        self._writes_open.set()
        self._changing = asyncio.Lock()
        self._updating = False
        self._listeners: list[RegionListener] = []
        rid = secrets.token_bytes(8)
        self.database_rid = _rid(rid[:4])
        self.container_rid = _rid(rid)
        self._rid_prefix = rid
        self.created_ts = int(clock.wall().timestamp())
        """The database's and container's ``_ts``: created as the lab started, on the lab's wall clock."""

    # --- what the account is -------------------------------------------------------------------

    def locations(self) -> list[str]:
        """Every location of the account, in failover priority order (the write region's first)."""
        return sorted(self._regions, key=self._priorities.__getitem__)

    def write_region(self) -> str:
        """The location that takes writes now."""
        return self._write

    def is_online(self, location: str) -> bool:
        return self._region(location).online

    def online_locations(self) -> list[str]:
        """The locations serving now, in failover priority order."""
        return [loc for loc in self.locations() if self._regions[loc].online]

    def region_of(self, location: str) -> str:
        """The lab region (``us``) of a location (``East US``)."""
        return self._region(location).region

    def location_of(self, region: str) -> str:
        """The location (``East US``) of a lab region (``us``)."""
        for location, state in self._regions.items():
            if state.region == region:
                return location
        raise KeyError(region)

    def lsn(self, location: str) -> int:
        """The last LSN applied in ``location``."""
        return self._region(location).lsn

    @property
    def committed_lsn(self) -> int:
        """The last LSN committed in any write region."""
        return self._lsn

    def attach_endpoint(self, location: str, url: str) -> None:
        """Record where ``location``'s REST endpoint listens (the server calls this as it starts)."""
        self._region(location).endpoint = url

    def endpoint(self, location: str) -> str:
        """The REST endpoint URL of ``location`` (``https://address:port/``)."""
        url = self._region(location).endpoint
        if url is None:
            raise LabError(f"Cosmos DB location {location!r} has no endpoint yet")
        return url

    def attach_global_endpoint(self, url: str) -> None:
        """Record where the account's global endpoint listens (the server calls this as it starts)."""
        self._global_endpoint = url

    @property
    def global_endpoint(self) -> str:
        """The account's endpoint (``https://<account>.documents.azure.com:443/`` in Azure), where
        clients start: it serves as the write region does and never goes offline."""
        if self._global_endpoint is None:
            raise LabError("the Cosmos DB account has no global endpoint yet")
        return self._global_endpoint

    def describe(self) -> dict[str, Any]:
        """The account's ARM ``properties`` (``Microsoft.DocumentDB/databaseAccounts``): every location in
        ``locations`` and ``failoverPolicies``, the online ones in ``readLocations``, the write region in
        ``writeLocations``."""
        def location(loc: str) -> dict[str, Any]:
            return {"id": self._location_id(loc), "locationName": loc, "documentEndpoint": self.endpoint(loc),
                    "provisioningState": "Succeeded", "failoverPriority": self._priorities[loc],
                    "isZoneRedundant": False}
        bounded = self.consistency == "BoundedStaleness"
        return {
            "provisioningState": "Updating" if self._updating else "Succeeded",
            "documentEndpoint": self.global_endpoint,
            "databaseAccountOfferType": "Standard",
            "consistencyPolicy": {
                "defaultConsistencyLevel": self.consistency,
                "maxStalenessPrefix": BOUNDED_STALENESS_PREFIX if bounded else DEFAULT_STALENESS_PREFIX,
                "maxIntervalInSeconds": (BOUNDED_STALENESS_INTERVAL_S if bounded
                                         else DEFAULT_STALENESS_INTERVAL_S),
            },
            "enableAutomaticFailover": False,
            "enableMultipleWriteLocations": False,
            "locations": [location(loc) for loc in self.locations()],
            "readLocations": [location(loc) for loc in self.online_locations()],
            "writeLocations": [location(self._write)],
            "failoverPolicies": [{"id": self._location_id(loc), "locationName": loc,
                                  "failoverPriority": self._priorities[loc]} for loc in self.locations()],
        }

    def on_region_change(self, listener: RegionListener) -> None:
        """Have ``listener(location, online)`` awaited after a location goes offline or comes online."""
        self._listeners.append(listener)

    # --- data ------------------------------------------------------------------------------------

    def read(self, location: str, doc_id: str) -> Document | None:
        """The document as ``location`` has it now (None: not there, or not yet)."""
        return self._region(location).documents.get(doc_id)

    def documents(self, location: str) -> list[Document]:
        """Every document ``location`` has now."""
        return list(self._region(location).documents.values())

    async def write(self, location: str, document: Mapping[str, Any], *, partition_key: Any,
                    upsert: bool) -> tuple[Document, bool]:
        """Commit a create (``upsert`` False) or upsert sent to ``location``; the stored document and
        whether it was created. Returns once the consistency level acknowledges it (Strong: every online
        region has applied it). AccountError 403/3 when ``location`` does not take writes, 409 when a
        create finds the id taken."""
        await self._writes_open.wait()  # a planned failover is moving the write region
        if location != self._write:
            raise _not_write_region(location)
        region = self._regions[location]
        doc_id = str(document["id"])
        existing = region.documents.get(doc_id)
        if existing is not None and not upsert:
            raise AccountError("Entity with the specified id already exists in the system.", status=409,
                               code="Conflict")
        self._lsn += 1
        lsn = self._lsn
        stored = self._document(document, doc_id, partition_key, lsn)
        region.documents[doc_id] = stored
        region.lsn = lsn
        write = _Write(lsn, stored)
        self._truth.record("cosmos_write", id=doc_id, lsn=lsn, location=location, region=region.region)
        self._replicate(write)
        if self.consistency == "Strong" and any(r.online and r.lsn < lsn for r in self._regions.values()):
            done = asyncio.get_running_loop().create_future()
            self._strong.append((lsn, done))
            await done
        write.acknowledged = True
        return stored, existing is None

    def _document(self, document: Mapping[str, Any], doc_id: str, partition_key: Any, lsn: int) -> Document:
        rid = _rid(self._rid_prefix + lsn.to_bytes(8, "big"))
        etag = f'"{uuid.uuid4()}"'
        ts = int(self._clock.wall().timestamp())
        body = {**document, "id": doc_id, "_rid": rid,
                "_self": f"dbs/{self.database_rid}/colls/{self.container_rid}/docs/{rid}/",
                "_etag": etag, "_attachments": "attachments/", "_ts": ts}
        encoded = json.dumps(body, separators=(",", ":")).encode()
        return Document(doc_id, partition_key, encoded, lsn, etag, ts)

    def _replicate(self, write: _Write) -> None:
        now = self._clock.now()
        for region in self._regions.values():
            if region.location == self._write or not region.online:
                continue
            if now >= region.lag_until:
                region.lag = self._sample_lag()
                region.lag_until = now + _LAG_HOLD_P99S * self._lag.p99
            due = max(now + region.lag, region.last_due)
            region.last_due = due
            region.pending.append((due, write))
            if region.timer is None:
                region.timer = self._clock.call_later(due - now, lambda r=region: self._apply_due(r))

    def _sample_lag(self) -> float:
        if self._lag.p50 == 0:
            return 0.0
        return self._rng.lognormvariate(self._lag.mu, self._lag.sigma)

    def _apply_due(self, region: _Region) -> None:
        """Apply every write now due in ``region``, in LSN order, as one ground-truth event."""
        region.timer = None
        now = self._clock.now()
        first = 0
        while region.pending and region.pending[0][0] <= now:
            _, write = region.pending.popleft()
            region.documents[write.document.id] = write.document
            region.lsn = write.lsn
            first = first or write.lsn
        if first:
            self._truth.record("cosmos_apply", location=region.location, region=region.region,
                               lsns=[first, region.lsn])
        if region.pending:
            region.timer = self._clock.call_later(region.pending[0][0] - now, lambda: self._apply_due(region))
        self._wake(region)
        self._release_strong()

    def _wake(self, region: _Region) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for lsn, waiter in region.waiters:
            if region.lsn >= lsn and not waiter.done():
                waiter.set_result(None)
            elif not waiter.done():
                still.append((lsn, waiter))
        region.waiters = still

    def _release_strong(self) -> None:
        """Acknowledge the Strong writes every online region has applied."""
        if not self._strong:
            return
        floor = min(r.lsn for r in self._regions.values() if r.online)
        while self._strong and self._strong[0][0] <= floor:
            _, done = self._strong.popleft()
            if not done.done():
                done.set_result(None)

    # --- failover --------------------------------------------------------------------------------

    async def failover_priority_change(self, priorities: Mapping[str, int]) -> None:
        """Planned failover: set every location's failover priority; if the write region changes, writes
        pause until the new one has applied every committed write, then it takes them. AccountError 400
        for priorities that are not unique, miss a location, name an unknown one or have no 0."""
        priorities = {self._canonical(loc) or loc: p for loc, p in priorities.items()}
        self._check_priorities(priorities)
        target = next(loc for loc, p in priorities.items() if p == 0)
        async with self._changing:
            region = self._region(target)
            if not region.online:
                raise AccountError(f"Cannot make {target} the write region: it is offline.", status=400,
                                   code="BadRequest")
            if target != self._write:
                self._writes_open.clear()
                self._updating = True
                try:
                    if region.lsn < self._lsn:
                        waiter = asyncio.get_running_loop().create_future()
                        region.waiters.append((self._lsn, waiter))
                        await waiter
                    previous, self._write = self._write, target
                    self._truth.record("cosmos_write_region", location=target, previous=previous,
                                       region=region.region, reason="planned", lsn=self._lsn)
                finally:
                    self._updating = False
                    self._writes_open.set()
            self._priorities = dict(priorities)

    def _check_priorities(self, priorities: Mapping[str, int]) -> None:
        def refuse(message: str) -> AccountError:
            return AccountError(message, status=400, code="BadRequest")
        unknown = sorted(set(priorities) - set(self._regions))
        if unknown:
            raise refuse(f"Failover priorities name locations the account does not have: "
                         f"{', '.join(unknown)}.")
        missing = [loc for loc in self._regions if loc not in priorities]
        if missing:
            raise refuse(f"Failover priorities must give every location of the account a priority; missing: "
                         f"{', '.join(missing)}.")
        values = list(priorities.values())
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
            raise refuse("Failover priorities are whole numbers from 0.")
        if len(set(values)) != len(values):
            raise refuse("Failover priorities must be unique.")
        if 0 not in values:
            raise refuse("One location must have failover priority 0 (the write region).")

    async def offline_region(self, location: str) -> None:
        """Forced: ``location`` stops serving now. If it held the writes, the next online location by
        priority takes them at once and the writes it had not applied are lost."""
        async with self._changing:
            region = self._region(location)
            location = region.location
            if not region.online:
                return
            others = [self._regions[loc] for loc in self.online_locations() if loc != location]
            if not others:
                raise AccountError(f"Cannot take {location} offline: it is the account's last online "
                                   "location.", status=400, code="BadRequest")
            region.online = False
            region.stop_replication()
            self._fail_waiters(region, f"{location} went offline")
            self._truth.record("cosmos_region", location=location, region=region.region, state="offline")
            if location == self._write:
                self._force_write_region(others[0])
            self._release_strong()
        await self._announce(location, online=False)

    def _force_write_region(self, new: _Region) -> None:
        previous = self._regions[self._write]
        lost = new.stop_replication()
        lost_lsns = {w.lsn for w in lost}
        kept = new.lsn
        # The lost LSNs are skipped, never reused: a session token that saw one still reads the new region.
        new.lsn = self._lsn
        for other in self._regions.values():
            if other is new or other is previous or not other.online:
                continue
            if other.lsn > kept:  # it applied writes the new write region never will: copy the survivor
                other.stop_replication()
                other.documents = dict(new.documents)
                other.lsn = self._lsn
            else:
                remaining = [(due, w) for due, w in other.pending if w.lsn not in lost_lsns]
                other.pending = deque(remaining)
        if lost:
            self._truth.record("cosmos_lost", location=previous.location, region=previous.region,
                               lsns=[w.lsn for w in lost], ids=[w.document.id for w in lost],
                               acknowledged=sum(1 for w in lost if w.acknowledged))
        still: deque[tuple[int, asyncio.Future[None]]] = deque()
        for lsn, done in self._strong:
            if lsn in lost_lsns:
                if not done.done():
                    done.set_exception(AccountError("The write region went offline before the write reached "
                                                    "every region.", status=503, code="ServiceUnavailable"))
            else:
                still.append((lsn, done))
        self._strong = still
        self._write = new.location
        order = [new.location] + [loc for loc in self.locations() if loc != new.location]
        self._priorities = {loc: i for i, loc in enumerate(order)}
        self._truth.record("cosmos_write_region", location=new.location, previous=previous.location,
                           region=new.region, reason="forced", lsn=self._lsn)

    async def online_region(self, location: str) -> None:
        """``location`` serves again, as a read region holding a copy of the write region's data."""
        async with self._changing:
            region = self._region(location)
            location = region.location
            if region.online:
                return
            writer = self._regions[self._write]
            region.documents = dict(writer.documents)
            region.lsn = writer.lsn
            region.last_due = self._clock.now()
            region.online = True
            self._truth.record("cosmos_region", location=location, region=region.region, state="online",
                               lsn=region.lsn)
        await self._announce(location, online=True)

    async def _announce(self, location: str, *, online: bool) -> None:
        for listener in self._listeners:
            await listener(location, online)

    def _fail_waiters(self, region: _Region, why: str) -> None:
        for _, waiter in region.waiters:
            if not waiter.done():
                waiter.set_exception(AccountError(f"Failover stopped: {why}.", status=409, code="Conflict"))
        region.waiters = []

    def close(self) -> None:
        """Stop replicating; writes still waiting for Strong acknowledgement fail."""
        for region in self._regions.values():
            region.stop_replication()
            self._fail_waiters(region, "the account closed")
        for _, done in self._strong:
            if not done.done():
                done.set_exception(AccountError("The account closed.", status=503, code="ServiceUnavailable"))
        self._strong.clear()

    # --- helpers ---------------------------------------------------------------------------------

    def _canonical(self, location: str) -> str | None:
        """The account's name of ``location``, which ARM also writes without spaces in any case
        (``eastus`` for ``East US``); None for a location the account does not have."""
        if location in self._regions:
            return location
        wanted = location.replace(" ", "").lower()
        return next((loc for loc in self._regions if loc.replace(" ", "").lower() == wanted), None)

    def _region(self, location: str) -> _Region:
        try:
            return self._regions[location]
        except KeyError:
            canonical = self._canonical(location)
            if canonical is not None:
                return self._regions[canonical]
            raise AccountError(f"The account has no location {location!r} (it has "
                               f"{', '.join(self._regions)}).", status=404, code="NotFound") from None

    def _location_id(self, location: str) -> str:
        return f"{self.name}-{location.lower().replace(' ', '')}"


def _rid(raw: bytes) -> str:
    """A resource id as the service writes them: base64 with '-' for '/'."""
    return base64.b64encode(raw).decode("ascii").replace("/", "-")
