"""What a controller's work queue does when syncing one object fails: that object waits, the rest go on.

In Kubernetes each controller syncs objects one at a time from a work queue; a sync that returns an
error puts only that object back, with an exponential backoff (client-go's rate limiter), while the
other objects are synced as usual. :class:`Retries` gives the lab's controllers the same: each object's
sync runs through :meth:`Retries.sync`; an exception is caught, logged once (not on every retry), and
recorded on the object as a ``Warning`` event ``ReconcileError`` from the controller, counted on each
retry. The object is retried after 1, 2, 4 ... lab seconds (at most :data:`MAX_BACKOFF_S`), or at once
when its spec changes (a user fixing it). A sync that succeeds again forgets the failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from drills.lab.clock import LabClock
from drills.lab.kube.recorder import EventRecorder
from drills.lab.kube.store import Obj, Store

_log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0
"""The longest a failing object waits before its next retry, in lab seconds."""

RECONCILE_ERROR = "ReconcileError"
"""The reason of the event recorded on an object whose sync failed."""


@dataclass
class _Failure:
    version: str
    """The object's generation (its spec's version; else its resourceVersion) when it failed: a change
    means retry at once."""
    retry_at: float
    backoff: float


class Retries:
    """One controller's failing objects: who waits until when."""

    def __init__(self, store: Store, *, clock: LabClock, component: str) -> None:
        self._clock = clock
        self._component = component
        self.recorder = EventRecorder(store, clock=clock, component=component)
        """Records the controller's events (its ``ReconcileError`` ones too)."""
        self._failing: dict[str, _Failure] = {}
        self._visited: set[str] = set()
        """Objects :meth:`sync` was asked about since the last :meth:`due`."""

    def sync(self, obj: Obj, action: Callable[[], T]) -> T | None:
        """Run ``action``, the sync of ``obj``, unless ``obj`` waits for a retry; what it returned, or
        None when it did not run or failed. An exception it raises is recorded, not raised."""
        meta = obj["metadata"]
        uid = str(meta.get("uid"))
        self._visited.add(uid)
        version = _version(obj)
        now = self._clock.now()
        failure = self._failing.get(uid)
        if failure is not None and failure.version == version and now < failure.retry_at:
            return None
        try:
            result = action()
        except Exception as exc:
            backoff = FIRST_BACKOFF_S if failure is None else min(failure.backoff * 2, MAX_BACKOFF_S)
            if failure is None:
                _log.error("%s: syncing %s %s/%s failed; retrying with backoff", self._component,
                           obj.get("kind"), meta.get("namespace", ""), meta.get("name"), exc_info=True)
            self._failing[uid] = _Failure(version, now + backoff, backoff)
            self.recorder.event(obj, "Warning", RECONCILE_ERROR, f"{type(exc).__name__}: {exc}")
            return None
        self._failing.pop(uid, None)
        return result

    def due(self) -> float | None:
        """When the next failing object is retried, if any; called after each pass, it forgets the
        failures of objects the pass did not come to (gone, or no longer the controller's concern)."""
        self._failing = {uid: f for uid, f in self._failing.items() if uid in self._visited}
        self._visited.clear()
        return min((f.retry_at for f in self._failing.values()), default=None)


def _version(obj: Obj) -> str:
    meta = obj["metadata"]
    generation = meta.get("generation")
    return f"g{generation}" if generation is not None else f"r{meta.get('resourceVersion')}"


def earliest(*instants: float | None) -> float | None:
    """The earliest of the instants given (None where nothing is due)."""
    return min((t for t in instants if t is not None), default=None)
