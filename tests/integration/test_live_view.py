"""What a game-day room and a CI log see of a us-outage lab drill: one run, watched both ways at once.

The terminal side is rich drawing on a console of fixed size; its raw output (cursor moves, line
erases) is replayed into a screen as a terminal would show it, at the moment the incident timer passed
a minute. The screen is kept as ``live-view.txt`` (and ``.svg``) in the test artifacts. The CI side is
the plain log written into a real pipe.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from drillrun import SCENARIOS
from rich.console import Console
from rich.text import Text

from drills.runner.livestate import LiveState
from drills.runner.liveview import LiveView
from drills.runner.progress import PlainLog, Progress, for_stream
from drills.runner.readouts import readouts
from drills.runner.runner import RunOptions
from drills.runner.session import Where, run_scenario
from reports.record import RunRecord, TimelineRecord

pytestmark = pytest.mark.lab

WIDTH, HEIGHT = 100, 32
TIME_SCALE = 60.0
"""The shared labs' scale (tests/conftest.py): faster, a loaded machine skips samples."""
SHOWN_AFTER_S = 60.0
"""The screen is kept at the first redraw this long after the incident began (scenario seconds)."""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Both:
    """Hands everything to the live view and to the plain log; notes when the screen is worth keeping."""

    draws_trends = True

    def __init__(self, live: LiveView, terminal: _Terminal, plain: Progress) -> None:
        self.live, self.terminal, self.plain = live, terminal, plain
        self.kept: tuple[int, LiveState] | None = None
        self._due: LiveState | None = None

    def event(self, entry: TimelineRecord) -> None:
        self.live.event(entry)
        self.plain.event(entry)

    def note(self, text: str, *, loud: bool = False) -> None:
        self.live.note(text, loud=loud)
        self.plain.note(text, loud=loud)

    async def watch(self, view: Callable[[], LiveState]) -> None:
        def seen() -> LiveState:
            state = view()
            if self.kept is None and self._due is not None:
                self.kept = (len(self.terminal.getvalue()), self._due)  # the due frame is drawn by now
            since = None if state.incident_t is None else state.t - state.incident_t
            if self._due is None and since is not None and since >= SHOWN_AFTER_S:
                self._due = state
            return state

        await asyncio.gather(self.live.watch(seen), self.plain.watch(view))

    def summary(self, record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> None:
        self.live.summary(record, run_dir=run_dir, reports=reports)
        self.plain.summary(record, run_dir=run_dir, reports=reports)


@dataclass(frozen=True)
class Watched:
    screen: list[str]
    """The terminal's screen when it was kept, one string per row."""
    state: LiveState
    """What that screen's panel showed."""
    terminal: str
    """Everything written to the terminal, control sequences included."""
    log: list[str]
    """The plain log's lines, as read from the pipe."""


@pytest.fixture(scope="module")
def watched(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Watched:
    terminal = _Terminal()
    console = Console(file=terminal, width=WIDTH, height=HEIGHT, force_terminal=True, color_system="standard")
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def read_all() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            received.extend(pipe.read())

    reader = threading.Thread(target=read_all)
    reader.start()
    with os.fdopen(write_fd, "w") as pipe:
        plain = for_stream(pipe)
        assert isinstance(plain, PlainLog)
        both = _Both(LiveView(terminal, console=console), terminal, plain)
        asyncio.run(run_scenario(SCENARIOS / "us-outage.yaml", Where(time_scale=TIME_SCALE),
                                          runs=tmp_path_factory.mktemp("runs"),
                                          options=RunOptions(trials=1), progress=both))
    reader.join()
    assert both.kept is not None, "the incident never ran a minute"
    offset, state = both.kept
    screen = _replay(terminal.getvalue()[:offset], WIDTH, HEIGHT)
    (artifacts / "live-view.txt").write_text("\n".join(screen) + "\n")
    recording = Console(file=io.StringIO(), width=WIDTH, record=True)
    recording.print(Text("\n".join(screen)))
    recording.save_svg(str(artifacts / "live-view.svg"), title="drill run scenarios/us-outage.yaml")
    log = received.decode().splitlines()
    (artifacts / "plain-log.txt").write_text("\n".join(log) + "\n")
    return Watched(screen=screen, state=state, terminal=terminal.getvalue(), log=log)


def test_the_room_sees_the_incident_timer_against_the_rto(watched: Watched) -> None:
    text = "\n".join(watched.screen)
    assert re.search(r"incident \+0[1-9]:\d\d of 03:00 \(dns\.failover_time\)", text), text
    assert re.search(r"incident \+0[1-9]:\d\d of 04:00 \(dns\.client_failover_time\)", text), text
    assert "(users.downtime)" not in text  # the length of an outage, not a time since the incident
    assert "phase incident" in text
    assert "fault_applied [kill-us-ingress]" in text  # the events above the panel


def test_the_room_sees_signals_with_units_and_never_raw_values(watched: Watched) -> None:
    text = "\n".join(watched.screen)
    assert re.search(r"error_rate \d+(\.\d)?%", text), text
    assert re.search(r"ready \d \(zone-1:\d zone-2:\d zone-3:\d\)", text), text
    assert re.search(r"answer (us|eu)", text), text
    for raw in ("None", "True", "False"):
        assert raw not in text
    assert not re.search(r"\d\.\d{4}", text), text


def test_no_row_of_the_screen_is_cut(watched: Watched) -> None:
    assert all(len(row) <= WIDTH for row in watched.screen)
    words = {word for row in watched.screen for word in row.replace("│", " ").split()}
    for probe in watched.state.probes:
        for readout in readouts(probe.signals):
            for word in readout.split():
                assert word in words, (probe.name, word, watched.screen)


def test_a_lab_drill_says_its_time_base_once_at_the_top(watched: Watched) -> None:
    label = "lab time (60x): times are real-world equivalent"
    assert watched.log[0] == label
    assert sum(label in line for line in watched.log) == 1
    assert watched.terminal.count(label) == 1


def test_the_log_of_a_run_without_a_terminal_never_repeats_a_line(watched: Watched) -> None:
    log = watched.log
    assert len(log) == len(set(log)), [line for line in log if log.count(line) > 1]
    assert any(" fault_applied [kill-us-ingress] " in line for line in log)
    assert any(re.fullmatch(r"\d\d:\d\d\.\d probe dns: answer eu, steady", line) for line in log), log
    assert not any(raw in line for line in log for raw in ("None", "True", "False", "\x1b"))


_CONTROL = re.compile(r"\x1b\[(\??)([\d;]*)([A-Za-z])|\r|\n")


def _replay(output: str, width: int, height: int) -> list[str]:
    """The screen a terminal of ``width`` x ``height`` shows after ``output``: the control sequences rich's
    live display uses (carriage return, line feed, cursor up, erase line; colours ignored), and lines
    longer than the width continued on the next row."""
    rows: list[str] = [""]
    row = col = 0
    at = 0
    for found in [*_CONTROL.finditer(output), None]:
        text = output[at:found.start()] if found else output[at:]
        while text:  # past the last column the terminal goes on at the next row
            if col >= width:
                row, col = row + 1, 0
                if row == len(rows):
                    rows.append("")
            part, text = text[:width - col], text[width - col:]
            line = rows[row].ljust(col)
            rows[row] = line[:col] + part + line[col + len(part):]
            col += len(part)
        if found is None:
            break
        at = found.end()
        token = found.group(0)
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append("")
        elif found.group(3) == "A":
            row = max(0, row - int(found.group(2) or 1))
        elif found.group(3) == "K" and found.group(2) == "2":
            rows[row] = ""
    shown = rows[-height:] if rows[-1] else rows[-height - 1:-1]
    return [r.rstrip() for r in shown]
