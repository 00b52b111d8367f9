"""``samples.jsonl``, as reporters read it: every probe's samples, from the run directory alone.

The runner streams one JSON line per completed sample (``{"probe", "t", "real", "duration",
"values"}``, ``t`` in scenario seconds); lines arrive in completion order, not ``t`` order, and the
last one may be cut short by a crash. This reader is the reports' side of that file: it imports
nothing of the runner or the probes (the layer contract), and forgives a torn last line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLES_FILE = "samples.jsonl"

BLIND = "blind"
"""The key of a sample's values that says the probe measured nothing in it, and why."""

OUTCOME_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""The characters of an http sample's ``by_user``, one per user: the index of the user's outcome in the
sample's ``outcomes`` (``0`` is 0, ``Z`` is 61)."""


@dataclass(frozen=True)
class SampleRow:
    """One sample of one probe: taken at ``t`` scenario seconds, ``values`` as the probe gave them."""

    probe: str
    t: float
    duration: float
    values: dict[str, Any]

    @property
    def blind(self) -> str | None:
        """Why the probe measured nothing in this sample; None when it measured."""
        why = self.values.get(BLIND)
        return None if why is None else str(why)


def read_samples(run_dir: Path) -> dict[str, list[SampleRow]]:
    """Every probe's samples in ``run_dir``, each probe's sorted by ``t``; empty without the file."""
    path = Path(run_dir) / SAMPLES_FILE
    by_probe: dict[str, list[SampleRow]] = {}
    if not path.exists():
        return by_probe
    with path.open(encoding="utf-8") as file:
        for line in file:
            row = _parse(line)
            if row is not None:
                by_probe.setdefault(row.probe, []).append(row)
    for rows in by_probe.values():
        rows.sort(key=lambda row: row.t)
    return by_probe


def _parse(line: str) -> SampleRow | None:
    if not line.strip():
        return None
    try:
        data = json.loads(line)
        return SampleRow(probe=str(data["probe"]), t=float(data["t"]),
                         duration=float(data.get("duration", 0.0)), values=dict(data.get("values") or {}))
    except (ValueError, KeyError, TypeError):
        # The line a crash cut short: the samples before it are whole.
        return None
