"""The lab's ground truth: every change it made or saw, timestamped in real and lab time.

One JSON object per line, written and flushed at the instant of the change, so that a probe's
sample can be judged against it to well within 10 ms of real time::

    {"real": 1795317720.123456, "lab": 341.7, "event": "endpoint_status", "endpoint": "us",
     "status": "Degraded", "previous": "Online"}

``real`` is Unix time in seconds; ``lab`` is lab seconds since the lab started (the clock in
:mod:`drills.lab.clock`). Events: ``lab_started``, ``endpoint_status``, ``dns_answer``, ``node``,
``replicas``, ``load`` (a region's offered load, capacity, Ready app pods and failing share:
:mod:`drills.lab.load`), the Cosmos DB account's ``cosmos_write``, ``cosmos_apply``,
``cosmos_write_region``, ``cosmos_region`` and ``cosmos_lost`` (:mod:`drills.lab.cosmos.account`),

:mod:`drills.lab.load`), ``endpoint_enabled`` and ``endpoint_routing`` (an endpoint's settings changed,
:mod:`drills.lab.trafficmanager`), ``instance_power`` (a scale set VM's power state,
:mod:`drills.lab.scalesets`), ``lab_stopped``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from drills.lab.clock import LabClock


class GroundTruth:
    """An append-only JSON-lines log of the lab's changes."""

    def __init__(self, path: Path, clock: LabClock) -> None:
        self.path = path
        self._clock = clock
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def record(self, event: str, **fields: Any) -> None:
        """Write one change now; the line reaches the OS before this returns."""
        line = {"real": round(self._clock.real(), 6), "lab": round(self._clock.now(), 4), "event": event,
                **fields}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> list[dict[str, Any]]:
    """Every line of a ground-truth log, oldest first."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
