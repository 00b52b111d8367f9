"""drill: multi-region failover drills.

A scenario names failures to inject; probes measure what users and data experience while they
act; the verdict compares the measurements with the design's promises.
"""

__all__: list[str] = []
