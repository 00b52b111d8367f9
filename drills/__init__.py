"""drill: multi-region failover drills.

A scenario names failures to inject; probes measure what users and data experience while they
act; the verdict compares the measurements with the design's promises. The public API is the
names in ``__all__``; every other module is internal::

    import asyncio
    from pathlib import Path
    from drills import Where, run_scenario

    result = asyncio.run(run_scenario(Path("scenarios/us-outage.yaml")))       # a private lab
    result = asyncio.run(run_scenario(Path("scenarios/us-outage.yaml"), Where.parse("staging")))
    print(result.verdict, result.exit_code, result.run_dir)

``discover`` is there for Chaos Toolkit: ``chaos discover --no-install drill`` (the distribution's
name) looks for it in the distribution's top-level package (:mod:`drills.chaostoolkit`).

Names are imported on first use, so that importing one part of drill (the lab's process imports
only ``drills.lab``) does not load the runner, the probes and the Kubernetes client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drills.chaostoolkit import discover
    from drills.environment import Environment, load_environment
    from drills.errors import DrillError
    from drills.runner import RunOptions, RunResult, Where, plan_scenario, run_scenario
    from drills.scenario import Scenario, load_scenario

__all__ = [
    "DrillError",
    "Environment",
    "RunOptions",
    "RunResult",
    "Scenario",
    "Where",
    "discover",
    "load_environment",
    "load_scenario",
    "plan_scenario",
    "run_scenario",
]

_HOMES = {
    "DrillError": "drills.errors",
    "Environment": "drills.environment",
    "RunOptions": "drills.runner",
    "RunResult": "drills.runner",
    "Scenario": "drills.scenario",
    "Where": "drills.runner",
    "discover": "drills.chaostoolkit",
    "load_environment": "drills.environment",
    "load_scenario": "drills.scenario",
    "plan_scenario": "drills.runner",
    "run_scenario": "drills.runner",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'drills' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
