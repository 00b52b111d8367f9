"""Live values as a person reads them: signals with units, trends, guards' progress, the incident timer.

Both views of a running drill (the terminal panel and the plain log) show the same words, built here:
``error_rate 45.5%``, ``answer eu``, ``ready 2 (us-1:2 us-2:2 us-3:0)``, never a raw Python value.
A signal's unit follows from its name (probes give rates in %, durations in scenario seconds, counts
as numbers); numbers go through :func:`reports.base.format_value` like every number drill shows.
Each readout is one unbreakable unit of text: a view may wrap between readouts, never inside one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drills.runner.livestate import Deadline, GuardLine, ProbeLine
from probes.base import SignalValue
from reports.base import format_value

UNKNOWN = "-"
"""A signal not known now (no sample yet, or the latest measured nothing)."""

_PERCENT = frozenset({"error_rate", "ok"})
_SECONDS = frozenset({"lag"})
_SPARKS = "▁▂▃▄▅▆▇█"
_NUMERIC_TREND = ("error_rate", "ready", "lag")
"""Which signal a probe's sparkline follows, by preference: the one a failover shows in."""
_STATE_TREND = ("answer", "status", "write_region", "region")
"""Which categorical signal a probe's state strip follows, by preference."""


def signal_unit(name: str) -> str | None:
    """The unit of signal ``name`` (``error_rate`` and ``ok`` in %, ``lag.<region>`` in s)."""
    family = name.split(".", 1)[0]
    if family in _PERCENT:
        return "%"
    if family in _SECONDS:
        return "s"
    return None


def format_signal(value: SignalValue, unit: str | None) -> str:
    """One live value: ``45.5%``, ``1.7 ms``, ``12 s``, ``3``, ``eu``; ``-`` when unknown."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value or UNKNOWN
    if unit == "s" and abs(value) < 1:
        return format_value(round(value * 1000, 1), "ms")
    if unit in ("s", "%"):
        return format_value(round(value, 1), unit)
    return format_value(round(value, 1), None)


def readouts(signals: Mapping[str, SignalValue]) -> list[str]:
    """A probe's signals as readouts, in the probe's order: a signal and its per-key breakdown
    (``ready.<zone>``, ``answer.<vantage point>``) make one readout; ``steady`` a word of its own."""
    return [" ".join(parts) for parts in readout_parts(signals)]


def readout_parts(signals: Mapping[str, SignalValue]) -> list[list[str]]:
    """:func:`readouts`, each split where a view too narrow for it whole may wrap it: between the keys
    of its breakdown (``["answer eu", "(paris:eu", "nyc:us)"]``); each part is never broken."""
    families: dict[str, tuple[SignalValue, dict[str, SignalValue]]] = {}
    for name, value in signals.items():
        family, _, key = name.partition(".")
        overall, keyed = families.get(family, (None, {}))
        if key:
            keyed[key] = value
        else:
            overall = value
        families[family] = (overall, keyed)
    out: list[list[str]] = []
    for family, (overall, keyed) in families.items():
        if family == "steady":
            continue
        unit = signal_unit(family)
        parts = [f"{key}:{format_signal(value, unit)}" for key, value in keyed.items()]
        if overall is not None or not keyed:
            head = f"{family} {format_signal(overall, unit)}"
            if parts:
                parts[0] = f"({parts[0]}"
                parts[-1] = f"{parts[-1]})"
            parts.insert(0, head)
        else:
            parts[0] = f"{family} {parts[0]}"
        out.append(parts)
    if "steady" in signals:
        out.append(["steady" if signals["steady"] is True else "not steady"])
    return out


def probe_counts(probe: ProbeLine) -> str:
    """``12 samples``, with the lost and skipped ones when there are any."""
    counts = [f"{probe.samples} samples"]
    counts += [f"{n} {what}" for n, what in ((probe.lost, "lost"), (probe.skipped, "skipped")) if n]
    return ", ".join(counts)


def trends(history: Sequence[Mapping[str, SignalValue]]) -> list[tuple[str, str]]:
    """The recent samples of a probe's telling signal, as ``(label, strip)`` pairs: a sparkline of a
    number (``error_rate``, ``ready``, the worst ``lag``), or a strip of a name's first letter per
    sample, one per vantage point (``answer.paris``: ``uuuuueee``); ``·`` where it was unknown."""
    if not history:
        return []
    names = list(dict.fromkeys(name for signals in history for name in signals))
    for family in _NUMERIC_TREND:
        if family in names:
            return [(family, _sparkline([_number(s.get(family)) for s in history], signal_unit(family)))]
        keyed = [n for n in names if n.startswith(f"{family}.")]
        if keyed:
            worst = [max((v for n in keyed if (v := _number(s.get(n))) is not None), default=None)
                     for s in history]
            return [(family, _sparkline(worst, signal_unit(family)))]
    for family in _STATE_TREND:
        keyed = [n for n in names if n.startswith(f"{family}.")]
        chosen = keyed or ([family] if family in names else [])
        if chosen:
            return [(name, "".join(_letter(s.get(name)) for s in history)) for name in chosen]
    return []


def guard_progress(guard: GuardLine) -> str:
    """How close a guard is to tripping: ``held 01:20 of 08:00 (now 86.7%)``, ``ok (now 0%)``,
    ``TRIPPED at 05:12: ...``."""
    now = format_signal(guard.value, guard.unit)
    if guard.tripped_t is not None:
        return f"TRIPPED at {clock(guard.tripped_t)}: {guard.reason}"
    if guard.held_s is not None:
        return f"held {clock(guard.held_s)} of {clock(guard.for_seconds)} (now {now})"
    return f"ok (now {now})"


def incident_timer(deadline: Deadline, incident_t: float | None, now: float,
                   end_t: float | None = None) -> tuple[str, bool]:
    """``incident +01:07 of 03:00 (dns.failover_time)`` and whether the bound is past."""
    if incident_t is None:
        return f"incident not started; {deadline.metric} within {clock(deadline.seconds)}", False
    elapsed = (end_t if end_t is not None else now) - incident_t
    past = elapsed > deadline.seconds
    relation = "PAST" if past else "of"
    return f"incident +{clock(elapsed)} {relation} {clock(deadline.seconds)} ({deadline.metric})", past


def time_base(time_scale: float) -> str:
    """What a lab drill says once, at the top, about its times."""
    return f"lab time ({format_value(time_scale, None)}x): times are real-world equivalent"


def clock(seconds: float) -> str:
    """A scenario duration as ``mm:ss`` (``01:07``; minutes keep counting past 59)."""
    whole = max(0, round(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _number(value: SignalValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _sparkline(values: Sequence[float | None], unit: str | None) -> str:
    known = [v for v in values if v is not None]
    top = 100.0 if unit == "%" else max(known, default=0.0)
    out = []
    for v in values:
        if v is None:
            out.append("·")
        else:
            level = 0 if top <= 0 else round(max(0.0, min(v, top)) / top * (len(_SPARKS) - 1))
            out.append(_SPARKS[level])
    return "".join(out)


def _letter(value: SignalValue) -> str:
    if not isinstance(value, str) or not value:
        return "·"
    return value[0]
