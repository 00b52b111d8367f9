"""The traffic-manager probe: how Traffic Manager itself judges each endpoint, over time, read from ARM.

Each sample is one GET of the environment's profile (``azure-mgmt-trafficmanager``; its endpoints come
with it): every watched endpoint's ``endpointMonitorStatus`` (Online, Degraded, CheckingEndpoint,
Disabled, ...) and ``endpointStatus`` (Enabled/Disabled), and the profile's ``profileMonitorStatus``.
It polls ARM, whose reads are throttled per subscription, so its default period is 5 s (a scenario may
say ``every``), its calls go through the run's ARM rate limit, and it never has two reads in flight: a
tick that comes while the previous read is still out is skipped and says so (no evidence either way).
Sample values::

    {"profile": "Online", "endpoints": {"us": {"monitor": "Online", "status": "Enabled"},
                                        "eu": {"monitor": "Online", "status": "Enabled"}},
     "error": null}

An endpoint the profile does not have is ``null`` there, with the reason in ``error``; a failed read
has no ``endpoints`` and says why in ``error`` and ``blind`` (:data:`probes.base.BLIND`: it saw
nothing), a skipped tick is ``{"skipped": true, "error": ...}`` (:data:`probes.base.SKIPPED`: the read
in flight speaks for it) (``sample`` never raises).

Signals: ``status.<endpoint>`` (its monitor status, so ``wait: tm.status.us == Degraded`` works),
``profile``, and ``steady``: every enabled watched endpoint Online.

Metrics per watched endpoint: ``time_to_degraded.<endpoint>`` from incident start to the first sample
that saw it Degraded, and ``time_to_online.<endpoint>`` from recovery start until it was Online for good.
Each is the middle of the interval the change is known to lie in (from the last sample that did not
see it to the end of the read that did), with half that interval as its error (see
:mod:`probes.timeline`); unmeasured (None, with a note) when the change was never seen, so an
expectation on it fails rather than passes silently. An endpoint already Degraded when the incident
started counts 0 s, with a note.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drills.armcalls import READER_ROLE, call
from drills.azure import TRAFFIC_MANAGER, Azure, preload, traffic_manager_profile
from drills.errors import DrillError
from drills.targets import Targets
from probes.base import BLIND, SKIPPED, JSONValue, Marks, Metric, ProbeBase, Sample, SignalValue
from probes.blindness import MetricWindow
from probes.timeline import Interval, Point, first_seen, last_known, settled

DEFAULT_EVERY_S = 5.0
"""Scenario seconds between profile reads unless the scenario says ``every``: 720 reads an hour in a
real environment, well within ARM's 12,000 reads an hour per subscription."""

DEGRADED = "Degraded"
ONLINE = "Online"


class TrafficManagerProbe(ProbeBase):
    """Reads the profile's endpoint monitor statuses from ARM (see the module docstring)."""

    DEFAULT_EVERY: ClassVar[float] = DEFAULT_EVERY_S

    class Spec(BaseModel):
        """The traffic-manager probe's parameters in a scenario file."""

        model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

        endpoints: list[str] | None = Field(default=None, min_length=1)
        """The endpoints to watch, by name; none: every endpoint of the profile."""

    SIGNALS: ClassVar[tuple[str, ...]] = ("status.*", "profile", "steady")
    METRICS: ClassVar[tuple[str, ...]] = ("time_to_degraded.*", "time_to_online.*")
    WINDOWS: ClassVar[Mapping[str, MetricWindow]] = {"time_to_degraded": "failover",
                                                     "time_to_online": "failback"}
    """The part of a trial each metric depends on (:mod:`probes.blindness`): until the change was seen."""
    SINCE_INCIDENT: ClassVar[frozenset[str]] = frozenset({"time_to_degraded"})

    def __init__(self, name: str, spec: TrafficManagerProbe.Spec, targets: Targets, *, every: float) -> None:
        preload(TRAFFIC_MANAGER)
        try:
            self._profile = traffic_manager_profile(targets.env)
        except DrillError as exc:
            raise DrillError(f"probe {name} (traffic-manager): {exc}") from exc
        self.name = name
        self.period = every
        self.spec = spec
        self._azure: Azure = targets.azure
        self._reading = False

    async def sample(self) -> Mapping[str, JSONValue]:
        """One read of the profile; never raises (a failure is the ``error`` value)."""
        if self._reading:
            return {SKIPPED: True, "error": "skipped: the previous read of the profile is still in flight"}
        self._reading = True
        try:
            return self._values(await self._read())
        except DrillError as exc:  # ARM's errors, translated at the call boundary; a credential's
            return {"error": str(exc), BLIND: str(exc)}
        except Exception as exc:  # whatever else the SDK raises is a failed read too, never a crash
            why = f"{type(exc).__name__}: {exc}"
            return {"error": why, BLIND: why}
        finally:
            self._reading = False

    def signals(self, recent: Sequence[Sample]) -> dict[str, SignalValue]:
        """``status.<endpoint>`` and ``profile`` from the latest read (a skipped tick is none: the read
        in flight will say); none when that read failed, never a status from an older one; ``steady``
        when it saw every enabled endpoint Online."""
        taken = [s for s in recent if not s.skipped]
        read = [s for s in taken if isinstance(s.values.get("endpoints"), dict)]
        if not read or taken[-1] is not read[-1]:
            return {"profile": None, "steady": False}
        latest = read[-1].values
        endpoints = _endpoints(latest)
        out: dict[str, SignalValue] = {"profile": _text(latest.get("profile"))}
        for name, state in endpoints.items():
            out[f"status.{name}"] = _text(state.get("monitor")) if state is not None else None
        enabled = [s for s in endpoints.values() if s is not None and s.get("status") != "Disabled"]
        out["steady"] = (bool(enabled) and None not in endpoints.values()
                         and all(s.get("monitor") == ONLINE for s in enabled))
        return out

    def metrics(self, samples: Iterable[Sample], marks: Marks) -> dict[str, Metric]:
        """``time_to_degraded.<endpoint>`` and ``time_to_online.<endpoint>`` (module docstring)."""
        ordered = sorted(samples, key=lambda s: s.t)
        names = list(dict.fromkeys(n for s in ordered for n in _endpoints(s.values)))
        out: dict[str, Metric] = {}
        for name in names:
            points = [Point(s.t, _monitor(s.values, name), s.duration) for s in ordered]
            out[f"time_to_degraded.{name}"] = _time_to_degraded(points, name, marks)
            out[f"time_to_online.{name}"] = _time_to_online(points, name, marks)
        return out

    async def _read(self) -> Any:
        profile = self._profile
        client = self._azure.traffic_manager(profile.subscription)
        return await call(self._azure, lambda: client.profiles.get(profile.resource_group, profile.name),
                          what=f"read Traffic Manager profile {profile.name} in resource group "
                               f"{profile.resource_group}", role=READER_ROLE)

    def _values(self, found: Any) -> dict[str, JSONValue]:
        properties = found.properties
        monitor = properties.monitor_config if properties is not None else None
        every = (properties.endpoints if properties is not None else None) or []
        listed = {(e.name or "").lower(): e for e in every}
        wanted = self.spec.endpoints or [e.name or "" for e in listed.values()]
        endpoints: dict[str, JSONValue] = {}
        missing = []
        for name in wanted:
            endpoint = listed.get(name.lower())
            if endpoint is None:
                endpoints[name] = None
                missing.append(name)
                continue
            p = endpoint.properties
            endpoints[name] = {"monitor": _text(p.endpoint_monitor_status if p is not None else None),
                               "status": _text(p.endpoint_status if p is not None else None) or "Enabled"}
        error = (f"profile {self._profile.name} has no endpoint {', '.join(missing)} (its endpoints: "
                 f"{', '.join(e.name or '?' for e in listed.values()) or 'none'})") if missing else None
        return {"profile": _text(monitor.profile_monitor_status if monitor is not None else None),
                "endpoints": endpoints, "error": error}


def _text(value: object) -> str | None:
    """A status as ARM sent it (the SDK's str enums print their Python name, so take the value)."""
    value = getattr(value, "value", value)
    return str(value) if value is not None else None


def _endpoints(values: Mapping[str, JSONValue]) -> dict[str, dict[str, Any] | None]:
    found = values.get("endpoints")
    if not isinstance(found, dict):
        return {}
    return {str(k): v if isinstance(v, dict) else None for k, v in found.items()}


def _monitor(values: Mapping[str, JSONValue], name: str) -> Hashable | None:
    state = _endpoints(values).get(name)
    return _text(state.get("monitor")) if state is not None else None


def _time_to_degraded(points: Sequence[Point], name: str, marks: Marks) -> Metric:
    start = marks.incident_start
    if start is None:
        return Metric(None, "s", note="no fault was applied: no incident to count from")
    end = marks.recovery_start if marks.recovery_start is not None else marks.ended
    found = first_seen(points, lambda v: v == DEGRADED, start=start, end=end)
    if found is None:
        last = last_known(points, end)
        return Metric(None, "s", note=f"{name} was never seen {DEGRADED} between the incident and "
                                      f"{'recovery' if marks.recovery_start is not None else 'the end'} "
                                      f"(last seen: {last.value if last is not None else 'nothing'})")
    already = found == Interval(start, start)
    note = f"{name} was already {DEGRADED} when the incident started" if already else ""
    return found.since(start, note=note)


def _time_to_online(points: Sequence[Point], name: str, marks: Marks) -> Metric:
    start = marks.recovery_start
    if start is None:
        return Metric(None, "s", note="no recovery started: nothing to count from")
    found = settled(points, lambda v: v == ONLINE, start=start, end=marks.ended)
    if found is None:
        last = last_known(points, marks.ended)
        return Metric(None, "s", note=f"{name} was not {ONLINE} for good after recovery started "
                                      f"(last seen: {last.value if last is not None else 'nothing'})")
    note = f"{name} was still {ONLINE} when recovery started" if found == Interval(start, start) else ""
    return found.since(start, note=note)
