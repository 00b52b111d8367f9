"""What every reporter is: a pure function from a run's record (and its directory) to one file's text.

Reporters register under the entry point group ``drill.reporters``; :func:`reports.render` writes
each one's output into the run directory under its ``filename``. A reporter reads nothing but the
:class:`~reports.record.RunRecord` it is given and the files of the run directory (``samples.jsonl``,
through :mod:`reports.samples`), so re-rendering an old run gives the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from reports.record import BlindRecord, RunRecord


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


def describe_trial(index: int, count: int, phase: float | None, interval: float | None) -> str:
    """``trial 3 of 4 (phase 0.81 of the 30s probe cycle)``; without a phase, ``trial 3 of 4``."""
    if phase is None or interval is None:
        return f"trial {index} of {count}"
    return f"trial {index} of {count} (phase {phase:.2f} of the {_number(interval)}s probe cycle)"


def format_value(value: float | str | None, unit: str | None, error: float | None = None) -> str:
    """A metric's value as a person reads it: ``74.2 s ± 0.5 s``, ``99.5%``, ``3``, ``eu``,
    ``unmeasured``."""
    if value is None:
        return "unmeasured"
    if isinstance(value, str):
        return value
    text = _with_unit(value, unit)
    if error is not None:
        text += f" ± {_with_unit(error, unit)}"
    return text


def _with_unit(number: float, unit: str | None) -> str:
    if unit == "s":
        return f"{_number(number)} s"
    if unit == "%":
        return f"{_number(number)}%"
    if unit in (None, "", "count"):
        return _number(number)
    return f"{_number(number)} {unit}"


def _number(number: float) -> str:
    # At most 3 decimals, no trailing zeros: 74.2, 0.5, 3, 0.125.
    text = f"{number:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def describe_blind(blind: BlindRecord) -> str:
    """``01:02.0 to 01:30.5 (28 samples failed: connection refused)``: one blind interval of a probe."""
    count = blind["samples"]
    what = (f"{count} sample{'s' if count != 1 else ''} failed: {blind['reason']}" if count
            else blind["reason"])
    return f"{format_t(blind['start'])} to {format_t(blind['end'])} ({what})"
