"""``report.html``: the run as a page people look at together after a game day, one file that opens
offline.

The verdict and the expectations come first, then a chart per probe on the run's one time axis with
the faults, waits, guard trips and undo behind the data (:mod:`reports.charts`), the design's settings,
the rollback, and the trend of the scenario's key metrics over its past runs. plotly.js is embedded
from the installed ``plotly`` package, so the file fetches nothing: it works from a laptop on a plane
or a CI artifact store that serves no other file.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from plotly.offline import get_plotlyjs

from reports.base import (
    describe_baseline,
    describe_blind,
    describe_duration,
    describe_time_scale,
    expectation_result,
    format_instant,
    format_t,
    format_threshold,
    format_value,
    format_worse_by,
    metric_error,
)
from reports.charts import Figure, probe_chart, time_axis, timeline_spans, trend_charts
from reports.record import RunRecord
from reports.samples import read_samples

_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem;
       color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { display: inline-block; padding: 0.1rem 0.6rem; border-radius: 0.3rem; color: white; }
.passed { background: #2a7a2a; } .failed, .error { background: #b22; } .aborted { background: #a60; }
.ok { color: #2a7a2a; } .broken { color: #b22; font-weight: bold; } .note { color: #555; }
.key span { display: inline-block; width: 1.2rem; height: 0.8rem; vertical-align: middle;
            margin: 0 0.3rem 0 1rem; }
.chart { margin: 0.5rem 0 1rem; }
"""

_SYNC = """
const axisKeys = ["xaxis.range", "xaxis.range[0]", "xaxis.range[1]", "xaxis.autorange"];
const timeCharts = Array.from(document.querySelectorAll(".chart.time"));
let syncing = false;
for (const chart of timeCharts) {
  chart.on("plotly_relayout", (event) => {
    if (syncing || !axisKeys.some((key) => key in event)) return;
    const update = Object.fromEntries(axisKeys.filter((key) => key in event).map((key) => [key, event[key]]));
    syncing = true;
    Promise.all(timeCharts.filter((c) => c !== chart).map((c) => Plotly.relayout(c, update)))
      .finally(() => { syncing = false; });
  });
}
"""


class HtmlReporter:
    """Renders ``report.html``."""

    filename: ClassVar[str] = "report.html"

    def render(self, run: RunRecord, run_dir: Path) -> str:
        """The whole page, plotly.js included."""
        figures: dict[str, Figure] = {}
        body = [self._head(run), self._expectations(run), self._guards(run),
                self._charts(run, run_dir, figures), self._design(run), self._rollback(run),
                self._trend(run, figures)]
        data = _script_json(figures)
        title = f"{run['scenario']['name']}: {run['verdict'].upper()}"
        return "\n".join([
            "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f"<title>{_e(title)}</title>", f"<style>{_STYLE}</style>",
            f"<script>{get_plotlyjs()}</script>", "</head>", "<body>", *body,
            "<script>",
            f"const FIGURES = {data};",
            f"const CONFIG = {json.dumps(_CONFIG)};",
            "for (const [id, figure] of Object.entries(FIGURES)) "
            "Plotly.newPlot(id, figure.data, figure.layout, CONFIG);",
            _SYNC, "</script>", "</body>", "</html>", ""])

    def _head(self, run: RunRecord) -> str:
        verdict = run["verdict"]
        env = run["environment"]
        # As report.md's head: the start is an instant (UTC), every other time is scenario time.
        facts = [("run", run["run_id"]),
                 ("environment", f"{env['name']}, {env['file']}" if env["file"] else env["name"]),
                 ("time", describe_time_scale(run)),
                 ("started", format_instant(run["started_at"])),
                 ("duration", describe_duration(run)),
                 ("incident start", f"t = {format_t(run['incident_start_t'])}" if run["incident_start"]
                  else "no fault was applied"),
                 ("exit code", str(run["exit_code"]))]
        if run["reason"]:
            facts.append(("why", run["reason"]))
        return "\n".join([
            f"<h1>{_e(run['scenario']['name'])} <span class=\"verdict {_e(verdict)}\">{_e(verdict.upper())}"
            "</span></h1>",
            f"<p>{_e(run['scenario']['description'])}</p>",
            _table(("", ""), facts)])

    def _expectations(self, run: RunRecord) -> str:
        rows = []
        for e in run["expectations"]:
            error = metric_error(run, e["metric"])
            mark = f'<span class="{"ok" if e["passed"] else "broken"}">{_e(expectation_result(e))}</span>'
            rows.append((mark, _e(e["expect"]), _e(format_value(e["value"], e["unit"], error)),
                         _e(e["note"])))
        return _section("Expectations", _table(("", "expectation", "measured", "note"), rows, escaped=True))

    def _guards(self, run: RunRecord) -> str:
        if not run["guards"]:
            return ""
        rows = [(g["guard"], f"tripped at {format_t(g['t'])}" if g["tripped"] else "did not trip")
                for g in run["guards"]]
        return _section("Guards", _table(("guard", "outcome"), rows))

    def _charts(self, run: RunRecord, run_dir: Path, figures: dict[str, Figure]) -> str:
        samples = read_samples(run_dir)
        spans = timeline_spans(run)
        axis = time_axis(run)
        parts = [
            '<p class="key">Behind the data:<span style="background: rgba(214, 39, 40, 0.3)"></span>fault'
            '<span style="background: rgba(31, 119, 180, 0.2)"></span>wait (ends at a blue line)'
            '<span style="background: rgba(44, 160, 44, 0.35)"></span>undo'
            '<span style="background: rgba(127, 127, 127, 0.4)"></span>probe blind'
            '<span style="background: rgb(214, 39, 40); height: 2px"></span>guard tripped'
            '<span style="border-top: 2px dashed #3c3c3c; height: 0"></span>incident start</p>']
        for k, (name, probe) in enumerate(run["probes"].items()):
            chart_id = f"chart-{_slug(name)}"
            figures[chart_id] = probe_chart(name, probe, samples.get(name, []), spans, axis,
                                            lab=run["environment"]["lab"], labels=k == 0)
            parts.append(f'<div class="chart time" id="{chart_id}" data-probe="{_e(name)}"></div>')
            parts += [f'<p class="note">{_e(name)} blind {_e(describe_blind(b))}</p>'
                      for b in probe.get("blind", [])]
        if not samples:
            parts.append('<p class="note">No samples.jsonl in the run directory: the charts are empty.</p>')
        return _section("Probes", "\n".join(parts))

    def _design(self, run: RunRecord) -> str:
        design = run.get("design")
        if not design:
            return _section("Design", "<p>No design review in this run.</p>")
        rows = [(e["expect"], e["window"]["text"] if e["window"] else "no prediction", e["reasoning"],
                 # As report.md: nothing to hold without a prediction.
                 f"breaks: {e['verdict']}" if e["breaks"] else "holds" if e["window"] else "—",
                 e["disagreement"])
                for e in design["expectations"]]
        parts = [f"<p>Settings read: {_e(design['settings'])}</p>",
                 _table(("expectation", "predicted window", "reasoning", "design", "measurement disagrees"),
                        rows)]
        parts += [f'<p class="broken">{_e(problem)}</p>' for problem in design["problems"]]
        return _section("Design", "\n".join(parts))

    def _rollback(self, run: RunRecord) -> str:
        rows = [(u["step"], f"{u['fault']} in {u['region']}", u["summary"], u["outcome"], str(u["attempts"]),
                 u["error"] or "", format_t(u["t"])) for u in run["rollback"]]
        parts = [_table(("step", "fault", "what was undone", "outcome", "attempts", "error", "done at"), rows)
                 if rows else "<p>Nothing to undo.</p>"]
        restored = run.get("restored") or []
        if restored:
            parts.append(_table(("object", "after the drill", "detail"),
                                [(r["object"], r["outcome"], r["detail"]) for r in restored]))
        steady = run["steady_state"]
        back = (f"returned at {format_t(steady['returned_t'])}" if steady["returned"] else "did not return")
        parts.append(f"<p>Steady state before the first fault: {'yes' if steady['before'] else 'no'}; "
                     f"after the undo it {_e(back)}.</p>")
        return _section("Rollback", "\n".join(parts))

    def _trend(self, run: RunRecord, figures: dict[str, Figure]) -> str:
        charts = trend_charts(run)
        if not charts:
            return _section("Trend", "<p>No past runs of this scenario on this environment yet.</p>")
        history = run["history"]
        parts = []
        for unit, figure in charts:
            chart_id = f"trend-{_slug(unit.replace('%', 'percent'))}"
            figures[chart_id] = figure
            parts.append(f'<div class="chart" id="{chart_id}"></div>')
        regressions = [(r["metric"], *(format_value(r[k], r["unit"], metric_error(run, r["metric"]),
                                                    show_error=False) for k in ("value", "baseline")),
                        format_worse_by(r["worse_by"])) for r in history["regressions"]]
        runs = describe_baseline(len(history["baseline_runs"]))
        parts.append(_table(("regression", "this run", "baseline (median)", "by"), regressions) if regressions
                     else f"<p>No regression: no key metric worse than its median over {_e(runs)} by more "
                          f"than {format_threshold(history['threshold'])}.</p>")
        if regressions:
            parts.append(f'<p class="note">Worse than the median over {_e(runs)} by more than '
                         f"{format_threshold(history['threshold'])}; a regression does not change the "
                         "verdict.</p>")
        return _section("Trend", "\n".join(parts))


def _script_json(value: object) -> str:
    """``value`` as JSON that is safe inside a ``<script>``: with ``<``, ``>`` and ``&`` as ``\\u`` escapes,
    no text (an event's detail, a blind reason) can end the script or open a comment that keeps the
    parser in it (``<!--<script``); JSON.parse and a JavaScript literal read the same strings."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _section(title: str, content: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{content}\n</section>"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, escaped: bool = False) -> str:
    cell = (lambda text: text) if escaped else _e
    head = "" if not any(header) else "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def _e(text: Any) -> str:
    return html.escape(str(text))
