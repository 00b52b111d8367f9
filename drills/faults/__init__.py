"""The faults drill injects, each with its exact undo (design.md, "Faults").

A fault is found by the name a scenario's ``fault:`` gives, through the ``drill.faults`` entry
points, so that a third party can add one without editing drill. The built-in ones:

=============  ==================================================  ==============================
name           does                                                undo
=============  ==================================================  ==============================
cordon-zone    marks a zone's schedulable nodes unschedulable      uncordons exactly those
drain-nodes    cordons, evicts pods like ``kubectl drain``         uncordons
kill-ingress   scales the region's ingress controller to 0         restores the recorded count
delete-pods    deletes the pods a selector picks                   none: controllers recreate them
isolate        a deny-all ingress NetworkPolicy over those pods    deletes the policy
=============  ==================================================  ==============================
"""

from __future__ import annotations

from importlib.metadata import entry_points

from drills.faults.base import Fault, FaultFactory, Undo

__all__ = ["Fault", "FaultFactory", "Undo", "fault_class", "fault_names"]

GROUP = "drill.faults"


def fault_names() -> list[str]:
    """The names of every installed fault, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def fault_class(name: str) -> FaultFactory:
    """The fault registered as ``name``. Raises LookupError naming the installed ones."""
    for ep in entry_points(group=GROUP, name=name):
        factory: FaultFactory = ep.load()
        return factory
    raise LookupError(f"no fault named {name!r} is installed (faults: {', '.join(fault_names())})")
