"""The http probe: the service as a population of users reaches it, resolver caches included.

The probe simulates ``users`` users (100 by default; ``users: 1`` is one synthetic user), spread over
the vantage points given (each an EDNS Client Subnet sent with the users' questions, as their
recursive resolvers would; by default one that sends none). Each user has its own resolver cache at
its own phase of the TTL (:mod:`probes.population`: drawn from ``seed``, recorded in the first sample)
and its own connection: at each sample, every user makes one request, to the address its cached answer
gives, ``Host`` the Traffic Manager name (and the TLS server name), so the request lands where DNS
sent that user, and the user's failover lags by the TTL as it would.

What does not depend on the user is shared, which keeps a hundred users within the CPU of a few:

- DNS: a user whose cached answer expired asks again; the users of one vantage point who ask in the
  same sample share one question to the name servers (what they answered at that instant), asked
  afresh whatever any cache holds (:meth:`CachingResolver.resolve` with ``fresh``), the CNAME's target
  then resolved through the shared cache.
- HTTP: per sample and distinct address, one real request while that address answers every request
  alike (up, down, hanging: every user there has that fate), and ``requests_per_address`` (3 by
  default) for :data:`VARIED_WINDOW` samples once its outcomes varied (within a sample, or from the
  previous one): a server that sheds a share of requests at random gives each user the draw of one of
  those requests, picked at random (seeded) afresh in every sample, not one draw for all. Users are
  then independent across samples, and share one of a few draws within a sample. While more than
  ``max_in_flight`` real requests are pending (a server hanging for everyone, or a machine too busy to
  read the answers) it is one request a sample again: the probe's cost stays bounded. A server that
  answers every request alike (up, down, hanging) gives every user its fate; one that sheds a share
  of requests at random gives each user the draw of its own request, not one draw for all.

``connection: new`` (the default) opens a new connection per request, as new visitors do. ``reuse``
models long-lived clients: each user keeps using the address its connection goes to for as long as it
works, resolving again only after a request failed or the server closed the connection (the kept
connections are pooled per address).

The client is aiohttp's, not httpx: with a new connection per request httpx spends 2.6-3.8 ms of CPU per
request on this kind of machine against aiohttp's 0.7-1.1 ms (bench/probe_period.py and the notes of
issue 3). A probe that eats the cores the lab runs on distorts the timings it is measuring.

A hanging endpoint makes samples pile up until their timeout; the probe bounds how many run at once
(``max_in_flight``, by default the number the timeout and the period need, at most
:data:`MAX_IN_FLIGHT`) and records a sample that cannot start as failed for every user, saying so.

Sample values (a line of about 370 bytes for 100 users at one healthy address; ``latency`` is a real
round trip in real seconds, never scaled to lab time, which charts of it should say)::

    {"ok": 98, "failed": 2,                 # users served with a 2xx, and users who were not
     "outcomes": [{"ok": true, "status": 200, "latency": 0.09, "region": "us", "resolved": "us",
                   "address": "127.20.1.11", "error": null}, ...],   # each real request, each failure
     "by_user": "0120120...",               # per user: the index of its outcome (0-9, a-z, A-Z)
     "refreshed": [17, 64],                 # users whose cache asked the name servers in this sample
     "population": {"seed": 7, "ttl_phase": [0.4183, ...], "vantage_point": [...]}}  # first sample

A sample in which no user's request could be made because no name server replied to anyone (not
even with an error) is blind (``{"blind": why, "error": why}``, :data:`probes.base.BLIND`): the probe
learnt nothing of where users would go or how they fare. A refused or timed-out request to the address
DNS gave, or a name server's error reply, is what users see, and counts as a failed request.

``region`` is what the server says served it (the ``X-Drill-Region`` header by default), ``resolved``
the region (or raw name) DNS sent the request to. Signals: ``ok`` (% of users served in the latest
sample), ``error_rate`` (% of user requests failed over the recent window), ``region`` (the region
that served the most users in the latest sample), ``steady`` (every user served in the last few
samples).

Metrics, over users (each user's series of outcomes, one per sample): ``availability`` and
``error_rate`` (% of user requests), ``error_rate_max`` (the highest % of users failing in one
sample), ``users_affected`` (% of users who saw any failed request), ``latency_p50``/``latency_p99``
(of the successful real requests, in real seconds, with the larger half-width of a distribution-free
95 % interval; on a lab the note says they are the lab's loopback round trips),
``downtime_p50``/``downtime_p99``/``downtime_max`` (the percentiles of each user's longest run of failed
requests, from its first failed request to its next good one), ``downtime`` (the same as
``downtime_max``: the promise holds for every user or it does not), and ``failover_time`` (from the
incident until the last user was served, for good, by a region other than the failed ones; a failed
request counts as not moved yet; the failed regions as :mod:`probes.dns` takes them),
``error_rate_after_failover`` (% of user requests failed from the last user's move until recovery
started: whether the regions left carry everyone, which the outage itself would hide). The error of a
downtime percentile is the largest time resolution of the users' runs (a percentile moves no more
than every value does).

With named vantage points (``vantage_points``, or ``vantage: [us, eu]`` naming the environment's
``trafficManager.vantagePoints``) the metrics over users are also given per vantage point, over its
users alone (``downtime.us``, ``failover_time.us``, ``error_rate.eu``: :data:`PER_VANTAGE`); a
vantage point whose users were never served by a failed region has a ``failover_time`` of 0 with a
note, and one whose users were never served elsewhere for good is unmeasured, as is then the plain
``failover_time``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import aiohttp
import dns.edns
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drills.environment import check_vantage_points
from drills.targets import Targets
from drills.units import Duration
from probes.base import BLIND, JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue
from probes.blindness import MetricWindow
from probes.population import MAX_OUTCOMES, Population, encode, user_outcomes
from probes.resolver import (
    CachingResolver,
    ResolveError,
    ResolveTimeout,
    Unanswered,
    check_vantage_names,
    client_subnet,
    parse_nameserver,
    vantage_subnets,
)
from probes.timeline import (
    Point,
    failed_values,
    longest_failure,
    percentile,
    percentile_error,
    settled,
)
from reports.base import format_t

STEADY_SAMPLES = 3
"""Consecutive samples with every user served that make a steady state."""

LAB_LATENCY = "real round trips to the lab on this machine, not a rehearsal of production latency"
"""What a latency metric's note says on a lab."""

MAX_IN_FLIGHT = 48
"""The most samples one probe runs at once by default: below the runner's own cap (64), so that a
sample that cannot start is recorded as a failure here rather than skipped there."""

DNS_TIMEOUT_S = 5.0
"""The longest wait for one name server, in scenario seconds: a stub resolver's usual per-server timeout."""

VARIED_WINDOW = 20
"""Samples an address keeps getting ``requests_per_address`` requests after its outcomes varied: a
server shedding even 5 % of requests shows a mix among three requests in one sample of seven, so it
stays covered, while one that is simply up or down costs one request a sample."""

DNS_ATTEMPTS = 2
"""Questions a user's stub resolver sends before giving up when no name server answers: glibc's default
(``options attempts:2``), so that one lost datagram costs a user a few seconds, not a failed request."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

PER_VANTAGE = ("availability", "error_rate", "error_rate_max", "users_affected", "downtime", "downtime_p50",
               "downtime_p99", "downtime_max", "failover_time", "error_rate_after_failover")
"""The metrics over users that named vantage points break down (``downtime.us``: over the users at
``us``); latencies are of requests, shared by users, so they are not broken down."""


class HttpProbe(ProbeBase):
    """Requests the service through DNS as a population of users would (see the module docstring)."""

    class Spec(BaseModel):
        """The http probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

        path: str | None = Field(default=None, pattern=r"^/")
        """The path to GET; None: the environment's service path."""
        timeout: Duration = Field(default=10.0, gt=0)
        """The longest a user waits for a whole request, name resolution included: the usual default
        of HTTP clients and load balancer health checks."""
        connection: Literal["new", "reuse"] = "new"
        """``new``: a new connection per request, as new visitors; ``reuse``: long-lived clients."""
        max_in_flight: int | None = Field(default=None, ge=1, le=1000)
        """Samples running at once before new ones are counted as failed without starting; None:
        enough for the timeout at the probe's period, at most 48."""
        region_header: str = "X-Drill-Region"
        """The response header that names the region that served (the lab's ingress sets it)."""
        users: int = Field(default=100, ge=1, le=10000)
        """Simulated users, each with its own resolver cache at its own phase of the TTL."""
        vantage_points: dict[str, str] = Field(default_factory=dict)
        """Name -> client subnet sent as EDNS Client Subnet with the users' questions; the users are
        spread over them in turn. Empty (and no ``vantage``): one vantage point that sends none."""
        vantage: list[str] = Field(default_factory=list)
        """Vantage points by name, with the subnets the environment gives them (``trafficManager.
        vantagePoints``; a lab's: each region's users), e.g. ``[us, eu]``."""
        requests_per_address: int = Field(default=3, ge=1, le=8)
        """Real requests per sample to an address whose outcomes vary (one while they do not); each
        user there takes the outcome of one of them."""
        seed: int | None = None
        """Seed of the users' TTL phases; None: a random one (recorded in the first sample)."""

        @field_validator("vantage_points")
        @classmethod
        def _vantage_points(cls, value: dict[str, str]) -> dict[str, str]:
            return check_vantage_points(value)

        @field_validator("vantage")
        @classmethod
        def _vantage(cls, value: list[str]) -> list[str]:
            return check_vantage_names(value)

    SIGNALS: ClassVar[tuple[str, ...]] = ("ok", "error_rate", "region", "steady")
    METRICS: ClassVar[tuple[str, ...]] = (
        "availability", "error_rate", "error_rate_max", "users_affected", "latency_p50", "latency_p99",
        "downtime", "downtime_p50", "downtime_p99", "downtime_max", "failover_time",
        "error_rate_after_failover", *(f"{key}.*" for key in PER_VANTAGE),
    )
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = {"failover_time": "failover"}
    """The part of a trial each metric depends on (:mod:`probes.blindness`): the failover, until the
    last user moved; the rest, from the incident to the end."""
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset({"failover_time"})

    def __init__(self, name: str, spec: HttpProbe.Spec, targets: Targets, *, every: float) -> None:
        self.name = name
        self.period = every
        self.spec = spec
        env = targets.env
        self._env = env
        self._clock = targets.clock
        self._fqdn = env.traffic_manager.fqdn.rstrip(".")
        self._scheme = env.service.scheme
        self._port = env.service.port
        self._path = spec.path or env.service.path
        self._host = (self._fqdn if _DEFAULT_PORTS.get(self._scheme) == self._port
                      else f"{self._fqdn}:{self._port}")
        self._resolver = CachingResolver(
            [parse_nameserver(s) for s in env.traffic_manager.nameservers],
            time_scale=targets.clock.time_scale,
            query_timeout_s=targets.clock.to_real(min(spec.timeout, DNS_TIMEOUT_S)))
        self.max_in_flight = spec.max_in_flight or min(math.ceil(spec.timeout / every) + 2, MAX_IN_FLIGHT)
        """Samples that may run at once; one more fails at once, without starting."""
        self._in_flight = 0
        self._session: aiohttp.ClientSession | None = None
        subnets = vantage_subnets(spec.vantage_points, spec.vantage, env.traffic_manager.vantage_points)
        names: list[str | None] = list(subnets) or [None]
        self._options: dict[str | None, dns.edns.Option | None] = {
            vp: (client_subnet(subnets[vp]) if vp is not None else None) for vp in names}
        seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(2 ** 31)
        self.population = Population.draw(spec.users, names, seed)
        """The simulated users; recorded in the first sample."""
        self._users = [_User(i, vp, phase) for i, (vp, phase) in
                       enumerate(zip(self.population.vantage_points, self.population.phases, strict=True))]
        self._recorded = False
        self._rng = random.Random(seed)
        self._taken = 0
        """Samples started."""
        self._varied_until: dict[str, int] = {}
        """Per address, the sample number until which it gets ``requests_per_address`` requests."""
        self._last_ok: dict[str, bool] = {}
        self._requests = 0
        """Real requests in flight: past ``max_in_flight`` (a server hanging for everyone, or this
        machine too busy to read the answers) an address gets one request a sample again, so that the
        probe's own cost stays bounded and never feeds the delays it measures."""

    async def sample(self) -> Mapping[str, JSONValue]:
        """One request per user, through each user's cache; never raises for a failed request."""
        if self._in_flight >= self.max_in_flight:
            return self._values([_failed(f"not started: {self._in_flight} samples in flight, none answered "
                                         f"within the {self.spec.timeout:g}s timeout")],
                                [0] * len(self._users), [])
        self._in_flight += 1
        try:
            return await self._sample()
        finally:
            self._in_flight -= 1

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``ok`` (% of users served in the latest sample), ``error_rate`` (% of user requests failed
        over ``recent``), ``region`` (that served the most users in the latest sample), ``steady``
        (every user served in the last few samples)."""
        if not recent or recent[-1].blind is not None:
            return {"ok": None, "error_rate": None, "region": None, "steady": False}
        latest = recent[-1].values
        total = sum(_count(s, "ok") + _count(s, "failed") for s in recent)
        failed = sum(_count(s, "failed") for s in recent)
        users = _count(recent[-1], "ok") + _count(recent[-1], "failed")
        regions = Counter(str(o.get("region")) for o in user_outcomes(latest)
                          if o.get("ok") is True and isinstance(o.get("region"), str))
        tail = recent[-STEADY_SAMPLES:]
        return {
            "ok": 100.0 * _count(recent[-1], "ok") / users if users else None,
            "error_rate": 100.0 * failed / total if total else None,
            "region": regions.most_common(1)[0][0] if regions else None,
            "steady": len(tail) == STEADY_SAMPLES and all(
                _count(s, "failed") == 0 and _count(s, "ok") > 0 for s in tail),
        }

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """Error rates, users affected, latency, downtime percentiles and failover (module docstring),
        and those over users broken down per named vantage point."""
        ordered = sorted(samples, key=lambda s: s.t)
        out = population_metrics(ordered, marks)
        spots = self.population.vantage_points
        for vp in dict.fromkeys(v for v in spots if v is not None):
            mine = population_metrics(ordered, marks, users=[i for i, v in enumerate(spots) if v == vp])
            out.update({f"{key}.{vp}": mine[key] for key in PER_VANTAGE})
        if self._env.is_lab:
            # The lab's servers answer over loopback on this machine: the round trip says nothing of
            # production, and is not lab time (it is never scaled).
            for key in ("latency_p50", "latency_p99"):
                if out[key].measured:
                    out[key] = replace(out[key], note=f"{out[key].note}; {LAB_LATENCY}")
        return out

    async def aclose(self) -> None:
        """Close the kept connections and the name servers' sockets."""
        self._resolver.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _sample(self) -> dict[str, JSONValue]:
        session = self._http()  # built outside the timed part: loading the CA bundle takes tens of ms
        loop = asyncio.get_running_loop()
        now = self._clock.now()
        deadline = loop.time() + self._clock.to_real(self.spec.timeout)
        number = self._taken
        self._taken += 1
        refreshed = self._refresh(now)
        waiting = {u.pending for u in self._users if u.pending is not None}
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, deadline - loop.time()))
        outcomes: list[dict[str, JSONValue]] = []
        indices = [0] * len(self._users)
        failures: dict[tuple[str, str | None], int] = {}
        at: dict[str, list[_User]] = {}
        unanswered = True
        """Every user so far failed for want of any name server's reply."""
        for user in self._users:
            self._settle(user)
            answer = user.kept or user.answer
            if user.pending is not None:
                error: str | None = f"timeout: nothing within {self.spec.timeout:g}s (resolving the name)"
                resolved = None
            elif answer is None or answer.address is None:
                error = answer.error if answer is not None else "dns: no answer yet"
                resolved = answer.resolved if answer is not None else None
                unanswered = unanswered and answer is not None and answer.unanswered
            else:
                at.setdefault(answer.address, []).append(user)
                continue
            key = (error or "dns: no address", resolved)
            if key not in failures:
                failures[key] = len(outcomes)
                outcomes.append({**_failed(key[0]), "resolved": resolved})
            indices[user.index] = failures[key]
        if not at and unanswered:
            # No request was made and no name server replied: the probe saw nothing of the service.
            return self._blind(str(outcomes[0].get("error")) if outcomes else "no name server replied")
        # Requests per address, within the outcomes one sample can name (room for at least one each).
        plan: dict[str, int] = {}
        room = MAX_OUTCOMES - len(outcomes)
        for left, (address, users) in zip(range(len(at), 0, -1), at.items(), strict=True):
            varied = self._varied_until.get(address, -1) >= number
            wanted = self.spec.requests_per_address if varied and self._requests < self.max_in_flight else 1
            plan[address] = max(1, min(len(users), wanted, room // left))
            room -= plan[address]
        calls = [address for address, count in plan.items() for _ in range(count)]
        done = await asyncio.gather(*(self._get(session, address, at[address][0], deadline)
                                      for address in calls))
        base = len(outcomes)
        outcomes.extend(outcome for outcome, _ in done)
        self._note_variation(calls, [outcome.get("ok") is True for outcome, _ in done], number)
        offset = 0
        for address, users in at.items():
            count = plan[address]
            for user in users:
                # A fresh draw per user and sample: users share requests, not a fixed fate.
                slot = offset + (self._rng.randrange(count) if count > 1 else 0)
                indices[user.index] = base + slot
                if self.spec.connection == "reuse":
                    user.kept = (user.kept or user.answer) if done[slot][1] else None
            offset += plan[address]
        return self._values(outcomes, indices, refreshed)

    def _note_variation(self, calls: list[str], oks: list[bool], number: int) -> None:
        """Give an address more requests for a while once its outcomes vary."""
        for address in set(calls):
            seen = {ok for call, ok in zip(calls, oks, strict=True) if call == address}
            previous = self._last_ok.get(address)
            if len(seen) > 1 or (previous is not None and previous not in seen):
                self._varied_until[address] = number + VARIED_WINDOW
            if len(seen) == 1:
                self._last_ok[address] = next(iter(seen))

    def _refresh(self, now: float) -> list[int]:
        """Start a question for each vantage point whose users' cached answers expired; the users
        who asked."""
        asked: dict[str | None, asyncio.Task[_Answer]] = {}
        refreshed: list[int] = []
        for user in self._users:
            if user.pending is not None or user.kept is not None:
                continue
            if user.answer is not None and user.answer.address is not None and user.expires > now:
                continue
            task = asked.get(user.vp)
            if task is None:
                task = asyncio.create_task(self._resolve(user.vp), name=f"{self.name}: resolve")
                asked[user.vp] = task
            user.pending = task
            user.asked_at = now
            refreshed.append(user.index)
        return refreshed

    def _settle(self, user: _User) -> None:
        """Give the user the answer its question got, if it came: kept for the TTL from the instant it
        asked (the first time, for its phase of the TTL)."""
        task = user.pending
        if task is None or not task.done():
            return
        user.pending = None
        answer = task.result()
        user.answer = answer
        if answer.address is None or answer.ttl is None:
            user.expires = -math.inf  # not cached: asked again at the next request, as a stub resolver does
            return
        user.expires = user.asked_at + answer.ttl * (1.0 if user.filled else user.phase)
        user.filled = True

    async def _resolve(self, vp: str | None) -> _Answer:
        try:
            async with asyncio.timeout(self._clock.to_real(self.spec.timeout)):
                for attempt in range(1, DNS_ATTEMPTS + 1):
                    try:
                        resolution = await self._resolver.resolve(self._fqdn, fresh=True,
                                                                  option=self._options[vp])
                        break
                    except ResolveTimeout:
                        if attempt == DNS_ATTEMPTS:
                            raise
        except TimeoutError:
            why = f"timeout: nothing within {self.spec.timeout:g}s (resolving the name)"
            return _Answer(None, None, None, why, unanswered=True)
        except ResolveError as exc:
            return _Answer(None, None, None, str(exc), unanswered=isinstance(exc, Unanswered))
        except OSError as exc:
            return _Answer(None, None, None, f"dns: {type(exc).__name__}: {exc}", unanswered=True)
        target = resolution.target
        resolved = (self._env.region_of_target(target) or target) if target else None
        return _Answer(resolution.address, resolved, resolution.ttl, None)

    async def _get(self, session: aiohttp.ClientSession, address: str, user: _User,
                   deadline: float) -> tuple[dict[str, JSONValue], bool]:
        """One real request to ``address``; its outcome, and whether its connection may be kept."""
        answer = user.kept or user.answer
        resolved = answer.resolved if answer is not None else None
        started = time.monotonic()
        self._requests += 1
        try:
            async with asyncio.timeout_at(deadline):
                async with session.get(
                        f"{self._scheme}://{address}:{self._port}{self._path}", headers={"Host": self._host},
                        server_hostname=self._fqdn if self._scheme == "https" else None,
                        allow_redirects=False) as response:
                    await response.read()
        except TimeoutError:
            return _failure(f"timeout: nothing within {self.spec.timeout:g}s (waiting for the response)",
                            address, resolved), False
        except (aiohttp.ClientError, OSError) as exc:
            return _failure(f"{type(exc).__name__}: {exc}".rstrip(": "), address, resolved), False
        finally:
            self._requests -= 1
        region = response.headers.get(self.spec.region_header)
        ok = 200 <= response.status < 300
        closing = response.headers.get("Connection", "").lower() == "close"
        return {"ok": ok, "status": response.status,
                "latency": round(time.monotonic() - started, 6),
                "region": region, "resolved": resolved, "address": address,
                "error": None if ok else f"HTTP {response.status}"}, not closing

    def _values(self, outcomes: list[dict[str, JSONValue]], indices: list[int],
                refreshed: list[int]) -> dict[str, JSONValue]:
        ok = sum(1 for i in indices if outcomes[i].get("ok") is True)
        values: dict[str, JSONValue] = {"ok": ok, "failed": len(indices) - ok, "outcomes": list(outcomes),
                                        "by_user": encode(indices), "refreshed": refreshed}
        if not self._recorded:
            self._recorded = True
            values["population"] = self.population.record()
        return values

    def _blind(self, why: str) -> dict[str, JSONValue]:
        """A sample that measured nothing: no user counts, only why."""
        values: dict[str, JSONValue] = {BLIND: why, "error": why}
        if not self._recorded:
            self._recorded = True
            values["population"] = self.population.record()
        return values

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No pool limit (the probe bounds its own samples in flight); ``force_close`` for a new
            # connection per request; the probe's own timeout bounds each request; no proxy from the
            # environment, which would measure the proxy rather than the service.
            connector = aiohttp.TCPConnector(limit=0, force_close=self.spec.connection == "new",
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a user's resolver got: an address (and the region DNS named, the TTL), or why not."""

    address: str | None
    resolved: str | None
    ttl: float | None
    error: str | None
    unanswered: bool = False
    """No name server replied at all: the probe, not the user, learnt nothing."""


@dataclass(slots=True)
class _User:
    """One simulated user's resolver cache and connection."""

    index: int
    vp: str | None
    phase: float
    answer: _Answer | None = None
    expires: float = -math.inf
    """Scenario seconds (the probe's clock) when the cached answer expires."""
    filled: bool = False
    """Whether the cache was filled once (the phase applies to the first answer only)."""
    pending: asyncio.Task[_Answer] | None = field(default=None, repr=False)
    asked_at: float = 0.0
    kept: _Answer | None = None
    """``reuse``: the answer whose address the user's connection goes to, while it works."""


def _failed(error: str) -> dict[str, JSONValue]:
    return {"ok": False, "status": None, "latency": None, "region": None, "resolved": None,
            "address": None, "error": error}


def _failure(error: str, address: str | None, resolved: str | None) -> dict[str, JSONValue]:
    return {**_failed(error), "resolved": resolved, "address": address}


def _count(sample: Sample, key: str) -> int:
    value = sample.values.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class _Seen:
    """One user's outcome in one sample: served (and by which region) or not."""

    ok: bool
    region: str | None


def population_metrics(ordered: Sequence[Sample], marks: Marks,
                       users: Sequence[int] | None = None) -> dict[str, Metric]:
    """The http probe's metrics from its samples, sorted by ``t`` (see the module docstring), over the
    users numbered in ``users`` (None: every user)."""
    series = _series(ordered)
    if users is not None:
        series = [_Row(row.t, row.duration, [row.users[i] for i in users if i < len(row.users)])
                  for row in series]
    out: dict[str, Metric] = {}
    users = len(series[0].users) if series else 0
    if not users:
        for key in HttpProbe.METRICS:
            out[key] = Metric(None, "%" if key in _PERCENT else "s", note="no samples")
        return out
    shares = [sum(1 for seen in row.users if not seen.ok) / users for row in series]
    flips = sum(abs(a - b) for a, b in itertools.pairwise(shares))
    share_error = 100.0 * flips / (2 * len(shares))
    failed_requests = sum(sum(1 for seen in row.users if not seen.ok) for row in series)
    total = users * len(series)
    note = f"{len(series)} samples of {users} users"
    out["error_rate"] = Metric(100.0 * failed_requests / total, "%", error=share_error, note=note)
    out["availability"] = Metric(100.0 - 100.0 * failed_requests / total, "%", error=share_error, note=note)
    peak = max(range(len(shares)), key=lambda i: shares[i])
    peak_at = format_t(series[peak].t)
    out["error_rate_max"] = Metric(100.0 * shares[peak], "%",
                                   note=f"the most users failing in one sample (at {peak_at})")
    affected = sum(1 for u in range(users) if any(not row.users[u].ok for row in series))
    out["users_affected"] = Metric(100.0 * affected / users, "%", error=0.0,
                                   note=f"{affected} of {users} users saw a failed request")
    latencies = [lat for s in ordered for o in _outcomes(s)
                 if o.get("ok") is True and (lat := _seconds(o.get("latency"))) is not None]
    for key, q in (("latency_p50", 50.0), ("latency_p99", 99.0)):
        value = percentile(latencies, q)
        out[key] = (Metric(None, "s", note="no successful request") if value is None else
                    Metric(value, "s", error=percentile_error(latencies, q),
                           note=f"{len(latencies)} successful requests; error: the larger half-width "
                                "of a distribution-free 95% interval of the percentile"))
    out.update(_downtimes(series, users, marks))
    out["failover_time"], moved = _failover(series, users, marks)
    out["error_rate_after_failover"] = _after_failover(series, users, marks, moved)
    return out


_PERCENT = {"availability", "error_rate", "error_rate_max", "users_affected", "error_rate_after_failover"}


def _outcomes(sample: Sample) -> list[Mapping[str, JSONValue]]:
    found = sample.values.get("outcomes")
    return [o for o in found if isinstance(o, dict)] if isinstance(found, list) else []


@dataclass(frozen=True, slots=True)
class _Row:
    """One sample: its instant, how long it took, and each user's outcome."""

    t: float
    duration: float
    users: list[_Seen]


def _series(ordered: Sequence[Sample]) -> list[_Row]:
    """Per sample (with users), each user's outcome."""
    rows = []
    for sample in ordered:
        seen = [_Seen(o.get("ok") is True, r if isinstance(r := o.get("region"), str) else None)
                for o in user_outcomes(sample.values)]
        if seen:
            rows.append(_Row(sample.t, sample.duration, seen))
    width = min((len(row.users) for row in rows), default=0)
    return [_Row(row.t, row.duration, row.users[:width]) for row in rows]


def _downtimes(series: Sequence[_Row], users: int, marks: Marks) -> dict[str, Metric]:
    times = [row.t for row in series]
    gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    lengths: list[float] = []
    errors: list[float] = []
    worst: tuple[float, int, str] | None = None
    for u in range(users):
        points = [Point(row.t, row.users[u].ok) for row in series]
        run = longest_failure(points, lambda v: v is not True, end=marks.ended)
        if run is None:
            lengths.append(0.0)
            errors.append(gap)  # a failure shorter than the widest gap could have slipped between samples
            continue
        length = run.length(marks.ended)
        lengths.append(length)
        errors.append(run.error())
        if worst is None or length > worst[0]:
            note = f"user {u}: {run.samples} failed requests from {format_t(run.first)}"
            if run.after is None:
                note += "; still failing when sampling stopped (at least this long)"
            worst = (length, u, note)
    error = max(errors)
    out: dict[str, Metric] = {}
    for key, q in (("downtime_p50", 50.0), ("downtime_p99", 99.0), ("downtime_max", 100.0)):
        value = percentile(lengths, q)
        out[key] = Metric(value, "s", error=error,
                          note=f"over {users} users' longest failures; error: the largest time resolution")
    max_note = worst[2] if worst is not None else "no user saw a failed request"
    out["downtime_max"] = Metric(out["downtime_max"].value, "s", error=error, note=max_note)
    out["downtime"] = Metric(out["downtime_max"].value, "s", error=error,
                             note=f"the longest any of {users} users was down (downtime_max); {max_note}")
    return out


def _after_failover(series: Sequence[_Row], users: int, marks: Marks, moved: float | None) -> Metric:
    """The share of user requests that failed once every user had moved away from the failed region,
    until recovery started: whether the regions left carry everyone (a region short of capacity
    sheds a share of them), which the outage itself, counted in the other metrics, would hide."""
    if moved is None:
        return Metric(None, "%", note="not every user moved to another region, so there is no after")
    end = marks.recovery_start if marks.recovery_start is not None else marks.ended
    window = [row for row in series if moved <= row.t and row.t + row.duration <= end]
    if not window:
        return Metric(None, "%", note=f"no sample between the last user's move ({format_t(moved)}) and the "
                                      f"end of the incident ({format_t(end)})")
    shares = [sum(1 for seen in row.users if not seen.ok) / users for row in window]
    flips = sum(abs(a - b) for a, b in itertools.pairwise(shares))
    failed = sum(shares) * users
    return Metric(100.0 * sum(shares) / len(shares), "%", error=100.0 * flips / (2 * len(shares)),
                  note=f"{failed:.0f} of {users * len(window)} user requests from {format_t(moved)}, when "
                       f"the last user had moved, to {format_t(end)}")


def _failover(series: Sequence[_Row], users: int, marks: Marks) -> tuple[Metric, float | None]:
    """The last user's move away from the failed regions, and the instant by which every user had
    moved (None: not measured)."""
    if marks.incident_start is None:
        return Metric(None, "s", note="no fault was applied"), None
    incident = marks.incident_start
    end = marks.recovery_start if marks.recovery_start is not None else marks.ended
    recovery = marks.recovery_start

    def straddles(row: _Row) -> bool:
        # A request still running when recovery started may have been served after it: a success
        # there is no evidence of the incident window (a failure still is: not served before it).
        return recovery is not None and row.t < recovery < row.t + row.duration

    served = [Point(row.t, region, row.duration) for row in series if not straddles(row)
              for region in sorted({seen.region for seen in row.users if seen.ok and seen.region})]
    if not any(p.t < incident for p in served):
        return Metric(None, "s", note="no region served a request before the incident started"), None
    failed: frozenset[Hashable] = failed_values(served, marks.failed_regions, incident=incident, end=end)
    names = "/".join(sorted(str(v) for v in failed))
    if not failed:
        return Metric(None, "s", note="users were not served from other regions than before the incident "
                                      "for good (the run did not say which region failed)"), None
    if not any(p.value in failed for p in served if p.t < end):
        return (Metric(0.0, "s", error=0.0, note=f"{names} never served users: nothing to fail over from"),
                incident)
    moved = []
    stuck = 0
    for u in range(users):
        points = [Point(row.t, row.users[u].region if row.users[u].ok else None, row.duration)
                  for row in series if not (row.users[u].ok and straddles(row))]
        found = settled(points, lambda v: v not in failed, start=incident, end=end, silent_is_unknown=False)
        if found is None:
            stuck += 1
        else:
            moved.append(found)
    if stuck:
        return Metric(None, "s", note=f"{stuck} of {users} users were not served from a region other than "
                                      f"{names} for good"), None
    last = max(moved, key=lambda i: i.middle)
    median = percentile([i.middle - incident for i in moved], 50.0)
    return (last.since(incident, note=f"the last of {users} users, from {names}; median user {median:.1f}s"),
            last.hi)
