"""The end of a run as the terminal shows it: the verdict, each expectation with its value and error,
when probes were blind, the rollback, the regressions against past runs, where to look.

Numbers go through :func:`reports.base.format_value`, as in the reports. The regressions come from
run.json's optional ``history`` key (the last passed runs of the scenario on the environment); a run
without it shows none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reports.base import (
    describe_baseline,
    describe_blind,
    describe_trial,
    expectation_result,
    format_value,
    format_worse_by,
    metric_error,
)
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
    results = [expectation_result(e) for e in record["expectations"]]
    # As wide as the longest result shown, so that the expectations line up.
    width = max((len(r) for r in results), default=0)
    for e, result in zip(record["expectations"], results, strict=True):
        value = format_value(e["value"], e["unit"], metric_error(record, e["metric"]))
        worst = e.get("worst_trial")
        if len(trials) > 1 and worst is not None:
            value += " in " + describe_trial(worst, len(trials), e.get("worst_phase"),
                                             sweep["probe_interval"] if sweep else None)
        note = f"  ({e['note']})" if e["note"] else ""
        lines.append(f"  {result:<{width}} {e['expect']:<36} {value}{note}")
    for name, probe in record.get("probes", {}).items():
        blind = probe.get("blind", [])
        if blind:
            more = f"; and {len(blind) - SHOWN_BLIND} more" if len(blind) > SHOWN_BLIND else ""
            lines.append(f"  blind {name}: {'; '.join(describe_blind(b) for b in blind[:SHOWN_BLIND])}{more}")
    for r in record["rollback"]:
        trial = f" in trial {r['trial']}" if len(trials) > 1 and "trial" in r else ""
        lines.append(f"  undo {r['step']} ({r['fault']} {r['region']}){trial}: {r['outcome']}"
                     + (f": {r['error']}" if r["error"] else ""))
    lines.extend(regression_lines(record))
    lines.append(f"run: {run_dir}")
    lines.extend(f"report: {path}" for path in reports)
    return lines


def regression_lines(record: RunRecord) -> list[str]:
    """``REGRESSION dns.failover_time 61.2 s, +39% over the median 44.0 s of the last 5 passed runs``, one
    per regression in run.json's ``history`` (none without it), rounded to the metric's error."""
    history = record.get("history")
    if not history:
        return []
    of_runs = describe_baseline(len(history["baseline_runs"]))
    lines = []
    for found in history["regressions"]:
        value, baseline = (format_value(found[k], found["unit"], metric_error(record, found["metric"]),
                                        show_error=False) for k in ("value", "baseline"))
        worse_by = found["worse_by"]
        if worse_by is None:
            lines.append(f"  REGRESSION {found['metric']} {value}, {format_worse_by(None)} (the median "
                         f"of {of_runs})")
        else:
            lines.append(f"  REGRESSION {found['metric']} {value}, {format_worse_by(worse_by)} over the "
                         f"median {baseline} of {of_runs}")
    return lines
