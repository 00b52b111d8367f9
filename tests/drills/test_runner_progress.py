"""What the terminal shows: a panel redrawn in place on a terminal, one line per change elsewhere, and
the same summary at the end."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from drills.runner.livestate import Deadline, GuardLine, LiveState, ProbeLine
from drills.runner.liveview import LiveView
from drills.runner.offloop import OffLoopStream
from drills.runner.progress import PlainLog, for_stream
from drills.runner.summary import summary_lines
from reports.record import TimelineRecord


class Recording(io.StringIO):
    """A stream that says when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)

    async def until(self, predicate: Callable[[str], bool]) -> None:
        while not predicate(self.getvalue()):
            self.written.clear()
            await self.written.wait()


class Terminal(Recording):
    def isatty(self) -> bool:
        return True


def entry(event: Any, t: float, step: str | None = None, detail: str = "") -> TimelineRecord:
    return {"t": t, "at": "2026-11-22T03:18:00.000Z", "event": event, "step": step, "detail": detail}


USERS = {"ok": 0.0, "error_rate": 45.45454545454545, "region": None, "steady": False}
WEB = {"ready": 4, "desired": 6, "steady": False, "ready.us-1": 2, "ready.us-2": 2, "ready.us-3": 0}


def state(t: float, *, users: dict[str, Any] | None = None, held: float | None = 80.0) -> LiveState:
    return LiveState(
        scenario="us-outage", t=t, step="step-2: wait until dns.answer == eu", phase="incident",
        incident_t=60.0, deadlines=[Deadline("dns.failover_time", 120.0, "dns.failover_time < 2m")],
        probes=[ProbeLine("dns", "dns", {"answer": "us", "steady": True}, 12, None,
                          history=[{"answer": "us"}] * 5 + [{"answer": "eu"}] * 3),
                ProbeLine("users", "http", USERS if users is None else users, 30, None,
                          history=[{"error_rate": v} for v in (0.0, 0.0, 20.0, 45.5)]),
                ProbeLine("web", "replicas", WEB, 9, None)],
        guards=[GuardLine("users.error_rate > 80% for 8m", "%", 480.0, 45.45454545454545, held_s=held)])


def panel_text(view_state: LiveState, width: int, height: int = 100) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height, record=True, force_terminal=True)
    view = LiveView(io.StringIO(), console=console)
    console.print(view.panel(view_state))
    return console.export_text().splitlines()


def test_a_terminal_gets_the_live_view_and_anything_else_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(for_stream(Terminal()), LiveView)
    assert isinstance(for_stream(io.StringIO()), PlainLog)
    monkeypatch.setenv("TERM", "dumb")  # a terminal that cannot move its cursor (an editor's shell)
    assert isinstance(for_stream(Terminal()), PlainLog)


def test_the_panel_shows_signals_with_units_never_raw_python_values() -> None:
    text = "\n".join(panel_text(state(127.0), 110))
    assert "error_rate 45.5%" in text
    assert "ok 0%" in text
    assert "answer us" in text
    assert "ready 4 (us-1:2 us-2:2 us-3:0)" in text
    assert "region -" in text
    assert "not steady" in text
    for raw in ("None", "True", "False", "45.45454545454545", "45.45"):
        assert raw not in text, raw


def test_the_panel_times_the_incident_against_each_rto_like_expectation() -> None:
    assert "incident +01:07 of 02:00 (dns.failover_time)" in "\n".join(panel_text(state(127.0), 100))
    assert "incident +02:07 PAST 02:00 (dns.failover_time)" in "\n".join(panel_text(state(187.0), 100))


def test_the_panel_shows_a_guard_s_progress_toward_tripping() -> None:
    text = "\n".join(panel_text(state(127.0), 110))
    assert "guard users.error_rate > 80% for 8m: held 01:20 of 08:00 (now 45.5%)" in text
    calm = "\n".join(panel_text(state(127.0, held=None), 110))
    assert "guard users.error_rate > 80% for 8m: ok (now 45.5%)" in calm


def test_the_panel_draws_a_state_strip_and_a_sparkline_of_the_recent_samples() -> None:
    text = "\n".join(panel_text(state(127.0), 110))
    assert "answer uuuuueee" in text
    assert "error_rate ▁▁▂▄" in text


def test_a_narrow_terminal_wraps_whole_words_and_keeps_every_zone_s_count() -> None:
    for width in (40, 60, 80):
        lines = panel_text(state(127.0), width)
        assert all(len(line) <= width for line in lines)
        words = {word.strip("│()") for line in lines for word in line.split()}
        for whole in ("us-1:2", "us-2:2", "us-3:0", "45.5%", "+01:07", "dns.failover_time"):
            assert whole in words, (width, whole, lines)


VANTAGE_POINTS = ("paris", "nyc", "tokyo", "sydney")


def crowded(t: float = 127.0, *, probes: int = 3) -> LiveState:
    """Four vantage points and three zones; ``probes`` beyond three are more http probes."""
    base = state(t)
    dns = ProbeLine("dns", "dns", {"answer": "eu", **{f"answer.{v}": "eu" for v in VANTAGE_POINTS},
                                   "steady": False}, 3, None,
                    history=[{f"answer.{v}": "us" for v in VANTAGE_POINTS}] * 5
                    + [{f"answer.{v}": "eu" for v in VANTAGE_POINTS}] * 3)
    more = [ProbeLine(f"api{i}", "http", USERS, 30, None, history=[{"error_rate": 45.5}] * 4)
            for i in range(probes - 3)]
    deadlines = [Deadline("dns.failover_time", 120.0, "dns.failover_time < 2m"),
                 Deadline("users.failover_time", 180.0, "users.failover_time < 3m"),
                 Deadline("web.time_to_restore", 300.0, "web.time_to_restore < 5m")]
    guards = [*base.guards, GuardLine("web.ready < 1 for 2m", None, 120.0, 4.0)]
    return LiveState(scenario=base.scenario, t=t, step=base.step, phase=base.phase,
                     incident_t=base.incident_t, deadlines=deadlines, probes=[dns, *base.probes[1:], *more],
                     guards=guards)


def test_every_readout_stays_whole_and_every_value_shows_at_any_width() -> None:
    whole = ("answer eu", *(f"{v}:eu" for v in VANTAGE_POINTS), "not steady", "(3 samples)", "ok 0%",
             "error_rate 45.5%", "region -", "(30 samples)", "ready 4", "us-1:2", "us-2:2", "us-3:0)",
             "desired 6", "(9 samples)")
    for width in (40, 60, 72, 80, 100):
        lines = panel_text(crowded(), width)
        assert all(len(line) <= width for line in lines), (width, lines)
        assert "…" not in "\n".join(lines), (width, lines)
        for readout in whole:
            assert any(readout in line for line in lines), (width, readout, lines)
    wide = "\n".join(panel_text(crowded(), 80))
    assert "answer eu (paris:eu nyc:eu tokyo:eu sydney:eu)" in wide
    assert "answer.sydney uuuuueee" in wide
    assert "uuuuueee" not in "\n".join(panel_text(crowded(), 72))  # no room for trends beside the readouts


def test_the_panel_fits_the_terminal_s_height_folding_probes_that_do_not() -> None:
    short = panel_text(crowded(probes=6), 80, height=12)
    assert len(short) < 12  # the line under the panel holds the cursor
    assert short[-1].startswith("╰")
    text = "\n".join(short)
    for kept in ("dns.failover_time", "users.failover_time", "web.time_to_restore",
                 "guard users.error_rate > 80% for 8m", "guard web.ready < 1 for 2m"):
        assert kept in text, (kept, short)
    assert "+6 more probes" in text
    tall = panel_text(crowded(probes=9), 80, height=24)
    assert len(tall) < 24
    assert tall[-1].startswith("╰")
    shown = [line for line in tall if line.startswith(("│ dns ", "│ users ", "│ web ", "│ api"))]
    assert len(shown) == 5, tall
    assert "+4 more probes" in "\n".join(tall)


async def test_the_live_view_redraws_its_panel_in_place_with_events_above_it() -> None:
    out = Terminal()
    console = Console(file=out, width=100, height=30, force_terminal=True)
    view = LiveView(out, console=console)
    now = [127.0]
    watching = asyncio.create_task(view.watch(lambda: state(now[0])))
    await out.until(lambda text: "incident +01:07" in text)
    now[0] = 128.0
    await out.until(lambda text: "incident +01:08" in text)
    drawn = out.getvalue()
    view.event(entry("fault_applied", 60.0, "kill-us-ingress", "scale ... to 0"))
    after = out.getvalue()[len(drawn):]
    # Rich moves the cursor back up over the panel and rewrites it in place: no screen clear.
    assert "\x1b[2J" not in out.getvalue()
    assert "\x1b[2K" in after
    assert "01:00.0 fault_applied [kill-us-ingress] scale ... to 0" in after
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    assert out.getvalue().count("01:00.0 fault_applied") == 1


async def test_plain_lines_show_a_probe_only_when_what_it_shows_changed() -> None:
    out = Recording()
    log = PlainLog(out)
    log.changes(state(100.0))
    log.changes(state(105.0))
    log.changes(state(130.0))  # nothing changed: no line, however long it has been
    changed = {**USERS, "error_rate": 45.46}  # the same at the shown precision
    log.changes(state(140.0, users=changed))
    moved = {**USERS, "region": "eu"}  # a name changes: at once
    log.changes(state(141.0, users=moved))
    drift = {**moved, "error_rate": 30.0}  # a number drifts: at most every 10 s
    log.changes(state(142.0, users=drift))
    log.changes(state(152.0, users=drift))
    log.event(entry("wait_done", 243.2, "step-2", "dns.answer == eu after 40.1s"))
    lines = out.getvalue().splitlines()
    assert len(lines) == len(set(lines))
    users = [line for line in lines if " probe users: " in line]
    assert users == ["01:40.0 probe users: ok 0%, error_rate 45.5%, region -, not steady",
                     "02:21.0 probe users: ok 0%, error_rate 45.5%, region eu, not steady",
                     "02:32.0 probe users: ok 0%, error_rate 30%, region eu, not steady"]
    assert "01:40.0 probe web: ready 4 (us-1:2 us-2:2 us-3:0), desired 2, not steady" not in lines
    assert "01:40.0 probe web: ready 4 (us-1:2 us-2:2 us-3:0), desired 6, not steady" in lines
    assert "01:40.0 guard users.error_rate > 80% for 8m: holding (now 45.5%)" in lines
    assert "02:07.0 incident +01:07 of 02:00 (dns.failover_time)" not in lines
    assert lines[-1] == "04:03.2 wait_done [step-2] dns.answer == eu after 40.1s"
    assert "\x1b" not in out.getvalue()


def test_plain_lines_say_once_when_an_rto_like_bound_is_past() -> None:
    out = Recording()
    log = PlainLog(out)
    for t in (170.0, 181.0, 190.0, 200.0):
        log.changes(state(t))
    past = [line for line in out.getvalue().splitlines() if "PAST" in line]
    assert past == ["03:01.0 incident +02:01 PAST 02:00 (dns.failover_time)"]


def test_the_summary_gives_the_verdict_each_expectation_and_where_to_look() -> None:
    record: Any = {
        "scenario": {"name": "us-outage"}, "verdict": "failed", "exit_code": 1,
        "reason": "expectation 'dns.failover_time < 3m' failed (measured 300s)",
        "expectations": [
            {"expect": "dns.failover_time < 3m", "metric": "dns.failover_time", "value": 300.0, "unit": "s",
             "passed": False, "note": ""},
            {"expect": "users.downtime < 4m", "metric": "users.downtime", "value": None, "unit": "s",
             "passed": False, "note": "unmeasured"}],
        "metrics": {"dns.failover_time": {"value": 300.0, "unit": "s", "error": 0.5, "note": ""}},
        "rollback": [{"step": "s1", "fault": "kill-ingress", "region": "us", "outcome": "reverted",
                      "error": None}],
    }
    lines = summary_lines(record, run_dir=Path("runs/r1"), reports=[Path("runs/r1/report.md")])
    assert lines[0] == "us-outage: FAILED (exit 1)"
    assert lines[2].split() == ["FAIL", "dns.failover_time", "<", "3m", "300.0", "s", "±", "0.5", "s"]
    assert lines[3].split()[-2:] == ["unmeasured", "(unmeasured)"]
    assert lines[4] == "  undo s1 (kill-ingress us): reverted"
    assert lines[-2:] == ["run: runs/r1", "report: runs/r1/report.md"]


def test_the_summary_flags_the_regressions_against_past_runs() -> None:
    record: Any = {**RECORD, "history": {
        "threshold": 0.2, "baseline_runs": ["r1", "r2", "r3", "r4", "r5"],
        "regressions": [{"metric": "dns.failover_time", "unit": "s", "value": 61.0, "baseline": 44.0,
                         "worse_by": 0.386}],
        "trend": []}}
    lines = summary_lines(record, run_dir=Path("runs/r6"), reports=[])
    assert ("  REGRESSION dns.failover_time 61 s, +39% over the median 44 s of the last 5 passed runs"
            in lines)
    without = summary_lines(RECORD, run_dir=Path("runs/r6"), reports=[])
    assert not any("REGRESSION" in line for line in without)
    record["history"]["regressions"] = [{"metric": "users.downtime", "unit": "s", "value": 3.0,
                                         "baseline": 0.0, "worse_by": None}]
    lines = summary_lines(record, run_dir=Path("runs/r6"), reports=[])
    assert ("  REGRESSION users.downtime 3 s, worse than 0 beyond its error (the median of the last 5 "
            "passed runs)" in lines)


def test_plain_lines_carry_no_wall_clock() -> None:
    out = Recording()
    log = PlainLog(out)
    log.event(entry("fault_applied", 60.0, "kill-us-ingress", "scale ... to 0"))
    log.note("a note")
    assert out.getvalue() == "01:00.0 fault_applied [kill-us-ingress] scale ... to 0\na note\n"


def test_the_summary_marks_an_inconclusive_expectation() -> None:
    record: Any = {
        "scenario": {"name": "us-outage"}, "verdict": "failed", "exit_code": 1, "reason": "",
        "expectations": [
            {"expect": "dns.failover_time < 3m", "metric": "dns.failover_time", "value": 179.8, "unit": "s",
             "passed": False, "outcome": "inconclusive", "note": ""},
            {"expect": "users.downtime < 4m", "metric": "users.downtime", "value": 239.9, "unit": "s",
             "passed": True, "outcome": "inconclusive", "note": ""}],
        "metrics": {"dns.failover_time": {"value": 179.8, "unit": "s", "error": 0.5, "note": ""},
                    "users.downtime": {"value": 239.9, "unit": "s", "error": 0.5, "note": ""}},
        "rollback": [],
    }
    lines = summary_lines(record, run_dir=Path("runs/r1"), reports=[])
    assert lines[1].split()[:2] == ["INCONCLUSIVE", "dns.failover_time"]
    assert lines[2].split()[:3] == ["inconclusive", "(pass)", "users.downtime"]
    # The design can break it though the measurement is within the bound: a failure, as in report.md.
    record["expectations"][0]["outcome"] = "passed"
    lines = summary_lines(record, run_dir=Path("runs/r1"), reports=[])
    assert lines[1].split()[:3] == ["FAIL", "(design)", "dns.failover_time"]


def test_the_summarys_regressions_are_rounded_to_their_metrics_error() -> None:
    record: Any = {**RECORD, "metrics": {"dns.failover_time": {"value": 74.21, "unit": "s", "error": 0.5,
                                                               "note": ""}},
                   "history": {"threshold": 0.2, "baseline_runs": ["r1"], "trend": [], "regressions": [
                       {"metric": "dns.failover_time", "unit": "s", "value": 74.21, "baseline": 44.03,
                        "worse_by": 0.69}]}}
    lines = summary_lines(record, run_dir=Path("runs/r2"), reports=[])
    assert ("  REGRESSION dns.failover_time 74.2 s, +69% over the median 44.0 s of the last passed run"
            in lines)


def test_progress_written_to_a_stalled_pipe_leaves_the_caller_free_and_loses_nothing() -> None:
    # stdout piped into a reader that stalls (a CI log collector, a `| less` not scrolled): the
    # pipe's buffer fills, and a write would block whoever makes it: the event loop.
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def read_all() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            received.extend(pipe.read())

    reader = threading.Timer(STALL_S, read_all)  # the reader wakes up after a while
    reader.start()
    with os.fdopen(write_fd, "w") as stream:
        log = for_stream(stream)
        started = time.monotonic()
        for n in range(LINES):
            log.event(entry("step_done", float(n), f"s{n}", "x" * 1000))
        took = time.monotonic() - started
        log.summary(RECORD, run_dir=Path("runs/r1"), reports=[])
    reader.join()
    lines = received.decode().splitlines()
    assert took < STALL_S / 4, f"the events took {took:.2f} s to hand over"
    assert [line.split(" [")[1].split("]")[0] for line in lines[:LINES]] == [f"s{n}" for n in range(LINES)]
    assert lines[-1] == "run: runs/r1"
    print(f"measured: {LINES} lines of 1 kB handed over in {took * 1000:.1f} ms (pipe stalled {STALL_S} s)")


class _TerminalPipe:
    """A pipe that says it is a terminal: the live view's writes, to a terminal nobody reads."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return int(self.stream.write(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True


def test_the_live_view_on_a_stalled_terminal_leaves_the_caller_free_and_loses_nothing() -> None:
    read_fd, write_fd = os.pipe()
    received = bytearray()
    handed_over = threading.Event()
    stalled_through = [False]

    def read_when_handed_over() -> None:
        # Reads only once every event was handed over: a write that blocked would never get there.
        stalled_through[0] = handed_over.wait(timeout=30)
        with os.fdopen(read_fd, "rb") as pipe:
            received.extend(pipe.read())

    reader = threading.Thread(target=read_when_handed_over)
    reader.start()
    with os.fdopen(write_fd, "w") as stream:
        view = for_stream(_TerminalPipe(stream))  # type: ignore[arg-type]
        assert isinstance(view, LiveView)
        for n in range(TERMINAL_LINES):
            view.event(entry("step_done", float(n), f"s{n}", "x" * 50))
        handed_over.set()
        view.summary(RECORD, run_dir=Path("runs/r1"), reports=[])
    reader.join()
    assert stalled_through[0], "the events were not handed over while nobody read the terminal"
    lines = received.decode().splitlines()
    assert [line.split(" [")[1].split("]")[0] for line in lines[:TERMINAL_LINES]] == [
        f"s{n}" for n in range(TERMINAL_LINES)]
    assert lines[-1] == "run: runs/r1"


def test_a_terminal_that_cannot_show_a_sparkline_still_gets_every_line_after_it() -> None:
    raw = io.BytesIO()
    latin = io.TextIOWrapper(raw, encoding="latin-1")
    view = LiveView(OffLoopStream(latin))
    view.console.print(view.panel(state(127.0)))  # a sparkline and a box: not in latin-1
    view.note("undo with: kubectl scale deployment web --replicas=3", loud=True)
    view.summary(RECORD, run_dir=Path("runs/r1"), reports=[])
    text = raw.getvalue().decode("latin-1")
    assert "error_rate 45.5%" in text
    assert "undo with: kubectl scale deployment web --replicas=3" in text
    assert text.rstrip().endswith("run: runs/r1")


class _Stalled(io.StringIO):
    """A terminal whose reader stopped reading: a write blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.released.wait()
        return super().write(text)


def test_the_end_of_a_run_does_not_wait_forever_on_a_reader_that_stalled() -> None:
    terminal = _Stalled()
    stream = OffLoopStream(terminal)
    stream.give_up_s = 0.1
    log = PlainLog(stream)
    log.note("the rollback is complete")
    ended = threading.Thread(target=log.summary, args=(RECORD,),
                             kwargs={"run_dir": Path("runs/r1"), "reports": []})
    ended.start()
    ended.join(timeout=30)
    stalled = ended.is_alive()
    terminal.released.set()
    ended.join()
    assert not stalled, "the summary still waits on a reader that stopped reading"
    log.note("after the run")  # given up: neither blocks nor raises


TERMINAL_LINES = 1200
"""84 kB: more than a pipe's buffer (64 kB on Linux)."""
LINES = 300
"""300 kB: several times a pipe's buffer (64 kB on Linux)."""
STALL_S = 1.0
RECORD: Any = {"scenario": {"name": "s"}, "verdict": "passed", "exit_code": 0, "reason": "",
               "expectations": [], "metrics": {}, "rollback": []}
