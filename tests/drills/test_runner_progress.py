"""What the terminal shows: a live block redrawn in place on a terminal, plain lines elsewhere, and the
same summary at the end."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drills.runner.progress import LiveState, LiveView, PlainLog, ProbeLine, for_stream, summary_lines
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


def state(t: float) -> LiveState:
    return LiveState(scenario="us-outage", t=t, step="step-2: wait until dns.answer == eu",
                     probes=[ProbeLine("dns", "dns", {"answer": "us", "steady": True}, 12, None),
                             ProbeLine("users", "http", {}, 0, "sample failed: boom")],
                     guards=[("users.error_rate > 80% for 8m", "ok (now 0.0)")])


def test_a_terminal_gets_the_live_view_and_anything_else_plain_lines() -> None:
    assert isinstance(for_stream(Terminal()), LiveView)
    assert isinstance(for_stream(io.StringIO()), PlainLog)


async def test_the_live_view_redraws_its_block_in_place_with_events_above_it() -> None:
    out = Terminal()
    view = LiveView(out)
    now = [10.0]
    watching = asyncio.create_task(view.watch(lambda: state(now[0])))
    await out.until(bool)
    block = out.getvalue()
    assert "us-outage  t=10.0s  step-2: wait until dns.answer == eu" in block
    assert "dns          answer=us steady=True  (12 samples)" in block
    assert "users        (no sample yet)  (0 samples)  ! sample failed: boom" in block
    assert "guard users.error_rate > 80% for 8m: ok (now 0.0)" in block
    view.event(entry("fault_applied", 12.5, "kill-us-ingress", "scale ... to 0"))
    after = out.getvalue()[len(block):]
    # The 4-line block is erased (cursor up 5 lines, clear to the end), the event printed, the block redrawn.
    assert after.startswith("\x1b[4F\x1b[J")
    assert "+12.5s fault_applied [kill-us-ingress] scale ... to 0\n" in after
    assert after.rstrip("\n").endswith("guard users.error_rate > 80% for 8m: ok (now 0.0)")
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    assert out.getvalue().endswith("\x1b[4F\x1b[J")


async def test_plain_lines_carry_events_and_a_probe_summary_every_ten_scenario_seconds() -> None:
    out = Recording()
    log = PlainLog(out)
    now = [0.0]
    watching = asyncio.create_task(log.watch(lambda: state(now[0])))
    await out.until(lambda text: text.count(" probes ") == 1)
    now[0] = 4.0
    await asyncio.sleep(0.2)  # a few of the log's polls: none may print at t=4
    assert out.getvalue().count(" probes ") == 1
    now[0] = 11.0
    await out.until(lambda text: text.count(" probes ") == 2)
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    log.event(entry("wait_done", 43.2, "step-2", "dns.answer == eu after 40.1s"))
    lines = out.getvalue().splitlines()
    summaries = [line for line in lines if " probes " in line]
    assert len(summaries) == 2
    assert "dns: answer=us steady=True | users: (no sample yet) ! sample failed: boom" in summaries[0]
    assert lines[-1].endswith("   +43.2s wait_done [step-2] dns.answer == eu after 40.1s")
    assert "\x1b" not in out.getvalue()


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
    assert lines[1].split()[:2] == ["INC", "dns.failover_time"]
    assert lines[2].split()[:2] == ["inc", "users.downtime"]


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


LINES = 300
"""300 kB: several times a pipe's buffer (64 kB on Linux)."""
STALL_S = 1.0
RECORD: Any = {"scenario": {"name": "s"}, "verdict": "passed", "exit_code": 0, "reason": "",
               "expectations": [], "metrics": {}, "rollback": []}
