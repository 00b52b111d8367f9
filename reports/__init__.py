"""Renderers of a finished run: each turns a run directory's ``run.json`` into one file beside it.

::

    from reports import render
    written = render(Path("drill-runs/20261122T031800Z-us-outage-3fa2"))   # every installed reporter
    render(run_dir, ["junit"])                                               # only some

Reporters register under the entry point group ``drill.reporters`` (``markdown`` -> ``report.md``,
``junit`` -> ``junit.xml``). This package reads only the run directory: it imports nothing of the
runner, the faults, the probes or the lab.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from drills.errors import DrillError
from reports.base import Reporter, ReporterFactory
from reports.record import RunRecord, load_run

__all__ = ["Reporter", "ReporterFactory", "RunRecord", "load_run", "render"]

GROUP = "drill.reporters"


def render(run_dir: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write the files of the reporters ``names`` (None: every installed one) into ``run_dir``.

    Returns the files written, in the order of ``names`` (by name when None). Raises
    :class:`~drills.errors.DrillError` for an unknown reporter name and
    :class:`~drills.errors.SourceErrors` for a missing or malformed ``run.json``.
    """
    run = load_run(run_dir)
    available = _reporters()
    wanted = sorted(available) if names is None else list(names)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise DrillError(f"unknown reporter {', '.join(repr(n) for n in unknown)} "
                         f"(installed: {', '.join(sorted(available)) or 'none'})")
    written = []
    for name in wanted:
        reporter = available[name]()
        path = Path(run_dir) / reporter.filename
        path.write_text(reporter.render(run), encoding="utf-8")
        written.append(path)
    return written


def _reporters() -> dict[str, ReporterFactory]:
    # Not drills.plugins: that module also names the probe and fault types, which this package must
    # not reach even for typing (the layer contract in pyproject.toml counts such imports too).
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}
