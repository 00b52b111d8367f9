"""The environment lock: one drill at a time per environment, kept in the environment itself.

Before its first change a drill takes the Lease :data:`LEASE_NAME` in namespace :data:`LEASE_NAMESPACE`
of every region's cluster (``coordination.k8s.io/v1``, the object Kubernetes' own leader election
uses), region by region in name order. The Lease says who holds it (``holderIdentity``:
``user@host (pid N)``), for how long (``leaseDurationSeconds``, :attr:`LockTiming.duration_s`) and since
when it was last renewed (``renewTime``); its annotations name the run, the scenario and when the
drill started and the holding process. While the drill lives it reads every lease it holds every
:attr:`LockTiming.check_s` and renews it every :attr:`LockTiming.renew_s` real seconds; it releases them
on every way out (the Lease stays, with no holder).

Taking a lease: create it; if it exists, read it. A lease with no holder, or whose ``renewTime`` plus
its duration is in the past (its drill died without releasing it), is taken over with an update
carrying the resourceVersion just read, so that of two drills racing for it exactly one wins. A
holder that ran on this host and whose process is gone (killed) counts as stale at once, without
waiting for its lease to lapse. Taking over a holder's lease is announced loudly, naming it. A live
lease held by another run refuses the drill (:class:`EnvironmentLocked`, exit 2) before anything is
touched, and the leases already taken in other regions are released.

While the drill runs, the renewal also reads each lease: another holder in it, or renewals failing
for so long (:attr:`LockTiming.lose_after_s`) that the lease could lapse before the next try, means the
lock is lost; an annotation :data:`ABORT_ANNOTATION` (set by ``drill abort --env``, from any machine)
means someone asks the drill to stop. Either way the callback given to :meth:`EnvironmentLock.on_stop`
is told why, and the runner stops injecting and rolls back. Staleness compares the holder's
``renewTime`` with this machine's clock: the machines must keep their clocks within a few seconds of
each other (NTP), far less than the lease duration.

The identity needs ``get``, ``create``, ``update`` and ``patch`` on ``leases.coordination.k8s.io`` in
:data:`LEASE_NAMESPACE`.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client as k8s
from kubernetes.client import ApiException

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.errors import DrillError, EnvironmentUnreachable
from drills.faults.kube import status_message
from drills.targets import Targets

LEASE_NAME = "drill-lock"
LEASE_NAMESPACE = "drill"
"""drill's own namespace (``deploy/rbac/`` creates it): not ``kube-system``, where the right to write
Leases would also be the right to hijack the control plane's leader elections."""
RUN_ANNOTATION = "drill.dev/run-id"
SCENARIO_ANNOTATION = "drill.dev/scenario"
STARTED_ANNOTATION = "drill.dev/started"
PROCESS_ANNOTATION = "drill.dev/process"
"""``host:pid`` of the holding process: a holder on this host whose process is gone is dead at once."""
ABORT_ANNOTATION = "drill.dev/abort-requested"
"""Set on a held lease by ``drill abort --env``: who asks and when; the holder stops and rolls back."""
_OURS = (RUN_ANNOTATION, SCENARIO_ANNOTATION, STARTED_ANNOTATION, PROCESS_ANNOTATION, ABORT_ANNOTATION)
_CALL_TIMEOUT_S = (3.0, 5.0)
"""Connect and read timeouts of each lease call (real seconds): a renewal must not hang past its lease."""
_RACE_ATTEMPTS = 3
"""Reads and writes tried when another writer keeps changing the lease in between (409 Conflict)."""


@dataclass(frozen=True)
class LockTiming:
    """How long a lease lasts and how often it is renewed, in real seconds (never scenario seconds:
    another drill reads the lease on the real clock)."""

    duration_s: int = 30
    """``leaseDurationSeconds``: a lease not renewed for this long is stale and may be taken over."""
    renew_s: float = 10.0
    """How often the holder renews (writes ``renewTime``): three chances before the lease lapses."""
    check_s: float = 2.0
    """How often the holder reads its leases: how soon it sees an abort request or another holder
    (a read is cheap: API servers answer it from their cache)."""
    retry_s: float = 2.0
    """How soon a failed renewal is tried again."""

    @property
    def lose_after_s(self) -> float:
        """Unrenewed this long, the lock counts as lost: one renewal period before the lease lapses,
        time enough for the drill to stop injecting before another may take the environment."""
        return max(self.duration_s - self.renew_s, self.retry_s)


def default_identity() -> str:
    """Who this process is, as a lease's ``holderIdentity`` names it: ``user@host (pid N)``."""
    return f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})"


@dataclass(frozen=True)
class LockOwner:
    """The run that asks for the lock."""

    run_id: str
    scenario: str
    identity: str = field(default_factory=default_identity)


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds one region's lease, as read from it."""

    region: str
    identity: str
    """Empty when nobody holds it."""
    run_id: str
    scenario: str
    started: str
    renewed: datetime | None
    duration_s: int
    abort_requested: str
    process: str = ""
    """``host:pid`` of the holding process, when the holder said."""

    @classmethod
    def read(cls, region: str, lease: k8s.V1Lease) -> LeaseHolder:
        """From a lease as the client returns it."""
        spec = lease.spec or k8s.V1LeaseSpec()
        notes: Mapping[str, str] = (lease.metadata.annotations if lease.metadata else None) or {}
        renewed = spec.renew_time or spec.acquire_time
        return cls(region=region, identity=spec.holder_identity or "", run_id=notes.get(RUN_ANNOTATION, ""),
                   scenario=notes.get(SCENARIO_ANNOTATION, ""), started=notes.get(STARTED_ANNOTATION, ""),
                   renewed=renewed if isinstance(renewed, datetime) else None,
                   duration_s=int(spec.lease_duration_seconds or 0),
                   abort_requested=notes.get(ABORT_ANNOTATION, ""), process=notes.get(PROCESS_ANNOTATION, ""))

    def live(self, now: datetime) -> bool:
        """Whether the lease is held and renewed recently enough that its holder may be alive."""
        if not self.identity:
            return False
        if self.renewed is None:
            return False
        return self.renewed + timedelta(seconds=self.duration_s) > now

    def gone(self) -> bool:
        """Whether the holder ran on this host and its process no longer exists (it died unreleased)."""
        host, _, pid = self.process.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return False

    def describe(self, now: datetime) -> str:
        """``alice@host (pid 7) (run RUN, scenario S, since T, renewed N s ago)``."""
        facts = [f"run {self.run_id or 'unknown'}", f"scenario {self.scenario or 'unknown'}"]
        if self.started:
            facts.append(f"since {self.started}")
        if self.renewed is not None:
            facts.append(f"renewed {max(0, round((now - self.renewed).total_seconds()))} s ago")
        return f"{self.identity} ({', '.join(facts)})"


class EnvironmentLocked(DrillError):
    """Another live drill holds the environment's lock; nothing was touched."""

    def __init__(self, env: Environment, holder: LeaseHolder, now: datetime) -> None:
        self.holder = holder
        super().__init__(
            f"environment {env.name} is held by {holder.describe(now)}: one drill at a time per environment "
            f"(lease {LEASE_NAMESPACE}/{LEASE_NAME} in region {holder.region}); nothing was touched. Wait "
            f"for that drill to end, or stop it: drill abort --env {env.path}")


class LockError(DrillError):
    """The lease could not be read or written for a reason other than another holder."""


class EnvironmentLock:
    """The environment's lock as this run holds it (see the module docstring); use :func:`hold`."""

    def __init__(self, env: Environment, owner: LockOwner, *, timing: LockTiming = LockTiming(),
                 warn: Callable[[str], None] = print) -> None:
        self.env = env
        self.owner = owner
        self.timing = timing
        self.regions: list[str] = []
        """The regions whose lease is held, in the order taken."""
        self.since = _now()
        self.stop_reason: str | None = None
        """Why the drill must stop (lock lost, abort asked), once it must."""
        self.taken_over: dict[str, str] = {}
        """The stale holder each region's lease was taken over from, described."""
        self._warn = warn
        self._targets = Targets(env, ScenarioClock(env.time_scale))
        self._renewed: dict[str, float] = {}
        self._on_stop: Callable[[str], None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    def describe(self) -> str:
        """What is held, for the run's record."""
        regions = ", ".join(self.regions)
        text = (f"lease {LEASE_NAMESPACE}/{LEASE_NAME} held in {regions} as {self.owner.identity} "
                f"(run {self.owner.run_id}; {self.timing.duration_s} s, renewed every "
                f"{self.timing.renew_s:g} s)")
        stale = "; ".join(f"in {region} from {holder}" for region, holder in self.taken_over.items())
        return f"{text}; taken over when stale: {stale}" if stale else text

    def on_stop(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the reason once the drill must stop: the lock was lost or someone
        asked it to stop. Called at once if that has already happened."""
        self._on_stop = callback
        if self.stop_reason is not None:
            callback(self.stop_reason)

    async def acquire(self) -> None:
        """Take every region's lease in name order and start renewing them.

        Raises :class:`EnvironmentLocked` when another live run holds one (those taken are released
        first), :class:`LockError` or :class:`EnvironmentUnreachable` when a lease cannot be read or
        written.
        """
        try:
            for region in sorted(self.env.regions):
                await self._take(region)
                self.regions.append(region)
                self._renewed[region] = time.monotonic()
        except BaseException:
            await self.release()
            raise
        self._keeper = asyncio.create_task(self._keep(), name="environment lock")

    async def release(self) -> None:
        """Stop renewing and give back every lease still ours (newest first). A lease that cannot be
        given back is left to lapse, with a warning: it is stale after :attr:`LockTiming.duration_s`."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        for region in reversed(self.regions):
            try:
                await self._give_back(region)
            except Exception as exc:  # any failure leaves the lease to lapse, which is safe
                self._warn(f"the lock in region {region} could not be released ({_reason(exc)}); it lapses "
                           f"{self.timing.duration_s} s after its last renewal")
        self.regions.clear()
        await self._targets.aclose()

    # taking and giving back

    async def _take(self, region: str) -> None:
        api = self._api(region)
        for _ in range(_RACE_ATTEMPTS):
            now = _now()
            fresh = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=LEASE_NAME, namespace=LEASE_NAMESPACE,
                                                          annotations=self._annotations()),
                                spec=self._spec(now, acquired=now, transitions=0))
            try:
                await self._call(region, api.create_namespaced_lease, LEASE_NAMESPACE, fresh)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise self._failed(region, "create", exc) from exc
            lease = await self._read(region)
            if lease is None:
                continue  # released and deleted since: create it again
            now = _now()
            holder = LeaseHolder.read(region, lease)
            if self._ours(holder):
                return  # two regions of this environment share a cluster: the lease is ours already
            gone = holder.gone()
            if holder.live(now) and not gone:
                raise EnvironmentLocked(self.env, holder, now)
            transitions = int((lease.spec.lease_transitions if lease.spec else None) or 0)
            lease.metadata.annotations = {**_others(lease.metadata.annotations), **self._annotations()}
            lease.spec = self._spec(now, acquired=now, transitions=transitions + 1)
            try:
                # With the version just read: of two drills taking it over at once, one gets 409.
                await self._call(region, api.replace_namespaced_lease, LEASE_NAME, LEASE_NAMESPACE, lease)
            except ApiException as exc:
                if exc.status == 409:
                    continue  # someone else wrote it since we read it: read again to see who
                raise self._failed(region, "update", exc) from exc
            if holder.identity:
                self.taken_over[region] = holder.describe(now)
                why = "whose process on this host is gone" if gone else "which stopped renewing it"
                self._warn(f"WARNING: taking over the stale lock of environment {self.env.name} in region "
                           f"{region} from {holder.describe(now)}, {why}; that drill may have left changes "
                           f"behind (drill recover)")
            return
        raise LockError(f"region {region}: the lease {LEASE_NAMESPACE}/{LEASE_NAME} kept changing while it "
                        f"was being taken ({_RACE_ATTEMPTS} tries); another drill is starting there too")

    async def _give_back(self, region: str) -> None:
        api = self._api(region)
        for _ in range(_RACE_ATTEMPTS):
            lease = await self._read(region)
            if lease is None or not self._ours(LeaseHolder.read(region, lease)):
                return  # gone, or not ours any more: someone took it over; it is theirs to keep
            transitions = lease.spec.lease_transitions if lease.spec else None
            lease.metadata.annotations = _others(lease.metadata.annotations) or None
            lease.spec = k8s.V1LeaseSpec(lease_transitions=transitions)
            try:
                await self._call(region, api.replace_namespaced_lease, LEASE_NAME, LEASE_NAMESPACE, lease)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise LockError(f"the lease kept changing ({_RACE_ATTEMPTS} tries)")

    # keeping

    async def _keep(self) -> None:
        """Renew every lease until cancelled; stop the drill once the lock is lost or an abort is asked."""
        failing = False
        while True:
            await asyncio.sleep(self.timing.retry_s if failing else self.timing.check_s)
            failing = False
            for region in self.regions:
                due = time.monotonic() - self._renewed[region] >= self.timing.renew_s
                try:
                    if await self._check(region, renew=due):
                        self._renewed[region] = time.monotonic()
                except _Lost as lost:
                    self._stop(f"the environment lock was lost in region {region}: {lost}")
                    return
                except Exception as exc:  # any failure is retried; past lose_after_s the drill stops
                    failing = True
                    unrenewed = time.monotonic() - self._renewed[region]
                    if unrenewed >= self.timing.lose_after_s:
                        # Stop the drill, but keep trying: while it rolls back the lease may come back.
                        self._stop(f"the environment lock was lost in region {region}: not renewed for "
                                   f"{unrenewed:.0f} s ({_reason(exc)}), it would lapse before the next try")
                    self._warn(f"the lock in region {region} could not be read or renewed ({_reason(exc)}); "
                               f"retrying in {self.timing.retry_s:g} s")

    async def _check(self, region: str, *, renew: bool) -> bool:
        """Read the region's lease: still ours, any abort asked; and renew it if ``renew``. Whether it
        was renewed."""
        api = self._api(region)
        for _ in range(_RACE_ATTEMPTS):
            lease = await self._read(region)
            if lease is None:
                raise _Lost("its lease was deleted")
            now = _now()
            holder = LeaseHolder.read(region, lease)
            if not self._ours(holder):
                raise _Lost(f"it is now held by {holder.describe(now)}" if holder.identity
                            else "it was released")
            if holder.abort_requested and self.stop_reason is None:
                self._stop(f"abort requested through the environment lock ({holder.abort_requested})")
            if not renew:
                return False
            assert lease.spec is not None
            lease.spec.renew_time = now
            lease.spec.lease_duration_seconds = self.timing.duration_s
            try:
                await self._call(region, api.replace_namespaced_lease, LEASE_NAME, LEASE_NAMESPACE, lease)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise self._failed(region, "update", exc) from exc
        raise LockError("the lease kept changing while it was renewed")

    def _stop(self, why: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = why
            if self._on_stop is not None:
                self._on_stop(why)

    # helpers

    def _annotations(self) -> dict[str, str]:
        return {RUN_ANNOTATION: self.owner.run_id, SCENARIO_ANNOTATION: self.owner.scenario,
                STARTED_ANNOTATION: _iso(self.since),
                PROCESS_ANNOTATION: f"{socket.gethostname()}:{os.getpid()}"}

    def _spec(self, now: datetime, *, acquired: datetime, transitions: int) -> k8s.V1LeaseSpec:
        return k8s.V1LeaseSpec(holder_identity=self.owner.identity,
                               lease_duration_seconds=self.timing.duration_s, acquire_time=acquired,
                               renew_time=now, lease_transitions=transitions)

    def _api(self, region: str) -> k8s.CoordinationV1Api:
        return k8s.CoordinationV1Api(self._targets.kube(region).api_client)

    def _ours(self, holder: LeaseHolder) -> bool:
        return holder.identity == self.owner.identity and holder.run_id == self.owner.run_id

    async def _read(self, region: str) -> k8s.V1Lease | None:
        """The region's lease, None if there is none."""
        api = self._api(region)
        try:
            lease: k8s.V1Lease = await self._call(region, api.read_namespaced_lease, LEASE_NAME,
                                                  LEASE_NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._failed(region, "get", exc) from exc
        return lease

    async def _call(self, region: str, fn: Callable[..., Any], *args: Any) -> Any:
        kube = self._targets.kube(region)
        try:
            return await kube.call(fn, *args, _request_timeout=_CALL_TIMEOUT_S)
        except ApiException:
            raise
        except Exception as exc:  # connection refused, reset, timed out: the API is not answering
            raise EnvironmentUnreachable(f"region {region}: the lock's lease cannot be reached: "
                                         f"{_reason(exc)}") from exc

    def _failed(self, region: str, verb: str, exc: ApiException) -> DrillError:
        where = f"region {region}: lease {LEASE_NAMESPACE}/{LEASE_NAME}"
        if exc.status == 403:
            return LockError(f"{where}: this identity may not {verb} leases ({status_message(exc)}); a drill "
                             f"needs get, create, update and patch on leases.coordination.k8s.io in "
                             f"{LEASE_NAMESPACE}")
        if exc.status == 404 and verb == "create":
            return LockError(f"{where}: namespace {LEASE_NAMESPACE} not found; the lock lives there "
                             f"(kubectl apply -f deploy/rbac/ creates it, or: kubectl create namespace "
                             f"{LEASE_NAMESPACE})")
        return LockError(f"{where}: {verb} failed: {exc.status} {status_message(exc)}")


class _Lost(Exception):
    """The lease is no longer ours."""


@asynccontextmanager
async def hold(env: Environment, owner: LockOwner, *, timing: LockTiming = LockTiming(),
               warn: Callable[[str], None] = print) -> AsyncIterator[EnvironmentLock]:
    """Hold ``env``'s lock for as long as the block runs; released on every way out (see
    :meth:`EnvironmentLock.acquire` for what refuses it)."""
    lock = EnvironmentLock(env, owner, timing=timing, warn=warn)
    await lock.acquire()
    try:
        yield lock
    finally:
        await lock.release()


async def holders(env: Environment) -> list[LeaseHolder]:
    """Who holds each region's lease now (regions with no lease, or a free one, are left out)."""
    targets = Targets(env, ScenarioClock(env.time_scale))
    found = []
    try:
        for region in sorted(env.regions):
            lease = await _read_lease(targets, region)
            if lease is None:
                continue
            holder = LeaseHolder.read(region, lease)
            if holder.identity:
                found.append(holder)
    finally:
        await targets.aclose()
    return found


async def request_abort(env: Environment, requester: str, *, run: str | None = None) -> list[LeaseHolder]:
    """Ask the drill holding ``env``'s lock to stop: mark every live lease with :data:`ABORT_ANNOTATION`
    (only leases of run ids starting with ``run``, if given).

    Returns the holders asked (empty: no live drill holds the environment). The holder sees the mark at
    its next check, within :attr:`LockTiming.check_s`.
    """
    targets = Targets(env, ScenarioClock(env.time_scale))
    asked = []
    mark = f"by {requester} at {_iso(_now())}"
    try:
        for region in sorted(env.regions):
            kube = targets.kube(region)
            api = k8s.CoordinationV1Api(kube.api_client)
            for _ in range(_RACE_ATTEMPTS):
                lease = await _read_lease(targets, region)
                if lease is None:
                    break
                holder = LeaseHolder.read(region, lease)
                if not holder.live(_now()) or not holder.run_id.startswith(run or ""):
                    break
                # The version read: if the holder renewed or released it since, read again and decide anew.
                patch = {"metadata": {"resourceVersion": lease.metadata.resource_version,
                                      "annotations": {ABORT_ANNOTATION: mark}}}
                try:
                    await kube.call(api.patch_namespaced_lease, LEASE_NAME, LEASE_NAMESPACE, patch,
                                    _request_timeout=_CALL_TIMEOUT_S)
                except ApiException as exc:
                    if exc.status == 409:
                        continue
                    raise LockError(f"region {region}: lease {LEASE_NAMESPACE}/{LEASE_NAME}: {exc.status} "
                                    f"{status_message(exc)}") from exc
                asked.append(holder)
                break
    finally:
        await targets.aclose()
    return asked


def _others(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """Annotations someone else put on the lease: kept as they are."""
    return {k: v for k, v in (annotations or {}).items() if k not in _OURS}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {status_message(exc)}"
    return str(exc) or type(exc).__name__


async def _read_lease(targets: Targets, region: str) -> k8s.V1Lease | None:
    """``region``'s lock lease as it is now; None when there is none."""
    kube = targets.kube(region)
    try:
        lease: k8s.V1Lease = await kube.call(k8s.CoordinationV1Api(kube.api_client).read_namespaced_lease,
                                             LEASE_NAME, LEASE_NAMESPACE, _request_timeout=_CALL_TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise LockError(f"region {region}: lease {LEASE_NAMESPACE}/{LEASE_NAME}: {exc.status} "
                        f"{status_message(exc)}") from exc
    return lease
