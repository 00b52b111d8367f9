"""The charts of a run, as plotly figures (plain JSON for plotly.js): one per probe, all on the run's time
axis with the timeline's spans drawn behind the data, and the trend of the scenario's key metrics.

A probe's chart depends on its kind: ``dns`` the answer per vantage point (which region each resolver
was sent to), ``http`` the users' success rate and latency, ``replicas`` the ready pods per zone,
``replication`` the lag per region; any other kind its numeric values. Long drills stay small: a
stepwise series (answers, counts) keeps only the samples where it changed, and a numeric one over
:data:`MAX_BUCKETS` samples keeps each time bucket's lowest and highest sample, so dips and peaks
survive the thinning. The figures are dicts rather than ``plotly.graph_objects``: plotly.js takes
them as they are, and validating thousands of points in Python would cost more than the drawing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reports.base import format_t
from reports.record import ProbeRecord, RunRecord
from reports.samples import OUTCOME_DIGITS, SampleRow

Figure = dict[str, Any]
"""A plotly figure as plotly.js takes it: ``{"data": [trace, ...], "layout": {...}}``."""

MAX_BUCKETS = 400
"""Time buckets per numeric series beyond which it is thinned (each bucket keeps 2 samples)."""

SpanKind = Literal["fault", "wait", "undo", "guard", "incident", "blind"]

_FILL: dict[SpanKind, str] = {
    "fault": "rgba(214, 39, 40, 0.14)", "wait": "rgba(31, 119, 180, 0.08)",
    "undo": "rgba(44, 160, 44, 0.16)", "blind": "rgba(127, 127, 127, 0.30)",
}
_LINE: dict[SpanKind, str] = {"guard": "rgb(214, 39, 40)", "incident": "rgb(60, 60, 60)",
                              "wait": "rgb(31, 119, 180)"}
_TICK_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)

Point = tuple[float, Any]


@dataclass(frozen=True)
class Span:
    """Something the timeline marks on every chart: a shaded span from ``start`` to ``end``, or a
    vertical line at ``start`` when ``end`` is None."""

    kind: SpanKind
    start: float
    end: float | None
    label: str


def timeline_spans(run: RunRecord) -> list[Span]:
    """The faults (applied to reverted; to the end when not reverted), waits (started to done), guard
    trips, the incident's start and each undo (rollback started to its last revert; one per trial in a
    sweep) of a run."""
    spans: list[Span] = []
    end = run["timeline"][-1]["t"] if run["timeline"] else 0.0
    started: dict[str, float] = {}
    applied: dict[str, float] = {}
    # Each rollback's start and its latest revert so far; a fault applied after it (the next trial's)
    # closes it.
    undos: list[list[float]] = []
    undoing = False
    for event in run["timeline"]:
        step, t, kind = event["step"], event["t"], event["event"]
        if kind == "step_started" and step is not None:
            started[step] = t
        elif kind == "fault_applied" and step is not None:
            applied[step] = t
            undoing = False
        elif kind in ("fault_reverted", "revert_failed") and step is not None:
            # A failed revert leaves the fault in place: its span runs on to the end.
            if kind == "fault_reverted" and step in applied:
                spans.append(Span("fault", applied.pop(step), t, f"fault {step}"))
            if undoing:
                undos[-1][1] = max(undos[-1][1], t)
        elif kind in ("wait_done", "wait_timed_out") and step is not None:
            label = f"wait {step}" + (" timed out" if kind == "wait_timed_out" else "")
            spans += [Span("wait", started.get(step, t), t, label),
                      Span("wait", t, None, f"{label}: {event['detail']}")]
        elif kind == "guard_tripped":
            spans.append(Span("guard", t, None, f"guard tripped: {event['detail']}"))
        elif kind == "rollback_started":
            undos.append([t, t])
            undoing = True
    spans += [Span("fault", t, end, f"fault {step} (not undone)") for step, t in applied.items()]
    spans += [Span("undo", start, last, "undo") for start, last in undos]
    if run["incident_start_t"] is not None:
        spans.append(Span("incident", run["incident_start_t"], None, "incident"))
    return spans


def time_axis(run: RunRecord) -> dict[str, Any]:
    """The x axis every chart of the run shares: scenario time, ticks as ``mm:ss``."""
    timeline = run["timeline"]
    low, high = (timeline[0]["t"], timeline[-1]["t"]) if timeline else (0.0, 1.0)
    high = max(high, low + 1.0)
    step = next((s for s in _TICK_STEPS if (high - low) / s <= 10), _TICK_STEPS[-1])
    ticks = [step * k for k in range(math.floor(low / step), math.ceil(high / step) + 1)]
    scale = run["time_scale"]
    title = "time since the run started (mm:ss"
    title += f", real-world equivalent: the lab's clock ran {scale:g}x faster)" if scale != 1 else ")"
    return {"range": [low, high], "tickvals": ticks, "ticktext": [format_t(t) for t in ticks],
            "title": {"text": title}, "showgrid": True, "zeroline": False}


def probe_chart(name: str, probe: ProbeRecord, rows: Sequence[SampleRow], spans: Sequence[Span],
                axis: dict[str, Any], *, lab: bool, labels: bool = False) -> Figure:
    """The chart of one probe's samples, with the run's ``spans`` and the probe's blind intervals
    behind the data; ``labels`` names the spans on the chart."""
    drawn = _BUILDERS.get(probe["kind"], _generic)(rows, lab)
    blind = [Span("blind", b["start"], b["end"], f"{name} blind: {b['reason']}")
             for b in probe.get("blind", [])]
    named = [s for s in spans if labels and s.kind in ("fault", "undo", "guard")]
    layout = {
        **drawn.axes,
        "title": {"text": f"{name} ({probe['kind']}, every {probe['every']:g}s)", "x": 0.01},
        "xaxis": {**axis, "anchor": drawn.bottom}, "height": drawn.height,
        "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        "shapes": [_shape(s) for s in (*spans, *blind)],
        "annotations": [_label(s) for s in named],
    }
    return {"data": drawn.traces, "layout": layout}


def trend_charts(run: RunRecord) -> list[tuple[str, Figure]]:
    """The trend of the scenario's key metrics over its past runs and this one (last), one chart per
    unit; empty when run.json holds no past run."""
    history = run.get("history")
    trend = history["trend"] if history else []
    if len(trend) < 2:
        return []
    named = [e["metric"] for e in run["expectations"]]
    seen = [m for entry in trend for m in entry["metrics"]]
    metrics = list(dict.fromkeys(m for m in (*named, *seen) if m in seen))
    by_unit: dict[str, list[str]] = {}
    for metric in metrics:
        # A number without a unit is counted: it shares the count chart (and its id in the page).
        unit = (run["metrics"][metric]["unit"] if metric in run["metrics"] else "") or "count"
        by_unit.setdefault(unit, []).append(metric)
    runs = [f"{k + 1}. {e['started_at'][:16].replace('T', ' ')} ({e['verdict']})"
            for k, e in enumerate(trend)]
    runs[-1] = f"{runs[-1]}: this run"
    charts = []
    for unit, names in by_unit.items():
        traces = [{"type": "scatter", "mode": "lines+markers", "name": metric, "x": runs,
                   "y": [entry["metrics"].get(metric) for entry in trend]} for metric in names]
        layout = {"title": {"text": f"key metrics over the past runs ({unit})", "x": 0.01},
                  "height": 320, "margin": {"l": 70, "r": 30, "t": 60, "b": 90},
                  "xaxis": {"type": "category", "title": {"text": "run (oldest first)"}},
                  "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
                  "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"}}
        charts.append((unit, {"data": traces, "layout": layout}))
    return charts


@dataclass(frozen=True)
class _Drawn:
    """A probe's traces and y axes (by layout key); the time axis sits under ``bottom``, the lowest."""

    traces: list[dict[str, Any]]
    axes: dict[str, Any]
    bottom: str = "y"
    height: int = 340


def _dns(rows: Sequence[SampleRow], lab: bool) -> _Drawn:
    points: dict[str, list[Point]] = {}
    for row in rows:
        vantage = row.values.get("vantage_points") or {"answer (default vantage point)": row.values}
        for vp, values in vantage.items():
            answer = None if row.blind else (values.get("answer") or "no answer")
            points.setdefault(vp, []).append((row.t, answer))
    answers = sorted({a for series in points.values() for _, a in series if a is not None})
    traces = [_trace(vp, _steps(series), step=True) for vp, series in points.items()]
    return _Drawn(traces, {"yaxis": {"type": "category", "categoryorder": "array", "categoryarray": answers,
                                     "title": {"text": "region answered"}}})


def _http(rows: Sequence[SampleRow], lab: bool) -> _Drawn:
    success: list[Point] = []
    latency: list[Point] = []
    for row in rows:
        ok, failed = row.values.get("ok"), row.values.get("failed")
        served = ok + failed if isinstance(ok, int) and isinstance(failed, int) else 0
        success.append((row.t, None if row.blind or not served else 100.0 * ok / served))
        latency.append((row.t, None if row.blind else _median_latency_ms(row.values)))
    unit = "real ms" if lab else "ms"
    latency_name = ("median latency of served users (real ms on the lab's machine, not production latency)"
                    if lab else "median latency of served users (ms)")
    traces = [_trace("success rate (% of users served)", _thin(success)),
              {**_trace(latency_name, _thin(latency)), "yaxis": "y2"}]
    return _Drawn(traces, {
        "yaxis": {"domain": [0.42, 1.0], "range": [-5, 105], "title": {"text": "users served (%)"}},
        "yaxis2": {"domain": [0.0, 0.3], "rangemode": "tozero", "title": {"text": f"latency ({unit})"}},
    }, bottom="y2", height=420)


def _median_latency_ms(values: dict[str, Any]) -> float | None:
    outcomes = values.get("outcomes") or []
    by_user = values.get("by_user")
    # Weighted by the users each request stands for: the latency users saw, not that of the requests.
    if isinstance(by_user, str):
        indices = [OUTCOME_DIGITS.find(c) for c in by_user]
        if not all(0 <= k < len(outcomes) for k in indices):
            # A sample naming an outcome it does not hold is not read, rather than losing the page.
            return None
        picks = [outcomes[k] for k in indices]
    else:
        picks = outcomes
    latencies = [o["latency"] for o in picks
                 if isinstance(o, dict) and o.get("ok") and isinstance(o.get("latency"), int | float)]
    return 1000.0 * statistics.median(latencies) if latencies else None


def _replicas(rows: Sequence[SampleRow], lab: bool) -> _Drawn:
    zones = sorted({zone for row in rows for zone in row.values.get("by_zone") or {}})
    traces = [_trace(zone, _steps(_with_dips(rows, lambda v, z=zone: (v.get("by_zone") or {}).get(z, 0),
                                             lambda v, z=zone: (v.get("low_by_zone") or {}).get(z))),
                     step=True) for zone in zones]
    traces.append(_trace("ready, all zones", _steps(_with_dips(rows, lambda v: v.get("ready"),
                                                               lambda v: v.get("low"))), step=True))
    traces.append({**_trace("desired", _steps(_series(rows, lambda v: v.get("desired"))), step=True),
                   "line": {"shape": "hv", "dash": "dot"}})
    return _Drawn(traces, {"yaxis": {"rangemode": "tozero", "dtick": 1, "title": {"text": "ready pods"}}})


def _with_dips(rows: Sequence[SampleRow], ready: Callable[[dict[str, Any]], Any],
               low: Callable[[dict[str, Any]], Any]) -> list[Point]:
    """Ready counts with the dips between samples: the watches saw every change, and a sample carries
    the lowest count since the one before (``low``), drawn just before its own count."""
    points: list[Point] = []
    for row in rows:
        if row.blind:
            points.append((row.t, None))
            continue
        now, fewest = ready(row.values), low(row.values)
        if _is_number(fewest) and _is_number(now) and fewest < now:
            points.append((row.t, fewest))
        points.append((row.t, now))
    return points


def _replication(rows: Sequence[SampleRow], lab: bool) -> _Drawn:
    regions = sorted({r for row in rows for key in ("seen", "behind") for r in row.values.get(key) or {}})
    traces = [_trace(region, _thin(_series(rows, lambda v, r=region: _lag(v, r)))) for region in regions]
    return _Drawn(traces, {"yaxis": {"rangemode": "tozero", "title": {"text": "replication lag (s)"}}})


def _lag(values: dict[str, Any], region: str) -> float | None:
    """The lag a region showed in a sample: its latest canary's, or its oldest unseen one's wait if longer."""
    seen = (values.get("seen") or {}).get(region, [])
    lags = [canary[1] for canary in seen if isinstance(canary[1], int | float)]
    behind = (values.get("behind") or {}).get(region)
    candidates = [*lags[-1:], *([behind] if isinstance(behind, int | float) else [])]
    return max(candidates) if candidates else None


def _generic(rows: Sequence[SampleRow], lab: bool) -> _Drawn:
    keys = list(dict.fromkeys(k for row in rows for k, v in row.values.items() if _is_number(v)))
    traces = [_trace(key, _thin(_series(rows, lambda v, k=key: v.get(k) if _is_number(v.get(k)) else None)))
              for key in keys]
    if not traces:
        traces = [_trace("sample duration (s)", _thin([(row.t, row.duration) for row in rows]))]
    return _Drawn(traces, {"yaxis": {"title": {"text": "value"}}})


_BUILDERS: dict[str, Callable[[Sequence[SampleRow], bool], _Drawn]] = {
    "dns": _dns, "http": _http, "replicas": _replicas, "replication": _replication,
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _series(rows: Iterable[SampleRow], value: Callable[[dict[str, Any]], Any]) -> list[Point]:
    return [(row.t, None if row.blind else value(row.values)) for row in rows]


def _trace(name: str, points: Sequence[Point], *, step: bool = False) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "name": name, "x": [round(t, 3) for t, _ in points],
            "y": [_plain(v) for _, v in points],
            "line": {"shape": "hv" if step else "linear"}, "connectgaps": False}


def _plain(value: Any) -> Any:
    """A value as JSON draws it: floats to the millisecond, a non-finite one a gap (JSON has no NaN)."""
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return value


def _steps(points: Sequence[Point]) -> list[Point]:
    """A stepwise series with only the samples where its value changed, and the last one: drawn as
    steps, it is the same line."""
    kept = [p for k, p in enumerate(points) if k == 0 or p[1] != points[k - 1][1]]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


def _thin(points: Sequence[Point]) -> list[Point]:
    """A numeric series of at most :data:`MAX_BUCKETS` equal time buckets, each keeping its lowest and
    highest sample in time order (a bucket with none measured keeps a gap)."""
    if len(points) <= 2 * MAX_BUCKETS:
        return list(points)
    start, end = points[0][0], points[-1][0]
    width = (end - start) / MAX_BUCKETS or 1.0
    buckets: dict[int, list[Point]] = {}
    for point in points:
        buckets.setdefault(min(int((point[0] - start) / width), MAX_BUCKETS - 1), []).append(point)
    thinned: list[Point] = []
    for index in sorted(buckets):
        measured = [p for p in buckets[index] if p[1] is not None]
        if not measured:
            thinned.append((buckets[index][0][0], None))
            continue
        low, high = min(measured, key=lambda p: p[1]), max(measured, key=lambda p: p[1])
        thinned += sorted({low, high}, key=lambda p: p[0])
    return thinned


def _shape(span: Span) -> dict[str, Any]:
    if span.end is None:
        dash = "dash" if span.kind == "incident" else "solid"
        return {"type": "line", "xref": "x", "yref": "paper", "x0": span.start, "x1": span.start, "y0": 0,
                "y1": 1, "line": {"color": _LINE.get(span.kind, "black"), "width": 2, "dash": dash},
                "name": span.label}
    return {"type": "rect", "xref": "x", "yref": "paper", "x0": span.start, "x1": span.end, "y0": 0, "y1": 1,
            "fillcolor": _FILL.get(span.kind, "rgba(0, 0, 0, 0.1)"), "line": {"width": 0}, "layer": "below",
            "name": span.label}


def _label(span: Span) -> dict[str, Any]:
    return {"x": span.start, "xref": "x", "y": 0.0, "yref": "paper", "yanchor": "bottom", "xanchor": "left",
            "text": span.label, "showarrow": False, "font": {"size": 10}, "textangle": -90}
