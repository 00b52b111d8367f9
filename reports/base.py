"""What every reporter is: a pure function from a run's record (and its directory) to one file's text.

Reporters register under the entry point group ``drill.reporters``; :func:`reports.render` writes
each one's output into the run directory under its ``filename``. A reporter reads nothing but the
:class:`~reports.record.RunRecord` it is given and the files of the run directory (``samples.jsonl``,
through :mod:`reports.samples`), so re-rendering an old run gives the same file.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from reports.record import BlindRecord, ExpectationRecord, RunRecord


@runtime_checkable
class Reporter(Protocol):
    """Renders a finished run as the text of one file.

    Called once the verdict is in and ``run.json`` is written (after the rollback), and again by
    ``drill report`` on an old run. An exception costs only this reporter's file: the others are still
    written, and ``reporters.log`` in the run directory keeps its traceback.
    """

    filename: ClassVar[str]
    """The file's name inside the run directory (``report.md``, ``junit.xml``)."""

    def render(self, run: RunRecord, run_dir: Path) -> str:
        """The file's whole text. Pure: the same record and run directory give the same text. ``run_dir``
        holds ``run.json`` and the files the run wrote beside it (``samples.jsonl``, ``events.jsonl``);
        read them, write nothing there (drill writes the returned text to ``filename``)."""
        ...


class ReporterFactory(Protocol):
    """What the ``drill.reporters`` entry point names: a class built without arguments, once per
    rendering."""

    filename: ClassVar[str]

    def __call__(self) -> Reporter: ...


def format_t(t: float | None) -> str:
    """Scenario seconds as ``mm:ss.s`` (minutes past 59 keep counting: ``75:00.0``); ``-`` for None."""
    if t is None:
        return "-"
    tenths = round(t * 10)
    sign = "-" if tenths < 0 else ""
    minutes, rest = divmod(abs(tenths), 600)
    return f"{sign}{minutes:02d}:{rest / 10:04.1f}"


def describe_time_scale(run: RunRecord) -> str:
    """The run's time base, said once: ``real time``, or ``lab time (30x): every time and duration ...``."""
    scale = run["time_scale"]
    if scale == 1:
        return "real time"
    clock = "lab time" if run["environment"]["lab"] else "the environment's clock"
    # A network round trip is measured, not simulated: it is never scaled.
    return (f"{clock} ({scale:g}x): every time and duration in this report is real-world equivalent; "
            "latencies are real")


def format_instant(at: str) -> str:
    """``2026-11-22 03:18:00 UTC`` from the record's ISO-8601 UTC; as written when it does not parse."""
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        return at
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_duration(run: RunRecord) -> str:
    """The run's length in scenario time (its last event's ``t``), and beside it, on a faster clock, the
    wall-clock time it took."""
    try:
        wall = (datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"]))
    except ValueError:
        wall = None
    seconds = wall.total_seconds() if wall is not None else None
    ends = [e["t"] for e in run["timeline"]]
    scenario = max(ends) if ends else (seconds * run["time_scale"] if seconds is not None else None)
    text = format_t(scenario)
    if run["time_scale"] != 1 and seconds is not None:
        # Tenths of a second: all a person needs of the wall-clock span.
        text += f" (wall clock: {format_value(round(seconds, 1), 's')})"
    return text


def describe_trial(index: int, count: int, phase: float | None, interval: float | None) -> str:
    """``trial 3 of 4 (phase 0.81 of the 30s probe cycle)``; without a phase, ``trial 3 of 4``."""
    if phase is None or interval is None:
        return f"trial {index} of {count}"
    return f"trial {index} of {count} (phase {phase:.2f} of the {_number(interval)}s probe cycle)"


def format_value(value: float | str | bool | None, unit: str | None, error: float | None = None, *,
                 show_error: bool = True) -> str:
    """A metric's or a signal's value as a person reads it: ``67.9 s ± 0.5 s``, ``1.7 ms``, ``99.5%``,
    ``3``, ``eu``, ``yes``, ``unmeasured``.

    With an error, the error is shown to one significant digit (two when it starts with 1) and the value
    to the same decimal place (never past the value's sixth significant digit); an error of 0 (an exact
    value, a count) or one that rounds to 0 is not shown, a negative one is shown as its size and a
    non-finite one is no error. Without one, the value keeps four significant digits (all of its
    integer digits). Seconds that round to under one are shown in milliseconds. NaN is ``unmeasured``,
    infinity ``∞``. ``show_error=False`` rounds to the error without showing it (a metric's spread over
    trials, whose values share its error).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unmeasured"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if math.isinf(value):
        return _with_unit("∞" if value > 0 else "-∞", unit)
    # A spread is a size whatever its sign; a non-finite one says nothing about the value.
    spread = abs(error) if error is not None and math.isfinite(error) and error else None
    number = Decimal(repr(value))
    if unit == "s" and value != 0 and max(abs(value), spread or 0.0) < 1:
        # Milliseconds, unless rounding carries the value to a whole second (0.99996 s is not 1000 ms).
        in_ms = _rounded(number * 1000, Decimal(repr(spread)) * 1000 if spread else None, "ms", show_error)
        if abs(Decimal(in_ms.split()[0])) < 1000:
            return in_ms
    return _rounded(number, Decimal(repr(spread)) if spread else None, unit, show_error)


def _rounded(number: Decimal, spread: Decimal | None, unit: str | None, show_error: bool) -> str:
    """``number`` (± ``spread``) in ``unit``, rounded as :func:`format_value` says."""
    if spread is None:
        return _with_unit(_digits(number, _significant_place(number)), unit)
    # However small the error, decimals stop at the value's sixth significant digit.
    place = max(_error_place(spread), min((number.adjusted() if number else 0) - 5, -1))
    text = _with_unit(_digits(number, place, keep_zeros=True), unit)
    shown_spread = _digits(spread, place, keep_zeros=True)
    if not show_error or shown_spread.strip("0.") == "":
        return text
    return f"{text} ± {_with_unit(shown_spread, unit)}"


def _error_place(error: Decimal) -> int:
    """The decimal place an error is shown to: its first significant digit, or its second when the first
    is a 1 (rounding 0.14 to 0.1 would misstate it by 30%)."""
    leading = error.adjusted()
    return leading - 1 if error.scaleb(-leading) < 2 else leading


def _significant_place(number: Decimal) -> int:
    # Four significant digits, but never rounding away an integer digit: 217.8, 0.003142, 1235.
    return min(number.adjusted() - 3, 0) if number else 0


def _digits(number: Decimal, place: int, *, keep_zeros: bool = False) -> str:
    """``number`` rounded half up at the decimal ``place`` (-1: tenths), as plain digits. Trailing zeros
    are kept only when they state a precision (``keep_zeros``)."""
    # Enough precision for every digit down to ``place`` (the default 28 fails on 1e30 ± 0.5).
    digits = Context(prec=max(28, number.adjusted() - place + 2))
    text = f"{number.quantize(Decimal(1).scaleb(place), rounding=ROUND_HALF_UP, context=digits):f}"
    if not keep_zeros and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.removeprefix("-") if text.strip("-0.") == "" else text


def _with_unit(number: str, unit: str | None) -> str:
    if unit == "%":
        return f"{number}%"
    if unit in (None, "", "count"):
        return number
    return f"{number} {unit}"


def _number(number: float) -> str:
    # A setting as written in a sentence (the 30s probe cycle): at most 3 decimals, no trailing zeros.
    text = f"{number:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_worse_by(worse_by: float | None) -> str:
    """How much worse than its baseline a regression is: ``+39%``; with a baseline of 0 there is no
    ratio (``None``), and the regression is that the metric left 0 by more than its error."""
    if worse_by is None:
        return "worse than 0 beyond its error"
    return f"+{worse_by * 100:.0f}%"


def expectation_result(expectation: ExpectationRecord) -> str:
    """An expectation's result, the same in every report: ``pass``, ``FAIL``, ``FAIL (design)`` (measured
    within its bound, but the design can break it), ``inconclusive (pass)`` (its error straddles the
    bound and the scenario counts that as kept) or ``INCONCLUSIVE``. Capitals: it did not hold."""
    outcome = expectation.get("outcome")
    if outcome == "inconclusive":
        return "inconclusive (pass)" if expectation["passed"] else "INCONCLUSIVE"
    if expectation["passed"]:
        return "pass"
    return "FAIL (design)" if outcome == "passed" else "FAIL"


def metric_error(run: RunRecord, metric: str) -> float | None:
    """The error of ``metric`` in ``run`` (None when the run has no such metric): what its value, and
    any regression of it, is rounded to."""
    found = run["metrics"].get(metric)
    return found["error"] if found is not None else None


def format_threshold(threshold: float) -> str:
    """A regression threshold (a fraction) as a percentage: ``20%``, ``12.5%``."""
    return format_value(threshold * 100, "%")


def describe_baseline(runs: int) -> str:
    """The past runs a baseline is the median of: ``the last 3 passed runs``, ``the last passed run``;
    ``no earlier passed run`` for none."""
    if runs == 0:
        return "no earlier passed run"
    return "the last passed run" if runs == 1 else f"the last {runs} passed runs"


def describe_blind(blind: BlindRecord) -> str:
    """``01:02.0 to 01:30.5 (28 samples failed: connection refused)``: one blind interval of a probe."""
    count = blind["samples"]
    what = (f"{count} sample{'s' if count != 1 else ''} failed: {blind['reason']}" if count
            else blind["reason"])
    return f"{format_t(blind['start'])} to {format_t(blind['end'])} ({what})"
