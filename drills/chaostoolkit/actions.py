"""Chaos Toolkit actions: apply a scenario step's fault, and revert it.

Both take the experiment's ``configuration`` (the environment file: :mod:`drills.chaostoolkit.session`)
and act exactly as ``drill run`` does, through the same code. :func:`apply_fault` prepares the fault,
journals its undo record (fsynced) with what ``drill run`` journals beside it
(:func:`drills.runner.steps.journal_prepared`: the plugin reference, the command to undo it by hand),
snapshots and marks what it changes, and only then injects it. :func:`revert_fault` finds the fault
again as ``drill recover`` does (:func:`drills.recover.fault_to_revert`: by the journaled plugin
reference, whatever the undo record calls itself), reverts it from the journaled record, retried
(:func:`drills.recover.revert_with_retries`), and once nothing is left in place restores and verifies
the objects the faults touched. A failure raises, which Chaos Toolkit records as the activity failing.
"""

from typing import Any

from drills.chaostoolkit.session import ChaosRun, current, existing
from drills.errors import DrillError, FaultError
from drills.faults.base import Fault
from drills.journal import pending_undos, read_journal
from drills.plugins import fault_types
from drills.recover import fault_to_revert, revert_with_retries
from drills.runner.steps import journal_prepared
from drills.scenario import FaultStep

__all__ = ["apply_fault", "revert_fault"]


def apply_fault(step: str, fault: str, params: dict[str, Any],
                configuration: dict[str, Any] | None = None) -> str:
    """Apply the fault ``fault`` of scenario step ``step`` with its parameters ``params`` (the step's
    keys as JSON) to the environment of ``configuration``; returns what it did."""
    run = current(configuration)
    return run.run(_apply(run, *_fault(step, fault, params)))


def revert_fault(step: str, configuration: dict[str, Any] | None = None) -> str:
    """Revert the fault scenario step ``step`` applied in this experiment, if it is still in place;
    returns what was done."""
    run = existing()
    if run is None or run.run_dir is None:
        return f"{step}: no fault was applied in this experiment"
    return run.run(_revert(run, step))


async def _apply(run: ChaosRun, fault_step: FaultStep, fault: Fault) -> str:
    journal, snapshots = await run.journal()
    run.check()
    step = fault_step.id
    undo = await fault.prepare(run.targets)
    await journal_prepared(journal, fault_step, fault, undo, run.env)
    try:
        await snapshots.before_inject(step, undo)
    except Exception as exc:  # not snapshotted, not marked: not injected
        await journal.awrite("fault_failed", step=step, error=str(exc) or type(exc).__name__)
        raise
    started = run.clock.now()
    try:
        await fault.inject(run.targets, undo)
    except Exception as exc:  # maybe partly applied: the rollback reverts it all the same
        await journal.awrite("fault_failed", step=step, error=str(exc) or type(exc).__name__)
        raise
    await journal.awrite("fault_applied", step=step, inject_t=round(started, 3))
    return undo.summary


async def _revert(run: ChaosRun, step: str) -> str:
    journal, snapshots = await run.journal()
    pending = {p.step: p for p in pending_undos(read_journal(journal.path))}
    item = pending.get(step)
    if item is None:
        await run.finish_if_done()
        return f"{step}: nothing in place"
    undo = item.undo
    needless = await snapshots.needless_revert(undo)
    if needless is not None:
        await journal.awrite("fault_reverted", step=step, attempts=0, skipped=needless)
        await run.finish_if_done()
        return f"{step}: not reverted from its record: {needless}"
    await journal.awrite("revert_started", step=step, fault=undo.fault, region=undo.region)
    try:
        fault = fault_to_revert(item)
    except FaultError as exc:
        attempts, error = 0, exc
    else:
        attempts, error = await revert_with_retries(fault, run.targets, undo)
    if error is not None:
        await journal.awrite("revert_failed", step=step, attempts=attempts, error=str(error))
        raise FaultError(f"{step}: {error}; finish with `drill recover {journal.path.parent.name}`")
    await journal.awrite("fault_reverted", step=step, attempts=attempts)
    await run.finish_if_done()
    return f"{step}: {undo.fault} in {undo.region} undone"


def _fault(step: str, name: str, params: dict[str, Any]) -> tuple[FaultStep, Fault]:
    """The scenario step the experiment's arguments describe, and its installed fault ``name`` built
    from its validated parameters, as ``drill run`` builds it."""
    factory = fault_types().get(name)
    if factory is None:
        raise DrillError(f"no fault {name!r} is installed (installed: {', '.join(sorted(fault_types()))})")
    validated = factory.Params.model_validate(params)
    region = str(params.get("cluster") or params.get("region") or "")
    return FaultStep(id=step, fault=name, region=region, params=validated), factory(validated)
