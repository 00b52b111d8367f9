"""Run directories: where runs live, how they are named and found, and writing ``run.json``.

A run lives in ``<runs dir>/<run id>/``; the runs dir is ``--runs-dir``, else ``$DRILL_RUNS_DIR``,
else the user's state directory: ``$XDG_STATE_HOME/drill/runs``, else ``~/.local/state/drill/runs``.
It never depends on the working directory, so that ``drill recover`` run from anywhere finds what a
crashed run left (``drill run``, ``recover``, ``report`` all ask :func:`runs_dir`). A run id,
``20261122T031800Z-us-outage-3fa2``, sorts by start time, names the scenario and is unique thanks
to its four random hex digits. It is a safe file name on every file system whatever the scenario is
called: only ``A-Z a-z 0-9 . _ -``, at most :data:`RUN_ID_NAME_LENGTH` characters of the name.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from drills.errors import DrillError
from reports.record import RUN_FILE, RunRecord

RUNS_DIR_VARIABLE = "DRILL_RUNS_DIR"
DEFAULT_RUNS_DIR = "$XDG_STATE_HOME/drill/runs"
"""The default, as help texts state it (``~/.local/state`` when ``XDG_STATE_HOME`` is unset)."""
RUNS_DIR_HELP = f"where runs are kept (default: ${RUNS_DIR_VARIABLE}, else {DEFAULT_RUNS_DIR})"
"""The ``--runs-dir`` option's help, the same for every command."""
RUN_ID_NAME_LENGTH = 64
"""At most this much of the scenario's name goes into a run id, which stays far below the 255 bytes
a file name may have on any file system."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def runs_dir(option: Path | str | None = None) -> Path:
    """The runs dir, absolute: the option, else ``$DRILL_RUNS_DIR``, else the user's state directory
    (``$XDG_STATE_HOME/drill/runs``, else ``~/.local/state/drill/runs``)."""
    if option:
        return Path(option).expanduser().absolute()
    if chosen := os.environ.get(RUNS_DIR_VARIABLE):
        return Path(chosen).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME")
    # The XDG spec ignores a relative XDG_STATE_HOME: the runs dir must not follow the working directory.
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "drill" / "runs"


def chosen_runs_dir(option: Path | str | None = None) -> bool:
    """Whether the runs dir was chosen (``--runs-dir`` or ``$DRILL_RUNS_DIR``) rather than defaulted."""
    return bool(option or os.environ.get(RUNS_DIR_VARIABLE))


def new_run_dir(runs: Path, scenario: str) -> Path:
    """A fresh, not yet existing run directory for ``scenario`` (not created), named safely whatever
    the name holds."""
    name = _UNSAFE.sub("-", scenario)[:RUN_ID_NAME_LENGTH].strip("-.") or "scenario"
    while True:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = runs / f"{stamp}-{name}-{secrets.token_hex(2)}"
        if not path.exists():
            return path


def find_run(ref: str, runs: Path) -> Path:
    """The run directory ``ref`` names: a path to one, a run id in ``runs``, or a unique prefix of one."""
    given = Path(ref)
    if (given / RUN_FILE).is_file() or (given.is_dir() and (given / "events.jsonl").is_file()):
        return given
    if (runs / ref).is_dir():
        return runs / ref
    matches = sorted(p for p in runs.glob(f"{ref}*") if p.is_dir()) if runs.is_dir() and ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(p.name for p in matches[:5])
        raise DrillError(f"{ref!r} matches {len(matches)} runs in {runs}: {shown}; give more of the id")
    raise DrillError(f"no run {ref!r}: it is neither a run directory nor a run id in {runs}")


def write_record(run_dir: Path, record: RunRecord) -> Path:
    """Write ``run.json`` atomically (a reader never sees half a record)."""
    path = run_dir / RUN_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def iso(real: float) -> str:
    """A real Unix time as ISO-8601 UTC to the millisecond: ``2026-11-22T03:18:00.123Z``."""
    return datetime.fromtimestamp(real, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def versions() -> dict[str, str]:
    """The versions a run record states, so that a result can be tied to the code that produced it."""
    found = {"python": platform.python_version()}
    for name, dist in (("drill", "drill"), ("kubernetes", "kubernetes")):
        try:
            found[name] = version(dist)
        except PackageNotFoundError:
            found[name] = "unknown"
    return {"drill": found["drill"], "python": found["python"], "kubernetes": found["kubernetes"]}
