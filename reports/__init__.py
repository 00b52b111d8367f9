"""Renderers of a finished run: each turns a run directory's ``run.json`` into one file beside it.

::

    from reports import render
    written = render(Path("drill-runs/20261122T031800Z-us-outage-3fa2"))   # every installed reporter
    render(run_dir, ["junit"])                                               # only some

Reporters register under the entry point group ``drill.reporters`` (``markdown`` -> ``report.md``,
``junit`` -> ``junit.xml``, ``html`` -> ``report.html``). This package reads only the run directory: it
imports nothing of the runner, the faults, the probes or the lab.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from drills.errors import DrillError
from reports.base import Reporter, ReporterFactory
from reports.record import RunRecord, load_run

__all__ = ["LOG_FILE", "Reporter", "ReporterFactory", "ReportersFailed", "RunRecord", "load_run", "render"]

GROUP = "drill.reporters"
LOG_FILE = "reporters.log"
"""Where, in the run directory, the full traceback of each reporter that failed is kept."""


class ReportersFailed(DrillError):
    """Some reporters failed (one line each in ``failures``); the others wrote ``written``."""

    def __init__(self, failures: Sequence[str], written: Sequence[Path]) -> None:
        super().__init__("\n".join(failures))
        self.failures = list(failures)
        self.written = list(written)


def render(run_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write the files of the reporters ``names`` (None: every installed one) into ``run_dir``.

    Returns the files written, in the order of ``names`` (by name when None). Raises
    :class:`~drills.errors.DrillError` for an unknown reporter name and
    :class:`~drills.errors.SourceErrors` for a missing or malformed ``run.json``. A reporter that
    cannot be loaded or raises (a third party's bug) does not stop the others: once they have all
    run, :class:`ReportersFailed` says which failed and why, in a line each, and holds what the
    others wrote; each one's traceback is appended to :data:`LOG_FILE` in ``run_dir``.
    """
    run = load_run(run_dir)
    available, broken = _reporters()
    wanted = sorted({*available, *broken}) if names is None else list(names)
    unknown = [n for n in wanted if n not in available and n not in broken]
    if unknown:
        raise DrillError(f"unknown reporter {', '.join(repr(n) for n in unknown)} "
                         f"(installed: {', '.join(sorted(available)) or 'none'})")
    written: list[Path] = []
    failures: list[str] = []
    log = Path(run_dir) / LOG_FILE
    for name in wanted:
        try:
            if name in broken:
                raise broken[name]
            reporter = available[name]()
            text = reporter.render(run, Path(run_dir))
            path = Path(run_dir) / reporter.filename
            path.write_text(text, encoding="utf-8")
        except Exception as exc:  # a third party's reporter may fail in any way: the others still run
            failures.append(f"reporter {name!r} failed: {type(exc).__name__}: {exc} (traceback in {log})")
            with log.open("a", encoding="utf-8") as file:
                file.write(f"reporter {name!r} failed:\n{''.join(traceback.format_exception(exc))}\n")
            continue
        written.append(path)
    if failures:
        raise ReportersFailed(failures, written)
    return written


def _reporters() -> tuple[dict[str, ReporterFactory], dict[str, Exception]]:
    """The reporters that load, and why each other one does not."""
    # Not drills.plugins: that module also names the probe and fault types, which this package must
    # not reach even for typing (the layer contract in pyproject.toml counts such imports too).
    loaded: dict[str, ReporterFactory] = {}
    broken: dict[str, Exception] = {}
    for ep in entry_points(group=GROUP):
        try:
            loaded[ep.name] = ep.load()
        except Exception as exc:  # an import-time error of any kind: that reporter alone is out
            broken[ep.name] = exc
    return loaded, broken
