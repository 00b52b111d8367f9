"""Reading run.json: a good record loads; a bad one names what is wrong; render() writes the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drills.errors import DrillError, SourceErrors
from reports import load_run, render


def test_the_record_loads_with_its_types(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run["scenario"]["name"] == "us-outage"
    assert run["metrics"]["web_eu.min_ready"]["value"] == 3
    assert run["metrics"]["dns.failback_time"]["value"] is None
    assert run["metrics"]["users.region"]["value"] == "eu"
    assert [u["outcome"] for u in run["rollback"]] == ["failed", "reverted"]


def test_a_missing_record_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors) as info:
        load_run(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'run.json'}:1:1: cannot read the run record: No such file or "
                               "directory (is this a run directory?)")


def test_broken_json_is_reported_at_its_place(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"run_id": "x",\n  "verdict": passed}\n')
    with pytest.raises(SourceErrors) as info:
        load_run(tmp_path)
    assert str(info.value) == f"{tmp_path / 'run.json'}:2:14: not valid JSON: Expecting value"


def test_missing_and_mistyped_keys_are_each_named(run_data: dict[str, Any], write_run: Any) -> None:
    del run_data["verdict"]
    run_data["time_scale"] = "fast"
    run_data["expectations"][1]["passed"] = "maybe"
    with pytest.raises(SourceErrors) as info:
        load_run(write_run(run_data))
    messages = sorted(e.message for e in info.value.errors)
    assert messages == ["expectations.1.passed: input should be a valid boolean, unable to interpret input",
                        "time_scale: input should be a valid number, unable to parse string as a number",
                        "verdict: field required"]


def test_render_writes_every_installed_reporter_into_the_run_directory(run_dir: Path) -> None:
    written = render(run_dir)
    assert written == [run_dir / "report.html", run_dir / "junit.xml", run_dir / "report.md"]
    assert (run_dir / "report.md").read_text().startswith("# us-outage: FAILED\n")
    assert (run_dir / "junit.xml").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n')


def test_render_writes_only_the_named_reporters(run_dir: Path) -> None:
    assert render(run_dir, ["markdown"]) == [run_dir / "report.md"]
    assert not (run_dir / "junit.xml").exists()
    with pytest.raises(DrillError, match=r"unknown reporter 'nonesuch' \(installed: html, junit, markdown"):
        render(run_dir, ["nonesuch"])


def test_rendering_is_a_pure_function_of_the_record(run_dir: Path) -> None:
    first = [p.read_text() for p in render(run_dir)]
    second = [p.read_text() for p in render(run_dir)]
    assert first == second


def test_a_record_of_several_trials_loads_with_them_and_a_wrong_one_is_named(
        swept_run: dict[str, Any], write_run: Any) -> None:
    run = load_run(write_run(swept_run))
    assert run["sweep"]["trials"] == 4
    assert [t["phase"] for t in run["trials"]] == [0.06, 0.31, 0.56, 0.81]
    assert run["metrics"]["users.downtime"]["trials"]["worst_trial"] == 3
    swept_run["trials"][0]["phase"] = "early"
    with pytest.raises(SourceErrors) as info:
        load_run(write_run(swept_run))
    assert "trials.0.phase: input should be a valid number" in str(info.value)
