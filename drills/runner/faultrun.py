"""The faults of a run: where each one got to, and what a person runs to undo it.

Every fault step becomes a :class:`FaultRun` when the drill is loaded. Whatever ends the drill,
every one that was prepared (and so maybe applied, even partly) and not yet undone is reverted,
newest first, each retried (:func:`drills.recover.revert_with_retries`, the same code ``drill
recover`` uses); ``rollback: manual`` skips that and hands the list, with the commands that undo
each fault, to a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from drills.environment import Environment
from drills.faults.base import Fault, Undo, undo_command
from drills.scenario import FaultStep

FaultPhase = Literal["built", "preparing", "injecting", "applied", "failed", "reverted", "revert_failed",
                     "manual"]
"""Where a fault got to: ``injecting`` once its undo is journaled (from then on it may be in place,
even partly); ``failed`` when prepare or inject raised; ``manual`` when rollback is left to a person."""


@dataclass(eq=False)
class FaultRun:
    """One fault step of this run and where it got to."""

    step: FaultStep
    fault: Fault
    phase: FaultPhase = "built"
    undo: Undo | None = None
    reverted_t: float | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def needs_revert(self) -> bool:
        """Prepared (so maybe applied, even partly) and not undone."""
        return self.undo is not None and self.phase in ("injecting", "applied", "failed", "revert_failed")


def by_hand(fault: Fault, undo: Undo, env: Environment) -> str | None:
    """The command a person runs to undo ``undo``, if the fault's class knows one (``by_hand``)."""
    return undo_command(type(fault), undo, env)


def in_place_lines(runs: Sequence[FaultRun], env: Environment) -> list[str]:
    """Each fault of ``runs`` still in place and how a person undoes it: the lines that a manual
    rollback, and a rollback left incomplete, print."""
    lines = []
    for run in runs:
        if run.undo is None:
            continue
        how = by_hand(run.fault, run.undo, env)
        lines.append(f"  {run.step.id}: {run.undo.summary}")
        lines.append(f"      undo with: {how}" if how else f"      objects: {', '.join(run.undo.objects)}")
    return lines
