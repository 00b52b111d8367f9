"""History across real drills: the same scenario run on the built-in design (Traffic Manager degrades a
dead endpoint 35-45 s after it dies) and then on a slower one (probing every 30 s, 9 tolerated failures:
275-305 s) passes both times, and the second run's failover time is flagged as a regression in its
run.json, in ``drill history`` and in report.md."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from drillrun import TEST_SCENARIOS, TOPOLOGIES, Finished, drill_run

from drills.cli import main

pytestmark = pytest.mark.lab

SCENARIO = TEST_SCENARIOS / "dns-failover.yaml"
SCALE = "200"
"""The bounds are minutes apart: a stall of a real second (200 lab seconds) cannot close the gap."""


@dataclass(frozen=True)
class Runs:
    runs: Path
    normal: Finished
    slower: Finished


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    runs = tmp_path_factory.mktemp("history") / "runs"
    normal = drill_run(runs, str(SCENARIO), "--time-scale", SCALE, "--trials", "1")
    slower = drill_run(runs, str(SCENARIO), "--topology", str(TOPOLOGIES / "slow-probing.yaml"),
                       "--time-scale", SCALE, "--trials", "1")
    return Runs(runs=runs, normal=normal, slower=slower)


def test_the_slower_designs_run_records_a_regression_of_its_failover_time(runs: Runs) -> None:
    assert (runs.normal.code, runs.slower.code) == (0, 0), runs.normal.output + runs.slower.output
    assert runs.normal.record["history"]["baseline_runs"] == []
    history = runs.slower.record["history"]
    assert history["baseline_runs"] == [runs.normal.run_dir.name]
    assert history["threshold"] == 0.25  # the scenario's
    [regression] = history["regressions"]
    assert regression["metric"] == "dns.failover_time"
    assert regression["baseline"] == runs.normal.metric("dns.failover_time")["value"]
    assert regression["value"] == runs.slower.metric("dns.failover_time")["value"]
    assert regression["worse_by"] > 2  # 275 s against 45 s at most
    assert runs.slower.record["verdict"] == "passed"  # a regression does not change the verdict
    assert [t["run_id"] for t in history["trend"]] == [runs.normal.run_dir.name, runs.slower.run_dir.name]


def test_drill_history_lists_the_slower_run_flagged(runs: Runs) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["history", str(SCENARIO), "--env", "lab", "--runs-dir", str(runs.runs)])
    lines = out.getvalue().splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines] == ["RUN", runs.slower.run_dir.name, "REGRESSION",
                                                   runs.normal.run_dir.name]
    assert lines[2].startswith("  REGRESSION dns.failover_time ")
    assert "over the baseline" in lines[2]
    assert [lines[i].split()[3:5] for i in (1, 3)] == [["lab", "passed"]] * 2


def test_report_md_shows_the_regression(runs: Runs) -> None:
    report = (runs.slower.run_dir / "report.md").read_text(encoding="utf-8")
    section = report.split("## Regressions", 1)[1].split("\n## ", 1)[0]
    assert "| dns.failover_time |" in section
    assert "### Trend" in section
    assert "No baseline" in (runs.normal.run_dir / "report.md").read_text(encoding="utf-8")
