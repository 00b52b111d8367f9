"""drill as a Chaos Toolkit extension: ``drill export SCENARIO --to chaostoolkit`` writes an experiment
(:mod:`drills.chaostoolkit.experiment`) whose activities are this package's Python providers.

* :mod:`drills.chaostoolkit.actions`: ``apply_fault`` and ``revert_fault``, drill's faults with drill's
  write-ahead journal (``drill recover`` finishes a crashed experiment);
* :mod:`drills.chaostoolkit.probes`: ``signal`` (a probe's live signal now), ``holds`` (a tolerance),
  ``wait`` and ``wait_until``.

:func:`discover` follows Chaos Toolkit's extension convention, so that ``chaos discover --no-install
drills.chaostoolkit`` lists them. Chaos Toolkit itself is needed only to run experiments, not to export
them: it is imported by :func:`discover` alone.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["discover"]

EXTENSION = "drill"
"""The extension's name in a discovery."""


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What this extension offers Chaos Toolkit: its actions and probes (``discover_system`` is part of
    the convention; drill discovers no system)."""
    from chaoslib.discovery import discover_actions, discover_probes, initialize_discovery_result

    try:
        installed = version("drill")
    except PackageNotFoundError:
        installed = "unknown"
    discovery: dict[str, Any] = dict(initialize_discovery_result(EXTENSION, installed, "drill"))
    discovery["activities"].extend(discover_actions("drills.chaostoolkit.actions"))
    discovery["activities"].extend(discover_probes("drills.chaostoolkit.probes"))
    return discovery
