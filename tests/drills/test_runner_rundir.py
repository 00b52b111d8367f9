"""Where runs live and how they are found; the verdict's exit codes; the public API stays honest."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import drills
from drills.cli import main
from drills.errors import DrillError
from drills.runner.rundir import find_run, new_run_dir, runs_dir
from drills.runner.verdict import Ending, decide


def test_a_run_id_sorts_by_time_and_names_the_scenario(tmp_path: Path) -> None:
    path = new_run_dir(tmp_path, "us-outage")
    assert path.parent == tmp_path
    assert not path.exists()
    assert re.fullmatch(r"\d{8}T\d{6}Z-us-outage-[0-9a-f]{4}", path.name)


@pytest.mark.parametrize("name", ["a" * 5000, "../../etc/cron.d/x", "über ständig: 1/2", "...", ""])
def test_a_run_id_is_a_safe_file_name_whatever_the_scenario_is_called(tmp_path: Path, name: str) -> None:
    path = new_run_dir(tmp_path, name)
    assert path.parent == tmp_path
    assert re.fullmatch(r"\d{8}T\d{6}Z-[A-Za-z0-9][A-Za-z0-9._-]{0,63}-[0-9a-f]{4}", path.name), path.name
    path.mkdir()  # a real file system takes it


def test_the_runs_dir_is_the_option_else_the_variable_else_the_users_state_directory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRILL_RUNS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert runs_dir(None) == tmp_path / "home" / ".local" / "state" / "drill" / "runs"
    monkeypatch.setenv("XDG_STATE_HOME", "relative")  # the XDG spec says to ignore it
    assert runs_dir(None) == tmp_path / "home" / ".local" / "state" / "drill" / "runs"
    monkeypatch.setenv("XDG_STATE_HOME", "/var/state")
    assert runs_dir(None) == Path("/var/state/drill/runs")
    monkeypatch.setenv("DRILL_RUNS_DIR", "/var/drills")
    assert runs_dir(None) == Path("/var/drills")
    # Always absolute: a run dir recorded in a journal means the same from any working directory.
    assert runs_dir("elsewhere") == tmp_path / "elsewhere"


def test_tests_never_write_runs_into_the_real_home() -> None:
    assert runs_dir(None) != Path.home() / ".local" / "state" / "drill" / "runs"
    assert "DRILL_RUNS_DIR" in os.environ


def test_a_run_is_found_by_directory_id_or_unique_prefix(tmp_path: Path) -> None:
    for name in ("20261122T031800Z-us-outage-3fa2", "20261122T041800Z-us-outage-77aa",
                 "20261123T031800Z-zone-cordon-0b1c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "events.jsonl").write_text("")
    first = tmp_path / "20261122T031800Z-us-outage-3fa2"
    assert find_run(str(first), tmp_path / "elsewhere") == first
    assert find_run("20261122T031800Z-us-outage-3fa2", tmp_path) == first
    assert find_run("20261123", tmp_path).name.endswith("zone-cordon-0b1c")
    with pytest.raises(DrillError, match="matches 2 runs"):
        find_run("20261122", tmp_path)
    with pytest.raises(DrillError, match="no run 'nope'"):
        find_run("nope", tmp_path)


def test_report_of_an_unknown_run_says_so_with_exit_2(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("ending", "failed", "manual", "expected"), [
    (Ending("completed"), [], [], ("passed", 0)),
    (Ending("wait_timed_out", "wait w timed out"), [], [], ("failed", 1)),
    (Ending("fault_refused", "drain blocked"), [], [], ("failed", 1)),
    (Ending("guard", "guard tripped"), [], [], ("aborted", 2)),
    (Ending("refused", "no steady state"), [], [], ("aborted", 2)),
    (Ending("error", "boom"), [], [], ("error", 2)),
    (Ending("guard", "guard tripped"), ["s1"], [], ("error", 3)),
    (Ending("completed"), [], ["s1"], ("passed", 3)),
])
def test_exit_codes_highest_wins(ending: Ending, failed: list[str], manual: list[str],
                                 expected: tuple[str, int]) -> None:
    verdict, code, reason = decide(ending, [], revert_failed=failed, manual=manual)
    assert (verdict, code) == expected
    assert (reason == "") == (expected == ("passed", 0))


def test_the_public_api_is_sorted_and_every_name_resolves() -> None:
    assert drills.__all__ == sorted(drills.__all__)
    for name in drills.__all__:
        assert getattr(drills, name) is not None
    with pytest.raises(AttributeError):
        drills.not_a_name  # noqa: B018
