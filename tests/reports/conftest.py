"""A hand-written run record (tests/reports/runs/us-outage-failed/run.json) and variants of it."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).parent / "runs" / "us-outage-failed"


@pytest.fixture
def run_data() -> dict[str, Any]:
    """The fixture's run.json as plain JSON data: a failed run with an unmeasured metric and a revert
    that failed (exit 3)."""
    return json.loads((FIXTURE / "run.json").read_text(encoding="utf-8"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the fixture's run directory."""
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    return target


@pytest.fixture
def passed_run(run_data: dict[str, Any]) -> dict[str, Any]:
    """The same run as if everything had gone well."""
    data = copy.deepcopy(run_data)
    data.update(verdict="passed", exit_code=0, reason="")
    for e in data["expectations"]:
        e["passed"] = True
    for u in data["rollback"]:
        u.update(outcome="reverted", error=None, attempts=1)
    data["steady_state"] = {"before": True, "returned": True, "returned_t": 190.2}
    return data


@pytest.fixture
def write_run(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a run record into a fresh run directory and return the directory."""
    counter = iter(range(1_000))

    def _write(data: dict[str, Any]) -> Path:
        directory = tmp_path / f"run-{next(counter)}"
        directory.mkdir()
        (directory / "run.json").write_text(json.dumps(data), encoding="utf-8")
        return directory

    return _write


@pytest.fixture
def swept_run(run_data: dict[str, Any]) -> dict[str, Any]:
    """The same run in four trials: users.downtime broke its bound in trial 3 only (phase 0.56)."""
    data = copy.deepcopy(run_data)
    phases = [0.06, 0.31, 0.56, 0.81]
    downtimes = [210.0, 215.5, 262.5, 220.0]
    data["sweep"] = {"trials": 4, "run": 4, "seed": 7, "probe_interval": 30.0, "endpoint": "us"}
    data["trials"] = [{"index": k + 1, "phase": phase, "target_phase": phase,
                       "incident_start": 20.0 + 300 * k, "recovery_start": 260.0 + 300 * k,
                       "ended": 300.0 + 300 * k, "returned_t": 299.0 + 300 * k,
                       "metrics": {"users.downtime": {"value": downtimes[k], "unit": "s", "error": 0.25,
                                                      "note": ""}}}
                      for k, phase in enumerate(phases)]
    data["metrics"]["users.downtime"]["trials"] = {"min": 210.0, "median": 217.75, "max": 262.5,
                                                   "values": downtimes, "worst_trial": 3, "worst_phase": 0.56}
    for e in data["expectations"]:
        e.update(worst_trial=3, worst_phase=0.56)
    return data
