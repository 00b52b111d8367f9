"""What runs left behind in an environment, found by their marks (:mod:`drills.marks`), journal or not.

``drill recover --env E`` (:func:`recover_environment`) scans every region and the environment's Azure
resources for marks, groups them by run, and for each run that is not live restores every marked object
from its mark, verifies it (:func:`drills.snapshot.restore`: drift someone else made is reported and
left) and removes the marks. When the run's journal is still on this machine, its own recovery
(:func:`drills.recover.recover`: the pending undos, then its snapshots) goes first. A run whose journal
is locked here is live: it rolls itself back, and its marks are left alone.

Before a drill changes anything, :func:`refusal` scans the same way: another run's marks mean its
changes may still be in place (a crashed run's cordon), so the drill refuses to start over them, naming
the run and the command that undoes it, unless forced.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from drills.clock import ScenarioClock
from drills.environment import Environment
from drills.errors import DrillError, EnvironmentUnreachable
from drills.journal import JOURNAL_FILE
from drills.marks import Mark, scan, unmark
from drills.recover import RecoveryReport, is_live, recover
from drills.snapshot import Restored, restore_all
from drills.targets import Targets


@dataclass(frozen=True)
class RunLeftovers:
    """What ``drill recover --env`` did for one run's marks."""

    run_id: str
    live: bool = False
    """The run is going on this machine: its marks were left alone."""
    journal: RecoveryReport | None = None
    """Its journal's recovery, when its run directory was here."""
    journal_error: str | None = None
    objects: list[tuple[Mark, Restored]] = field(default_factory=list)
    unmark_error: str | None = None

    @property
    def complete(self) -> bool:
        journal_ok = self.journal is None or self.journal.complete
        return (not self.live and journal_ok and all(r.done for _, r in self.objects)
                and self.unmark_error is None)


@dataclass(frozen=True)
class EnvironmentRecovery:
    """What ``drill recover --env`` did, per run, and what it could not look at."""

    env: Environment
    runs: list[RunLeftovers]
    errors: list[str]

    @property
    def exit_code(self) -> int:
        """0 all restored; 2 a live run's marks left, or a part of the environment unreachable; 3 an
        object not restored (as ``drill recover``)."""
        if any(not r.live and not r.complete for r in self.runs):
            return 3
        if self.errors or any(r.live for r in self.runs):
            return 2
        return 0


async def recover_environment(env: Environment, *, runs: Path) -> EnvironmentRecovery:
    """Undo what every run that is not live left in ``env`` (see the module docstring); ``runs`` is where
    this machine keeps run directories (to tell live runs and find journals)."""
    targets = Targets(env, ScenarioClock(env.time_scale))
    try:
        found = await scan(targets)
        _unreachable(env, found.errors, bool(found.marks))
        done: list[RunLeftovers] = []
        for run_id, marks in found.runs().items():
            run_dir = runs / run_id
            if (run_dir / JOURNAL_FILE).is_file() and is_live(run_dir):
                done.append(RunLeftovers(run_id, live=True, objects=[]))
                continue
            journal, journal_error = None, None
            if (run_dir / JOURNAL_FILE).is_file():
                try:
                    journal = await recover(run_dir)
                except DrillError as exc:
                    journal_error = str(exc)
                again = await scan(targets)
                marks = again.runs().get(run_id, [])
            done.append(await _restore_run(targets, run_id, marks, journal, journal_error))
        return EnvironmentRecovery(env, done, found.errors)
    finally:
        await targets.aclose()


async def refusal(targets: Targets, run_id: str, *, faults: Collection[str], force: bool,
                  note: Callable[[str], None], runs: Path | None = None) -> str | None:
    """Why a drill whose faults are ``faults`` (names) must not start in ``targets``' environment: other
    runs' marks on its nodes, deployments, NetworkPolicies or the Azure resources those faults change
    (None: it may). With ``force`` it says so loudly instead and returns None."""
    found = await scan(targets, faults=faults)
    for error in found.errors:
        note(f"could not look for other runs' marks in {error}")
    others = {r: m for r, m in found.runs().items() if r != run_id}
    if not others:
        return None
    live = {r for r in others
            if runs is not None and (runs / r / JOURNAL_FILE).is_file() and is_live(runs / r)}
    described = "; ".join(
        f"run {r}{' (still running here)' if r in live else ''} marked {len(m)} object"
        f"{'' if len(m) == 1 else 's'} ({', '.join(x.snapshot.key for x in m[:3])}"
        f"{', ...' if len(m) > 3 else ''})" for r, m in others.items())
    command = f"drill recover --env {targets.env.path}"
    if force:
        note(f"--force: starting over the leftovers of other runs, which may still be in place: {described}. "
             f"Their objects keep those runs' marks; undo them with `{command}`")
        return None
    return (f"another run's changes may still be in place: {described}; nothing was touched. Undo them "
            f"with `{command}` (or, if that run is still going, wait for it), or give --force to run anyway")


async def _restore_run(targets: Targets, run_id: str, marks: list[Mark], journal: RecoveryReport | None,
                       journal_error: str | None) -> RunLeftovers:
    results = await restore_all(targets, [mark.snapshot for mark in marks])
    objects = list(zip(marks, results, strict=True))
    unmark_error = None
    try:
        await unmark(targets, run_id, [m.snapshot for m, r in objects if r.done])
    except DrillError as exc:
        unmark_error = str(exc)
    return RunLeftovers(run_id, journal=journal, journal_error=journal_error, objects=objects,
                        unmark_error=unmark_error)


def _unreachable(env: Environment, errors: list[str], any_found: bool) -> None:
    """EnvironmentUnreachable when nothing of the environment could be scanned."""
    if errors and not any_found and len(errors) >= len(env.regions):
        raise EnvironmentUnreachable(f"cannot scan environment {env.name} ({env.path}) for marks: "
                                     + "; ".join(errors) + "; nothing was undone")
