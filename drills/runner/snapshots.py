"""The run's snapshots: taken before each fault's first change, journaled and marked; restored and
verified after the rollback.

:meth:`RunSnapshots.before_inject` runs between journaling a fault's undo record and injecting the
fault: each object the fault touches (:func:`drills.snapshot.touches`; for deleted pods, their
deployments: :func:`drills.snapshot.controllers`) that the run has not touched
yet is read, journaled (``object_snapshot``) and marked (:mod:`drills.marks`); one the run touched
already keeps its first snapshot and only learns the values this fault sets (``object_touched``).
:meth:`RunSnapshots.restore`, after the rollback, puts each object back and verifies it
(:func:`drills.snapshot.restore`), journals ``object_restored``, removes the marks of those done and
reports restores, drift and failures on the timeline.
"""

from __future__ import annotations

from collections.abc import Callable

from drills.errors import DrillError
from drills.faults.base import Undo
from drills.faults.kube import each
from drills.journal import Journal
from drills.marks import mark, unmark
from drills.snapshot import (
    Restored,
    Snapshot,
    controllers,
    needless_revert,
    restore_all,
    take,
    touches,
)
from drills.targets import Targets
from reports.record import TimelineEvent

Event = Callable[[TimelineEvent, str | None, str], None]
Note = Callable[[str], None]


class RunSnapshots:
    """The snapshots of one run (see the module docstring)."""

    def __init__(self, targets: Targets, journal: Journal, run_id: str, *, event: Event, note: Note) -> None:
        self.run_id = run_id
        self.outcomes: list[Restored] = []
        """Every restore made so far (each trial's), in order."""
        self._targets = targets
        self._journal = journal
        self._event = event
        self._note = note
        self._taken: dict[str, Snapshot] = {}

    async def before_inject(self, step: str, undo: Undo) -> None:
        """Snapshot, journal and mark what ``undo``'s fault is about to change. Raises a DrillError when
        an object cannot be read or marked (the fault must not be injected then)."""
        touched = touches(undo) + await controllers(self._targets, undo)
        fresh = list({t.key: t for t in touched if t.key not in self._taken}.values())
        taken = await each(fresh, lambda touch: take(self._targets, touch))
        changed: list[Snapshot] = []
        for snapshot in taken:
            self._taken[snapshot.key] = snapshot
            await self._journal.awrite("object_snapshot", step=step, key=snapshot.key,
                                       snapshot=snapshot.as_json())
            changed.append(snapshot)
        new = {t.key for t in fresh}
        for touch in touched:
            known = self._taken[touch.key]
            if touch.key not in new and known.add_caused(touch.caused):
                await self._journal.awrite("object_touched", step=step, key=touch.key, caused=touch.caused)
                changed.append(known)
        if changed:
            foreign = await mark(self._targets, self.run_id, changed)
            if foreign:
                self._note(f"another run's mark is on {', '.join(foreign)}: left as it is (this run's "
                           "snapshot of them is in its journal only); `drill recover --env` undoes that run")

    async def needless_revert(self, undo: Undo) -> str | None:
        """Why ``undo``'s fault must not be reverted from its own record, or None when it must
        (:func:`drills.snapshot.needless_revert`)."""
        return await needless_revert(self._targets, undo, self._taken)

    async def restore(self, *, trial: int = 1) -> list[Restored]:
        """Restore and verify every object snapshotted and not yet restored, newest first."""
        if not self._taken:
            return []
        snapshots = list(reversed(self._taken.values()))
        results = await restore_all(self._targets, snapshots)
        for result in results:
            await self._journal.awrite("object_restored", key=result.key, outcome=result.outcome,
                                       detail=result.detail)
            if result.outcome == "drift":
                self._event("object_drift", None, f"{result.key}: {result.detail}")
                self._note(f"DRIFT: {result.key}: {result.detail}")
            elif result.outcome == "failed":
                self._event("restore_failed", None, f"{result.key}: {result.detail}")
            elif result.outcome in ("restored", "gone"):
                self._event("object_restored", None, f"{result.key}: {result.detail}")
        done = [s for s, r in zip(snapshots, results, strict=True) if r.done]
        try:
            await unmark(self._targets, self.run_id, done)
        except DrillError as exc:
            self._note(f"the marks of run {self.run_id} could not all be removed ({exc}); "
                       "`drill recover --env` removes them")
        for snapshot in done:
            del self._taken[snapshot.key]
        verified = sum(r.outcome == "unchanged" for r in results)
        failed = sum(r.outcome == "failed" for r in results)
        self._event("objects_verified", None,
                    f"{len(results)} objects touched: {verified} as before, "
                    f"{sum(r.outcome == 'restored' for r in results)} restored, "
                    f"{sum(r.outcome == 'drift' for r in results)} drifted, {failed} not verified")
        self.outcomes.extend(Restored(r.key, r.outcome, r.detail, trial) for r in results)
        return results

    def failed(self) -> list[str]:
        """The objects whose restore failed so far (the rollback is incomplete for them)."""
        return list(dict.fromkeys(r.key for r in self.outcomes if r.outcome == "failed"))
