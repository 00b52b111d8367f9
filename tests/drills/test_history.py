"""The history index and the regression rule, on a runs dir of hand-made records (no lab): a key metric
worse than the median of the last 5 passed runs of its scenario on its environment by more than the
threshold is flagged, in the direction its expectation gives."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from drills.history import HISTORY_FILE, HistoryError, list_runs, record_run
from drills.scenario.model import RegressionPolicy
from reports.record import HistoryRecord, RunRecord

TEMPLATE = Path(__file__).resolve().parents[1] / "reports" / "runs" / "us-outage-failed" / "run.json"


def _record(minute: int, *, failover: float | None = 40.0, ready: float = 3, verdict: str = "passed",
            env: str = "lab", scenario: str = "us-outage") -> dict[str, Any]:
    """A run of ``scenario`` started at 03:``minute`` with these key metrics: ``dns.failover_time <
    3m`` (higher is worse) and ``web_eu.min_ready >= 3`` (lower is worse)."""
    data = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    data["run_id"] = f"20261122T03{minute:02d}00Z-{scenario}-{env}"
    data["scenario"]["name"] = scenario
    data["environment"]["name"] = env
    data["started_at"] = f"2026-11-22T03:{minute:02d}:00.000Z"
    data["ended_at"] = f"2026-11-22T03:{minute:02d}:30.000Z"
    data.update(verdict=verdict, exit_code=0 if verdict == "passed" else 1)
    data["expectations"] = [e for e in data["expectations"]
                            if e["metric"] in ("dns.failover_time", "web_eu.min_ready")]
    data["metrics"]["dns.failover_time"].update(value=failover, error=0.5)
    data["metrics"]["web_eu.min_ready"].update(value=ready, error=0)
    return data


def _finish(runs: Path, data: dict[str, Any], policy: RegressionPolicy | None = None) -> HistoryRecord:
    """What the runner does: index the run, then write its run.json with the history in it."""
    run: RunRecord = copy.deepcopy(data)  # type: ignore[assignment]
    history = record_run(runs, run, policy or RegressionPolicy())
    run["history"] = history
    (runs / run["run_id"]).mkdir(parents=True)
    (runs / run["run_id"] / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return history


def _flagged(history: HistoryRecord) -> dict[str, float | None]:
    return {r["metric"]: r["worse_by"] for r in history["regressions"]}


def test_a_metric_worse_in_its_expectations_direction_by_more_than_20_percent_is_a_regression(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for minute, failover in enumerate((40.0, 44.0, 38.0)):
        _finish(runs, _record(minute, failover=failover))
    # Baseline median 40 s: 47 s is 17.5% worse, kept; min_ready >= 3 makes more replicas better.
    kept = _finish(runs, _record(10, failover=47.0, ready=4))
    assert kept["regressions"] == []
    assert kept["baseline_runs"] == [_record(m)["run_id"] for m in (2, 1, 0)]
    # Now the median of 47, 38, 44, 40 is 42 s: 51 s is 21.4% worse; 2 replicas are 33% fewer than 3.
    worse = _finish(runs, _record(11, failover=51.0, ready=2))
    assert worse["regressions"] == [
        {"metric": "dns.failover_time", "unit": "s", "value": 51.0, "baseline": 42.0, "worse_by": 0.2143},
        {"metric": "web_eu.min_ready", "unit": "count", "value": 2.0, "baseline": 3.0, "worse_by": 0.3333}]


def test_the_baseline_is_the_median_of_the_last_five_passed_runs_only(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0, failover=10.0))          # older than the last five passed
    _finish(runs, _record(1, failover=90.0, verdict="failed"))
    for minute in range(2, 7):
        _finish(runs, _record(minute, failover=40.0 + minute))   # 42..46: median 44
    _finish(runs, _record(7, failover=10.0, env="staging"))     # another environment
    _finish(runs, _record(8, failover=10.0, scenario="zone-loss"))  # another scenario
    history = _finish(runs, _record(9, failover=53.0))
    assert history["baseline_runs"] == [_record(m)["run_id"] for m in (6, 5, 4, 3, 2)]
    assert history["regressions"] == [
        {"metric": "dns.failover_time", "unit": "s", "value": 53.0, "baseline": 44.0, "worse_by": 0.2045}]
    same = [m for m in range(10) if m not in (7, 8)]
    assert [t["run_id"] for t in history["trend"]] == [_record(m)["run_id"] for m in same]
    assert history["trend"][1] == {"run_id": _record(1)["run_id"], "started_at": "2026-11-22T03:01:00.000Z",
                                   "verdict": "failed",
                                   "metrics": {"dns.failover_time": 90.0, "web_eu.min_ready": 3}}


def test_with_no_passed_run_before_there_is_no_baseline_and_no_regression(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0, failover=10.0, verdict="failed"))
    history = _finish(runs, _record(1, failover=170.0))
    assert (history["baseline_runs"], history["regressions"]) == ([], [])
    assert history["threshold"] == 0.2


def test_fewer_than_five_passed_runs_make_the_baseline_and_lower_is_worse_for_a_minimum(
        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0, ready=3))
    _finish(runs, _record(1, ready=5))
    history = _finish(runs, _record(2, ready=3))  # 25% below the median 4
    assert _flagged(history) == {"web_eu.min_ready": 0.25}


def test_the_scenarios_threshold_decides_and_a_metric_may_have_its_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0, failover=40.0, ready=4))
    lenient = RegressionPolicy(threshold=0.5)
    assert _finish(runs, _record(1, failover=56.0, ready=3), lenient)["regressions"] == []  # 40%, 25%
    strict = RegressionPolicy(threshold=0.5, metrics={"web_eu.min_ready": 0.1})
    history = _finish(runs, _record(2, failover=56.0, ready=3), strict)
    assert (history["threshold"], _flagged(history)) == (0.5, {"web_eu.min_ready": 0.1429})  # of 3.5


def test_a_zero_baseline_flags_a_worsening_beyond_the_measurement_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0, failover=0.0))
    assert _finish(runs, _record(1, failover=0.4, verdict="failed"))["regressions"] == []  # within 0.5 s
    assert _flagged(_finish(runs, _record(2, failover=3.0))) == {"dns.failover_time": None}


def test_runs_made_before_the_index_are_indexed_on_first_use(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for minute, failover in enumerate((40.0, 42.0, 60.0)):
        old = _record(minute, failover=failover)
        (runs / old["run_id"]).mkdir(parents=True)
        (runs / old["run_id"] / "run.json").write_text(json.dumps(old), encoding="utf-8")
    (runs / "20261122T0303-crashed").mkdir()  # no run.json: not a finished run
    listed = list_runs(runs)
    assert [r.run_id for r in listed] == [_record(m)["run_id"] for m in (2, 1, 0)]
    assert [(r.metrics[0].name, r.metrics[0].value) for r in listed] == [
        ("dns.failover_time", 60.0), ("dns.failover_time", 42.0), ("dns.failover_time", 40.0)]
    assert [g["metric"] for g in listed[0].regressions] == ["dns.failover_time"]  # 46% worse than 41 s
    assert [r.run_id for r in list_runs(runs, scenario="zone-loss")] == []
    history = _finish(runs, _record(4, failover=41.0))
    assert history["baseline_runs"] == [_record(m)["run_id"] for m in (2, 1, 0)]


def test_two_drills_finishing_at_once_on_different_environments_are_both_indexed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _finish(runs, _record(0))
    start = threading.Barrier(2)
    done: list[HistoryRecord] = []

    def finish(env: str) -> None:
        start.wait()
        done.append(record_run(runs, _record(1, env=env), RegressionPolicy()))  # type: ignore[arg-type]

    threads = [threading.Thread(target=finish, args=(env,)) for env in ("lab", "staging")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == 2
    assert sorted(r.environment for r in list_runs(runs)) == ["lab", "lab", "staging"]
    journal = sqlite3.connect(runs / HISTORY_FILE).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_an_index_made_by_a_newer_drill_is_refused_with_what_to_do(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    db = sqlite3.connect(runs / HISTORY_FILE)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(HistoryError, match=r"made by a newer drill .* upgrade drill, or move the file away"):
        list_runs(runs)


def test_a_rebuilt_index_keeps_each_metrics_own_threshold(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    policy = RegressionPolicy(threshold=0.1, metrics={"dns.failover_time": 0.5})
    _finish(runs, _record(0, failover=40.0), policy)
    history = _finish(runs, _record(1, failover=56.0), policy)  # 40% worse: within its own 50%
    assert history["regressions"] == []
    assert history["thresholds"] == {"dns.failover_time": 0.5, "web_eu.min_ready": 0.1}
    (runs / HISTORY_FILE).unlink()
    assert [r.regressions for r in list_runs(runs)] == [(), ()]


def test_a_corrupt_index_says_that_deleting_it_rebuilds_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / HISTORY_FILE).write_bytes(b"not a database, but long enough to be read as one" * 100)
    with pytest.raises(HistoryError, match=r"delete it to have it rebuilt from the run directories"):
        list_runs(runs)
