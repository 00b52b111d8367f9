"""The Markdown summary of a run for a CI job's page (GitHub Actions' ``$GITHUB_STEP_SUMMARY``).

GitHub Actions shows on the job's page whatever Markdown a step appended to the file that
``GITHUB_STEP_SUMMARY`` names; every step of the job appends to the same file, so drill appends and
never truncates. The summary is short on purpose, the verdict first: the expectations with their
measured values, the rollback's outcome, the regressions against past runs (run.json's optional
``history`` key) and the run directory, where report.md and the rest are. Like every reporter it reads
only the run's record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reports.base import (
    describe_baseline,
    expectation_result,
    format_threshold,
    format_value,
    format_worse_by,
    metric_error,
)
from reports.markdown import inline, table
from reports.record import RunRecord, load_run

VARIABLE = "GITHUB_STEP_SUMMARY"
"""The environment variable naming the file to append to."""

_INCOMPLETE = ("failed", "manual")
"""Rollback outcomes that leave a fault in place."""


def render_step_summary(run: RunRecord, run_dir: Path) -> str:
    """The summary's Markdown for the run recorded in ``run_dir``, ending with a blank line so that
    what a later step appends starts a block of its own."""
    sections = [_head(run), _expectations(run), _rollback(run), _regressions(run),
                f"Run directory: `{run_dir}` (report.md, run.json, junit.xml)"]
    return "\n\n".join(s for s in sections if s) + "\n\n"


def append_step_summary(run_dir: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append the summary of the run in ``run_dir`` to the file ``$GITHUB_STEP_SUMMARY`` names; the
    file written, or None when the variable is unset or empty. Raises :class:`OSError` when the file
    cannot be written and :class:`~drills.errors.SourceErrors` when run.json cannot be read."""
    target = (os.environ if environ is None else environ).get(VARIABLE, "")
    if not target:
        return None
    text = render_step_summary(load_run(run_dir), run_dir)
    path = Path(target)
    with path.open("a", encoding="utf-8") as file:
        file.write(text)
    return path


def _head(run: RunRecord) -> str:
    env = run["environment"]
    where = f"lab, time scale {run['time_scale']:g}x" if env["lab"] else "real environment"
    lines = [f"### drill: {run['scenario']['name']} {run['verdict'].upper()}", "",
             f"Exit code {run['exit_code']}, environment `{env['name']}` ({where}), run `{run['run_id']}`."]
    if run["verdict"] != "passed" and run["reason"]:
        lines += ["", inline(run["reason"])]
    return "\n".join(lines)


def _expectations(run: RunRecord) -> str:
    if not run["expectations"]:
        return ""
    rows = [[f"`{e['expect']}`", format_value(e["value"], e["unit"], metric_error(run, e["metric"])),
             _result(expectation_result(e))] for e in run["expectations"]]
    return table(["expectation", "measured", "result"], rows)


def _rollback(run: RunRecord) -> str:
    undos = run["rollback"]
    if not undos:
        return "Rollback: no fault needed undoing."
    stuck = [u for u in undos if u["outcome"] in _INCOMPLETE]
    if not stuck:
        return f"Rollback: all {len(undos)} fault{'s' if len(undos) != 1 else ''} undone."
    lines = [f"Rollback **incomplete**: {len(stuck)} of {len(undos)} faults still in place; undo them by "
             f"hand or run `drill recover {run['run_id']}`:", ""]
    lines += [f"- step `{u['step']}`, {u['fault']} in {u['region']}: {inline(u['summary'])}" for u in stuck]
    return "\n".join(lines)


def _regressions(run: RunRecord) -> str:
    history = run.get("history")
    if history is None:
        return ""
    runs = describe_baseline(len(history["baseline_runs"]))
    if not history["baseline_runs"]:
        return f"No regression possible: {runs} to compare with."
    if not history["regressions"]:
        return f"No regression against the median of {runs}."
    rows = [[f"`{r['metric']}`", *(format_value(r[k], r["unit"], metric_error(run, r["metric"]),
                                                show_error=False) for k in ("value", "baseline")),
             format_worse_by(r["worse_by"])] for r in history["regressions"]]
    return (f"**Regressions**: worse than the median of {runs} by more than "
            f"{format_threshold(history['threshold'])}\n\n"
            + table(["metric", "this run", "baseline", "worse by"], rows))


def _result(result: str) -> str:
    """An expectation's result with the word that says it did not hold in bold."""
    word, space, rest = result.partition(" ")
    return f"**{word}**{space}{rest}" if word.isupper() else result
