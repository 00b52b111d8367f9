"""The Traffic Manager probe cycle: where in it a trial's first fault lands.

How long Traffic Manager takes to notice a dead endpoint depends on where in its probe cycle the
endpoint dies: just after a probe, the next one is a whole interval away. A lab tells where the cycle
stands (``GET /lab/v1/trafficmanager`` on each region's API server, with the kubeconfig's credentials:
the monitor's settings and, per endpoint, the real Unix time of its next probe deadline), so a trial
can start its incident at a chosen phase: 0 is just at a probe deadline, 0.5 half an interval after
one. A real environment tells nothing of the kind (Azure's probes are not scheduled where a client
can see them): there the phase is unknown and recorded as null.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from drills.environment import Environment
from drills.targets import Targets

SCHEDULE_PATH = "/lab/v1/trafficmanager"
REQUEST_TIMEOUT_S = (3.0, 5.0)
"""Connect and read timeouts (real seconds) for the schedule: the lab answers from memory."""
LEAD_REAL_S = 0.02
"""The soonest (real seconds from now) a placed fault may start: time to compute and wake up."""
PLACEMENT_TOLERANCE = 0.05
"""How late (a share of the cycle) a fault may start after its phase before the next cycle's chance
is taken instead: a busy event loop wakes tens of milliseconds late, which on a fast lab clock is a
large share of the cycle, and phases that drift apart leave gaps a sweep must not have."""
PLACEMENT_ATTEMPTS = 6
"""Cycles tried before a fault starts wherever the last wake-up lands (its measured phase is recorded)."""


@dataclass(frozen=True)
class CycleSchedule:
    """One endpoint's probe cycle, as the lab told it."""

    endpoint: str
    interval: float
    """Seconds between probes, in the design's (scenario) seconds."""
    time_scale: float
    next_probe_real: float
    """Real Unix time of a probe deadline; every other is a whole number of intervals away."""

    @property
    def interval_real(self) -> float:
        return self.interval / self.time_scale

    def phase_at(self, real: float) -> float:
        """Where real instant ``real`` falls in the cycle, in [0, 1)."""
        offset = (real - self.next_probe_real) / self.interval_real
        return offset - math.floor(offset)

    def late_by(self, phase: float, real: float) -> float:
        """How far (a share of the cycle, in [0, 1)) real instant ``real`` is past ``phase``."""
        late = self.phase_at(real) - phase
        return late - math.floor(late)

    def start_for(self, phase: float, *, now_real: float, lead_real_s: float = LEAD_REAL_S) -> float:
        """The soonest real instant at least ``lead_real_s`` from ``now_real`` that is at ``phase``."""
        earliest = now_real + lead_real_s
        cycles = math.ceil((earliest - self.next_probe_real) / self.interval_real - phase)
        return self.next_probe_real + (cycles + phase) * self.interval_real


def trial_phases(count: int, seed: int) -> list[float]:
    """``count`` phases evenly spread over [0, 1), the whole set rotated by a random amount drawn
    from ``seed`` (so that a rerun with the same seed lands its faults at the same phases)."""
    rotation = random.Random(seed).random()
    return [(rotation + k / count) % 1.0 for k in range(count)]


def new_seed() -> int:
    """A seed for a run that was given none (recorded, so the run can be repeated)."""
    return random.SystemRandom().randrange(1, 2**31)


class ScheduleUnavailable(Exception):
    """The environment does not tell its probe schedule (not a lab, or the endpoint is not monitored)."""


async def read_schedule(targets: Targets, env: Environment, region: str) -> CycleSchedule:
    """The probe cycle of ``region``'s Traffic Manager endpoint, asked of that region's lab API server.

    Raises :class:`ScheduleUnavailable` when the environment is not a lab, the region's endpoint is
    unknown to the lab or not monitored now; an error reaching the API server propagates.
    """
    if not env.is_lab:
        raise ScheduleUnavailable("only a lab tells its probe schedule")
    spec = env.regions[region]
    kube = targets.kube(region)
    document = await kube.call(_get, kube.api_client)
    entry = next((e for e in document.get("endpoints", []) if e.get("name") == spec.endpoint), None)
    if entry is None:
        raise ScheduleUnavailable(f"the lab has no Traffic Manager endpoint {spec.endpoint!r}")
    if entry.get("nextProbe") is None:
        raise ScheduleUnavailable(f"endpoint {spec.endpoint} is not monitored ({entry.get('status')})")
    return CycleSchedule(endpoint=spec.endpoint, interval=float(document["interval"]),
                         time_scale=float(document.get("timeScale") or env.time_scale),
                         next_probe_real=float(entry["nextProbe"]))


def _get(api: Any) -> dict[str, Any]:
    """``GET /lab/v1/trafficmanager`` with the client's credentials (blocking: run in a worker)."""
    method, url, headers, body, post = api.param_serialize("GET", SCHEDULE_PATH,
                                                           auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post,
                            _request_timeout=REQUEST_TIMEOUT_S)
    response.read()
    if response.status != 200:
        raise ScheduleUnavailable(f"the lab answered {response.status} for {SCHEDULE_PATH}")
    document: dict[str, Any] = json.loads(response.data)
    return document
