"""The http probe: the service as a user reaches it, resolver cache included.

Each sample resolves the Traffic Manager name the way a user's machine does (through
:class:`~probes.resolver.CachingResolver`: the environment's name servers, the CNAME followed to the
endpoint's address, every answer cached for its TTL on the environment's clock), then GETs
``scheme://<address>:<port><path>`` with the name in the ``Host`` header (and as the TLS server name),
so the request lands where DNS sent the user, and the user's failover lags by the TTL as it would.

``connection: new`` (the default) opens a new connection per sample, as a new visitor does. ``reuse``
models a long-lived client: it keeps its connections, and keeps using the address they go to for as
long as they work, resolving again only after one failed or the server closed it.

The client is aiohttp's, not httpx: with a new connection per request httpx spends 2.6-3.8 ms of CPU per
request on this kind of machine against aiohttp's 0.7-1.1 ms, and at ten probes at the lab's rate (600
requests a real second) it managed half the requests while aiohttp kept up (bench/probe_period.py and the
notes of issue 3). A probe that eats the cores the lab runs on distorts the timings it is measuring.

A hanging endpoint makes samples pile up until their timeout; the probe bounds how many run at once
(``max_in_flight``, by default the number the timeout and the period need, at most
:data:`MAX_IN_FLIGHT`) and records a sample that cannot start as a failure that says so: the requests
before it have not been answered within the timeout, so this one would not have been either.

Sample values (durations in scenario seconds)::

    {"ok": true, "status": 200, "latency": 0.09, "region": "us", "resolved": "us",
     "address": "127.20.1.11", "error": null}

``region`` is what the server says served it (the ``X-Drill-Region`` header by default), ``resolved``
the region (or raw name) DNS sent the request to. Metrics: ``availability`` and ``error_rate`` (% of
samples), ``latency_p50``/``latency_p99`` (successful samples; their error is the larger half-width
of a distribution-free 95 % interval, wide for a high percentile of few samples), ``downtime`` (the
longest run of failed samples, from the first failed sample to the next good one), ``failover_time``
(incident start to being served, for good, by a region other than the one that served before the
incident: from the last sample not served by it, a failed one included, to the end of the first one
served by it).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from drills.targets import Targets
from drills.units import Duration
from probes.base import JSONValue, Marks, Metric, Sample, SignalValue
from probes.resolver import CachingResolver, ResolveError, parse_nameserver
from probes.timeline import (
    Point,
    last_known,
    longest_failure,
    percentile,
    percentile_error,
    settled,
    share,
    share_error,
)

STEADY_SAMPLES = 3
"""Consecutive successes that make a steady state."""

MAX_IN_FLIGHT = 48
"""The most samples one probe runs at once by default: below the runner's own cap (64), so that a
sample that cannot start is recorded as a failure here rather than skipped there."""

DNS_TIMEOUT_S = 5.0
"""The longest wait for one name server, in scenario seconds: a stub resolver's usual per-server timeout."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpProbe:
    """Requests the service through DNS as a user would (see the module docstring)."""

    class Spec(BaseModel):
        """The http probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True)

        path: str | None = Field(default=None, pattern=r"^/")
        """The path to GET; None: the environment's service path."""
        timeout: Duration = Field(default=10.0, gt=0)
        """The longest a user waits for a whole request, name resolution included: the usual default
        of HTTP clients and load balancer health checks."""
        connection: Literal["new", "reuse"] = "new"
        """``new``: a new connection per sample, as a new visitor; ``reuse``: a long-lived client."""
        max_in_flight: int | None = Field(default=None, ge=1, le=1000)
        """Samples running at once before new ones are counted as failed without starting; None:
        enough for the timeout at the probe's period, at most 48."""
        region_header: str = "X-Drill-Region"
        """The response header that names the region that served (the lab's ingress sets it)."""

    SIGNALS: ClassVar[tuple[str, ...]] = ("ok", "error_rate", "region", "steady")
    METRICS: ClassVar[tuple[str, ...]] = (
        "availability", "error_rate", "latency_p50", "latency_p99", "downtime", "failover_time",
    )

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
        self._kept: tuple[str, str | None] | None = None
        """``reuse``: the address (and the region DNS named) the kept connections go to."""

    async def sample(self) -> Mapping[str, JSONValue]:
        """Resolve and GET once; never raises for a failed request."""
        if self._in_flight >= self.max_in_flight:
            return _failed(f"not started: {self._in_flight} requests in flight, none answered within "
                           f"the {self.spec.timeout:g}s timeout")
        self._in_flight += 1
        try:
            return await self._request()
        finally:
            self._in_flight -= 1

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``ok`` and ``region`` of the latest sample, ``error_rate`` (%) over ``recent``, ``steady``
        when the last few samples succeeded."""
        if not recent:
            return {"ok": None, "error_rate": None, "region": None, "steady": False}
        latest = recent[-1].values
        failed = sum(1 for s in recent if s.values.get("ok") is not True)
        region = latest.get("region")
        tail = recent[-STEADY_SAMPLES:]
        return {
            "ok": latest.get("ok") is True,
            "error_rate": 100.0 * failed / len(recent),
            "region": region if isinstance(region, str) else None,
            "steady": len(tail) == STEADY_SAMPLES and all(s.values.get("ok") is True for s in tail),
        }

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """Availability, error rate, latency percentiles, downtime and failover (module docstring)."""
        ordered = sorted(samples, key=lambda s: s.t)
        oks = [Point(s.t, s.values.get("ok") is True, s.duration) for s in ordered]
        out: dict[str, Metric] = {}
        available = share(oks, _is_true)
        availability_error = share_error(oks, _is_true)
        if available is None:
            out["availability"] = Metric(None, "%", note="no samples")
            out["error_rate"] = Metric(None, "%", note="no samples")
        else:
            note = f"{len(oks)} samples"
            out["availability"] = Metric(available, "%", error=availability_error, note=note)
            out["error_rate"] = Metric(100.0 - available, "%", error=availability_error, note=note)
        latencies = [lat for s in ordered
                     if s.values.get("ok") is True and (lat := _seconds(s.values.get("latency"))) is not None]
        for key, q in (("latency_p50", 50.0), ("latency_p99", 99.0)):
            value = percentile(latencies, q)
            out[key] = (Metric(None, "s", note="no successful request") if value is None else
                        Metric(value, "s", error=percentile_error(latencies, q),
                               note=f"{len(latencies)} successful requests; error: the larger half-width "
                                    "of a distribution-free 95% interval of the percentile"))
        out["downtime"] = _downtime(oks, marks)
        out["failover_time"] = _failover(ordered, marks)
        return out

    async def aclose(self) -> None:
        """Close the kept connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self) -> dict[str, JSONValue]:
        session = self._http()  # built outside the timed part: loading the CA bundle takes tens of ms
        started = time.monotonic()
        address: str | None = None
        resolved: str | None = None
        try:
            async with asyncio.timeout(self._clock.to_real(self.spec.timeout)):
                if self._kept is not None:
                    address, resolved = self._kept
                else:
                    resolution = await self._resolver.resolve(self._fqdn)
                    address = resolution.address
                    target = resolution.target
                    resolved = (self._env.region_of_target(target) or target) if target else None
                async with session.get(
                        f"{self._scheme}://{address}:{self._port}{self._path}", headers={"Host": self._host},
                        server_hostname=self._fqdn if self._scheme == "https" else None,
                        allow_redirects=False) as response:
                    await response.read()
        except TimeoutError:
            stage = "resolving the name" if address is None else "waiting for the response"
            return self._failure(f"timeout: nothing within {self.spec.timeout:g}s ({stage})",
                                 address, resolved)
        except ResolveError as exc:
            return self._failure(str(exc), address, resolved)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failure(f"{type(exc).__name__}: {exc}".rstrip(": "), address, resolved)
        if self.spec.connection == "reuse":
            closing = response.headers.get("Connection", "").lower() == "close"
            self._kept = None if closing else (address, resolved)
        region = response.headers.get(self.spec.region_header)
        ok = 200 <= response.status < 300
        return {"ok": ok, "status": response.status,
                "latency": round((time.monotonic() - started) * self._clock.time_scale, 6),
                "region": region, "resolved": resolved, "address": address,
                "error": None if ok else f"HTTP {response.status}"}

    def _failure(self, error: str, address: str | None, resolved: str | None) -> dict[str, JSONValue]:
        # A long-lived client whose connection broke resolves again for the next one.
        self._kept = None
        return {**_failed(error), "resolved": resolved, "address": address}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No pool limit (the probe bounds its own samples in flight); ``force_close`` for a new
            # connection per sample; the probe's own timeout bounds each request; no proxy from the
            # environment, which would measure the proxy rather than the service.
            connector = aiohttp.TCPConnector(limit=0, force_close=self.spec.connection == "new",
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session


def _failed(error: str) -> dict[str, JSONValue]:
    return {"ok": False, "status": None, "latency": None, "region": None, "resolved": None,
            "address": None, "error": error}


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _is_true(value: object) -> bool:
    return value is True


def _downtime(oks: Sequence[Point], marks: Marks) -> Metric:
    if not oks:
        return Metric(None, "s", note="no samples")
    worst = longest_failure(oks, lambda v: v is not True, end=marks.ended)
    if worst is None:
        # A failure shorter than the widest gap between two samples could have slipped between them.
        gap = max((b.t - a.t for a, b in itertools.pairwise(oks)), default=0.0)
        return Metric(0.0, "s", error=gap, note="no failed sample")
    note = f"{worst.samples} failed samples from t={worst.first:.1f}s"
    if worst.after is None:
        note += "; still failing when sampling stopped (at least this long)"
    if worst.before is None:
        note += "; failing since the first sample"
    return Metric(worst.length(marks.ended), "s", error=worst.error(), note=note)


def _failover(samples: Sequence[Sample], marks: Marks) -> Metric:
    if marks.incident_start is None:
        return Metric(None, "s", note="no fault was applied")
    points = [Point(s.t, _served_by(s), s.duration) for s in samples]
    base = last_known(points, marks.incident_start)
    if base is None:
        return Metric(None, "s", note="no region served a request before the incident started")
    end = marks.recovery_start if marks.recovery_start is not None else marks.ended
    moved = settled(points, lambda v: v != base.value, start=marks.incident_start, end=end,
                    silent_is_unknown=False)
    if moved is None:
        return Metric(None, "s", note=f"users were not served from a region other than {base.value} for good")
    return moved.since(marks.incident_start, note=f"from {base.value}")


def _served_by(sample: Sample) -> str | None:
    region = sample.values.get("region")
    return region if sample.values.get("ok") is True and isinstance(region, str) else None
