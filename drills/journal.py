"""The journal: a run's append-only event log, ``<run dir>/events.jsonl``, written ahead of every change.

One JSON object per line: ``{"seq": 1, "at": "2026-11-22T03:18:00.123Z", "t": 0.0, "event": ...,
...fields}``, ``at`` in UTC to the millisecond, ``t`` in scenario seconds since the run started.
:meth:`Journal.write` (and :meth:`Journal.awrite`, for coroutines: the ``fsync`` then leaves the event
loop free) returns only once the line is on disk (flush and ``fsync``), so the runner
journals a fault's undo record *before* it injects the fault: whatever happens next, a crash
included, ``drill recover`` finds the record and undoes what may have been done.

Events and their fields (besides seq, at, t, event):

=================  ==============================================================================
run_started        ``scenario`` (file), ``environment`` (absolute path of the environment file),
                   ``run_dir``, ``time_scale``, ``rollback`` ("auto" or "manual"), ``trials`` (how
                   many times the steps run; each trial journals its faults again under the same
                   step ids), ``seed`` (of the trials' phases), ``pid`` and ``host`` (of the
                   drill's process: ``drill abort`` signals it), ``identity`` (the environment's,
                   read before anything changed: :mod:`drills.identity`; null when not known)
lock_held          ``regions`` whose lock lease the run holds, ``holder`` (its holderIdentity)
fault_prepared     ``step`` (step id), ``undo`` (the :class:`~drills.faults.base.Undo` as a dict),
                   optionally ``params`` (the fault's parameters as JSON, to rebuild it), ``plugin``
                   (the :class:`~drills.plugins.PluginRef` of its class: entry point group and name,
                   import path, distribution and version, to find its code again) and ``by_hand``
                   (the command a person runs to undo it, or null: said even once the plugin is gone)
fault_applied      ``step``
fault_failed       ``step``, ``error``
revert_started     ``step``
fault_reverted     ``step``, ``attempts``; ``skipped`` when its record was not written back, and why
                   (what it changed is already as before the drill, or someone else changed it
                   meanwhile: :meth:`drills.runner.snapshots.RunSnapshots.needless_revert`)
revert_failed      ``step``, ``error``
run_ended          ``verdict``
recovered          ``reverted`` and ``failed`` (step ids), written by ``drill recover``
object_snapshot    ``step``, ``key`` (the object), ``snapshot`` (:class:`~drills.snapshot.Snapshot` as
                   JSON), before the step's fault is injected: the object before the run first changed it
object_touched     ``step``, ``key``, ``caused``: values a later fault on an object already snapshotted sets
object_restored    ``key``, ``outcome`` (unchanged, restored, drift, gone, failed), ``detail``
=================  ==============================================================================

While a :class:`Journal` is open its file is locked (``flock``), so that ``drill recover`` can
tell a live run, which rolls itself back, from one whose process died; the kernel drops the lock
with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from drills.clock import ScenarioClock
from drills.errors import DrillError, SourceError, SourceLocation
from drills.faults.base import Undo
from drills.plugins import PluginRef

JOURNAL_FILE = "events.jsonl"
_RESERVED = ("seq", "at", "t", "event")


class JournalBusy(DrillError):
    """Another live process holds the journal: the run is still going (it rolls itself back)."""


class DamagedJournal(SourceError):
    """A journal line that is not what drill writes: the run cannot be recovered from it automatically.
    Its exit code is 3 (something may remain in place); the hint says how to recover it by hand."""

    exit_code = 3

    def __init__(self, path: Path, line: int, message: str) -> None:
        self.run_dir = path.parent
        super().__init__(SourceLocation(str(path), line, 1), f"damaged journal: {message}",
                         hint=f"recover it by hand: undo what each fault_prepared line of {path.name} names "
                              "(objects, data) unless a later fault_reverted line names its step, then "
                              f"fix or delete line {line} and run `drill recover {path.parent.name}` to "
                              "record it")


@dataclass(frozen=True)
class JournalEntry:
    """One line of a journal."""

    seq: int
    at: str
    """ISO-8601 UTC, milliseconds: ``2026-11-22T03:18:00.123Z``."""
    t: float | None
    """Scenario seconds since the run started (None when unknown)."""
    event: str
    fields: dict[str, Any]
    """The event's own fields, as JSON (the journal is a JSON edge)."""
    line: int | None = None
    """Its line in the file, when it was read from one."""


@dataclass(frozen=True)
class PendingUndo:
    """A fault whose undo was journaled and not yet confirmed done."""

    step: str
    undo: Undo
    params: dict[str, Any] | None = None
    """The fault's parameters as journaled (JSON), if they were."""
    plugin: PluginRef | None = None
    """Where the fault's code was found, if journaled (journals of drill 0.1 did not say)."""
    by_hand: str | None = None
    """The command a person runs to undo it, as journaled (None: none known, or not journaled)."""


class Journal:
    """An open journal; appends fsynced lines. Use as a context manager, or :meth:`close` it.

    ``clock`` gives ``t``. Without one (``drill recover`` reopening a dead run's journal), ``t``
    continues the run's own timeline, from its ``run_started`` line and time scale.
    """

    def __init__(self, path: str | Path, clock: ScenarioClock | None = None) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        self._file: IO[bytes] = open(self.path, "a+b")  # noqa: SIM115 - held open for the run
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise JournalBusy(f"{self.path} is held by a live drill process: "
                              "that run is still going") from exc
        try:
            entries = _drop_torn_tail(self._file, self.path) if existed else []
        except DrillError:
            self._file.close()
            raise
        self._seq = entries[-1].seq if entries else 0
        self._origin = None if clock is not None else _origin(entries)
        if not existed:
            _fsync_dir(self.path.parent)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, event: str, **fields: Any) -> JournalEntry:
        """Append one event and return once it is on disk.

        Field values may be JSON values, dataclasses (an :class:`Undo`), pydantic models or paths.
        """
        clash = [k for k in fields if k in _RESERVED]
        if clash:
            raise ValueError(f"journal fields may not be named {', '.join(clash)}")
        with self._lock:
            self._seq += 1
            entry = JournalEntry(seq=self._seq, at=_iso(datetime.now(UTC)), t=self._t(), event=event,
                                 fields=json.loads(json.dumps(fields, default=_json)))
            line = json.dumps({"seq": entry.seq, "at": entry.at, "t": entry.t, "event": event,
                               **entry.fields}, separators=(",", ":"))
            self._file.write(line.encode() + b"\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        return entry

    async def awrite(self, event: str, **fields: Any) -> JournalEntry:
        """:meth:`write` from a coroutine: the fsync runs in a worker thread, so that the event loop
        (probes sampling, guards watching) is not held while the disk syncs. The line is written even
        if the caller is cancelled meanwhile: the cancellation is raised once it is on disk, so that a
        caller never leaves the journal unsure whether a line it asked for is there."""
        write = asyncio.ensure_future(asyncio.to_thread(self.write, event, **fields))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait([write])
            raise

    def close(self) -> None:
        """Release the file (and with it the lock)."""
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def _t(self) -> float | None:
        if self._clock is not None:
            return round(self._clock.now(), 3)
        if self._origin is None:
            return None
        start, scale = self._origin
        return round((time.time() - start) * scale, 3)


def read_journal(path: str | Path) -> list[JournalEntry]:
    """Every entry of a journal. A torn last line (a crash mid-write) is ignored: it was never
    complete, so the change it announced was never made. Any other line that is not what drill
    writes (not JSON, a field missing, an undo record drill cannot read) is a :class:`DamagedJournal`
    at its line."""
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    entries = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError as exc:
            if number == len(lines):
                break  # the torn last line: no newline was ever written after it
            raise DamagedJournal(path, number, f"not a JSON line ({exc})") from exc
        try:
            entries.append(_entry(data, number))
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedJournal(path, number, f"it lacks key {exc}" if isinstance(exc, KeyError)
                                 else str(exc)) from exc
    return entries


def undo_record(data: Any) -> Undo:
    """The :class:`Undo` a ``fault_prepared`` line holds; ValueError saying what is wrong with it
    (a key drill does not know, one missing, a value of the wrong kind), never a bare TypeError."""
    if not isinstance(data, dict):
        raise ValueError("its undo record is not a JSON object")
    known = {f.name: f for f in dataclasses.fields(Undo)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"its undo record has {_keys(unknown)} drill does not know")
    missing = [name for name, f in known.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"its undo record lacks {_keys(missing)}")
    wrong = [name for name, kind in _UNDO_TYPES.items() if name in data and not isinstance(data[name], kind)]
    if "objects" in data and isinstance(data["objects"], list):
        wrong += ["objects"] if not all(isinstance(o, str) for o in data["objects"]) else []
    if wrong:
        raise ValueError(f"its undo record's {_keys(wrong)} {'is' if len(wrong) == 1 else 'are'} not what "
                         "drill writes")
    return Undo(**data)


def pending_undos(entries: list[JournalEntry]) -> list[PendingUndo]:
    """Every ``fault_prepared`` with no later ``fault_reverted`` for its step, in the order they were
    prepared (revert them in reverse)."""
    pending: dict[str, PendingUndo] = {}
    for entry in entries:
        step = entry.fields.get("step")
        if entry.event == "fault_prepared":
            plugin = entry.fields.get("plugin")
            by_hand = entry.fields.get("by_hand")
            pending[str(step)] = PendingUndo(step=str(step), undo=undo_record(entry.fields["undo"]),
                                             params=entry.fields.get("params"),
                                             plugin=None if plugin is None else PluginRef.from_json(plugin),
                                             by_hand=by_hand if isinstance(by_hand, str) else None)
        elif entry.event == "fault_reverted":
            pending.pop(str(step), None)
    return list(pending.values())


def first(entries: list[JournalEntry], event: str) -> JournalEntry | None:
    """The first entry of kind ``event``, if any."""
    return next((e for e in entries if e.event == event), None)


_UNDO_TYPES: dict[str, type] = {"fault": str, "region": str, "summary": str, "objects": list, "data": dict}
"""The kinds of the undo record's fields drill itself writes."""
_STEP_EVENTS = ("fault_prepared", "fault_applied", "fault_failed", "revert_started", "fault_reverted",
                "revert_failed")
"""Events that are about one step, and must name it."""


def _entry(data: Any, line: int) -> JournalEntry:
    """One parsed line as an entry; ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in _RESERVED if k not in data]
    if missing:
        raise ValueError(f"it lacks {_keys(missing)}")
    fields = {k: v for k, v in data.items() if k not in _RESERVED}
    event = str(data["event"])
    if event in _STEP_EVENTS and not isinstance(fields.get("step"), str):
        raise ValueError(f"its {event} names no step")
    if event == "fault_prepared":
        if "undo" not in fields:
            raise ValueError("its fault_prepared has no undo record")
        undo_record(fields["undo"])
        if fields.get("plugin") is not None:
            PluginRef.from_json(fields["plugin"])
    t = data["t"]
    return JournalEntry(seq=int(data["seq"]), at=str(data["at"]), t=None if t is None else float(t),
                        event=event, fields=fields, line=line)


def _keys(names: list[str]) -> str:
    return ("key " if len(names) == 1 else "keys ") + ", ".join(repr(n) for n in names)


def _drop_torn_tail(file: IO[bytes], path: Path) -> list[JournalEntry]:
    """Cut a torn last line off before appending, so that new lines do not run into it."""
    file.seek(0)
    data = file.read()
    if data and not data.endswith(b"\n"):
        file.truncate(data.rfind(b"\n") + 1)
        file.flush()
        os.fsync(file.fileno())
    return read_journal(path)


def _origin(entries: list[JournalEntry]) -> tuple[float, float] | None:
    """The real Unix time at which the run's ``t`` was 0, and its time scale."""
    started = first(entries, "run_started")
    if started is None or started.t is None:
        return None
    scale = float(started.fields.get("time_scale") or 1.0)
    at = datetime.fromisoformat(started.at.replace("Z", "+00:00")).timestamp()
    return at - started.t / scale, scale


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _fsync_dir(folder: Path) -> None:
    """Make the new file's name durable too, not only its contents."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
