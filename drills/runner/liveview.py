"""The live view on a terminal: a compact panel redrawn in place, with only the events above it.

The panel holds the scenario, the phase (and the trial), the current step, the time since the
incident against each RTO-like expectation (red once past), a row per probe with its readouts and a
trend of its recent samples, and each guard's progress toward tripping. It is drawn with rich's
``Live`` and redrawn by the event loop a few times a second (no refresh thread reading the runner's
state while it changes); rich overwrites the panel's lines in place, so it does not flicker. Every
row fits the terminal's width: readouts wrap between whole words, the trends are dropped on a narrow
terminal, nothing is cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from drills.runner.livestate import LiveState
from drills.runner.offloop import OffLoopStream, wait_written
from drills.runner.readouts import clock, guard_progress, incident_timer, probe_counts, readouts, trends
from drills.runner.summary import summary_lines
from reports.base import format_t
from reports.record import RunRecord, TimelineRecord

TRENDS_MIN_WIDTH = 72
"""Below this many columns the trends are left out, so that the readouts keep their room."""


class LiveView:
    """A panel redrawn in place at the bottom of a terminal, with events printed above it."""

    redraw_real_s = 0.25
    """Four redraws a second: smooth enough to watch, cheap enough beside the probes."""

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
        """The panel for ``state``, as wide as the console."""
        wide = self.console.width >= TRENDS_MIN_WIDTH
        rows: list[RenderableType] = [_heading(state)]
        rows.append(Text(f"step: {state.step}" if state.step else "step: -"))
        for deadline in state.deadlines:
            text, past = incident_timer(deadline, state.incident_t, state.t, state.incident_end_t)
            rows.append(Text(text, style="bold red" if past else "bold"))
        rows.append(_probes(state, wide=wide))
        for guard in state.guards:
            holding = "yellow" if guard.held_s is not None else ""
            style = "bold red" if guard.tripped_t is not None else holding
            rows.append(Text(f"guard {guard.text}: {guard_progress(guard)}", style=style))
        return Panel(Group(*rows), title=state.scenario, title_align="left", expand=True)


def event_line(entry: TimelineRecord) -> str:
    """``03:12.5 fault_applied [kill-us-ingress] scale ...``: an event at its scenario time."""
    step = f" [{entry['step']}]" if entry["step"] else ""
    return f"{format_t(entry['t'])} {entry['event']}{step} {entry['detail']}".rstrip()


def _heading(state: LiveState) -> Text:
    phase = state.phase or "-"
    if state.trial is not None:
        phase += f", {state.trial}"
    return Text.assemble(("t ", "dim"), clock(state.t), ("  phase ", "dim"), (phase, "bold"))


def _probes(state: LiveState, *, wide: bool) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    if wide:
        table.add_column(no_wrap=True, justify="right")
    for probe in state.probes:
        words = readouts(probe.signals) if probe.signals else ["no sample yet"]
        words.append(f"({probe_counts(probe)})")
        shown = Text("  ".join(words))
        if probe.error:
            shown.append(f"  ! {probe.error}", style="red")
        cells: list[RenderableType] = [Text(probe.name, style="bold"), shown]
        if wide:
            cells.append(Text("\n".join(f"{label} {strip}" for label, strip in trends(probe.history))))
        table.add_row(*cells)
    return table
