"""The faults drill injects, each with its exact undo (README.md, "Faults").

A fault is found by the name a scenario's ``fault:`` gives, through the ``drill.faults`` entry
points (:mod:`drills.plugins`), so that a third party can add one without editing drill. The
protocol and the undo record are in :mod:`drills.faults.base`. The built-in ones:

================  ==================================================  ==============================
name              does                                                undo
================  ==================================================  ==============================
cordon-zone       marks a zone's schedulable nodes unschedulable      uncordons exactly those
drain-nodes       cordons, evicts pods like ``kubectl drain``         uncordons
kill-ingress      scales the region's ingress controller to 0         restores the recorded count
delete-pods       deletes the pods a selector (or a zone) picks       none: controllers recreate them
isolate           a deny-all ingress NetworkPolicy over those pods    deletes the policy
disable-endpoint  sets a Traffic Manager endpoint Disabled (ARM)      restores the recorded status
zone-down         powers off a zone's running scale-set instances     starts exactly those
region-failover   moves Cosmos DB's write region (planned, lossless)  restores the recorded priorities
region-outage     takes a Cosmos DB region offline (forced failover)  online again, priorities restored
================  ==================================================  ==============================

The Kubernetes faults share :mod:`drills.faults.kube`; the Azure ones call ARM through the SDKs via
:mod:`drills.armcalls`.
"""

from __future__ import annotations

from drills.faults.base import Fault, FaultFactory, Undo

__all__ = ["Fault", "FaultFactory", "Undo"]
