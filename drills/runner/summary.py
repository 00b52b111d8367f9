"""The end of a run as the terminal shows it: the verdict, each expectation with its value and error,
when probes were blind, the rollback, the regressions against past runs, where to look.

Numbers go through :func:`reports.base.format_value`, as in the reports. The regressions come from
run.json's optional ``history`` key (the last passed runs of the scenario on the environment); a run
without it shows none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from reports.base import describe_blind, describe_trial, format_value, format_worse_by
from reports.record import RunRecord

SHOWN_BLIND = 3
"""Blind intervals of a probe the summary names; report.md has them all."""


def summary_lines(record: RunRecord, *, run_dir: Path, reports: Sequence[Path]) -> list[str]:
    """The end-of-run summary (see the module docstring)."""
    lines = [f"{record['scenario']['name']}: {record['verdict'].upper()} (exit {record['exit_code']})"]
    if record["reason"]:
        lines.append(f"  reason: {record['reason']}")
    trials = record.get("trials") or []
    sweep = record.get("sweep")
    if len(trials) > 1 and sweep is not None:
        lines.append(f"  {len(trials)} trials (seed {sweep['seed']}); each value is the worst trial's")
    for e in record["expectations"]:
        metric = record["metrics"].get(e["metric"])
        error = metric["error"] if metric is not None else None
        mark = "ok  " if e["passed"] else "FAIL"
        if e.get("outcome") == "inconclusive":
            mark = "inc " if e["passed"] else "INC "
        value = format_value(e["value"], e["unit"], error)
        worst = e.get("worst_trial")
        if len(trials) > 1 and worst is not None:
            value += " in " + describe_trial(worst, len(trials), e.get("worst_phase"),
                                             sweep["probe_interval"] if sweep else None)
        note = f"  ({e['note']})" if e["note"] else ""
        lines.append(f"  {mark} {e['expect']:<36} {value}{note}")
    for name, probe in record.get("probes", {}).items():
        blind = probe.get("blind", [])
        if blind:
            more = f"; and {len(blind) - SHOWN_BLIND} more" if len(blind) > SHOWN_BLIND else ""
            lines.append(f"  blind {name}: {'; '.join(describe_blind(b) for b in blind[:SHOWN_BLIND])}{more}")
    for r in record["rollback"]:
        trial = f" in trial {r['trial']}" if len(trials) > 1 and "trial" in r else ""
        lines.append(f"  undo {r['step']} ({r['fault']} {r['region']}){trial}: {r['outcome']}"
                     + (f": {r['error']}" if r["error"] else ""))
    lines.extend(regression_lines(cast(Mapping[str, Any], record).get("history")))
    lines.append(f"run: {run_dir}")
    lines.extend(f"report: {path}" for path in reports)
    return lines


def regression_lines(history: Mapping[str, Any] | None) -> list[str]:
    """``REGRESSION dns.failover_time 61 s, +39% over the median 44 s of the last 5 passed runs``,
    one per regression in run.json's ``history`` (none without it)."""
    if not history:
        return []
    runs = len(history.get("baseline_runs") or [])
    of_runs = f"the last {runs} passed run{'s' if runs != 1 else ''}"
    lines = []
    for found in history.get("regressions") or []:
        unit = found.get("unit")
        value = format_value(found.get("value"), unit)
        baseline = format_value(found.get("baseline"), unit)
        worse_by = found.get("worse_by")
        if worse_by is None:
            lines.append(f"  REGRESSION {found.get('metric')} {value}, {format_worse_by(None)} (the median "
                         f"of {of_runs})")
        else:
            lines.append(f"  REGRESSION {found.get('metric')} {value}, {format_worse_by(worse_by)} over the "
                         f"median {baseline} of {of_runs}")
    return lines
