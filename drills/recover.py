"""Recovery after a crash: undo what a run's journal says may still be in place.

A run journals each fault's undo record before injecting it and ``fault_reverted`` once it is
undone (:mod:`drills.journal`). If the runner died in between (killed, power loss), the record is
all that is left: :func:`recover` reopens the run's environment, reverts every pending undo in
reverse order, each tried a few times, journals what it did, and says exactly what a person must
still do where drill could not. ``drill recover`` (:mod:`drills.cli.recover`) drives it.

Before undoing anything it checks that the environment is the one the run changed: the identity
``run_started`` recorded (:mod:`drills.identity`) against the live one. A lab started again in the
same folder, or a cluster recreated under the same name, is refused: its objects are not the run's.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from kubernetes.client import ApiException, VersionApi
from pydantic import ValidationError

from drills.clock import ScenarioClock
from drills.environment import Environment, load_environment
from drills.errors import DrillError, EnvironmentUnreachable, FaultError
from drills.faults.base import Fault, FaultFactory, Undo, undo_command
from drills.faults.kube import status_message
from drills.identity import Identity, check_same
from drills.journal import (
    JOURNAL_FILE,
    DamagedJournal,
    Journal,
    JournalBusy,
    JournalEntry,
    PendingUndo,
    first,
    pending_undos,
    read_journal,
)
from drills.marks import unmark
from drills.plugins import installed
from drills.snapshot import Restored, Snapshot, needless_revert, pending_snapshots, restore_all
from drills.targets import Targets

ATTEMPTS = 3
"""Tries per undo: enough to ride out an API server's brief hiccup, few enough to report quickly."""
BACKOFF_S = 1.0
"""Real seconds before the second try; doubled before each later one."""
_REACH_TIMEOUT_S = (3.0, 5.0)


@dataclass(frozen=True)
class RevertOutcome:
    """What became of one pending undo."""

    step: str
    fault: str
    region: str
    summary: str
    objects: list[str]
    reverted: bool
    attempts: int
    error: str | None = None
    by_hand: str | None = None
    """A command that undoes it, for a person, when drill could not (None if it knows none)."""


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover` did for one run."""

    run_dir: Path
    outcomes: list[RevertOutcome] = field(default_factory=list)
    objects: list[Restored] = field(default_factory=list)
    """Each object the run snapshotted and had not restored, after the undos: restored, verified or
    drifted (:mod:`drills.snapshot`)."""

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def reverted(self) -> list[RevertOutcome]:
        return [o for o in self.outcomes if o.reverted]

    @property
    def failed(self) -> list[RevertOutcome]:
        return [o for o in self.outcomes if not o.reverted]

    @property
    def complete(self) -> bool:
        """True when nothing the run changed is left in place."""
        return not self.failed and all(o.done for o in self.objects)


async def recover(run_dir: Path, *, attempts: int = ATTEMPTS, backoff_s: float = BACKOFF_S) -> RecoveryReport:
    """Revert every pending undo of the run in ``run_dir``, last prepared first.

    Raises :class:`JournalBusy` if the run is still going (it rolls itself back),
    :class:`EnvironmentUnreachable` if its environment is gone or none of the regions it touched
    answers, :class:`~drills.identity.IdentityMismatch` if the environment is not the one the run
    changed (another cluster, or the same one recreated), :class:`DamagedJournal` if its journal
    cannot be read (nothing was done in these cases); a :class:`DrillError` if ``run_dir`` holds no
    journal.
    """
    path = run_dir / JOURNAL_FILE
    if not path.is_file():
        raise DrillError(f"{run_dir} is not a run directory: it has no {JOURNAL_FILE}")
    with Journal(path) as journal:
        entries = read_journal(path)
        pending = pending_undos(entries)
        snapshots = pending_snapshots(entries)
        if not pending and not snapshots:
            journal.write("recovered", reverted=[], failed=[])
            return RecoveryReport(run_dir)
        env = _environment(run_dir, entries)
        targets = Targets(env, ScenarioClock(env.time_scale))
        try:
            # An undo that names no region (an Azure resource outside every region) needs no cluster.
            regions = {p.undo.region for p in pending if p.undo.region}
            unreachable = await _unreachable(targets, regions)
            if unreachable and len(unreachable) == len(regions):
                raise EnvironmentUnreachable(
                    "cannot reach "
                    + "; ".join(f"region {r}: {why}" for r, why in sorted(unreachable.items()))
                    + f" (environment file {env.path}); nothing was undone")
            recorded = _recorded_identity(path, entries)
            if recorded is not None:
                await check_same(recorded, targets, regions=set(recorded.clusters) - set(unreachable))
            outcomes = []
            taken = {s.key: s for s in snapshots}
            for item in reversed(pending):
                outcomes.append(await _revert_one(journal, targets, env, item, unreachable=unreachable,
                                                  attempts=attempts, backoff_s=backoff_s, snapshots=taken))
            objects = await restore_snapshots(journal, targets, run_dir.name, snapshots)
        finally:
            await targets.aclose()
        journal.write("recovered", reverted=[o.step for o in outcomes if o.reverted],
                      failed=[o.step for o in outcomes if not o.reverted])
        return RecoveryReport(run_dir, outcomes, objects)


async def restore_snapshots(journal: Journal, targets: Targets, run_id: str,
                            snapshots: list[Snapshot]) -> list[Restored]:
    """Restore and verify the run's snapshots not yet restored, newest first, journaling each outcome,
    and remove the marks of those done (:mod:`drills.marks`)."""
    newest_first = list(reversed(snapshots))
    results = await restore_all(targets, newest_first)
    for result in results:
        journal.write("object_restored", key=result.key, outcome=result.outcome, detail=result.detail)
    done = [s for s, r in zip(newest_first, results, strict=True) if r.done]
    try:
        await unmark(targets, run_id, done)
    except DrillError as exc:
        results.append(Restored("marks", "failed", f"the marks of run {run_id} could not be removed: {exc}"))
    return results


async def revert_with_retries(fault: Fault, targets: Targets, undo: Undo, *, attempts: int = ATTEMPTS,
                              backoff_s: float = BACKOFF_S) -> tuple[int, DrillError | None]:
    """Revert one fault, retrying while the failure may pass; the tries made and the last error.

    A failure a retry cannot help (a permanent :class:`FaultError`, an error that is not a
    :class:`DrillError`) ends the tries at once; the latter comes back wrapped in a FaultError.
    """
    error: DrillError | None = None
    for attempt in range(1, attempts + 1):
        try:
            await fault.revert(targets, undo)
            return attempt, None
        except (FaultError, EnvironmentUnreachable) as exc:
            error = exc
            if isinstance(exc, FaultError) and not exc.transient:
                return attempt, error
        except Exception as exc:  # a fault's own bug must not stop the other undos
            return attempt, FaultError(f"{undo.fault} revert failed: {type(exc).__name__}: {exc}")
        if attempt < attempts:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return attempts, error


def needs_recovery(run_dir: Path) -> bool:
    """Whether a run may have left something in place: undos pending, objects not yet restored from
    their snapshots, or it never ended nor was recovered. False for a folder that is not a run."""
    path = run_dir / JOURNAL_FILE
    if not path.is_file():
        return False
    entries = read_journal(path)
    if pending_undos(entries) or pending_snapshots(entries):
        return True
    return first(entries, "run_ended") is None and first(entries, "recovered") is None


def pending_runs(runs: Path, env: Environment, identity: Identity | None) -> list[Path]:
    """The runs in ``runs`` that need recovery (:func:`needs_recovery`, or a damaged journal) on this
    environment, oldest first: those whose recorded identity shares a cluster with ``identity``, or,
    where either identity is unknown, that name the same environment file. Live runs are left out
    (they roll themselves back)."""
    if not runs.is_dir():
        return []
    found = []
    for run_dir in sorted(p for p in runs.iterdir() if (p / JOURNAL_FILE).is_file()):
        started = _first_line(run_dir / JOURNAL_FILE)
        if started is None or not _same_environment(started, env, identity):
            continue
        try:
            pending = needs_recovery(run_dir)
        except DamagedJournal:
            pending = True
        if pending and not is_live(run_dir):
            found.append(run_dir)
    return found


def _first_line(path: Path) -> dict[str, object] | None:
    """The journal's first line (``run_started``) as JSON, None if it is not one."""
    with path.open("rb") as f:
        line = f.readline(1 << 20)
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("event") == "run_started" else None


def _same_environment(started: dict[str, object], env: Environment, identity: Identity | None) -> bool:
    recorded = started.get("identity")
    if identity is not None and isinstance(recorded, dict):
        try:
            theirs = Identity.from_json(recorded)
        except ValueError:
            theirs = None
        if theirs is not None and theirs.clusters and identity.clusters:
            return bool(set(theirs.clusters.values()) & set(identity.clusters.values()))
    return bool(env.path) and started.get("environment") == env.path


def is_live(run_dir: Path) -> bool:
    """Whether a live process holds the run's journal (the run is still going)."""
    try:
        Journal(run_dir / JOURNAL_FILE).close()
    except JournalBusy:
        return True
    except DamagedJournal:
        return False  # it was read, so its lock was free
    return False


async def _revert_one(journal: Journal, targets: Targets, env: Environment, item: PendingUndo, *,
                      unreachable: dict[str, str], attempts: int, backoff_s: float,
                      snapshots: dict[str, Snapshot]) -> RevertOutcome:
    undo = item.undo
    factory = installed().fault_for(item.plugin, undo.fault)
    needless = None if undo.region in unreachable else await needless_revert(targets, undo, snapshots)
    if needless is not None:
        # The snapshots' restore, next, puts back what is this run's and reports what someone else did.
        journal.write("fault_reverted", step=item.step, attempts=0, skipped=needless)
        return RevertOutcome(step=item.step, fault=undo.fault, region=undo.region,
                             summary=f"{undo.summary} (not reverted from its record: {needless})",
                             objects=list(undo.objects), reverted=True, attempts=0)
    journal.write("revert_started", step=item.step, fault=undo.fault, region=undo.region)
    tries, error = 0, None
    if factory is None:
        error = FaultError(_not_installed(item))
    elif undo.region in unreachable:
        error = EnvironmentUnreachable(f"region {undo.region} is unreachable: {unreachable[undo.region]}")
    else:
        tries, error = await revert_with_retries(_rebuild(factory, item), targets, undo, attempts=attempts,
                                                 backoff_s=backoff_s)
    if error is None:
        journal.write("fault_reverted", step=item.step, attempts=tries)
    else:
        journal.write("revert_failed", step=item.step, attempts=tries, error=str(error))
    return RevertOutcome(step=item.step, fault=undo.fault, region=undo.region, summary=undo.summary,
                         objects=list(undo.objects), reverted=error is None, attempts=tries,
                         error=None if error is None else str(error),
                         by_hand=None if error is None else _by_hand(factory, item, env))


def _not_installed(item: PendingUndo) -> str:
    """Why drill cannot revert ``item``: the plugin that injected it is gone (or broken)."""
    if item.plugin is None:
        return f"no fault named {item.undo.fault!r} is installed: drill cannot undo it"
    why = installed().why_unavailable(item.plugin.group, item.plugin.name)
    return (f"the fault plugin {item.plugin.describe()} that applied it is "
            + (f"installed but unusable ({why})" if why else "no longer installed")
            + ": drill cannot undo it; reinstall it and run `drill recover` again, or undo it by hand")


def _by_hand(factory: FaultFactory | None, item: PendingUndo, env: Environment) -> str | None:
    """The command a person runs to undo ``item``: from the fault's class when it is installed, else as
    the run journaled it."""
    return (undo_command(factory, item.undo, env) if factory is not None else None) or item.by_hand


def fault_to_revert(item: PendingUndo) -> Fault:
    """The fault that journaled ``item``, as ``drill recover`` finds it: through the journaled plugin
    reference (:meth:`~drills.plugins.Plugins.fault_for`), whatever the undo record calls itself, and
    built from the journaled parameters even when they no longer validate. Raises :class:`FaultError`
    saying why when the plugin that applied it is not installed."""
    factory = installed().fault_for(item.plugin, item.undo.fault)
    if factory is None:
        raise FaultError(_not_installed(item))
    return _rebuild(factory, item)


def _rebuild(factory: FaultFactory, item: PendingUndo) -> Fault:
    """The fault object again. Its revert works from the undo record alone (the protocol says so),
    so when the parameters were not journaled, or no longer validate, unvalidated ones will do."""
    params = item.params or {}
    try:
        return factory(factory.Params.model_validate(params))
    except ValidationError:
        return factory(factory.Params.model_construct(**params))


def _recorded_identity(path: Path, entries: list[JournalEntry]) -> Identity | None:
    """The identity ``run_started`` recorded (None: the run predates identities, or could not read it)."""
    started = first(entries, "run_started")
    if started is None or started.fields.get("identity") is None:
        return None
    try:
        return Identity.from_json(started.fields["identity"])
    except ValueError as exc:
        raise DamagedJournal(path, started.line or 1, str(exc)) from exc


def _environment(run_dir: Path, entries: list[JournalEntry]) -> Environment:
    """The environment the run used, or EnvironmentUnreachable saying why it is gone."""
    started = first(entries, "run_started")
    if started is None or not started.fields.get("environment"):
        raise DrillError("its journal does not say which environment it ran in (no run_started event)")
    path = Path(started.fields["environment"])
    if not path.is_file():
        raise EnvironmentUnreachable(
            f"its environment file {path} is gone; nothing was undone (if it was a "
            "lab's, the lab has stopped and what the run changed went with it)")
    env = load_environment(path)
    if env.lab is not None and env.lab.pid is not None and not _alive(env.lab.pid):
        raise EnvironmentUnreachable(
            f"the lab it drove (pid {env.lab.pid}, {path}) is no longer running; a lab "
            "keeps its world in memory, so what the run changed went with it. Nothing is left to undo: "
            f"delete {run_dir} to forget the run")
    return env


async def _unreachable(targets: Targets, regions: set[str]) -> dict[str, str]:
    """The regions among ``regions`` whose API server does not answer, and why."""

    async def reason(name: str) -> str | None:
        if name not in targets.env.regions:
            return f"the environment has no region {name!r}"
        try:
            kube = targets.kube(name)
            await kube.call(VersionApi(kube.api_client).get_code, _request_timeout=_REACH_TIMEOUT_S)
        except EnvironmentUnreachable as exc:
            return str(exc)
        except ApiException as exc:
            # Any HTTP answer means the server is there; only refused credentials stop the undo.
            if exc.status in (401, 403):
                return f"the API server refused drill's credentials ({exc.status} {status_message(exc)})"
            if not exc.status:
                return f"no answer from the API server: {exc.reason}"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return f"no answer from the API server: {exc}"
        return None

    names = sorted(regions)
    reasons = await asyncio.gather(*(reason(n) for n in names))
    return {n: r for n, r in zip(names, reasons, strict=True) if r is not None}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
