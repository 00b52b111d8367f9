"""Probes: continuous measurements that turn samples into live signals and end-of-run metrics.

The kinds drill ships (``dns``, ``http``, ``replicas``, ``traffic-manager``) and a third party's
register under the entry point group ``drill.probes``; this package exports what every probe shares:
the :class:`Probe` protocol and its :class:`Sample`, :class:`Metric` and :class:`Marks`. A duration in
a probe's ``Spec`` is a :data:`drills.units.Duration`.
"""

from probes.base import JSONValue, Marks, Metric, Probe, ProbeFactory, Sample, SignalValue

__all__ = [
    "JSONValue",
    "Marks",
    "Metric",
    "Probe",
    "ProbeFactory",
    "Sample",
    "SignalValue",
]
