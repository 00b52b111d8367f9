"""The registry of faults, probes and reporters, found by name through entry points.

drill's own kinds and a third party's register the same way, in their distribution's metadata::

    [project.entry-points."drill.faults"]
    kill-ingress = "drills.faults.workloads:KillIngress"

The registered name is what a scenario names (``fault: kill-ingress``, ``kind: dns``) and what
``drill report --format`` takes. A plugin that cannot be imported, or whose class lacks what its
group requires (``Params`` for a fault; ``Spec``, ``SIGNALS``, ``METRICS`` for a probe; ``filename``
and ``render`` for a reporter), does not take the others down with it: it is left out of the
registry and listed in :attr:`Plugins.broken` with the reason, so that a scenario naming it is told
why the name is unavailable rather than that it does not exist.

Code that validates scenarios takes a :class:`Plugins` value (tests pass their own); everything else
asks :func:`installed`, or one group at a time through :func:`fault_types`, :func:`probe_types` and
:func:`reporter_types`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.faults.base import FaultFactory
    from probes.base import ProbeFactory
    from reports.base import ReporterFactory

FAULTS = "drill.faults"
PROBES = "drill.probes"
REPORTERS = "drill.reporters"


@dataclass(frozen=True)
class Plugins:
    """One view of the registry: every usable plugin by group and name, and the unusable ones.

    ``broken`` maps a registered name to why it cannot be used, per group (``{"drill.probes":
    {"dns": "cannot import probes.dns: No module named 'dnspython'"}}``).
    """

    faults: Mapping[str, FaultFactory] = field(default_factory=dict)
    probes: Mapping[str, ProbeFactory] = field(default_factory=dict)
    reporters: Mapping[str, ReporterFactory] = field(default_factory=dict)
    broken: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def why_unavailable(self, group: str, name: str) -> str | None:
        """Why a registered ``name`` of ``group`` cannot be used, or None if it is fine or unknown."""
        return self.broken.get(group, {}).get(name)


def installed() -> Plugins:
    """Every plugin installed in this Python environment (loaded once per process)."""
    faults, broken_faults = _load(FAULTS)
    probes, broken_probes = _load(PROBES)
    reporters, broken_reporters = _load(REPORTERS)
    return Plugins(faults=faults, probes=probes, reporters=reporters,
                   broken={FAULTS: broken_faults, PROBES: broken_probes, REPORTERS: broken_reporters})


def fault_types() -> dict[str, FaultFactory]:
    """Installed fault classes by registered name (what ``fault:`` names)."""
    return dict(installed().faults)


def probe_types() -> dict[str, ProbeFactory]:
    """Installed probe classes by registered name (what a probe's ``kind:`` names)."""
    return dict(installed().probes)


def reporter_types() -> dict[str, ReporterFactory]:
    """Installed reporter classes by registered name."""
    return dict(installed().reporters)


_REQUIRED: dict[str, tuple[str, ...]] = {
    FAULTS: ("Params",),
    PROBES: ("Spec", "SIGNALS", "METRICS"),
    REPORTERS: ("filename", "render"),
}


@functools.cache
def _load(group: str) -> tuple[dict[str, Any], dict[str, str]]:
    # Cached: importing every plugin module is the slow part, and the set cannot change while a
    # process runs. Sorted by name so that listings and the generated schema are deterministic.
    usable: dict[str, Any] = {}
    broken: dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:  # a third party's import-time error of any kind
            broken[ep.name] = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
            continue
        missing = [attr for attr in _REQUIRED[group] if not hasattr(cls, attr)]
        if missing:
            broken[ep.name] = f"{ep.value} lacks {', '.join(missing)}"
        elif not callable(cls):
            broken[ep.name] = f"{ep.value} is not a class"
        else:
            usable[ep.name] = cls
    return usable, broken
