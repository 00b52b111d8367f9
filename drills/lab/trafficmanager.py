"""Traffic Manager: endpoint health monitoring, routing, and the DNS name that follows them.

Each enabled endpoint is probed as Azure probes it: a new connection, ``GET <monitor.path>``, every
``monitor.interval``, each probe given ``monitor.timeout``; the probe succeeds when the status is in
``monitor.expectedStatusCodeRanges`` (none given: only 200; a 3xx fails), and a refused connection
fails at once. A monitor path the regions do not serve (a typo) fails everywhere: every endpoint goes
Degraded, the name is answered as if all were Online, and it never moves on a failover.

An endpoint starts ``CheckingEndpoint`` (routed as if Online), becomes ``Degraded`` on the (N+1)th
consecutive failure (N = ``toleratedFailures``) and ``Online`` again after ONE success. Disabled
endpoints are neither probed nor returned.

Routing ``Priority`` answers with the lowest priority number among the enabled endpoints that are
not Degraded; when every enabled one is Degraded it answers as if all were Online; with none enabled
the name does not exist. ``Weighted`` picks among the same set at random, by weight.

``Performance`` and ``Geographic`` answer by where the client is: the address of the query's EDNS
Client Subnet (RFC 7871), else the address the query came from. ``Performance`` answers the closest
region, the one whose users' ``subnets`` hold the client (the topology's regions), and while it is
Degraded or Disabled the next one by priority, as Priority routing would among the rest; a client no
region holds is routed by priority alone. ``Geographic`` answers the endpoint whose ``geography`` holds
the client (the most specific mapping; ``WORLD`` holds every address), and NODATA when none does or
that endpoint is Disabled. As in Azure, a Degraded mapped endpoint is answered all the same: no other
endpoint serves that geography. With ``geographicFallback: priority`` each region's endpoint stands for
a nested Priority profile holding it first and the others after it by priority, which answers the next
one while it is Degraded or Disabled. These two echo the Client Subnet with the source prefix length
as scope (the answer holds for that subnet); Priority and Weighted with scope 0.

Timing is what the drills measure, so it is exact: probes run on absolute deadlines of the lab clock
(``start + k * interval``, no drift), a probe's timeout counts from its deadline, and a result takes
effect, and is logged to the ground truth, the moment the probe completes. When an endpoint starts
hanging the answer therefore moves within ``[N*I + T, (N+1)*I + T)`` lab seconds, and within
``[N*I, (N+1)*I)`` (plus the probe's round trip) when it refuses or fails fast (docs/protocol-facts.md).

Ground truth: ``endpoint_status`` (endpoint, status, previous) on every monitor status change and
``dns_answer`` (answer, previous) whenever the routing answer changes; both are written once at
:meth:`TrafficManager.start` with ``previous`` null. ``endpoint_enabled`` (endpoint, enabled) when an
endpoint is enabled or disabled, ``endpoint_routing`` (endpoint, priority, weight) when its routing
settings change. With ``Weighted`` routing ``answer`` is the set
of endpoints a query may get, their names joined by ``,`` in priority order. ``monitor_probe_failed``
(endpoint, deadline, reason) for every failed probe; ``monitor_probe_retaken`` (endpoint, deadline,
reason, answering) when a probe timed out only because the lab's own process stalled past its timeout
(see :data:`STALL_SHARE`) and was judged by what its endpoint did when it was sent.

With ``Performance`` and ``Geographic`` routing the answer depends on the client, so ``dns_answer`` is
written per vantage point, a region's users (standing for them: their first subnet), and carries
``vantage`` (the region whose users these are) and ``subnet`` (null for a region with no subnets: its
users are located nowhere); ``answer`` null is NXDOMAIN or NODATA::

    {"event": "dns_answer", "answer": "eu", "previous": "us", "vantage": "us", "subnet": "198.51.100.0/24"}
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import dns.name

from drills.lab.clock import LabClock
from drills.lab.dnsserver import Apex, DnsServer, Zone, make_zone
from drills.lab.groundtruth import GroundTruth
from drills.lab.topology import WORLD, Topology

CHECKING, ONLINE, DEGRADED, DISABLED = "CheckingEndpoint", "Online", "Degraded", "Disabled"
"""The ``endpointMonitorStatus`` values the lab's endpoints take."""

_TARGET_TTL_S = 300
"""TTL of an endpoint target's A record: the region's own DNS, not Traffic Manager's answer."""

PROFILE_APEX = Apex(mname="tm1.msft.net", rname="hostmaster.trafficmanager.net", serial=2003080800,
                    refresh=900, retry=300, expire=2419200, minimum=30, ttl_s=30,
                    nameservers=("tm1.dns-tm.com", "tm2.dns-tm.com", "tm1.edgedns-tm.info",
                                 "tm2.edgedns-tm.info"))
"""The apex of the profile's zone (``trafficmanager.net``) as Traffic Manager's name servers answer it
(docs/protocol-facts.md): NXDOMAIN and NODATA are cached for 30 s."""

_TARGET_APEX = Apex(mname="ns1-01.azure-dns.com", rname="azuredns-hostmaster.microsoft.com", serial=1,
                    refresh=3600, retry=300, expire=2419200, minimum=300, ttl_s=3600,
                    nameservers=("ns1-01.azure-dns.com", "ns2-01.azure-dns.net", "ns3-01.azure-dns.org",
                                 "ns4-01.azure-dns.info"))
"""The apex of the targets' zone (``endpoints.drill.test``): the regions' own DNS, an Azure DNS zone
with its default SOA, which the lab's server answers too (docs/protocol-facts.md)."""

_CLOSE_TIMEOUT_S = 5.0

STALL_SHARE = 0.1
"""A probe whose timeout fired later than this share of the timeout (in real time) timed out because
the lab's own process stalled, not because the endpoint did not answer: the lab's clock multiplies
every stall (a 5 s timeout is 83 real ms at scale 60), and Azure's probes do not share a process with
the endpoints they probe. Such a probe is judged by what its endpoint did when it was sent
(:meth:`TrafficManager._after_stall`), and so is any probe that timed out although the lab knows its
endpoint's front door was answering when it was sent: only a front door holding requests hangs in the
lab, so the wait was the lab's own (busy with the fault just injected, say)."""

_NO_ANSWER = "no answer within the timeout"

_STALL_MIN_REAL_S = 0.005
"""The least lateness counted as a stall: the loop's ordinary jitter is well under it."""

PER_CLIENT = ("Performance", "Geographic")
"""The routings whose answer depends on where the client is."""

_NODATA = "\0nodata"
"""The zone key of an answer with no records (Geographic: no endpoint for the client's geography)."""

_LOCATED_CACHE = 4096
"""Distinct client addresses whose routing key is kept (probes ask from a handful)."""

Shares = dict[str, float]
"""Endpoint name -> share of queries answered with it (sums to 1; empty: no answer)."""


_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One Traffic Manager endpoint: its DNS target, the address that target resolves to and is probed
    on, and its routing settings."""

    name: str
    target: str
    """The DNS name the profile's CNAME points to (``us.endpoints.drill.test``)."""
    address: str
    port: int
    """Where the monitor probes (the region's ingress)."""
    priority: int
    weight: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 1000:
            raise ValueError(f"endpoint {self.name}: priority must be 1 to 1000, not {self.priority}")
        if not 1 <= self.weight <= 1000:
            raise ValueError(f"endpoint {self.name}: weight must be 1 to 1000, not {self.weight}")


class TrafficManager:
    """One Traffic Manager profile: monitors its endpoints and serves its DNS name."""

    def __init__(self, topology: Topology, endpoints: list[Endpoint], *, clock: LabClock,
                 ground_truth: GroundTruth | None = None,
                 answers: Callable[[str], bool] | None = None) -> None:
        """``answers`` tells, by endpoint name, whether its front door answers requests now (the lab
        knows; None: unknown); it only judges a probe that timed out because the lab stalled."""
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique: {names}")
        self._profile = topology.traffic_manager
        self._answers = answers
        self._clock = clock
        self._ground_truth = ground_truth
        self._endpoints = {e.name: e for e in sorted(endpoints, key=lambda e: e.priority)}
        self._status = {e.name: CHECKING if e.enabled else DISABLED for e in endpoints}
        self._failures = dict.fromkeys(names, 0)
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._deadlines: dict[str, float] = {}
        """Each monitored endpoint's next probe deadline, lab seconds."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._random = random.Random()
        ttl_s = int(self._profile.ttl)
        addresses = {e.target: e.address for e in endpoints}
        # The targets' zones, then the profile's (it wins should they be one): the parent of each name.
        zones = {_parent(e.target): _TARGET_APEX for e in endpoints}
        zones[_parent(self._profile.fqdn)] = PROFILE_APEX
        self.per_client = self._profile.routing in PER_CLIENT
        """Whether the answer depends on the client's subnet (Performance, Geographic)."""
        self._zones: dict[str | None, Zone] = {
            name: make_zone(self._profile.fqdn, answer=name, ttl_s=ttl_s, addresses=addresses, zones=zones,
                            address_ttl_s=_TARGET_TTL_S, scoped=self.per_client,
                            target=self._endpoints[name].target if name is not None else None)
            for name in [*names, None]
        }
        self._zones[_NODATA] = make_zone(self._profile.fqdn, answer=None, target=None, ttl_s=ttl_s,
                                         addresses=addresses, zones=zones, address_ttl_s=_TARGET_TTL_S,
                                         exists=True,
                                         scoped=self.per_client)
        # Where users are (Performance) and which endpoint each geography maps to (Geographic), most
        # specific first so that the first network holding an address is its match; WORLD comes last.
        self._users = sorted(((ipaddress.ip_network(subnet), region) for region, r in topology.regions.items()
                              for subnet in r.subnets), key=lambda item: -item[0].prefixlen)
        mapped = [(subnet, region) for region, r in topology.regions.items() if region in self._endpoints
                  for subnet in r.mapped]
        self._geography = sorted(((ipaddress.ip_network(subnet), region) for subnet, region in mapped
                                  if subnet != WORLD), key=lambda item: -item[0].prefixlen)
        self._world = next((region for subnet, region in mapped if subnet == WORLD), None)
        self._vantages = {region: (r.subnets[0] if r.subnets else None)
                          for region, r in topology.regions.items()}
        """Each region's users, by the subnet that stands for them (None: located nowhere)."""
        self._keys: dict[str, str | None] = {}
        """Client address -> its routing key (see :meth:`_key`), kept: probes ask from a few."""
        self._dns = DnsServer(self._zone)
        self._answer_label = self._routing_label()
        self._labels = {vantage: self._routing_label(vantage) for vantage in self._vantages}
        self._answer_listeners: list[Callable[[dict[str, float]], None]] = []
        self._route_listeners: list[Callable[[dict[str, Shares]], None]] = []

    def on_answer(self, listener: Callable[[dict[str, float]], None]) -> None:
        """Call ``listener`` with :meth:`shares` at the instant the routing answer changes (with a
        per-client routing: any vantage point's answer)."""
        self._answer_listeners.append(listener)

    def on_route(self, listener: Callable[[dict[str, Shares]], None]) -> None:
        """Call ``listener`` at the instant the answer some regions' users get changes, with those
        regions' users' :meth:`shares` (region -> shares), all of them at once."""
        self._route_listeners.append(listener)

    @property
    def dns_queries(self) -> int:
        """DNS queries answered since start."""
        return self._dns.queries

    async def start(self, host: str, port: int = 0) -> int:
        """Serve DNS on ``host`` (UDP and TCP on one port, a free one if 0), start monitoring; the port."""
        bound = await self._dns.start(host, port)
        self._started = True
        for name, endpoint in self._endpoints.items():
            self._record("endpoint_status", endpoint=name, status=self._status[name], previous=None)
            if endpoint.enabled:
                self._start_monitor(name)
        if self.per_client:
            for vantage, label in self._labels.items():
                self._record("dns_answer", answer=label, previous=None, vantage=vantage,
                             subnet=self._vantages[vantage])
        else:
            self._record("dns_answer", answer=self._answer_label, previous=None)
        return bound

    async def close(self) -> None:
        """Stop monitoring (cancelling probes in flight) and stop serving DNS."""
        self._started = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_S)
        self._monitors.clear()
        await self._dns.close()

    def answer(self, vantage: str | None = None) -> str | None:
        """The endpoint name DNS answers with now for the users of region ``vantage`` (None: a client
        no region holds; only Performance and Geographic routing tell them apart); None: NXDOMAIN or
        NODATA. Random per call with Weighted."""
        candidates = self._candidates(self._vantage_key(vantage))
        if not candidates:
            return None
        if self._profile.routing == "Weighted":
            return self._random.choices(candidates, weights=[e.weight for e in candidates])[0].name
        return candidates[0].name

    def shares(self, vantage: str | None = None) -> Shares:
        """The share of queries from the users of region ``vantage`` (as :meth:`answer`) answered with
        each endpoint now: 1 for the one answer, by weight for Weighted; empty when none is given."""
        candidates = self._candidates(self._vantage_key(vantage))
        if not candidates:
            return {}
        if self._profile.routing == "Weighted":
            total = sum(e.weight for e in candidates)
            return {e.name: e.weight / total for e in candidates}
        return {candidates[0].name: 1.0}

    def routes(self) -> dict[str, Shares]:
        """:meth:`shares` for each region's users."""
        return {vantage: self.shares(vantage) for vantage in self._vantages}

    def geography(self, name: str) -> list[str]:
        """What Geographic routing maps endpoint ``name`` to (subnets, ``WORLD``): its ``geoMapping``;
        empty for an endpoint of no region, or with another routing. Raises KeyError for an unknown
        endpoint."""
        if name not in self._endpoints:
            raise KeyError(name)
        if self._profile.routing != "Geographic":
            return []
        mapped = [str(net) for net, region in self._geography if region == name]
        return mapped + ([WORLD] if self._world == name else [])

    def vantage_points(self) -> dict[str, str]:
        """Each region's users, by the subnet that stands for them (regions with subnets only)."""
        return {vantage: subnet for vantage, subnet in self._vantages.items() if subnet is not None}

    def statuses(self) -> dict[str, str]:
        """``endpointMonitorStatus`` per endpoint."""
        return dict(self._status)

    def endpoints(self) -> list[Endpoint]:
        """The endpoints as configured now (``enabled`` reflects :meth:`set_enabled`), by priority."""
        return list(self._endpoints.values())

    def monitor_schedule(self) -> dict[str, object]:
        """The monitor's settings and, per endpoint, when its next probe is due, as the lab's
        ``GET /lab/v1/trafficmanager`` answers it (durations in real-world seconds of the design).

        ``nextProbe`` is the REAL Unix time of the endpoint's next probe deadline (None while it is not
        monitored): probes run at ``start + k * interval`` lab seconds, so every later deadline follows
        from it, and a drill can place a fault at a chosen phase of the probe cycle.
        """
        monitor = self._profile.monitor
        real_now, lab_now = self._clock.real(), self._clock.now()
        endpoints = []
        for name, endpoint in self._endpoints.items():
            deadline = self._deadlines.get(name) if name in self._monitors else None
            if deadline is not None and deadline < lab_now:
                # The probe of this deadline is in flight: the next one is due an interval later.
                deadline += monitor.interval * (1 + (lab_now - deadline) // monitor.interval)
            endpoints.append({
                "name": name, "status": self._status[name], "enabled": endpoint.enabled,
                "nextProbe": None if deadline is None
                else round(real_now + self._clock.to_real(deadline - lab_now), 6),
            })
        return {"interval": monitor.interval, "timeout": monitor.timeout,
                "toleratedFailures": monitor.tolerated_failures, "ttl": self._profile.ttl,
                "routing": self._profile.routing, "timeScale": self._clock.time_scale,
                "endpoints": endpoints}

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an endpoint (``endpointStatus``). Raises KeyError for an unknown name."""
        endpoint = self._endpoints[name]
        if endpoint.enabled == enabled:
            return
        self._endpoints[name] = dataclasses.replace(endpoint, enabled=enabled)
        self._failures[name] = 0
        if self._started:
            self._record("endpoint_enabled", endpoint=name, enabled=enabled)
        if enabled:
            self._set_status(name, CHECKING)
            if self._started:
                self._start_monitor(name)
        else:
            monitor = self._monitors.pop(name, None)
            self._deadlines.pop(name, None)
            if monitor is not None:
                monitor.cancel()
            self._set_status(name, DISABLED)

    def set_routing(self, name: str, *, priority: int | None = None, weight: int | None = None) -> None:
        """Change an endpoint's ``priority`` and/or ``weight`` (None: keep); routing follows at once.
        Raises KeyError for an unknown name, ValueError for a value outside 1-1000."""
        endpoint = self._endpoints[name]
        changed = dataclasses.replace(endpoint, priority=endpoint.priority if priority is None else priority,
                                      weight=endpoint.weight if weight is None else weight)
        if changed == endpoint:
            return
        self._endpoints[name] = changed
        self._endpoints = dict(sorted(self._endpoints.items(), key=lambda item: item[1].priority))
        if self._started:
            self._record("endpoint_routing", endpoint=name, priority=changed.priority, weight=changed.weight)
        self._reroute(weights_changed=changed.weight != endpoint.weight)

    def _candidates(self, key: str | None = None) -> list[Endpoint]:
        """The endpoints a query may be answered with, best first, for a client whose routing key
        (:meth:`_key`) is ``key``: by priority, or for Performance and Geographic with fallback the
        key's endpoint first; Geographic without fallback only the mapped endpoint, Degraded or not."""
        ordered = list(self._endpoints.values())
        routing = self._profile.routing
        if routing in PER_CLIENT:
            if routing == "Geographic" and key is None:
                return []  # no endpoint is mapped to the client's geography: NODATA
            first = [e for e in ordered if e.name == key]
            ordered = first + [e for e in ordered if e.name != key]
            if routing == "Geographic" and self._profile.geographic_fallback == "none":
                ordered = first
        enabled = [e for e in ordered if e.enabled]
        healthy = [e for e in enabled if self._status[e.name] != DEGRADED]
        return healthy or enabled

    def _key(self, address: str | None) -> str | None:
        """Where a client at ``address`` is, as routing sees it: Performance: the region whose users'
        subnets hold it; Geographic: the endpoint its geography is mapped to; None: neither (and
        always None for the other routings)."""
        if not self.per_client or address is None:
            return None
        if address in self._keys:
            return self._keys[address]
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            found = None
        else:
            if self._profile.routing == "Performance":
                found = next((region for net, region in self._users
                              if net.version == ip.version and ip in net), None)
            else:
                found = next((region for net, region in self._geography
                              if net.version == ip.version and ip in net), self._world)
        if len(self._keys) >= _LOCATED_CACHE:
            self._keys.clear()
        self._keys[address] = found
        return found

    def _vantage_key(self, vantage: str | None) -> str | None:
        """The routing key of the users of region ``vantage`` (None: of a client no region holds)."""
        if not self.per_client:
            return None
        if self._profile.routing == "Performance":
            return vantage if vantage in self._vantages and self._vantages[vantage] is not None else None
        subnet = self._vantages.get(vantage) if vantage is not None else None
        return self._key(str(ipaddress.ip_network(subnet).network_address) if subnet is not None else None)

    def _routing_label(self, vantage: str | None = None) -> str | None:
        candidates = self._candidates(self._vantage_key(vantage))
        if not candidates:
            return None
        if self._profile.routing == "Weighted":
            return ",".join(e.name for e in candidates)
        return candidates[0].name

    def _zone(self, client: str | None) -> Zone:
        """The zone a query from ``client`` (an address; None: unknown) is answered from now."""
        candidates = self._candidates(self._key(client))
        if not candidates:
            if self._profile.routing == "Geographic" and any(e.enabled for e in self._endpoints.values()):
                return self._zones[_NODATA]
            return self._zones[None]
        if self._profile.routing == "Weighted":
            picked = self._random.choices(candidates, weights=[e.weight for e in candidates])[0]
            return self._zones[picked.name]
        return self._zones[candidates[0].name]

    def _start_monitor(self, name: str) -> None:
        task = asyncio.create_task(self._monitor(name), name=f"traffic-manager monitor {name}")
        self._monitors[name] = task
        self._tasks.add(task)
        task.add_done_callback(self._monitor_ended)

    def _monitor_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A monitor only ends by cancellation; anything else is a lab bug: say so, loudly.
            _log.error("%s stopped", task.get_name(), exc_info=task.exception())

    async def _monitor(self, name: str) -> None:
        """Probe one endpoint at ``start + k * interval`` lab seconds, for as long as it is enabled."""
        monitor = self._profile.monitor
        deadline = self._clock.now()
        while True:
            self._deadlines[name] = deadline
            delay = deadline - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            answering = self._answers(name) if self._answers is not None else None
            probed, why = await self._probe(self._endpoints[name], give_up_at=deadline + monitor.timeout)
            if probed is None or (answering and why.startswith(_NO_ANSWER)):
                # Stalled, or held although its front door answered when the probe was sent: the lab's
                # own slowness (Azure's probe would have been answered in milliseconds), not the endpoint.
                self._record("monitor_probe_retaken", endpoint=name, deadline=round(deadline, 3), reason=why,
                             answering=answering)
                healthy, why = await self._after_stall(name, answering=answering)
            else:
                healthy = probed
            if not healthy:
                self._record("monitor_probe_failed", endpoint=name, deadline=round(deadline, 3), reason=why)
            self._observe(name, healthy=healthy)
            deadline += monitor.interval
            late = self._clock.now() - deadline
            if late >= monitor.interval:
                # The loop stalled for whole intervals: skip the probes missed, keep the phase.
                deadline += monitor.interval * (late // monitor.interval)

    async def _after_stall(self, name: str, *, answering: bool | None) -> tuple[bool, str]:
        """Judge a probe that timed out only because the lab stalled, by what its endpoint did when it
        was sent: one whose front door held requests then would have timed out anyway; one that
        answered is asked again for its status, and counted healthy if that second probe cannot tell
        (its endpoint may have died in between, after the probe Azure would have made)."""
        if answering is False:
            return False, "no answer: the front door held requests when the probe was sent"
        retaken, why = await self._probe(self._endpoints[name],
                                         give_up_at=self._clock.now() + self._profile.monitor.timeout)
        if retaken is not None and why.startswith("status"):
            return retaken, why
        if answering:
            return True, f"answering when the probe was sent (taken again: {why})"
        return False, why

    async def _probe(self, endpoint: Endpoint, *, give_up_at: float) -> tuple[bool | None, str]:
        """One HTTP probe: True only for an expected status before the lab time ``give_up_at``; None
        when it timed out only because the lab's process stalled (:data:`STALL_SHARE`); and why it
        failed, in words."""
        loop = asyncio.get_running_loop()
        timeout_real = self._clock.to_real(give_up_at - self._clock.now())
        when = loop.time() + timeout_real
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout_at(when):
                reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port)
                writer.write(f"GET {self._profile.monitor.path} HTTP/1.1\r\nHost: {endpoint.target}\r\n"
                             "User-Agent: Azure Traffic Manager Endpoint Monitor\r\n"
                             "Connection: close\r\n\r\n".encode("latin-1"))
                status_line = await reader.readline()
        except TimeoutError:
            late = loop.time() - when
            stalled = late > max(_STALL_MIN_REAL_S, STALL_SHARE * timeout_real)
            return (None if stalled else False), f"{_NO_ANSWER} ({late * 1000:.0f} ms late)"
        except (OSError, ValueError) as exc:  # ValueError: a status line past the stream's limit
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            if writer is not None:
                writer.close()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return False, f"not an HTTP status line: {status_line[:40]!r}"
        status = int(parts[1])
        return self._profile.monitor.succeeds(status), f"status {status}"

    def _observe(self, name: str, *, healthy: bool) -> None:
        if healthy:
            self._failures[name] = 0
            self._set_status(name, ONLINE)
            return
        self._failures[name] += 1
        if self._failures[name] > self._profile.monitor.tolerated_failures:
            self._set_status(name, DEGRADED)

    def _set_status(self, name: str, status: str) -> None:
        """Change one endpoint's status and, at the same instant, re-route."""
        previous = self._status[name]
        if status == previous:
            return
        self._status[name] = status
        if self._started:
            self._record("endpoint_status", endpoint=name, status=status, previous=previous)
        self._reroute()

    def _reroute(self, *, weights_changed: bool = False) -> None:
        """Take the routing answer the endpoints give now; log it if it changed, and announce it if it
        or (``weights_changed``) the shares among the same endpoints changed."""
        label = self._routing_label()
        moved = label != self._answer_label
        if moved:
            previous_label, self._answer_label = self._answer_label, label
            if self._started and not self.per_client:
                self._record("dns_answer", answer=label, previous=previous_label)
        changed = []
        for vantage, before in self._labels.items():
            now = self._routing_label(vantage)
            if now != before:
                self._labels[vantage] = now
                changed.append(vantage)
                if self._started and self.per_client:
                    self._record("dns_answer", answer=now, previous=before, vantage=vantage,
                                 subnet=self._vantages[vantage])
        if not self._started:
            return
        if moved or changed or weights_changed:
            for listener in self._answer_listeners:
                listener(self.shares())
        if changed or weights_changed:
            routes = {vantage: self.shares(vantage) for vantage in (changed or self._labels)}
            for route in self._route_listeners:
                route(routes)

    def _record(self, event: str, **fields: object) -> None:
        if self._ground_truth is not None:
            self._ground_truth.record(event, **fields)


def _parent(name: str) -> str:
    """The zone a DNS name is served from: its parent (``trafficmanager.net`` for a profile's name)."""
    return dns.name.from_text(name).parent().to_text()
