"""``report.md``: the run as a person reads it after a game day or from a CI artifact.

In order: the verdict, where and at what time scale it ran, why the verdict is what it is, each
expectation with the measured value and its error (inconclusive when the error straddles the
bound), the design review (what the settings allow), every metric, the trials (a run of several: each
one's phase of the probe cycle and marks), the guards, the timeline, the rollback (with what a person
must still undo by hand), whether the steady state came back, and when each probe was blind. Over
several trials an expectation's row names the trial that decided it, and a metric's row shows
min / median / max and the phase of the trial that gave its value.

Numbers go through :func:`reports.base.format_value` (rounded to their error). The head's times are in
the timeline's time base (scenario seconds, real-world equivalent); on a faster clock it says so once
and labels the wall-clock span.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from reports.base import (
    describe_baseline,
    describe_blind,
    describe_duration,
    describe_time_scale,
    describe_trial,
    expectation_result,
    format_instant,
    format_t,
    format_threshold,
    format_value,
    format_worse_by,
    metric_error,
)
from reports.record import MetricRecord, RunRecord

_INCOMPLETE = ("failed", "manual")
"""Rollback outcomes that leave a fault in place: a person has to act."""


class MarkdownReporter:
    """Renders ``report.md``."""

    filename: ClassVar[str] = "report.md"

    def render(self, run: RunRecord, run_dir: Path) -> str:
        """The whole report."""
        sections = [
            self._head(run),
            self._why(run),
            self._expectations(run),
            _history(run),
            self._design(run),
            self._blast_radius(run),
            self._metrics(run),
            self._trials(run),
            self._guards(run),
            self._timeline(run),
            self._rollback(run),
            self._steady_state(run),
            self._probes(run),
        ]
        return "\n\n".join(s for s in sections if s) + "\n"

    def _head(self, run: RunRecord) -> str:
        scenario = run["scenario"]
        lines = [f"# {scenario['name']}: {run['verdict'].upper()}"]
        if scenario["description"]:
            lines += ["", f"> {inline(scenario['description'])}"]
        # Every time of the head is in the timeline's base (scenario seconds); the start is an instant,
        # the same in any base, and the wall-clock span is labelled as such.
        incident = (f"t = {format_t(run['incident_start_t'])}" if run["incident_start"]
                    else "no fault was applied")
        lines += [
            "",
            "| | |",
            "| --- | --- |",
            f"| run | `{run['run_id']}` |",
            f"| scenario file | `{cell(scenario['file'])}` |",
            f"| environment | {_environment(run)} |",
            f"| time | {describe_time_scale(run)} |",
            f"| started | {format_instant(run['started_at'])} |",
            f"| duration | {describe_duration(run)} |",
            f"| incident start | {incident} |",
            f"| exit code | {run['exit_code']} |",
        ]
        return "\n".join(lines)

    def _why(self, run: RunRecord) -> str:
        if run["verdict"] == "passed":
            why = "Every expectation held, no guard tripped and every fault was undone."
        else:
            why = run["reason"] or f"The run ended {run['verdict']} without a stated reason."
        return f"## Why\n\n{why}"

    def _expectations(self, run: RunRecord) -> str:
        rows = []
        count = _trial_count(run)
        for e in run["expectations"]:
            error = metric_error(run, e["metric"])
            note = e["note"]
            worst = e.get("worst_trial")
            if count > 1 and worst is not None:
                trial = describe_trial(worst, count, e.get("worst_phase"), _interval(run))
                where = f"{'failed in' if not e['passed'] else 'worst:'} {trial}"
                note = f"{where}; {note}" if note else where
            rows.append([f"`{e['expect']}`", format_value(e["value"], e["unit"], error),
                         _result(expectation_result(e)), note])
        if not rows:
            return "## Expectations\n\nThe scenario states none."
        return "## Expectations\n\n" + table(["expectation", "measured", "result", "note"], rows)

    def _design(self, run: RunRecord) -> str:
        design = run.get("design")
        if not design:
            return ""
        rows = [[f"`{d['expect']}`", d["window"]["text"] if d["window"] else "—",
                 f"**breaks**: {d['verdict']}" if d["breaks"] else "holds" if d["window"] else "—",
                 d["reasoning"] + (f"; **{d['disagreement']}**" if d["disagreement"] else "")]
                for d in design["expectations"]]
        text = (f"## Design review\n\nWhat the settings allow in every phase of the probe cycle and the TTL "
                f"({inline(design['settings'])}).")
        if rows:
            text += "\n\n" + table(["expectation", "predicted", "design", "why"], rows)
        if design["problems"]:
            text += "\n\nNot read: " + "; ".join(inline(p) for p in design["problems"])
        return text

    def _blast_radius(self, run: RunRecord) -> str:
        blast = run.get("blast_radius")
        if not blast:
            return ""
        moment = ", ".join(f"`{s}`" for s in blast["worst_moment"]) or "no fault"
        rows = [[f"`limits.{r['rule']}`", "pass" if r["passed"] else "**refused**", r["detail"]]
                for r in blast["rules"]]
        refused = ": the drill was **refused**" if blast["refused"] else ""
        text = (f"## Blast radius\n\nAt the worst moment ({moment} in effect together), computed before the "
                f"first fault{refused}.\n\n" + table(["rule", "result", "numbers"], rows))
        if blast["estimated"]:
            text += "\n\nEstimated: " + "; ".join(blast["estimated"]) + "."
        return text

    def _metrics(self, run: RunRecord) -> str:
        if _trial_count(run) > 1:
            rows = [[f"`{name}`", format_value(m["value"], m["unit"], m["error"]), _spread(m), m["note"]]
                    for name, m in sorted(run["metrics"].items())]
            header = ["metric", "value", "over trials: min / median / max (phase of the value)", "note"]
        else:
            rows = [[f"`{name}`", format_value(m["value"], m["unit"], m["error"]), m["note"]]
                    for name, m in sorted(run["metrics"].items())]
            header = ["metric", "value", "note"]
        if not rows:
            return "## Metrics\n\nNo metric was computed."
        return "## Metrics\n\n" + table(header, rows)

    def _trials(self, run: RunRecord) -> str:
        trials = run.get("trials") or []
        sweep = run.get("sweep")
        if len(trials) < 2 and (sweep is None or sweep["trials"] < 2):
            return ""
        lines = ["## Trials", ""]
        if sweep is not None:
            planned = sweep["trials"]
            ran = f"{sweep['run']} of {planned} trials ran" if sweep["run"] < planned else f"{planned} trials"
            cycle = (f"the first fault of each placed at its phase of endpoint {sweep['endpoint']}'s "
                     f"{format_value(sweep['probe_interval'], 's')} probe cycle (0: at a probe deadline)"
                     if sweep["probe_interval"] is not None else "phases of the probe cycle unknown")
            lines += [f"{ran}, {cycle}; seed {sweep['seed']}.", ""]
        rows = [[str(t["index"]), "-" if t["phase"] is None else f"{t['phase']:.2f}",
                 format_t(t["incident_start"]), format_t(t["recovery_start"]),
                 format_t(t["returned_t"]) if t["returned_t"] is not None else "**not returned**",
                 format_t(t["ended"])] for t in trials]
        lines.append(table(["trial", "phase", "incident start", "recovery start", "steady again", "ended"],
                            rows))
        return "\n".join(lines)

    def _guards(self, run: RunRecord) -> str:
        rows = [[f"`{g['guard']}`", f"**tripped** at {format_t(g['t'])}" if g["tripped"] else "held"]
                for g in run["guards"]]
        if not rows:
            return "## Guards\n\nThe scenario states none."
        return "## Guards\n\n" + table(["guard", "result"], rows)

    def _timeline(self, run: RunRecord) -> str:
        rows = [[format_t(e["t"]), e["event"], e["step"] or "", e["detail"]] for e in run["timeline"]]
        if not rows:
            return "## Timeline\n\nNothing was recorded."
        note = "Times are since the run started, as mm:ss.s of real-world time."
        return f"## Timeline\n\n{note}\n\n" + table(["t", "event", "step", "detail"], rows)

    def _rollback(self, run: RunRecord) -> str:
        undos = run["rollback"]
        if not undos:
            return "## Rollback\n\nNo fault needed undoing."
        rows = [[u["step"], u["fault"], u["region"], u["outcome"] if u["outcome"] not in _INCOMPLETE
                 else f"**{u['outcome']}**", str(u["attempts"]), format_t(u["t"]),
                 u["summary"] + (f"; error: {u['error']}" if u["error"] else "")] for u in undos]
        header = ["step", "fault", "region", "outcome", "attempts", "t", "what"]
        text = "## Rollback\n\n" + table(header, rows)
        stuck = [u for u in undos if u["outcome"] in _INCOMPLETE]
        if stuck:
            lines = ["", "", "**Manual action needed.** These faults are still in place; undo them by hand "
                     "(or run `drill recover` on this run):", ""]
            for u in stuck:
                why = "rollback: manual" if u["outcome"] == "manual" else f"revert failed: {u['error']}"
                lines.append(f"- step `{u['step']}`, {u['fault']} in {u['region']} ({inline(why)}): "
                             f"{inline(u['summary'])}")
                lines += [f"  - `{obj}`" for obj in u["objects"]]
            text += "\n".join(lines)
        return text + self._restored(run)

    def _restored(self, run: RunRecord) -> str:
        """The objects the faults touched, as the rollback found and left them (its snapshots)."""
        objects = run.get("restored") or []
        if not objects:
            return ""
        counts = ", ".join(f"{sum(o['outcome'] == k for o in objects)} {word}"
                           for k, word in (("unchanged", "as before"), ("restored", "restored"),
                                           ("drift", "drifted"), ("gone", "gone"), ("failed", "not verified"))
                           if any(o["outcome"] == k for o in objects))
        text = (f"\n\nEvery object the faults touched, checked against its state before the drill ({counts}):"
                "\n\n")
        rows = [[f"`{o['object']}`", o["outcome"] if o["outcome"] in ("unchanged", "restored", "gone")
                 else f"**{o['outcome']}**", str(o["trial"]), o["detail"]] for o in objects]
        text += table(["object", "outcome", "trial", "detail"], rows)
        if any(o["outcome"] == "drift" for o in objects):
            text += ("\n\n**Drift**: someone else changed an object during the drill; drill left it as they "
                     "set it. Check that it is what they meant.")
        return text

    def _steady_state(self, run: RunRecord) -> str:
        steady = run["steady_state"]
        before = "seen" if steady["before"] else "**not seen**"
        after = (f"returned at {format_t(steady['returned_t'])}" if steady["returned"]
                 else "**did not return**")
        return (f"## Steady state\n\n- before the first fault: {before}\n"
                f"- after rollback: {after}")

    def _probes(self, run: RunRecord) -> str:
        rows = [[f"`{name}`", p["kind"], format_value(p["every"], "s"), str(p["samples"]),
                 "; ".join(describe_blind(b) for b in p.get("blind", [])) or "never"]
                for name, p in sorted(run["probes"].items())]
        versions = ", ".join(f"{k} {v}" for k, v in sorted(run["versions"].items()))
        note = ("A probe is blind while its samples measure nothing (failed, or not taken); a metric whose "
                "window it overlaps is unmeasured.")
        parts = [f"## Probes\n\n{note}\n\n" + table(["probe", "kind", "every", "samples", "blind"], rows)
                 ] if rows else []
        if versions:
            parts.append(f"<sub>{versions}</sub>")
        return "\n\n".join(parts)


def _history(run: RunRecord) -> str:
    """The regressions against the scenario's past passed runs and the trend of its key metrics; nothing
    for a run recorded without a history."""
    history = run.get("history")
    if history is None:
        return ""
    base = len(history["baseline_runs"])
    limit = format_threshold(history["threshold"])
    where = f"{run['scenario']['name']} on {run['environment']['name']}"
    runs = describe_baseline(base)
    if not base:
        text = f"No baseline: {runs} of {where}, so no regression is possible."
    elif not history["regressions"]:
        text = (f"None: every key metric is within the threshold ({limit}; a metric may have its own) of "
                f"its median over {runs} of {where}.")
    else:
        rows = [[r["metric"], *(format_value(r[k], r["unit"], metric_error(run, r["metric"]),
                                             show_error=False) for k in ("value", "baseline")),
                 format_worse_by(r["worse_by"])] for r in history["regressions"]]
        text = (f"Worse than the median over {runs} of {where} by more than the threshold ({limit}; a "
                "metric may have its own). A regression is flagged; it does not change the verdict.\n\n"
                + table(["metric", "this run", "baseline (median)", "worse by"], rows))
    trend = history["trend"]
    if len(trend) < 2:
        return f"## Regressions\n\n{text}"
    names = list(trend[-1]["metrics"])
    units = {name: run["metrics"][name]["unit"] if name in run["metrics"] else "" for name in names}
    rows = [[f"`{t['run_id']}`", t["verdict"],
             *(format_value(t["metrics"].get(n), units[n], metric_error(run, n), show_error=False)
               for n in names)] for t in trend]
    past = "the run" if len(trend) == 2 else f"the {len(trend) - 1} runs"
    return (f"## Regressions\n\n{text}\n\n### Trend\n\nThe key metrics of {past} of {where} before this "
            "one (oldest first), then this one.\n\n" + table(["run", "verdict", *names], rows))


def _trial_count(run: RunRecord) -> int:
    return len(run.get("trials") or [])


def _interval(run: RunRecord) -> float | None:
    sweep = run.get("sweep")
    return sweep["probe_interval"] if sweep is not None else None


def _spread(metric: MetricRecord) -> str:
    """``165.0 s / 171.3 s / 187.2 s (phase 0.81)``, rounded to the metric's error: the phase of the
    trial whose value the metric shows (the worst for its expectation); ``-`` for a metric with no numbers."""
    spread = metric.get("trials")
    if spread is None or spread["min"] is None:
        return "-"
    text = " / ".join(format_value(spread[k], metric["unit"], metric["error"], show_error=False)
                      for k in ("min", "median", "max"))
    if spread["worst_phase"] is not None:
        text += f" (phase {spread['worst_phase']:.2f})"
    unmeasured = sum(v is None for v in spread["values"])
    return text + (f"; unmeasured in {unmeasured}" if unmeasured else "")


def _environment(run: RunRecord) -> str:
    env = run["environment"]
    return f"{cell(env['name'])}, `{cell(env['file'])}`" if env["file"] else cell(env["name"])


def _result(result: str) -> str:
    """An expectation's result with the word that says it did not hold in bold: ``**FAIL** (design)``."""
    word, space, rest = result.partition(" ")
    return f"**{word}**{space}{rest}" if word.isupper() else result


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; each cell escaped so that its text cannot end the cell or the row."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(text: str) -> str:
    """``text`` as one table cell."""
    # A '|' would end the cell and a newline the row.
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def inline(text: str) -> str:
    """``text`` on one line, its runs of white space made single spaces."""
    return " ".join(text.split())
