"""The dns probe: what Traffic Manager's name servers answer for the profile's name, over time.

Each sample asks every configured name server, at once, for the A record of the profile's FQDN over
UDP, from each vantage point (an EDNS Client Subnet, RFC 7871, for routings that depend on where the
user is; by default one vantage point that sends none). The answer is the region whose endpoint
target the CNAME names (``env.region_of_target``), or the raw name or address when no region has it;
None when nothing usable came back (timeout, NXDOMAIN, no records). A sample to which no name server
replied at all is blind (``blind``: why, :data:`probes.base.BLIND`): it saw nothing, not "no answer".
When several name servers are configured, a vantage point's answer is that of the first one (in
configured order) that replied, as a stub resolver with a primary server would get; each server's
answer is kept beside it.

Sample values (``rtt``, the query's round trip, in real seconds: a network time, never scaled to lab
time)::

    {"answer": "us", "target": "us.endpoints.drill.test", "ttl": 30, "rtt": 0.031,
     "rcode": "NOERROR", "error": null,
     "servers": {"ns1:53": "us", "ns2:53": "us"},            # only with several name servers
     "vantage_points": {"paris": {...the same keys...}}}      # only with named vantage points

Metrics count from the run's marks, whatever the routing method. The failed regions are the
incident's (``Marks.failed_regions``, the regions the faults targeted); when the run does not say, they
are the answers seen before the incident that no longer appear at the end of the incident window
(:func:`probes.timeline.failed_values`). The baseline is the set of answers seen before the incident
(one region with Priority routing, several with Weighted). ``failover_time``: to the instant after
which no answer points at a failed region, until recovery starts (or sampling ends); 0 s, with a note,
when no failed region was answered at all (Europe primary, the US killed); ``client_failover_time``:
that plus the TTL of the last answer that pointed at a failed region, the time a caching resolver that
fetched it just before the change may still serve it; ``failback_time``: from recovery start until
the answers are the baseline's again (none outside it, and each failed region that answered before
answering again); ``flaps``: changes into or out of the baseline's answers beyond the one expected in
each of the incident and recovery windows (alternation among them, as Weighted routing does, is none).
Each time is the middle of the interval the change is known to lie in, its error half that interval
(see :mod:`probes.timeline`). With named vantage points each metric and the ``answer`` signal have a
breakdown per vantage point (``failover_time.paris``), and the plain metric takes the slowest of the
vantage points whose answer changed (the flaps of all), or is unmeasured when some vantage point's
answer still pointed at a failed region when the incident window ended (Geographic routing without a
fallback: those users were never moved). ``vantage: [us, eu]`` names vantage points whose subnets
the environment gives (``trafficManager.vantagePoints``: a lab's are each region's users).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import dns.asyncquery
import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drills.environment import check_vantage_points
from drills.targets import Targets
from drills.units import Duration
from probes.base import BLIND, JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue
from probes.blindness import MetricWindow
from probes.resolver import (
    NameServer,
    check_vantage_names,
    client_subnet,
    parse_nameserver,
    server_address,
    vantage_subnets,
)
from probes.timeline import Interval, Point, changes, failed_values, first_seen, latest, seen, settled

STEADY_SAMPLES = 3
"""Consecutive agreeing answers that make a steady state: one sample could be a passing glitch."""

STUCK = "the answer still pointed at"
"""How a failover metric's note begins when a vantage point's answer never left the failed region: the
plain metric over every vantage point is then unmeasured too (its users were never moved)."""


class DnsProbe(ProbeBase):
    """Asks the Traffic Manager name servers for the profile's name (see the module docstring)."""

    class Spec(BaseModel):
        """The dns probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

        fqdn: str | None = None
        """The name to ask for; None: the environment's Traffic Manager FQDN."""
        vantage_points: dict[str, str] = Field(default_factory=dict)
        """Name -> client subnet sent as EDNS Client Subnet (``paris: 203.0.113.0/24``); empty (and no
        ``vantage``): one vantage point that sends none."""
        vantage: list[str] = Field(default_factory=list)
        """Vantage points by name, with the subnets the environment gives them (``trafficManager.
        vantagePoints``; a lab's: each region's users), e.g. ``[us, eu]``."""
        timeout: Duration = Field(default=5.0, gt=0)
        """How long to wait for one answer: a stub resolver's usual per-server timeout. Traffic Manager
        answers in tens of milliseconds, but on a lab's compressed clock 5 s is 170 real milliseconds
        at scale 30, and a shorter one would count a busy machine's hiccup as a lost answer."""

        @field_validator("vantage_points")
        @classmethod
        def _vantage_points(cls, value: dict[str, str]) -> dict[str, str]:
            return check_vantage_points(value)

        @field_validator("vantage")
        @classmethod
        def _vantage(cls, value: list[str]) -> list[str]:
            return check_vantage_names(value)

    SIGNALS: ClassVar[tuple[str, ...]] = ("answer", "answer.*", "steady")
    METRICS: ClassVar[tuple[str, ...]] = (
        "failover_time", "failover_time.*", "client_failover_time", "client_failover_time.*",
        "failback_time", "failback_time.*", "flaps", "flaps.*",
    )
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = {
        "failover_time": "failover", "client_failover_time": "failover", "failback_time": "failback",
    }
    """The part of a trial each metric depends on (:mod:`probes.blindness`); flaps: the whole incident."""
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset({"failover_time", "client_failover_time"})

    def __init__(self, name: str, spec: DnsProbe.Spec, targets: Targets, *, every: float) -> None:
        self.name = name
        self.period = every
        self.spec = spec
        self._env = targets.env
        self._clock = targets.clock
        self._fqdn = dns.name.from_text(spec.fqdn or targets.env.traffic_manager.fqdn)
        self._servers = [parse_nameserver(s) for s in targets.env.traffic_manager.nameservers]
        self._addresses: dict[NameServer, str] = {}
        subnets = vantage_subnets(spec.vantage_points, spec.vantage,
                                  targets.env.traffic_manager.vantage_points)
        self._vantage_points = [_VantagePoint(vp, client_subnet(subnet)) for vp, subnet in subnets.items()]
        # The named vantage points, which metrics and signals break down by (none: no breakdown).
        self._breakdown = list(subnets)
        if not self._vantage_points:
            self._vantage_points = [_VantagePoint(None, None)]

    async def sample(self) -> Mapping[str, JSONValue]:
        """Ask every name server from every vantage point; never raises for a failed query."""
        answers = await asyncio.gather(*(self._ask(vp) for vp in self._vantage_points))
        values = answers[0].values(several_servers=len(self._servers) > 1)
        if all(answer.rcode is None for answer in answers):
            # No name server replied to anyone: the probe saw nothing (a reply without a region, such
            # as NXDOMAIN, is still something seen).
            values[BLIND] = next((a.error for a in answers if a.error), None) or "no name server replied"
        if self._vantage_points[0].name is not None:
            values["vantage_points"] = {
                vp.name: answer.values(several_servers=len(self._servers) > 1)
                for vp, answer in zip(self._vantage_points, answers, strict=True) if vp.name is not None
            }
        return values

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``answer`` (and ``answer.<vantage point>``) of the latest sample; ``steady`` when the last
        few samples agree on an answer at every vantage point."""
        latest = recent[-1] if recent else None
        out: dict[str, SignalValue] = {"answer": _answer(latest, None) if latest else None}
        for vp in self._breakdown:
            out[f"answer.{vp}"] = _answer(latest, vp) if latest else None
        tail = recent[-STEADY_SAMPLES:]
        steady = len(tail) == STEADY_SAMPLES
        for vp in self._breakdown or [None]:
            seen = {_answer(s, vp) for s in tail}
            steady = steady and len(seen) == 1 and None not in seen
        out["steady"] = steady
        return out

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """Failover, client failover, failback and flaps (see the module docstring)."""
        ordered = sorted(samples, key=lambda s: s.t)
        if not self._breakdown:
            return _metrics(ordered, None, marks)
        per_vp = {vp: _metrics(ordered, vp, marks) for vp in self._breakdown}
        out: dict[str, Metric] = {}
        for key in ("failover_time", "client_failover_time", "failback_time", "flaps"):
            for vp, found in per_vp.items():
                out[f"{key}.{vp}"] = found[key]
            out[key] = _overall(key, {vp: found[key] for vp, found in per_vp.items()})
        return out

    async def _ask(self, vp: _VantagePoint) -> _Answer:
        replies = await asyncio.gather(*(self._query(server, vp) for server in self._servers))
        chosen = next((r for r in replies if r.rcode is not None), replies[0])
        if len(self._servers) > 1:
            chosen = chosen.with_servers(
                {str(server): r.answer for server, r in zip(self._servers, replies, strict=True)})
        return chosen

    async def _query(self, server: NameServer, vp: _VantagePoint) -> _Answer:
        timeout = self._clock.to_real(self.spec.timeout)
        try:
            async with asyncio.timeout(timeout):
                where = self._addresses.get(server) or await server_address(server)
                self._addresses[server] = where
                if vp.option is None:
                    query = dns.message.make_query(self._fqdn, dns.rdatatype.A)
                else:
                    query = dns.message.make_query(self._fqdn, dns.rdatatype.A, use_edns=0,
                                                   options=[vp.option])
                response = await dns.asyncquery.udp(query, where, port=server.port, timeout=timeout)
        except (TimeoutError, dns.exception.Timeout):
            return _Answer.failed(f"{server}: no answer within {self.spec.timeout:g}s")
        except (OSError, dns.exception.DNSException) as exc:
            return _Answer.failed(f"{server}: {type(exc).__name__}: {exc}")
        return self._read(response)

    def _read(self, response: dns.message.Message) -> _Answer:
        rcode = dns.rcode.to_text(response.rcode())
        rtt = round(response.time, 6)  # a real round trip: never lab time
        if response.rcode() != dns.rcode.NOERROR:
            return _Answer(answer=None, target=None, ttl=None, rtt=rtt, rcode=rcode, error=None)
        cname = response.get_rrset(response.answer, self._fqdn, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is not None:
            target: str = cname[0].target.to_text(omit_final_dot=True)
            ttl = cname.ttl
        else:
            records = response.get_rrset(response.answer, self._fqdn, dns.rdataclass.IN, dns.rdatatype.A)
            if records is None:
                return _Answer(answer=None, target=None, ttl=None, rtt=rtt, rcode=rcode,
                               error="no CNAME or A record in the answer")
            target = min(r.address for r in records)
            ttl = records.ttl
        answer = self._env.region_of_target(target) or target
        return _Answer(answer=answer, target=target, ttl=ttl, rtt=rtt, rcode=rcode, error=None)


@dataclass(frozen=True, slots=True)
class _VantagePoint:
    name: str | None
    option: dns.edns.ECSOption | None


@dataclass(frozen=True, slots=True)
class _Answer:
    answer: str | None
    target: str | None
    ttl: int | None
    rtt: float | None
    rcode: str | None
    error: str | None
    servers: Mapping[str, str | None] | None = None

    @classmethod
    def failed(cls, error: str) -> _Answer:
        return cls(answer=None, target=None, ttl=None, rtt=None, rcode=None, error=error)

    def with_servers(self, servers: Mapping[str, str | None]) -> _Answer:
        return _Answer(self.answer, self.target, self.ttl, self.rtt, self.rcode, self.error, servers)

    def values(self, *, several_servers: bool) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {"answer": self.answer, "target": self.target, "ttl": self.ttl,
                                     "rtt": self.rtt, "rcode": self.rcode, "error": self.error}
        if several_servers and self.servers is not None:
            out["servers"] = dict(self.servers)
        return out


def _values(sample: Sample, vp: str | None) -> Mapping[str, JSONValue]:
    if vp is None:
        return sample.values
    per_vp = sample.values.get("vantage_points")
    found = per_vp.get(vp) if isinstance(per_vp, dict) else None
    return found if isinstance(found, dict) else {}


def _answer(sample: Sample, vp: str | None) -> str | None:
    answer = _values(sample, vp).get("answer")
    return answer if isinstance(answer, str) else None


def _metrics(samples: Sequence[Sample], vp: str | None, marks: Marks) -> dict[str, Metric]:
    points = [Point(s.t, _answer(s, vp), s.duration) for s in samples]
    incident, recovery = marks.incident_start, marks.recovery_start
    if incident is None:
        note = "no fault was applied"
        return {"failover_time": Metric(None, "s", note=note),
                "client_failover_time": Metric(None, "s", note=note),
                "failback_time": Metric(None, "s", note=note),
                "flaps": Metric(float(changes(points, start=float("-inf"), end=float("inf"))), "count",
                                note="no fault was applied: every change of answer counts")}
    baseline = seen(points, start=float("-inf"), end=incident)
    if not baseline:
        note = "no answer was seen before the incident started, so nothing to fail over from"
        return {"failover_time": Metric(None, "s", note=note),
                "client_failover_time": Metric(None, "s", note=note),
                "failback_time": Metric(None, "s", note=note),
                "flaps": _flaps(points, baseline, incident, recovery)}
    window_end = recovery if recovery is not None else marks.ended
    if recovery is not None:
        # A sample still running when recovery started may have seen the world after it (a stalled
        # loop sends its question late): it is evidence of neither window.
        points = [p for p in points if p.t >= recovery or p.t + p.duration <= recovery]
    failed = failed_values(points, marks.failed_regions, incident=incident, end=window_end)
    out = {"flaps": _flaps(points, baseline, incident, recovery),
           "failback_time": _failback(points, baseline, failed, marks)}
    if not failed:
        if not seen(points, start=incident, end=window_end):
            note = "no answer was seen between the incident and the end of its window"
        elif changes(points, start=incident, end=window_end):
            note = f"the answer left {_names(baseline)} but did not stay away"
        else:
            note = f"the answer stayed {_names(baseline)}"
        out["failover_time"] = Metric(None, "s", note=note + " (the run did not say which region failed)")
        out["client_failover_time"] = out["failover_time"]
        return out
    failover = settled(points, lambda v: v not in failed, start=incident, end=window_end)
    if failover is None:
        note = f"{STUCK} {_names(failed)} when the incident window ended"
        out["failover_time"] = Metric(None, "s", note=note)
        out["client_failover_time"] = Metric(None, "s", note=note)
        return out
    never = not any(p.value in failed for p in points if p.t < failover.hi)
    note = (f"{_names(failed)} never answered: nothing to fail over from" if never
            else f"from {_names(failed)}")
    out["failover_time"] = failover.since(incident, note=note)
    ttl = _last_failed_ttl(samples, vp, failed, before=failover.hi)
    if never:
        out["client_failover_time"] = failover.since(incident, note=f"no resolver cached {_names(failed)}")
    elif ttl is None:
        out["client_failover_time"] = Metric(None, "s",
                                             note=f"no TTL was seen on the {_names(failed)} answer")
    else:
        out["client_failover_time"] = Interval(failover.lo + ttl, failover.hi + ttl).since(
            incident, note=f"includes the {ttl:g} s TTL a resolver may have cached {_names(failed)} for")
    return out


def _failback(points: Sequence[Point], baseline: frozenset[Hashable], failed: frozenset[Hashable],
              marks: Marks) -> Metric:
    """Until the answers are again those of before the incident: none outside the baseline's, and every
    failed region that answered before the incident answering again (with Weighted routing, its first
    answer; with Priority the two coincide)."""
    if marks.recovery_start is None:
        return Metric(None, "s", note="nothing was undone, so there was nothing to fail back from")
    start = marks.recovery_start
    inside = settled(points, lambda v: v in baseline, start=start, end=marks.ended)
    returning = sorted(str(v) for v in failed & baseline)
    back = [first_seen(points, lambda v, r=region: v == r, start=start, end=marks.ended)
            for region in returning]
    if inside is None or any(b is None for b in back):
        return Metric(None, "s",
                      note=f"the answer had not returned to {_names(baseline)} when sampling stopped")
    when = latest([inside, *(b for b in back if b is not None)])
    note = f"the answer was {_names(baseline)} when recovery started" if when.hi == when.lo else ""
    return when.since(start, note=note)


def _flaps(points: Sequence[Point], baseline: frozenset[Hashable], incident: float,
           recovery: float | None) -> Metric:
    # One change is expected in each window (away from the baseline during the incident, back to it
    # after recovery starts); every change beyond that is a flap. A change counts when the answer
    # leaves or re-enters the baseline's answers, so that Weighted routing alternating between them
    # is no flap.
    inside = [Point(p.t, None if p.value is None else p.value in baseline, p.duration) for p in points]
    windows = [(incident, recovery if recovery is not None else float("inf"))]
    if recovery is not None:
        windows.append((recovery, float("inf")))
    count = sum(max(0, changes(inside, start=a, end=b) - 1) for a, b in windows)
    return Metric(float(count), "count",
                  note="changes that came and went within one period are not seen")


def _names(values: frozenset[Hashable]) -> str:
    return "/".join(sorted(str(v) for v in values))


def _last_failed_ttl(samples: Sequence[Sample], vp: str | None, failed: frozenset[Hashable], *,
                     before: float) -> float | None:
    ttl = None
    for sample in samples:
        if sample.t >= before:
            break
        values = _values(sample, vp)
        seen_ttl = values.get("ttl")
        if values.get("answer") in failed and isinstance(seen_ttl, int | float):
            ttl = float(seen_ttl)
    return ttl


def _overall(key: str, per_vp: Mapping[str, Metric]) -> Metric:
    """The plain metric over several vantage points: the slowest of those measured (every user moved),
    or the total of the flaps."""
    if key == "flaps":
        return Metric(sum(float(m.value or 0) for m in per_vp.values()), "count",
                      note="over every vantage point")
    measured = {vp: m for vp, m in per_vp.items() if m.measured}
    if not measured:
        return Metric(None, "s", note="unmeasured at every vantage point")
    stuck = sorted(vp for vp, m in per_vp.items() if m.note.startswith(STUCK))
    if stuck:
        return Metric(None, "s", note=f"not every user moved: at {', '.join(stuck)} "
                                      f"{per_vp[stuck[0]].note}")
    vp, worst = max(measured.items(), key=lambda item: float(item[1].value or 0))
    unmeasured = sorted(set(per_vp) - set(measured))
    note = f"slowest vantage point: {vp}"
    if unmeasured:
        note += f"; unmeasured at {', '.join(unmeasured)}"
    return Metric(worst.value, worst.unit, error=worst.error, note=note)
