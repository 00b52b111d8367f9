"""What a person watching the drill sees: a live view on a terminal, plain lines otherwise.

On a terminal (a game-day room), :class:`LiveView` keeps a block at the bottom redrawn a few times
a second (current step, elapsed scenario time, each probe's latest signals, each guard's state)
and prints the timeline's events above it. Anywhere else (CI logs, a pipe), :class:`PlainLog`
prints one timestamped line per event and a line of probe values every ten scenario seconds. Both
end with the same summary: the verdict, each expectation with its value and error, where the run
and its report are.

Writes to a real file (a terminal, a pipe, a log file) leave the event loop free: :func:`for_stream`
hands them to a thread of their own (:class:`OffLoopStream`), so that a reader that stalls (a CI log
collector, a pager not scrolled) never stalls the probes; the summary waits until all is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TextIO

from probes.base import SignalValue
from reports.base import describe_blind, describe_trial, format_value
from reports.record import RunRecord, TimelineRecord


@dataclass(frozen=True)
class ProbeLine:
    """One probe as the live view shows it."""

    name: str
    kind: str
    signals: dict[str, SignalValue]
    samples: int
    error: str | None
    lost: int = 0
    """Samples that failed or timed out in the runner (the probe itself should never let one)."""
    skipped: int = 0
    """Ticks that started no sample (too many in flight, or the process fell behind)."""


@dataclass(frozen=True)
class LiveState:
    """A snapshot of the running drill."""

    scenario: str
    t: float
    step: str
    probes: Sequence[ProbeLine]
    guards: Sequence[tuple[str, str]]
    """Each guard as written and its state in words."""


class Progress(Protocol):
    """Where the runner reports what happens."""

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
    """A live view on a terminal, plain lines otherwise; written off the event loop."""
    stream = stream or sys.stdout
    threaded = OffLoopStream(stream)
    return LiveView(threaded) if stream.isatty() else PlainLog(threaded)


class OffLoopStream:
    """Writes to ``stream`` from a thread of its own, in order: :meth:`write` never blocks, and
    :meth:`flush` waits until everything written so far is out (a stream that fails is given up)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None

    def write(self, text: str) -> int:
        """Queue ``text``; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="progress writer", daemon=True)
            self._thread.start()
        self._queue.put(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to wait for: the thread flushes after each write; see :meth:`drain`."""

    def drain(self) -> None:
        """Wait until everything written so far is out."""
        if self._thread is not None:
            self._queue.join()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _run(self) -> None:
        broken = False
        while True:
            text = self._queue.get()
            if not broken:
                try:
                    self.stream.write(text)
                    if self._queue.empty():
                        self.stream.flush()
                except (OSError, ValueError):  # the reader went away: nobody to show it to
                    broken = True
            self._queue.task_done()


def _drain(stream: TextIO | OffLoopStream) -> None:
    """Wait until ``stream`` has written everything (the end of the run: the process may exit next)."""
    if isinstance(stream, OffLoopStream):
        stream.drain()
    else:
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class Silent:
    """Shows nothing (a library caller that watches the run record instead)."""

    def event(self, entry: TimelineRecord) -> None:
        return None

    def note(self, text: str, *, loud: bool = False) -> None:
        return None

    async def watch(self, view: Callable[[], LiveState]) -> None:
        await asyncio.Event().wait()

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        return None


class PlainLog:
    """One line per event and a probe summary every :attr:`every_s` scenario seconds."""

    every_s = 10.0
    """Scenario seconds between probe summaries: often enough to follow a failover in a CI log."""

    def __init__(self, stream: TextIO | OffLoopStream) -> None:
        self.stream = stream

    def event(self, entry: TimelineRecord) -> None:
        self._line(entry["t"], _event_text(entry))

    def note(self, text: str, *, loud: bool = False) -> None:
        prefix = "!!! " if loud else ""
        for line in text.splitlines():
            self._print(f"{_clock()}          {prefix}{line}")

    async def watch(self, view: Callable[[], LiveState]) -> None:
        next_t = 0.0
        while True:
            await asyncio.sleep(0.05)
            state = view()
            if state.t >= next_t:
                next_t = state.t + self.every_s
                shown = " | ".join(f"{p.name}: {_signals(p.signals)}" + (f" ! {p.error}" if p.error else "")
                                   for p in state.probes)
                self._line(state.t, f"probes   {shown}")

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        for line in summary_lines(record, run_dir=run_dir, reports=reports):
            self._print(line)
        _drain(self.stream)

    def _line(self, t: float, text: str) -> None:
        self._print(f"{_clock()} {t:+8.1f}s {text}")

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class LiveView:
    """A block redrawn in place at the bottom of a terminal, with events printed above it."""

    redraw_real_s = 0.25
    """Four redraws a second: smooth enough to watch, cheap enough beside the probes."""

    def __init__(self, stream: TextIO | OffLoopStream) -> None:
        self.stream = stream
        self._drawn = 0
        self._block: list[str] = []
        self._view: Callable[[], LiveState] | None = None

    def event(self, entry: TimelineRecord) -> None:
        self._above([f"{_clock()} {entry['t']:+8.1f}s {_event_text(entry)}"])

    def note(self, text: str, *, loud: bool = False) -> None:
        style = ("\x1b[1;31m", "\x1b[0m") if loud else ("", "")
        self._above([f"{style[0]}{line}{style[1]}" for line in text.splitlines()])

    async def watch(self, view: Callable[[], LiveState]) -> None:
        self._view = view
        try:
            while True:
                self._block = self._render(view())
                self._redraw()
                await asyncio.sleep(self.redraw_real_s)
        finally:
            self._view = None
            self._clear()
            self._block = []
            self.stream.flush()

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        self._clear()
        for line in summary_lines(record, run_dir=run_dir, reports=reports):
            self.stream.write(line + "\n")
        _drain(self.stream)

    def _render(self, state: LiveState) -> list[str]:
        width = max(40, shutil.get_terminal_size().columns - 1)
        lines = [f"{state.scenario}  t={state.t:.1f}s  {state.step}"]
        for p in state.probes:
            counts = [f"{p.samples} samples"] + [f"{n} {what}" for n, what in ((p.lost, "lost"),
                                                                                (p.skipped, "skipped")) if n]
            text = f"  {p.name:<12} {_signals(p.signals)}  ({', '.join(counts)})"
            if p.error:
                text += f"  ! {p.error}"
            lines.append(text)
        lines.extend(f"  guard {text}: {status}" for text, status in state.guards)
        return [line[:width] for line in lines]

    def _above(self, lines: list[str]) -> None:
        self._clear()
        for line in lines:
            self.stream.write(line + "\n")
        if self._view is not None:
            self._block = self._render(self._view())
        self._redraw()

    def _clear(self) -> None:
        if self._drawn:
            # Cursor up to the block's first line, then erase to the end of the screen.
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _redraw(self) -> None:
        self._clear()
        for line in self._block:
            self.stream.write(line + "\n")
        self._drawn = len(self._block)
        self.stream.flush()


SHOWN_BLIND = 3
"""Blind intervals of a probe the summary names; report.md has them all."""


def summary_lines(record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> list[str]:
    """The end-of-run summary: verdict, expectations with value and error, when probes were blind,
    rollback, where to look."""
    lines = [f"{record['scenario']['name']}: {record['verdict'].upper()} (exit {record['exit_code']})"]
    if record["reason"]:
        lines.append(f"  reason: {record['reason']}")
    trials = record.get("trials") or []
    sweep = record.get("sweep")
    if len(trials) > 1 and sweep is not None:
        lines.append(f"  {len(trials)} trials (seed {sweep['seed']}); each value is the worst trial's")
    for e in record["expectations"]:
        metric = record["metrics"].get(e["metric"])
        error = metric["error"] if metric is not None else None
        mark = "ok  " if e["passed"] else "FAIL"
        if e.get("outcome") == "inconclusive":
            mark = "inc " if e["passed"] else "INC "
        value = format_value(e["value"], e["unit"], error)
        worst = e.get("worst_trial")
        if len(trials) > 1 and worst is not None:
            value += " in " + describe_trial(worst, len(trials), e.get("worst_phase"),
                                             sweep["probe_interval"] if sweep else None)
        note = f"  ({e['note']})" if e["note"] else ""
        lines.append(f"  {mark} {e['expect']:<36} {value}{note}")
    for name, probe in record.get("probes", {}).items():
        blind = probe.get("blind", [])
        if blind:
            more = f"; and {len(blind) - SHOWN_BLIND} more" if len(blind) > SHOWN_BLIND else ""
            lines.append(f"  blind {name}: {'; '.join(describe_blind(b) for b in blind[:SHOWN_BLIND])}{more}")
    for r in record["rollback"]:
        trial = f" in trial {r['trial']}" if len(trials) > 1 and "trial" in r else ""
        lines.append(f"  undo {r['step']} ({r['fault']} {r['region']}){trial}: {r['outcome']}"
                     + (f": {r['error']}" if r["error"] else ""))
    lines.append(f"run: {run_dir}")
    lines.extend(f"report: {path}" for path in reports)
    return lines


def _event_text(entry: TimelineRecord) -> str:
    step = f" [{entry['step']}]" if entry["step"] else ""
    return f"{entry['event']}{step} {entry['detail']}".rstrip()


def _signals(signals: dict[str, SignalValue]) -> str:
    if not signals:
        return "(no sample yet)"
    return " ".join(f"{k}={_value(v)}" for k, v in signals.items())


def _value(value: SignalValue) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _clock() -> str:
    return datetime.fromtimestamp(time.time()).strftime("%H:%M:%S")
