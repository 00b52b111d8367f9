"""``drill history [SCENARIO] [--env E] [--limit N] [--runs-dir DIR]``: the runs kept, newest first.

Each run is listed with its start, environment, verdict and key metrics (those its expectations name),
and a ``REGRESSION`` line under it for each key metric worse than the median of the scenario's last 5
passed runs on that environment by more than the scenario's threshold (:mod:`drills.history`).
``SCENARIO`` is a scenario's name or its file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drills.cli import at_least_one
from drills.errors import DrillError
from drills.history import IndexedRun, list_runs
from drills.runner.rundir import RUNS_DIR_HELP, runs_dir
from drills.yamlsource import load
from reports.base import format_value, format_worse_by
from reports.record import RegressionRecord


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``history`` command."""
    parser = commands.add_parser("history", help="list past runs with their key metrics and regressions",
                                 description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("scenario", metavar="SCENARIO", nargs="?",
                        help="only the runs of this scenario: its name or its file (default: every scenario)")
    parser.add_argument("--env", metavar="E",
                        help="only the runs on this environment, by name (a private lab's is 'lab')")
    parser.add_argument("--limit", type=at_least_one("run"), default=20, metavar="N",
                        help="list at most N runs (default 20)")
    parser.add_argument("--runs-dir", type=Path, metavar="DIR", help=RUNS_DIR_HELP)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the runs; 0, or 2 when the scenario file or the index cannot be read."""
    runs = runs_dir(args.runs_dir)
    scenario = _scenario_name(args.scenario) if args.scenario else None
    found = list_runs(runs, scenario=scenario, environment=args.env, limit=args.limit)
    if not found:
        which = " ".join(part for part in (f"of {scenario}" if scenario else "",
                                           f"on {args.env}" if args.env else "") if part)
        print(f"no runs {which + ' ' if which else ''}in {runs}")
        return 0
    print("\n".join(listing(found)))
    return 0


def listing(found: list[IndexedRun]) -> list[str]:
    """The lines ``drill history`` prints for ``found``: a header, a row per run, and a ``REGRESSION``
    line under a run for each of its regressions."""
    rows = [("RUN", "STARTED (UTC)", "ENVIRONMENT", "VERDICT", "KEY METRICS")]
    rows += [(r.run_id, r.started_at.replace("T", " ")[:19], r.environment, r.verdict,
              ", ".join(f"{m.name} {format_value(m.value, m.unit, m.error)}" for m in r.metrics))
             for r in found]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[4]]).rstrip())
        if index:
            shown = found[index - 1]
            errors = {m.name: m.error for m in shown.metrics}
            lines += [f"  REGRESSION {describe(r, errors.get(r['metric']))}" for r in shown.regressions]
    return lines


def describe(regression: RegressionRecord, error: float | None) -> str:
    """``dns.failover_time 61.2 s: +39% over the baseline 44.0 s (median of the last passed runs)``, the
    values rounded to the metric's ``error``."""
    value, baseline = (format_value(regression[k], regression["unit"], error, show_error=False)
                       for k in ("value", "baseline"))
    shown = f"{regression['metric']} {value}"
    if regression["worse_by"] is None:
        return f"{shown}: {format_worse_by(None)}, the median of the last passed runs"
    return (f"{shown}: {format_worse_by(regression['worse_by'])} over the baseline {baseline} (median of the "
            "last passed runs)")


def _scenario_name(given: str) -> str:
    """The scenario ``given`` names: a name as it is, a file by the ``name`` it holds."""
    path = Path(given)
    if path.suffix not in (".yaml", ".yml") and not path.is_file():
        return given
    data = load(path).data
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str):
        raise DrillError(f"{path}: no scenario name in it (expected 'name: ...' at the top level)")
    return name

