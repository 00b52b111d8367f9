"""What a person watching the drill sees: a live view on a terminal, plain lines otherwise.

On a terminal (a game-day room), :class:`~drills.runner.liveview.LiveView` keeps a panel at the bottom
redrawn in place and prints the timeline's events above it. Anywhere else (CI logs, a pipe, a log
file), :class:`PlainLog` prints one line per change: each event, a probe's readouts when what they show
changed (never the same line twice), a guard starting or ceasing to hold, an RTO-like bound passed.
Every time shown is in the scenario's time base (the timeline's ``t``); a lab drill says so once, at
the top. Both end with the same summary (:mod:`drills.runner.summary`).

Writes to a real file leave the event loop free: :func:`for_stream` hands them to a thread of their
own (:class:`~drills.runner.offloop.OffLoopStream`), so that a reader that stalls never stalls the
probes; the summary waits until all is written.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from drills.runner.livestate import LiveState, ProbeLine
from drills.runner.liveview import LiveView, event_line
from drills.runner.offloop import OffLoopStream, wait_written
from drills.runner.readouts import format_signal, incident_timer, readouts
from drills.runner.summary import summary_lines
from probes.base import SignalValue
from reports.base import format_t
from reports.record import RunRecord, TimelineRecord


class Progress(Protocol):
    """Where the runner reports what happens."""

    draws_trends: bool
    """Whether the view draws the probes' trends: the runner keeps their recent signals (each
    :class:`~drills.runner.livestate.ProbeLine`'s ``history``) only for one that does."""

    def event(self, entry: TimelineRecord) -> None:
        """One timeline event, as it happens."""
        ...

    def note(self, text: str, *, loud: bool = False) -> None:
        """A message for the person watching; ``loud`` for one that asks for action."""
        ...

    async def watch(self, view: Callable[[], LiveState]) -> None:
        """Show the running drill until cancelled."""
        ...

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        """The end of the run."""
        ...


def for_stream(stream: TextIO | None = None) -> Progress:
    """A live view on a terminal, plain lines otherwise (a pipe, a file, a terminal that cannot move its
    cursor: ``TERM=dumb``); written off the event loop."""
    stream = stream or sys.stdout
    threaded = OffLoopStream(stream)
    if stream.isatty() and os.environ.get("TERM") != "dumb":
        return LiveView(threaded)
    return PlainLog(threaded)


class Silent:
    """Shows nothing (a library caller that watches the run record instead)."""

    draws_trends = False

    def event(self, entry: TimelineRecord) -> None:
        return None

    def note(self, text: str, *, loud: bool = False) -> None:
        return None

    async def watch(self, view: Callable[[], LiveState]) -> None:
        await asyncio.Event().wait()

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        return None


class PlainLog:
    """One line per change, never the same line twice (see the module docstring)."""

    every_s = 10.0
    """Scenario seconds a probe's numbers may go unreported while they drift: a changed name, state or
    error is printed at once, a changed number at most this often (often enough to follow a failover in
    a CI log, few enough lines to read)."""
    poll_real_s = 0.25
    """Four looks a second: a line is at most that late, and the looks cost the probes nothing."""
    draws_trends = False

    def __init__(self, stream: TextIO | OffLoopStream) -> None:
        self.stream = stream
        self._shown: dict[str, tuple[str, str]] = {}
        """Per probe, what its last line showed: all of it, and its names and states alone."""
        self._next_t: dict[str, float] = {}
        self._holding: dict[str, bool] = {}
        self._past: set[str] = set()

    def event(self, entry: TimelineRecord) -> None:
        self._print(event_line(entry))

    def note(self, text: str, *, loud: bool = False) -> None:
        prefix = "!!! " if loud else ""
        for line in text.splitlines():
            self._print(f"{prefix}{line}")

    async def watch(self, view: Callable[[], LiveState]) -> None:
        while True:
            self.changes(view())
            await asyncio.sleep(self.poll_real_s)

    def changes(self, state: LiveState) -> None:
        """Print what changed since the last ``state`` (one line per change)."""
        for probe in state.probes:
            self._probe(state.t, probe)
        for guard in state.guards:
            holding = guard.held_s is not None and guard.tripped_t is None
            if holding != self._holding.get(guard.text, False):
                self._holding[guard.text] = holding
                what = "holding" if holding else "no longer holding"
                self._print(f"{format_t(state.t)} guard {guard.text}: {what} "
                            f"(now {format_signal(guard.value, guard.unit)})")
        for deadline in state.deadlines:
            text, past = incident_timer(deadline, state.incident_t, state.t, state.incident_end_t)
            if past and deadline.text not in self._past:
                self._past.add(deadline.text)
                self._print(f"{format_t(state.t)} {text}")

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        for line in summary_lines(record, run_dir=run_dir, reports=reports):
            self._print(line)
        wait_written(self.stream)

    def _probe(self, t: float, probe: ProbeLine) -> None:
        if not probe.signals and probe.error is None:
            return
        error = f" ! {probe.error}" if probe.error else ""
        shown = ", ".join(readouts(probe.signals)) + error
        states = ", ".join(readouts(_names_and_states(probe.signals))) + error
        before = self._shown.get(probe.name)
        if before is not None and (shown == before[0]
                                   or (states == before[1] and t < self._next_t.get(probe.name, 0.0))):
            return
        self._shown[probe.name] = (shown, states)
        self._next_t[probe.name] = t + self.every_s
        self._print(f"{format_t(t)} probe {probe.name}: {shown}")

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def _names_and_states(signals: Mapping[str, SignalValue]) -> dict[str, SignalValue]:
    return {k: v for k, v in signals.items() if isinstance(v, bool | str) or v is None}
