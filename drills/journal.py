"""The journal: a run's append-only event log, ``<run dir>/events.jsonl``, written ahead of every change.

One JSON object per line: ``{"seq": 1, "at": "2026-11-22T03:18:00.123Z", "t": 0.0, "event": ...,
...fields}``, ``at`` in UTC to the millisecond, ``t`` in scenario seconds since the run started.
:meth:`Journal.write` returns only once the line is on disk (flush and ``fsync``), so the runner
journals a fault's undo record *before* it injects the fault: whatever happens next, a crash
included, ``drill recover`` finds the record and undoes what may have been done.

Events and their fields (besides seq, at, t, event):

=================  ==============================================================================
run_started        ``scenario`` (file), ``environment`` (absolute path of the environment file),
                   ``run_dir``, ``time_scale``, ``rollback`` ("auto" or "manual"), ``trials`` (how
                   many times the steps run; each trial journals its faults again under the same
                   step ids), ``seed`` (of the trials' phases)
fault_prepared     ``step`` (step id), ``undo`` (the :class:`~drills.faults.base.Undo` as a dict),
                   optionally ``params`` (the fault's parameters as JSON, to rebuild it)
fault_applied      ``step``
fault_failed       ``step``, ``error``
revert_started     ``step``
fault_reverted     ``step``
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

JOURNAL_FILE = "events.jsonl"
_RESERVED = ("seq", "at", "t", "event")


class JournalBusy(DrillError):
    """Another live process holds the journal: the run is still going (it rolls itself back)."""


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


@dataclass(frozen=True)
class PendingUndo:
    """A fault whose undo was journaled and not yet confirmed done."""

    step: str
    undo: Undo
    params: dict[str, Any] | None = None
    """The fault's parameters as journaled (JSON), if they were."""


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
        entries = _drop_torn_tail(self._file, self.path) if existed else []
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
    complete, so the change it announced was never made. A bad line elsewhere is a SourceError."""
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    entries = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            entries.append(JournalEntry(seq=int(data.pop("seq")), at=str(data.pop("at")), t=data.pop("t"),
                                        event=str(data.pop("event")), fields=data))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                break  # the torn last line: no newline was ever written after it
            raise SourceError(SourceLocation(str(path), number, 1), f"not a journal entry ({exc})",
                              hint="the journal was edited or the disk is damaged") from exc
    return entries


def pending_undos(entries: list[JournalEntry]) -> list[PendingUndo]:
    """Every ``fault_prepared`` with no later ``fault_reverted`` for its step, in the order they were
    prepared (revert them in reverse)."""
    pending: dict[str, PendingUndo] = {}
    for entry in entries:
        step = entry.fields.get("step")
        if entry.event == "fault_prepared":
            pending[str(step)] = PendingUndo(step=str(step), undo=Undo(**entry.fields["undo"]),
                                             params=entry.fields.get("params"))
        elif entry.event == "fault_reverted":
            pending.pop(str(step), None)
    return list(pending.values())


def first(entries: list[JournalEntry], event: str) -> JournalEntry | None:
    """The first entry of kind ``event``, if any."""
    return next((e for e in entries if e.event == event), None)


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
