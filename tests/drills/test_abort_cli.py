"""``drill abort [RUN]`` by signal: it finds the live run in the runs directory (a process holding the run's
journal, as a running drill does) and sends that process SIGTERM, which a drill answers by rolling back
(tests/integration/test_aborts.py). Runs that are not live are never signalled."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drills.cli import main
from drills.journal import Journal

if TYPE_CHECKING:
    from conftest import Spawned

_HOLDER = """
import os, socket, sys, time
from drills.journal import Journal
journal = Journal(sys.argv[1])
journal.write("run_started", scenario="s.yaml", pid=os.getpid(), host=socket.gethostname())
print("holding", flush=True)
time.sleep(60)
"""
"""A process holding a run's journal as a drill's does, until it is signalled."""


def _live_run(runs: Path, run_id: str, spawn: Callable[..., Spawned]) -> Spawned:
    (runs / run_id).mkdir(parents=True)
    holder = spawn([sys.executable, "-c", _HOLDER, str(runs / run_id / "events.jsonl")])
    holder.wait_for("holding")
    return holder


def test_drill_abort_signals_the_one_live_run_or_the_run_named(
        tmp_path: Path, spawn: Callable[..., Spawned], capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    with Journal(runs / "20261201T050000Z-old-0000" / "events.jsonl") as old:  # ended long ago
        old.write("run_started", scenario="s.yaml", pid=1, host="elsewhere")
        old.write("run_ended", verdict="passed")
    first = _live_run(runs, "20261201T060000Z-us-outage-aaaa", spawn)
    second = _live_run(runs, "20261201T060100Z-zone-loss-bbbb", spawn)

    assert main(["abort", "--runs-dir", str(runs)]) == 2
    assert "2 drills are running in " in capsys.readouterr().err
    assert first.process.poll() is None
    assert second.process.poll() is None

    assert main(["abort", "--runs-dir", str(runs), "20261201T0601"]) == 0
    assert (f"sent SIGTERM to run 20261201T060100Z-zone-loss-bbbb (pid {second.process.pid})"
            in capsys.readouterr().out)
    assert second.finish() == -signal.SIGTERM
    assert first.process.poll() is None

    assert main(["abort", "--runs-dir", str(runs)]) == 0
    assert f"(pid {first.process.pid})" in capsys.readouterr().out
    assert first.finish() == -signal.SIGTERM

    assert main(["abort", "--runs-dir", str(runs)]) == 2
    assert f"no live drill in {runs}" in capsys.readouterr().err
    assert main(["abort", "--runs-dir", str(runs), "20261201T060000Z-us-outage-aaaa"]) == 2
    assert ("run 20261201T060000Z-us-outage-aaaa is not running (no live process holds its journal); if it "
            "left faults in place: drill recover 20261201T060000Z-us-outage-aaaa") in capsys.readouterr().err
