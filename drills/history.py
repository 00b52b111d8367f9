"""The history of runs: every run indexed in ``history.sqlite`` in the runs dir, and its key metrics
compared with the recent passed runs of the same scenario on the same environment.

The index is a cache of the run directories: each row comes from a ``run.json``. A runs dir made before
the index existed is indexed on first use (:func:`record_run`, :func:`list_runs`), oldest run first, so
history is never empty for old runs; an index deleted is rebuilt the same way. The file is SQLite in WAL
mode, and every use is one ``BEGIN IMMEDIATE`` transaction waiting up to :data:`BUSY_TIMEOUT_S` for
another: two drills (on different environments) that finish at once are indexed one after the other.
The schema's version is SQLite's ``user_version``; a newer one than this drill knows is refused.

A key metric is one an expectation names. The way it gets worse follows the expectation: under ``<`` or
``<=`` higher is worse, under ``>`` or ``>=`` lower is worse; ``==`` and ``!=`` give no direction and
never a regression. It regresses when it is worse than the median of its values in the last
:data:`BASELINE_RUNS` passed runs by more than the threshold, relative to that median; a median of 0
has no relative change, so there any worsening beyond this run's measurement error counts. A
regression is flagged; it never changes the verdict.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from drills.errors import DrillError, SourceErrors
from drills.scenario.model import RegressionPolicy
from reports.record import (
    RUN_FILE,
    HistoryRecord,
    RegressionRecord,
    RunRecord,
    TrendRecord,
    Verdict,
    load_run,
)

HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 1
BASELINE_RUNS = 5
"""How many of the latest passed runs make a key metric's baseline (their median)."""
TREND_RUNS = 20
"""How many past runs a run's trend shows before it."""
BUSY_TIMEOUT_S = 30.0
"""How long a use of the index waits for another process's to finish."""

Direction = Literal["lower", "higher"]
"""Which way a key metric is better."""

_OPERATOR = re.compile(r"^\s*\S+?\s*(<=|>=|==|!=|<|>)")
_BETTER: dict[str, Direction] = {"<": "lower", "<=": "lower", ">": "higher", ">=": "higher"}
_SCHEMA = (
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, scenario_file TEXT NOT NULL,
        environment TEXT NOT NULL, lab INTEGER NOT NULL, started_at TEXT NOT NULL, ended_at TEXT NOT NULL,
        verdict TEXT NOT NULL, exit_code INTEGER NOT NULL, threshold REAL NOT NULL)""",
    "CREATE INDEX runs_by_scenario ON runs (scenario, environment, started_at)",
    """CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, name TEXT NOT NULL,
        value REAL, unit TEXT NOT NULL, error REAL, direction TEXT, baseline REAL, worse_by REAL,
        regression INTEGER NOT NULL, PRIMARY KEY (run_id, name))""",
)


class HistoryError(DrillError):
    """The index cannot be read or written."""


@dataclass(frozen=True)
class KeyMetric:
    """A metric an expectation names, in one run: ``value`` None when unmeasured (or not a number),
    ``direction`` which way is better (None: the expectation gives none)."""

    name: str
    value: float | None
    unit: str
    error: float | None
    direction: Direction | None


@dataclass(frozen=True)
class IndexedRun:
    """One run as the index holds it, with the regressions found when it was indexed."""

    run_id: str
    scenario: str
    scenario_file: str
    environment: str
    lab: bool
    started_at: str
    ended_at: str
    verdict: str
    exit_code: int
    metrics: tuple[KeyMetric, ...]
    regressions: tuple[RegressionRecord, ...]


def key_metrics(run: RunRecord) -> list[KeyMetric]:
    """The metrics the run's expectations name, in their order, each once (its first expectation with a
    direction decides the direction)."""
    found: dict[str, KeyMetric] = {}
    for expectation in run["expectations"]:
        name = expectation["metric"]
        match = _OPERATOR.match(expectation["expect"])
        direction = _BETTER.get(match[1]) if match else None
        if name in found:
            if found[name].direction is None and direction is not None:
                first = found[name]
                found[name] = KeyMetric(name, first.value, first.unit, first.error, direction)
            continue
        measured = run["metrics"].get(name)
        value = measured["value"] if measured else expectation["value"]
        unit = measured["unit"] if measured else (expectation["unit"] or "")
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        found[name] = KeyMetric(name=name, value=number, unit=unit,
                                error=measured["error"] if measured else None, direction=direction)
    return list(found.values())


def regression(metric: KeyMetric, baseline: float, threshold: float) -> RegressionRecord | None:
    """``metric`` as a regression against its ``baseline`` (a median) under ``threshold`` (a fraction),
    or None when it is not one (or cannot be: unmeasured, no direction)."""
    if metric.value is None or metric.direction is None:
        return None
    worse = metric.value - baseline if metric.direction == "lower" else baseline - metric.value
    if baseline == 0:
        # No relative change from 0: worse beyond this run's own measurement error counts.
        if worse <= (metric.error or 0.0):
            return None
        worse_by = None
    else:
        worse_by = worse / abs(baseline)
        if worse_by <= threshold:
            return None
    return {"metric": metric.name, "unit": metric.unit, "value": metric.value, "baseline": baseline,
            "worse_by": None if worse_by is None else round(worse_by, 4)}


def record_run(runs: Path, run: RunRecord, policy: RegressionPolicy) -> HistoryRecord:
    """Index ``run`` (indexing first any older run directory not yet indexed) and compare it with the
    scenario's recent passed runs on its environment: what ``run.json``'s ``history`` holds."""
    with _index(runs) as db:
        _backfill(db, runs, skip=run["run_id"])
        return _add(db, run, policy)


def list_runs(runs: Path, *, scenario: str | None = None, environment: str | None = None,
              limit: int = 20) -> list[IndexedRun]:
    """The runs indexed (after indexing any run directory not yet indexed), newest first, at most
    ``limit``, of one scenario and one environment when given."""
    if not runs.exists():
        return []
    if not runs.is_dir():
        raise HistoryError(f"the runs dir {runs} is not a directory: point --runs-dir or $DRILL_RUNS_DIR at "
                           "the directory of the runs")
    with _index(runs) as db:
        _backfill(db, runs)
        rows = db.execute(
            "SELECT run_id, scenario, scenario_file, environment, lab, started_at, ended_at, verdict, "
            "exit_code FROM runs WHERE (?1 IS NULL OR scenario = ?1) AND (?2 IS NULL OR environment = ?2) "
            "ORDER BY started_at DESC, run_id DESC LIMIT ?3", (scenario, environment, limit)).fetchall()
        return [_indexed(db, row) for row in rows]


# the index


@contextmanager
def _index(runs: Path) -> Iterator[sqlite3.Connection]:
    """The index of ``runs`` in one write transaction, its schema in place."""
    path = runs / HISTORY_FILE
    try:
        runs.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryError(f"cannot open the history index {path}: {exc}") from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            _schema(db, path)
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except (sqlite3.Error, OSError) as exc:
        damaged = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        hint = "; delete it to have it rebuilt from the run directories" if damaged else ""
        raise HistoryError(f"the history index {path} cannot be used: {exc}{hint}") from exc
    finally:
        db.close()


def _schema(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise HistoryError(f"the history index {path} was made by a newer drill (schema {version}; this "
                           f"one reads {SCHEMA_VERSION}): upgrade drill, or move the file away to have it "
                           "rebuilt from the run directories")
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _backfill(db: sqlite3.Connection, runs: Path, *, skip: str | None = None) -> None:
    """Index every run directory with a ``run.json`` not indexed yet, oldest first (run ids sort by start)."""
    indexed = {row[0] for row in db.execute("SELECT run_id FROM runs")}
    for run_dir in sorted(p for p in runs.iterdir() if p.name not in indexed and p.name != skip):
        if not (run_dir / RUN_FILE).is_file():
            continue  # not a run, or one still running (or crashed: drill recover writes its record)
        try:
            old = load_run(run_dir)
        except SourceErrors:
            continue  # a broken record is reported by drill report; the index leaves it out
        recorded = old.get("history")
        _add(db, old, RegressionPolicy() if recorded is None
             else RegressionPolicy(recorded["threshold"], recorded.get("thresholds", {})))


def _add(db: sqlite3.Connection, run: RunRecord, policy: RegressionPolicy) -> HistoryRecord:
    """Index ``run`` (again, if it was) with the regressions found against the runs indexed before it."""
    run_id, scenario, env = run["run_id"], run["scenario"]["name"], run["environment"]["name"]
    before = ("scenario = ? AND environment = ? AND run_id != ? AND (started_at < ? OR "
              "(started_at = ? AND run_id < ?))")
    where = (scenario, env, run_id, run["started_at"], run["started_at"], run_id)
    baseline_runs = [row[0] for row in db.execute(
        f"SELECT run_id FROM runs WHERE {before} AND verdict = 'passed' "
        "ORDER BY started_at DESC, run_id DESC LIMIT ?", (*where, BASELINE_RUNS))]
    metrics = key_metrics(run)
    found: list[tuple[KeyMetric, float | None, RegressionRecord | None]] = []
    for metric in metrics:
        baseline = _median(db, metric.name, baseline_runs)
        flagged = None if baseline is None else regression(metric, baseline, policy.for_metric(metric.name))
        found.append((metric, baseline, flagged))
    db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (run_id, scenario, run["scenario"]["file"], env, run["environment"]["lab"], run["started_at"],
                run["ended_at"], run["verdict"], run["exit_code"], policy.threshold))
    db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(run_id, m.name, m.value, m.unit, m.error, m.direction, baseline,
                     flagged["worse_by"] if flagged else None, flagged is not None)
                    for m, baseline, flagged in found])
    past = db.execute(f"SELECT run_id, started_at, verdict FROM runs WHERE {before} "
                      "ORDER BY started_at DESC, run_id DESC LIMIT ?", (*where, TREND_RUNS)).fetchall()
    trend: list[TrendRecord] = [_trend(db, row, metrics) for row in reversed(past)]
    trend.append({"run_id": run_id, "started_at": run["started_at"], "verdict": run["verdict"],
                  "metrics": {m.name: m.value for m in metrics}})
    return {"threshold": policy.threshold, "baseline_runs": baseline_runs,
            "regressions": [flagged for _, _, flagged in found if flagged is not None], "trend": trend,
            "thresholds": {m.name: policy.for_metric(m.name) for m in metrics}}


def _median(db: sqlite3.Connection, name: str, run_ids: Sequence[str]) -> float | None:
    if not run_ids:
        return None
    marks = ", ".join("?" * len(run_ids))
    values = [row[0] for row in db.execute(
        f"SELECT value FROM metrics WHERE name = ? AND value IS NOT NULL AND run_id IN ({marks})",
        (name, *run_ids))]
    return statistics.median(values) if values else None


def _trend(db: sqlite3.Connection, row: tuple[str, str, str], metrics: Sequence[KeyMetric]) -> TrendRecord:
    run_id, started_at, verdict = row
    values = dict(db.execute("SELECT name, value FROM metrics WHERE run_id = ?", (run_id,)).fetchall())
    return {"run_id": run_id, "started_at": started_at, "verdict": cast(Verdict, verdict),
            "metrics": {m.name: values.get(m.name) for m in metrics}}


def _indexed(db: sqlite3.Connection, row: tuple[str, str, str, str, int, str, str, str, int]) -> IndexedRun:
    run_id = row[0]
    metrics: list[KeyMetric] = []
    regressions: list[RegressionRecord] = []
    for name, value, unit, error, direction, baseline, worse_by, flagged in db.execute(
            "SELECT name, value, unit, error, direction, baseline, worse_by, regression FROM metrics "
            "WHERE run_id = ? ORDER BY rowid", (run_id,)):
        metrics.append(KeyMetric(name=name, value=value, unit=unit, error=error, direction=direction))
        if flagged:
            regressions.append({"metric": name, "unit": unit, "value": value, "baseline": baseline,
                                "worse_by": worse_by})
    return IndexedRun(run_id=run_id, scenario=row[1], scenario_file=row[2], environment=row[3],
                      lab=bool(row[4]), started_at=row[5], ended_at=row[6], verdict=row[7], exit_code=row[8],
                      metrics=tuple(metrics), regressions=tuple(regressions))
