"""The replication probe: how far behind each Cosmos DB region is, and which acknowledged writes a failover
lost, measured with canary writes through the real ``azure-cosmos`` client.

A WRITER client writes sequence-numbered canaries ``{id: "<run prefix>-<seq>", pk: <run prefix>, seq,
written_at}`` into the environment's canary container at ``rate`` writes a second (scenario seconds;
default one per sample), from a ticker of its own on absolute deadlines: a write never waits for the one
before, and at most ``max_in_flight`` are pending (a tick past that is skipped and counted). Writes follow
the write region as the SDK does: it re-reads the account when a region answers 403 substatus 3 (a planned
failover). When the write region stops answering (a forced failover) the SDK would keep writing there
until its 5-minute account refresh; once the probe's own account read shows the writes moved while writes
went unanswered, it builds a new writer client, as an application restarting its client would, so
``write_failover_time`` includes up to one sample period of that detection.

One READER client per location, pinned there: ``preferred_locations=[it]`` and every other location
excluded, and no session token from the writer, since reading through the writer hides lag (its session
token makes a lagging region answer 404/1002 and the SDK retries in the write region). Each read is
checked to have been served by that location's endpoint (the SDK falls back to the write region when the
pinned one is unavailable); one that was not tells nothing and is dropped. Each sample the probe reads the
account (``GET /`` on the account endpoint, then each regional endpoint if that fails) for the write
region and the serving locations, then looks in every other serving location for the canaries not yet
seen there, the oldest ``reads`` of them in one query (``SELECT * FROM c WHERE c.id IN (...)``;
:mod:`probes.canaries` says what each read proves), and audits the write region after a failover for the
acknowledged canaries it never received, the same way. One query a region and sample, however many
canaries a second are written: a point read per canary would cost the probe as much CPU as the writes.

Credentials, never from the environment file: a lab's key file (``lab.cosmosKeyFile``), else the account
key in the environment variable ``cosmos.keyEnv``, else Microsoft Entra ID through
``DefaultAzureCredential`` (the identity needs the data-plane role "Cosmos DB Built-in Data
Contributor"). TLS trusts ``azure.caFile`` when the environment names one (through the transport's
session: the async client's ``ssl_config`` cannot take a CA bundle alone).

Sample values (durations in scenario seconds)::

    {"write_region": "us", "online": ["eu", "us"],
     "writes": [[17, 12.0, 12.01, "us"]],          # acknowledged since the last sample: seq, sent, acked,
                                                   # the region that acknowledged it
     "failed": [[18, 13.0, 23.0, "ServiceRequestError: ..."]],   # seq, sent, failed at, why
     "skipped": 0,                                 # ticks that started no write (too many in flight)
     "seen": {"eu": [[16, 0.42, 0.5]]},            # canaries first seen there: seq, lag, error
     "behind": {"eu": 1.2},                        # age of the oldest canary not yet seen there
     "audit": {"region": "eu", "found": [15], "missing": [16], "left": 0},
     "error": null}

A sample whose account read failed is blind (``blind``: why, :data:`probes.base.BLIND`): it has no
write region, lags or audit, only the writes that completed since the previous sample, each measured
on its own.

Signals: ``write_region`` (the region holding the writes, as the account says), ``lag.<region>`` (the
latest canary's lag there, or how long its oldest unseen canary has waited if that is longer),
``steady`` (the latest writes succeeded and every serving region has seen every canary older than
``steady_lag``).

Metrics: ``lag_p50.<region>``, ``lag_p99.<region>``, ``lag_max.<region>`` over the canaries acknowledged
before the incident (the steady state; the whole run when no fault was applied), unmeasured where no
canary was seen; the error bounds the percentile of the canaries' true lags (each lies within its own
error) plus the percentile's 95 % interval over the canaries;
``lost_writes``, the acknowledged canaries that the write region did not hold when last audited (the
measured RPO, exact when every canary was audited: the note says when some were not); ``write_availability``
(% of the write attempts sent after the incident started that were acknowledged), ``write_downtime`` (the
longest run of failed writes, from the first failed one's sending to the next acknowledged one's),
``write_failover_time`` (from the incident to the first write acknowledged by another region than the one
holding the writes before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from drills.azure import COSMOS_DATA, location_key, preload
from drills.environment import Environment
from drills.errors import DrillError
from drills.targets import Targets
from drills.units import Duration
from probes.base import BLIND, JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue
from probes.blindness import MetricWindow
from probes.canaries import Canary, CanaryLedger
from probes.timeline import Interval, Point, longest_failure, percentile, percentile_error, share, share_error
from reports.base import format_t, format_value

logging.getLogger("azure.cosmos.LocationCache").setLevel(logging.ERROR)
"""The SDK warns on every request it sends away from an unavailable region: in an outage that is every
write, on the drill's terminal; the probe's samples say what failed instead."""

MIN_REAL_TIMEOUT_S = 2.0
"""A request's timeout in real seconds is never shorter than this: on a fast lab clock 10 s is a third of a
real second, less than a busy machine may stall a process for."""


class ReplicationProbe(ProbeBase):
    """Canary writes in the write region, reads in every other one (see the module docstring)."""

    class Spec(BaseModel):
        """The replication probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

        rate: float | None = Field(default=None, gt=0)
        """Canary writes per second; none: one per sample."""
        regions: list[str] | None = None
        """The regions whose lag is measured; none: every region of the environment's ``cosmos.locations``."""
        database: str | None = None
        """None: the environment's ``cosmos.database``."""
        container: str | None = None
        """None: the environment's ``cosmos.container`` (partition key ``/pk``)."""
        timeout: Duration = Field(default=10.0, gt=0)
        """How long one write or read may take before it counts as failed."""
        max_in_flight: int = Field(default=64, ge=1)
        """Writes pending at once; a tick past it starts none (counted as skipped)."""
        reads: int = Field(default=100, ge=1)
        """Canaries looked for per region and sample (in one query), at most."""
        audit: int = Field(default=100, ge=1)
        """Canaries looked for per sample in the write region after a failover (in one query), at most."""
        steady_lag: Duration = Field(default=30.0, gt=0)
        """A region counts as caught up while its oldest unseen canary is younger than this."""

    SIGNALS: ClassVar[tuple[str, ...]] = ("write_region", "lag.*", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("lag_p50.*", "lag_p99.*", "lag_max.*", "lost_writes", "rpo",
                                          "write_availability", "write_downtime", "write_failover_time")
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = {
        "lag_p50": "steady", "lag_p99": "steady", "lag_max": "steady", "write_failover_time": "failover"}
    """The part of a trial each metric depends on (:mod:`probes.blindness`): lags, the steady state
    before the incident; the failover, until the first write elsewhere; the rest, the incident on."""
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset({"write_failover_time"})

    def __init__(self, name: str, spec: ReplicationProbe.Spec, targets: Targets, *, every: float) -> None:
        preload(COSMOS_DATA)
        env = targets.env
        if env.cosmos is None:
            raise DrillError(f"probe {name}: environment {env.name} has no 'cosmos' section (the account, "
                             "database, container and locations the replication probe writes to)")
        cosmos = env.cosmos
        regions = spec.regions if spec.regions is not None else list(cosmos.locations)
        unknown = [r for r in regions if r not in cosmos.locations]
        if unknown:
            raise DrillError(f"probe {name}: cosmos.locations maps no location to {', '.join(unknown)} "
                             f"(it maps {', '.join(cosmos.locations)})")
        self.name = name
        self.period = every
        self.spec = spec
        self._clock = targets.clock
        self._env = env
        self._regions = {location_key(loc): region for region, loc in cosmos.locations.items()}
        """Location key -> drill region, for every mapped location."""
        self._measured = {location_key(cosmos.locations[r]) for r in regions}
        self._names = {location_key(loc): loc for loc in cosmos.locations.values()}
        self._key = _account_key(env)
        self._prefix = f"drill-{name}-{secrets.token_hex(4)}"
        self._interval = 1.0 / spec.rate if spec.rate is not None else every
        self._timeout = max(self._clock.to_real(spec.timeout), MIN_REAL_TIMEOUT_S)
        self.ledger = CanaryLedger(self._regions)
        self._clients: _Clients | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._seq = 0
        self._writes: list[JSONValue] = []
        self._failed: list[JSONValue] = []
        self._skipped = 0
        self._endpoints: dict[str, str] = {}
        """Location key -> its endpoint's host:port, from the latest account read."""
        self._busy: set[str] = set()
        self._unreached = False
        """A write failed to reach its region since the last account read."""

    async def sample(self) -> Mapping[str, JSONValue]:
        """Read the account, the canaries pending in every other serving region, and audit the write region.
        Never raises: a failure is the sample's ``error``."""
        try:
            clients = await self._start()
            write, online = await self._account(clients)
        except Exception as exc:  # an account that cannot be read is a value, not a crash
            # Blind: no write region, lag or audit was seen; the writes drained are measured apart.
            why = _describe(exc)
            return {**self._drain(), "write_region": None, "error": why, BLIND: why}
        key = location_key(write)
        self.ledger.observe(key, online)
        if clients.writer_location is None:
            clients.writer_location = key
        elif clients.writer_location != key and self._unreached:
            clients.renew_writer(key)
        self._unreached = False
        regions = [loc for loc in self._measured if loc != key and loc in online]
        scans = [self._scan(loc) for loc in regions if loc not in self._busy]
        seen_lists, audit = await asyncio.gather(asyncio.gather(*scans), self._audit(key))
        now = self._clock.now()
        return {**self._drain(), "write_region": self._region(key),
                "online": sorted(self._region(loc) for loc in online),
                "seen": {self._region(loc): found for loc, found in seen_lists if found is not None},
                "behind": {self._region(loc): round(self.ledger.behind(loc, now), 6)
                           for loc in self._measured if loc != key and loc in online},
                "audit": audit, "error": None}

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``write_region``, ``lag.<region>`` and ``steady`` (module docstring)."""
        out: dict[str, SignalValue] = {"write_region": None, "steady": False}
        if not recent or recent[-1].blind is not None:
            return out
        latest = recent[-1].values
        out["write_region"] = latest.get("write_region")  # type: ignore[assignment]
        lags: dict[str, float] = {}
        for sample in recent:
            for region, found in _mapping(sample.values.get("seen")).items():
                if isinstance(found, list) and found:
                    lags[region] = float(found[-1][1])
        behind = {r: float(v) for r, v in _mapping(latest.get("behind")).items()
                  if isinstance(v, int | float)}
        for region in {*lags, *behind}:
            out[f"lag.{region}"] = max(lags.get(region, 0.0), behind.get(region, 0.0))
        wrote = [s for s in recent if s.values.get("writes") or s.values.get("failed")]
        last = wrote[-1].values if wrote else {}
        writes_ok = bool(last.get("writes")) and not last.get("failed")
        caught_up = all(v <= self.spec.steady_lag for v in behind.values())
        out["steady"] = (latest.get("error") is None and latest.get("write_region") is not None
                         and writes_ok and caught_up)
        return out

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """Every metric of the module docstring, from the samples alone."""
        regions = sorted(self._regions[loc] for loc in self._measured)
        return replication_metrics(list(samples), marks, regions=regions)

    async def aclose(self) -> None:
        """Stop writing and close the clients."""
        if self._writer_task is not None:
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._clients is not None:
            await self._clients.aclose()
            self._clients = None

    # --- the clients and the writer ------------------------------------------------------------------

    async def _start(self) -> _Clients:
        if self._clients is None:
            self._clients = _Clients(self._env, self._key, list(self._names.values()),
                                     database=self.spec.database or _cosmos(self._env).database,
                                     container=self.spec.container or _cosmos(self._env).container)
        if self._writer_task is None:
            self._writer_task = asyncio.create_task(self._write_loop(self._clients),
                                                    name=f"canaries {self.name}")
        return self._clients

    async def _write_loop(self, clients: _Clients) -> None:
        start = self._clock.now()
        tick = 0
        while True:
            await self._clock.sleep_until(start + tick * self._interval)
            if len(self._in_flight) < self.spec.max_in_flight:
                self._seq += 1
                task = asyncio.create_task(self._write(clients, self._seq))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            else:
                self._skipped += 1
            tick += 1
            behind = int((self._clock.now() - start) / self._interval) - tick
            if behind > 0:  # the loop fell behind: skip the ticks it missed rather than burst
                self._skipped += behind
                tick += behind

    async def _write(self, clients: _Clients, seq: int) -> None:
        sent = self._clock.now()
        served: list[str] = []
        body = {"id": f"{self._prefix}-{seq}", "pk": self._prefix, "seq": seq,
                "written_at": self._clock.real(sent)}
        try:
            async with asyncio.timeout(self._timeout):
                await clients.writer_container.create_item(body, raw_response_hook=_recorder(served))
        except Exception as exc:  # every failed write is a sample value
            self._unreached = self._unreached or _unreachable(exc)
            self._failed.append([seq, round(sent, 6), round(self._clock.now(), 6), _describe(exc)])
            return
        acked = self._clock.now()
        location = self._location_of(served[-1]) if served else None
        self.ledger.acknowledged(Canary(seq=seq, sent=sent, acked=acked, location=location))
        region = self._region(location) if location else None
        self._writes.append([seq, round(sent, 6), round(acked, 6), region])

    def _drain(self) -> dict[str, JSONValue]:
        writes, failed, skipped = self._writes, self._failed, self._skipped
        self._writes, self._failed, self._skipped = [], [], 0
        return {"writes": writes, "failed": failed, "skipped": skipped}

    # --- reading ----------------------------------------------------------------------------------------

    async def _account(self, clients: _Clients) -> tuple[str, set[str]]:
        """The write location and the serving locations (by key), as ``GET /`` tells them."""
        account = await clients.account(self._timeout, [f"https://{e}/" for e in self._endpoints.values()])
        writable = [w["name"] for w in account.WritableLocations]
        if not writable:
            raise DrillError("the account names no writable location")
        readable = account.ReadableLocations
        for entry in [*account.WritableLocations, *readable]:
            self._endpoints[location_key(entry["name"])] = urlsplit(entry["databaseAccountEndpoint"]).netloc
        return writable[0], {location_key(r["name"]) for r in readable}

    async def _look_for(self, clients: _Clients, location: str, seqs: Sequence[int]) -> set[int] | None:
        """Which of canaries ``seqs`` are in ``location``, by one query there (None: unknown, or answered by
        another location)."""
        served: list[str] = []
        others = [name for key, name in self._names.items() if key != location]
        ids = {f"{self._prefix}-{seq}": seq for seq in seqs}
        names = [f"@c{i}" for i in range(len(ids))]
        query = f"SELECT * FROM c WHERE c.id IN ({', '.join(names)})"
        parameters: list[dict[str, object]] = [{"name": name, "value": doc_id}
                                               for name, doc_id in zip(names, ids, strict=True)]
        try:
            async with asyncio.timeout(self._timeout):
                items = [item async for item in clients.reader(self._names[location]).query_items(
                    query, parameters=parameters, partition_key=self._prefix, excluded_locations=others,
                    raw_response_hook=_recorder(served))]
        except Exception:  # a failed read tells nothing
            return None
        if not served or any(urlsplit(url).netloc != self._endpoints.get(location) for url in served):
            return None
        return {ids[item["id"]] for item in items if item.get("id") in ids}

    async def _scan(self, location: str) -> tuple[str, list[JSONValue] | None]:
        """Look for the canaries pending in ``location``, oldest first, in one query."""
        clients = self._clients
        seqs = self.ledger.pending(location, self.spec.reads)
        if clients is None or not seqs:
            return location, None if clients is None else []
        self._busy.add(location)
        try:
            lo = self._clock.now()
            present = await self._look_for(clients, location, seqs)
            hi = self._clock.now()
        finally:
            self._busy.discard(location)
        if present is None:
            return location, []
        found = self.ledger.looked(location, seqs, present, lo=lo, hi=hi)
        return location, [[a.seq, round(a.lag, 6), round(a.error, 6)] for a in found]

    async def _audit(self, write: str) -> dict[str, JSONValue] | None:
        """Look for canaries the write region may lack (after a failover)."""
        clients = self._clients
        seqs = self.ledger.to_audit(self.spec.audit)
        if clients is None or not seqs or "audit" in self._busy or write not in self._names:
            return None
        self._busy.add("audit")
        try:
            present = await self._look_for(clients, write, seqs)
        finally:
            self._busy.discard("audit")
        found, missing = [], []
        for seq in seqs if present is not None else []:
            self.ledger.audited(seq, present=seq in present)
            (found if seq in present else missing).append(seq)
        return {"region": self._region(write), "found": found, "missing": missing,
                "left": self.ledger.audit_left}

    def _location_of(self, url: str) -> str | None:
        netloc = urlsplit(url).netloc
        return next((loc for loc, endpoint in self._endpoints.items() if endpoint == netloc), None)

    def _region(self, location: str) -> str:
        return self._regions.get(location, location)


class _Clients:
    """The writer and the pinned readers (built on first use), and how to read the account."""

    def __init__(self, env: Environment, key: str | None, locations: list[str], *, database: str,
                 container: str) -> None:
        from azure.cosmos.aio import CosmosClient  # imported late: the SDK is slow to import (preload)

        cosmos = _cosmos(env)
        self._credential: Any = key
        if key is None:
            from azure.identity.aio import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        self._endpoint = cosmos.endpoint
        transport = _transport(env)
        self._options: dict[str, Any] = {"transport": transport[0]} if transport is not None else {}
        if env.time_scale != 1:
            # The SDK waits between connection retries (1 s each, 3 of them, before it tries another region):
            # on a lab's clock those waits are scaled like every other timer, else a refused connection
            # would cost minutes of the lab's time.
            self._options["retry_backoff_factor"] = 1.0 / env.time_scale
        self._session = transport[1] if transport is not None else None
        self._database, self._container = database, container
        self._locations = locations
        self._cls = CosmosClient
        self.writer: Any = None
        self.writer_container: Any = None
        self.writer_location: str | None = None
        """The write location (by key) when the writer was built."""
        self._retired: list[Any] = []
        self.renew_writer(None)
        self._readers: dict[str, Any] = {}
        self._reader_clients: list[Any] = []

    def renew_writer(self, write_location: str | None) -> None:
        """A new writer, which discovers the account afresh. The SDK re-reads the account when a region
        answers 403 substatus 3, but not when the write region refuses connections (a forced failover): it
        would keep writing there until its 5-minute refresh, as an application that never restarts its
        client would."""
        if self.writer is not None:
            self._retired.append(self.writer)
        self.writer = self._cls(self._endpoint, self._credential, **self._options)
        self.writer_container = self.writer.get_database_client(self._database).get_container_client(
            self._container)
        self.writer_location = write_location

    def reader(self, location: str) -> Any:
        """The container as seen through a client pinned to ``location``."""
        if location not in self._readers:
            others = [loc for loc in self._locations if loc != location]
            client = self._cls(self._endpoint, self._credential, preferred_locations=[location],
                               excluded_locations=others, **self._options)
            self._reader_clients.append(client)
            self._readers[location] = client.get_database_client(self._database).get_container_client(
                self._container)
        return self._readers[location]

    async def account(self, limit_s: float, regional: list[str]) -> Any:
        """The account (``GET /``) from its endpoint, else from each regional endpoint known."""
        connection = self.writer.client_connection
        failure: Exception | None = None
        for url in [None, *regional]:
            try:
                # The SDK's own account read (it has no public one): the endpoint's, or a regional one's.
                async with asyncio.timeout(limit_s):
                    return await connection.GetDatabaseAccount(url)
            except Exception as exc:  # the next endpoint may answer
                failure = exc
        raise failure or DrillError("no endpoint to read the account from")

    async def aclose(self) -> None:
        for client in [self.writer, *self._retired, *self._reader_clients]:
            with contextlib.suppress(Exception):
                await client.close()
        if self._session is not None:
            await self._session.close()
        close = getattr(self._credential, "close", None)
        if close is not None:
            await close()


def _cosmos(env: Environment) -> Any:
    if env.cosmos is None:
        raise DrillError(f"environment {env.name} has no 'cosmos' section")
    return env.cosmos


def _account_key(env: Environment) -> str | None:
    """The account key: the lab's key file, else ``cosmos.keyEnv``'s variable; None: Microsoft Entra ID."""
    cosmos = _cosmos(env)
    if env.lab is not None and env.lab.cosmos_key_file:
        try:
            return Path(env.lab.cosmos_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DrillError(f"cannot read the lab's Cosmos DB key {env.lab.cosmos_key_file}: {exc}") from exc
    if cosmos.key_env:
        key = os.environ.get(cosmos.key_env)
        if not key:
            raise DrillError(f"environment variable {cosmos.key_env} (cosmos.keyEnv) is not set: it must "
                             f"hold the key of Cosmos DB account {cosmos.account}")
        return key
    return None


def _transport(env: Environment) -> tuple[Any, Any] | None:
    """A transport trusting the environment's CA file, and its session; None: the system's CAs. The async
    client's own ``ssl_config`` path loads an empty client certificate and fails, so the CA goes into the
    transport's session instead."""
    ca_file = env.azure.ca_file if env.azure is not None else None
    if not ca_file:
        return None
    import ssl

    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport

    trust = ssl.create_default_context(cafile=ca_file)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
    return AioHttpTransport(session=session, session_owner=False), session


def _recorder(served: list[str]) -> Any:
    """A ``raw_response_hook`` noting the URL each response came from."""
    def hook(response: Any) -> None:
        served.append(str(response.http_request.url))
    return hook


def _unreachable(exc: BaseException) -> bool:
    """Whether a write failed without an answer from the service (refused, reset, timed out)."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    return isinstance(exc, ServiceRequestError | ServiceResponseError | TimeoutError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {text}"[:200]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- metrics ------------------------------------------------------------------------------------------

def replication_metrics(samples: Sequence[Sample], marks: Marks, *,
                        regions: Sequence[str]) -> dict[str, Metric]:
    """The probe's metrics from its samples (sorted by ``t``); pure, so that tests give exact numbers."""
    ordered = sorted(samples, key=lambda s: s.t)
    incident = marks.incident_start
    out: dict[str, Metric] = {}
    acked: dict[int, tuple[float, float, str | None]] = {}
    attempts: list[tuple[float, bool]] = []
    for sample in ordered:
        for seq, sent, at, region in _rows(sample.values.get("writes"), 4):
            acked[int(seq)] = (float(sent), float(at), region)
            attempts.append((float(sent), True))
        for _seq, sent, _at, _why in _rows(sample.values.get("failed"), 4):
            attempts.append((float(sent), False))
    attempts.sort()
    out.update(_lag_metrics(ordered, acked, incident, regions))
    out["lost_writes"] = _lost_writes(ordered, acked)
    out["rpo"] = _rpo(ordered, acked)
    out.update(_write_metrics(attempts, incident, marks.ended))
    out["write_failover_time"] = _write_failover_time(ordered, acked, attempts, incident)
    return out


def _rows(value: object, width: int) -> list[list[Any]]:
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, list) and len(row) == width]


def _lag_metrics(samples: Sequence[Sample], acked: Mapping[int, tuple[float, float, str | None]],
                 incident: float | None, regions: Sequence[str]) -> dict[str, Metric]:
    scope = ("canaries acknowledged before the incident (the steady state)" if incident is not None
             else "every canary (no fault was applied)")
    out: dict[str, Metric] = {}
    for region in regions:
        lags: list[float] = []
        errors: list[float] = []
        for sample in samples:
            found = _mapping(sample.values.get("seen")).get(region)
            for seq, lag, error in _rows(found, 3):
                ack = acked.get(int(seq))
                if ack is None or (incident is not None and ack[1] >= incident):
                    continue
                lags.append(float(lag))
                errors.append(float(error))
        if not lags:
            for name in ("lag_p50", "lag_p99", "lag_max"):
                out[f"{name}.{region}"] = Metric(None, "s",
                                                 note=f"no canary among the {scope} was seen in {region}")
            continue
        # Each canary's true lag lies in [lag - error, lag + error], so the true percentile lies between the
        # percentiles of those bounds (order statistics keep the order of bounds): that is the measurement
        # error; the percentile's 95 % interval over the canaries is added to it.
        lows = [lag - error for lag, error in zip(lags, errors, strict=True)]
        highs = [lag + error for lag, error in zip(lags, errors, strict=True)]
        note = f"{len(lags)} {scope}"
        for name, q in (("lag_p50", 50.0), ("lag_p99", 99.0)):
            value = percentile(lags, q) or 0.0
            measured = max(value - (percentile(lows, q) or 0.0), (percentile(highs, q) or 0.0) - value)
            out[f"{name}.{region}"] = Metric(value, "s", error=measured + (percentile_error(lags, q) or 0.0),
                                             note=f"{note}; error: the canaries' own errors plus the "
                                                  "percentile's 95% interval")
        top = max(lags)
        out[f"lag_max.{region}"] = Metric(top, "s", error=max(top - max(lows), max(highs) - top),
                                          note=f"the slowest of the {note}")
    return out


def _lost_writes(samples: Sequence[Sample], acked: Mapping[int, tuple[float, float, str | None]]) -> Metric:
    verdict: dict[int, bool] = {}
    left = 0
    audited = False
    for sample in samples:
        audit = _mapping(sample.values.get("audit"))
        if not audit:
            continue
        audited = True
        for seq in audit.get("found") or []:
            verdict[int(seq)] = True
        for seq in audit.get("missing") or []:
            verdict[int(seq)] = False
        left = int(audit.get("left") or 0)
    lost = sorted(seq for seq, present in verdict.items() if not present)
    if not audited:
        return Metric(0.0, "count", error=0.0,
                      note=f"the write region never changed: all {len(acked)} acknowledged canaries are "
                           "where they were written")
    parts = [f"{len(lost)} of {len(acked)} acknowledged canaries missing from the write region"]
    times = [acked[s][1] for s in lost if s in acked]
    if times:
        parts.append(f"acknowledged from {format_t(min(times))} to {format_t(max(times))} "
                     f"(a window of {format_value(max(times) - min(times), 's')})")
    if left:
        parts.append(f"{left} canaries were not yet audited when sampling stopped: a lower bound")
    return Metric(float(len(lost)), "count", error=0.0, note="; ".join(parts))


def _rpo(samples: Sequence[Sample], acked: Mapping[int, tuple[float, float, str | None]]) -> Metric:
    """The data-loss window in seconds: how much acknowledged history a failover took away.

    The loss began after the newest canary acknowledged before the oldest lost one that survived, and no
    sooner than the oldest lost one; it ended with the newest lost one. So the window lies between
    (newest lost - oldest lost) and (newest lost - that survivor): the value is the middle, the error half
    the span. With no canary lost, a window shorter than the gap between canaries could still have gone
    unseen: 0, with half the median gap as error."""
    verdict: dict[int, bool] = {}
    for sample in samples:
        audit = _mapping(sample.values.get("audit"))
        for seq in audit.get("found") or []:
            verdict[int(seq)] = True
        for seq in audit.get("missing") or []:
            verdict[int(seq)] = False
    if not verdict:
        return Metric(0.0, "s", error=0.0, note="the write region never changed: nothing could be lost")
    acks = sorted(at for _sent, at, _region in acked.values())
    lost = sorted(acked[s][1] for s, present in verdict.items() if not present and s in acked)
    if not lost:
        gaps = sorted(b - a for a, b in itertools.pairwise(acks))
        gap = gaps[len(gaps) // 2] if gaps else 0.0
        return Metric(0.0, "s", error=gap / 2,
                      note=f"no acknowledged canary was lost; a loss shorter than the {gap:.3g}s between "
                           "canaries would not be seen")
    oldest, newest = lost[0], lost[-1]
    survivors = [at for s, (_sent, at, _region) in acked.items() if verdict.get(s, True) and at < oldest]
    floor = newest - oldest
    ceiling = newest - max(survivors) if survivors else floor
    return Metric((floor + ceiling) / 2, "s", error=(ceiling - floor) / 2,
                  note=f"{len(lost)} acknowledged canaries lost, acknowledged over {floor:.3g}s; the newest "
                       f"canary kept was acknowledged {ceiling:.3g}s before the newest lost")


def _write_metrics(attempts: Sequence[tuple[float, bool]], incident: float | None,
                   end: float) -> dict[str, Metric]:
    start = incident if incident is not None else float("-inf")
    scope = "" if incident is not None else " (no fault was applied: over the whole run)"
    points = [Point(t, ok) for t, ok in attempts if t >= start]
    out: dict[str, Metric] = {}
    if not points:
        out["write_availability"] = Metric(None, "%", note="no write attempt completed after the incident")
        out["write_downtime"] = Metric(None, "s", note="no write attempt completed after the incident")
        return out

    def accepted(value: object) -> bool:
        return value is True

    out["write_availability"] = Metric(share(points, accepted), "%", error=share_error(points, accepted),
                                       note=f"{len(points)} write attempts{scope}")
    run = longest_failure(points, lambda value: value is False, end=end)
    if run is None:
        out["write_downtime"] = Metric(0.0, "s", error=0.0, note=f"no write failed{scope}")
    else:
        out["write_downtime"] = Metric(run.length(end), "s", error=run.error(),
                                       note=f"{run.samples} failed writes in a row{scope}"
                                            + ("" if run.after is not None else "; still failing at the end"))
    return out


def _write_failover_time(samples: Sequence[Sample], acked: Mapping[int, tuple[float, float, str | None]],
                         attempts: Sequence[tuple[float, bool]], incident: float | None) -> Metric:
    if incident is None:
        return Metric(None, "s", note="no fault was applied")
    before = [s.values.get("write_region") for s in samples
              if s.t < incident and s.values.get("write_region")]
    if not before:
        return Metric(None, "s", note="the write region before the incident is unknown")
    old = before[-1]
    moved = sorted((at, sent) for sent, at, region in acked.values()
                   if at >= incident and region is not None and region != old)
    if not moved:
        return Metric(None, "s", note=f"no write was acknowledged outside {old} after the incident")
    at, sent = moved[0]
    earlier = [t for t, _ in attempts if t < sent]
    lo = max(incident, earlier[-1]) if earlier else incident
    return Interval(lo, at).since(incident, note=f"the first write acknowledged outside {old}; error: from "
                                                 "the attempt before it to its acknowledgement")
