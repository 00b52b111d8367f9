"""The journal: lines on disk before write() returns, a torn last line survived, pending undos."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest

from drills.clock import ScenarioClock
from drills.errors import SourceError
from drills.faults.base import Undo
from drills.journal import DamagedJournal, Journal, pending_undos, read_journal
from drills.plugins import PluginRef

UNDO = Undo(fault="cordon-zone", region="us", summary="cordon 2 nodes",
            objects=["us/Node//n1", "us/Node//n2"], data={"nodes": ["n1", "n2"]})


def test_each_line_is_on_disk_with_seq_at_t_and_fields(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "run" / "events.jsonl"
    with Journal(path, ScenarioClock(30.0)) as journal:
        journal.write("run_started", scenario="s.yaml", environment="/e.yaml", run_dir=path.parent,
                      time_scale=30.0, rollback="auto")
        before = len(synced)
        journal.write("fault_prepared", step="s1", undo=UNDO)
        # The line is readable by another reader as soon as write() returned, and it was fsynced.
        assert len(synced) == before + 1
        lines = path.read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert [first["seq"], second["seq"]] == [1, 2]
    assert list(first)[:4] == ["seq", "at", "t", "event"]
    assert first["run_dir"] == str(path.parent)
    assert second["undo"] == {"fault": "cordon-zone", "region": "us", "summary": "cordon 2 nodes",
                              "objects": ["us/Node//n1", "us/Node//n2"], "data": {"nodes": ["n1", "n2"]}}
    at = datetime.fromisoformat(second["at"].replace("Z", "+00:00"))
    assert second["at"].endswith("Z")
    assert len(second["at"]) == len("2026-11-22T03:18:00.123Z")
    assert at.utcoffset() is not None
    assert at.utcoffset().total_seconds() == 0
    assert 0 <= first["t"] <= second["t"] < 30.0


def test_a_torn_last_line_is_ignored_and_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()) as journal:
        journal.write("run_started", environment="/e.yaml", time_scale=1.0)
        journal.write("fault_prepared", step="s1", undo=UNDO)
    with path.open("ab") as f:
        f.write(b'{"seq": 3, "at": "2026-11-22T03:18:0')  # the crash came mid-write
    assert [e.event for e in read_journal(path)] == ["run_started", "fault_prepared"]
    with Journal(path) as journal:
        entry = journal.write("recovered", reverted=[], failed=[])
    assert entry.seq == 3
    assert [e.event for e in read_journal(path)] == ["run_started", "fault_prepared", "recovered"]


def test_a_damaged_line_before_the_last_is_an_error_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"seq":1,"at":"x","t":0,"event":"run_started"}\nnot json\n'
                    '{"seq":3,"at":"x","t":1,"event":"run_ended"}\n')
    with pytest.raises(SourceError) as caught:
        read_journal(path)
    assert caught.value.location.line == 2


def test_pending_undos_are_the_prepared_faults_not_reverted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()) as journal:
        for step in ("a", "b", "c"):
            undo = Undo(fault="kill-ingress", region="us", summary=step)
            journal.write("fault_prepared", step=step, undo=undo, params={"cluster": "us"})
            journal.write("fault_applied", step=step)
        journal.write("revert_started", step="c")
        journal.write("fault_reverted", step="c")
        journal.write("revert_started", step="a")
        journal.write("revert_failed", step="a", error="boom")
    pending = pending_undos(read_journal(path))
    assert [p.step for p in pending] == ["a", "b"]
    assert pending[0].undo == Undo(fault="kill-ingress", region="us", summary="a")
    assert pending[0].params == {"cluster": "us"}


def test_a_pending_undo_carries_its_plugin_reference_and_by_hand_command(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ref = PluginRef("drill.faults", "scale-web-down", "shopchaos.faults:ShrinkDeployment", "shop-chaos",
                    "1.2.0")
    command = "kubectl scale deployment/web --replicas=3"
    with Journal(path, ScenarioClock()) as journal:
        journal.write("fault_prepared", step="a", undo=Undo(fault="shrink-deployment", region="us",
                                                            summary="a"),
                      params={"cluster": "us"}, plugin=ref, by_hand=command)
        journal.write("fault_prepared", step="b", undo=Undo(fault="kill-ingress", region="us", summary="b"))
    [a, b] = pending_undos(read_journal(path))
    assert (a.plugin, a.by_hand) == (ref, command)
    assert (b.plugin, b.by_hand) == (None, None)  # as journals written before references were


def test_a_plugin_reference_drill_cannot_read_is_a_damaged_journal_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()) as journal:
        journal.write("run_started", environment="/e.yaml", time_scale=1.0)
        journal.write("fault_prepared", step="s1", undo=UNDO, plugin={"group": "drill.faults"})
    with pytest.raises(DamagedJournal) as caught:
        read_journal(path)
    assert caught.value.location.line == 2
    assert "its plugin reference lacks one of group, name, target" in str(caught.value)


def test_without_a_clock_t_continues_the_runs_timeline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = ScenarioClock(60.0)
    with Journal(path, clock) as journal:
        journal.write("run_started", environment="/e.yaml", time_scale=60.0)
    with Journal(path) as journal:
        entry = journal.write("recovered", reverted=[], failed=[])
    assert entry.t is not None
    assert entry.t == pytest.approx(clock.now(), abs=1.0)


def test_an_open_journal_is_locked_against_another_process(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()):
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; from drills.journal import Journal, JournalBusy\n"
             "try:\n    Journal(sys.argv[1])\nexcept JournalBusy:\n    sys.exit(7)", str(path)], check=False)
        assert probe.returncode == 7
    Journal(path).close()  # free again once closed


def test_reserved_names_cannot_be_fields(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()) as journal, pytest.raises(ValueError, match="seq"):
        journal.write("fault_applied", seq=4)



@pytest.mark.parametrize(("undo", "says"), [
    ({**UNDO.__dict__, "extra": 1}, "its undo record has key 'extra' drill does not know"),
    ({"fault": "cordon-zone", "summary": "s"}, "its undo record lacks key 'region'"),
    ({**UNDO.__dict__, "objects": "n1"}, "its undo record's key 'objects' is not what drill writes"),
])
def test_an_undo_record_drill_cannot_read_is_a_damaged_journal_at_its_line(
        tmp_path: Path, undo: dict[str, object], says: str) -> None:
    path = tmp_path / "events.jsonl"
    with Journal(path, ScenarioClock()) as journal:
        journal.write("run_started", environment="/e.yaml", time_scale=1.0)
        journal.write("fault_prepared", step="s1", undo=undo)
        journal.write("fault_applied", step="s1")
    with pytest.raises(DamagedJournal) as caught:
        read_journal(path)
    assert (caught.value.location.line, caught.value.exit_code) == (2, 3)
    assert says in str(caught.value)


async def test_awrite_leaves_the_event_loop_free_while_the_disk_syncs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    entered, synced = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        entered.set()
        synced.wait(10)  # a slow disk: the fsync lasts until the test lets it finish
        real_fsync(fd)

    with Journal(path, ScenarioClock()) as journal:
        monkeypatch.setattr(os, "fsync", slow_fsync)
        writing = asyncio.create_task(journal.awrite("fault_applied", step="s1"))
        # The loop runs other work while the disk syncs (a blocking fsync would deadlock this await).
        assert await asyncio.to_thread(entered.wait, 10)
        assert not writing.done()
        synced.set()
        entry = await writing
        # Cancelled while the disk syncs: the line lands, then the cancellation is raised.
        entered.clear()
        synced.clear()
        cancelled = asyncio.create_task(journal.awrite("fault_reverted", step="s1"))
        assert await asyncio.to_thread(entered.wait, 10)
        cancelled.cancel()
        await asyncio.sleep(0)
        assert not cancelled.done()
        synced.set()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    assert entry.seq == 1
    assert [e.event for e in read_journal(path)] == ["fault_applied", "fault_reverted"]
