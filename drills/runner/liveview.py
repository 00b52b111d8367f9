"""The live view on a terminal: a compact panel redrawn in place, with only the events above it.

The panel holds the scenario, the phase (and the trial), the current step, the time since the
incident against each RTO-like expectation (red once past), a row per probe with its readouts and a
trend of its recent samples, and each guard's progress toward tripping. It is drawn with rich's
``Live`` and redrawn by the event loop a few times a second (no refresh thread reading the runner's
state while it changes); rich overwrites the panel's lines in place, so it does not flicker.

The panel fits the terminal. In width: the probe rows are laid out here, not by rich's word wrap, so
that a readout wraps only between readouts (or, wider than the column, between the keys of its
breakdown) and nothing is cut; the trends are dropped unless the readouts keep
:data:`READOUTS_MIN_WIDTH` columns beside them. In height (rich would crop a taller panel): the timers
and the guards come first, and the probes that do not fit are folded into ``+N more probes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from drills.runner.livestate import LiveState, ProbeLine
from drills.runner.offloop import OffLoopStream, wait_written
from drills.runner.readouts import clock, guard_progress, incident_timer, probe_counts, readout_parts, trends
from drills.runner.summary import summary_lines
from reports.base import format_t
from reports.record import RunRecord, TimelineRecord

READOUTS_MIN_WIDTH = 40
"""Columns the readouts keep beside the trends; with fewer, the trends are left out."""
_FRAME = 4
"""Columns the panel's border and padding take."""


class LiveView:
    """A panel redrawn in place at the bottom of a terminal, with events printed above it."""

    redraw_real_s = 0.25
    """Four redraws a second: smooth enough to watch, cheap enough beside the probes."""
    draws_trends = True

    def __init__(self, stream: TextIO | OffLoopStream, *, console: Console | None = None) -> None:
        """``stream``: the terminal (usually an :class:`~drills.runner.offloop.OffLoopStream`);
        ``console``: a rich console to draw on instead (a recording of fixed size, in tests)."""
        self.stream = stream
        self.console = console or Console(file=stream, force_terminal=True)  # type: ignore[arg-type]

    def event(self, entry: TimelineRecord) -> None:
        """Print a timeline event above the panel."""
        self.console.print(Text(event_line(entry)))

    def note(self, text: str, *, loud: bool = False) -> None:
        """Print a message above the panel; a loud one in bold red. Left to the terminal to wrap: a
        note may hold a command to copy (``undo with: kubectl ...``), which a line break would break."""
        self.console.print(Text(text, style="bold red" if loud else ""), soft_wrap=True)

    async def watch(self, view: Callable[[], LiveState]) -> None:
        """Redraw the panel from ``view()`` until cancelled; then take it away."""
        live = Live(self.panel(view()), console=self.console, auto_refresh=False, transient=True,
                    redirect_stdout=False, redirect_stderr=False)
        live.start()
        try:
            while True:
                await asyncio.sleep(self.redraw_real_s)
                live.update(self.panel(view()), refresh=True)
        finally:
            live.stop()

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        """The end-of-run summary, once the panel is gone."""
        for line in summary_lines(record, run_dir=run_dir, reports=reports):
            self.console.print(Text(line))
        wait_written(self.stream)

    def panel(self, state: LiveState) -> RenderableType:
        """The panel for ``state``, as wide as the console and no taller (less the cursor's line)."""
        inner = max(1, self.console.width - _FRAME)
        top: list[Text] = [_heading(state), Text(f"step: {state.step}" if state.step else "step: -")]
        for deadline in state.deadlines:
            text, past = incident_timer(deadline, state.incident_t, state.t, state.incident_end_t)
            top.append(Text(text, style="bold red" if past else "bold"))
        guards: list[Text] = []
        for guard in state.guards:
            holding = "yellow" if guard.held_s is not None else ""
            style = "bold red" if guard.tripped_t is not None else holding
            guards.append(Text(f"guard {guard.text}: {guard_progress(guard)}", style=style))
        taken = sum(len(row.wrap(self.console, inner)) for row in (*top, *guards))
        room = self.console.height - 1 - 2 - taken
        return Panel(Group(*top, *_probes(state.probes, width=inner, room=room), *guards),
                     title=state.scenario, title_align="left", expand=True)


def event_line(entry: TimelineRecord) -> str:
    """``03:12.5 fault_applied [kill-us-ingress] scale ...``: an event at its scenario time."""
    step = f" [{entry['step']}]" if entry["step"] else ""
    return f"{format_t(entry['t'])} {entry['event']}{step} {entry['detail']}".rstrip()


def _heading(state: LiveState) -> Text:
    phase = state.phase or "-"
    if state.trial is not None:
        phase += f", {state.trial}"
    return Text.assemble(("t ", "dim"), clock(state.t), ("  phase ", "dim"), (phase, "bold"))


def _probes(probes: Sequence[ProbeLine], *, width: int, room: int) -> list[Text]:
    """A row per probe (name, readouts, trends) in ``width`` columns and at most ``room`` lines (at least
    one): the probes that do not fit are folded into ``+N more probes``."""
    names = max((len(probe.name) for probe in probes), default=0)
    strips = {probe.name: [f"{label} {strip}" for label, strip in trends(probe.history)] for probe in probes}
    trend_width = max((len(line) for lines in strips.values() for line in lines), default=0)
    column = max(1, width - names - 1)
    with_trends = trend_width > 0 and column - trend_width - 1 >= READOUTS_MIN_WIDTH
    if with_trends:
        column -= trend_width + 1
    rows: list[Text] = []
    for i, probe in enumerate(probes):
        lines = _pack(_units(probe), column)
        trend = strips[probe.name] if with_trends else []
        height = max(len(lines), len(trend))
        if height + (1 if i < len(probes) - 1 else 0) > room:
            more = len(probes) - i
            rows.append(Text(f"+{more} more probe{'s' if more > 1 else ''}", style="dim"))
            break
        room -= height
        row = Text(no_wrap=True)
        for n in range(height):
            row.append("\n" if n else "")
            row.append(f"{probe.name if n == 0 else '':<{names}} ", style="bold")
            readout = lines[n] if n < len(lines) else Text()
            row.append_text(readout)
            if with_trends:
                strip = trend[n] if n < len(trend) else ""
                row.append(" " * (column - readout.cell_len + 1) + strip.rjust(trend_width))
        rows.append(row)
    return rows


def _units(probe: ProbeLine) -> list[list[Text]]:
    """A probe's readouts (each the parts it may wrap between), its counts and its error (which may
    wrap between words)."""
    units = [[Text(part) for part in parts] for parts in readout_parts(probe.signals)]
    if not probe.signals:
        units.append([Text("no sample yet")])
    units.append([Text(f"({probe_counts(probe)})")])
    if probe.error:
        units.append([Text(word, style="red") for word in f"! {probe.error}".split()])
    return units


def _pack(units: Sequence[Sequence[Text]], width: int) -> list[Text]:
    """Lines of at most ``width`` columns holding ``units`` in order, two spaces apart: a unit goes
    whole onto a line of its own when it fits on none so far, else it is broken between its parts
    (one space apart); a part wider than a whole line, only then, is folded."""
    lines = [Text()]

    def add(piece: Text, gap: str) -> None:
        line = lines[-1]
        if line.cell_len and line.cell_len + len(gap) + piece.cell_len > width:
            lines.append(line := Text())
        if line.cell_len:
            line.append(gap)
        line.append_text(piece)

    for unit in units:
        whole = Text(" ").join(unit)
        if whole.cell_len <= width:
            add(whole, "  ")
            continue
        gap = "  "
        for part in unit:
            for piece in (part[i:i + width] for i in range(0, len(part), width)):
                add(piece, gap)
                gap = " "
    return lines
