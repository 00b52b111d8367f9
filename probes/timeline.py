"""The arithmetic of metrics over a run's samples, with the error each one carries.

A sample taken at ``t`` that took ``duration`` saw the world somewhere in ``[t, t + duration]``; a
change between two samples is known only to lie between them. So every instant derived here is an
:class:`Interval`, and a metric reports the interval's middle with half its width as the error: half
the period plus half the query latency when no sample was lost, more when samples were lost (a
timeout widens the gap), never less than what was actually seen.

The functions are pure and work on :class:`Point` sequences sorted by ``t``, so that every probe
kind shares them and tests give exact numbers:

- :func:`settled`: when a value entered a state and stayed there (failover, failback, restore);
- :func:`first_seen`: when a value first appeared (a failed region answered again after recovery);
- :func:`seen` / :func:`gone`: the set of values in a window, and those that stopped appearing
  (the failed regions, when the run does not say which they were);
- :func:`changes`: how often a value changed in a window (flaps);
- :func:`failure_runs` / :func:`longest_failure`: runs of consecutive failures (downtime);
- :func:`percentile` / :func:`percentile_error`: order statistics with a distribution-free interval;
- :func:`share` / :func:`share_error`: a proportion of samples in % with its time-resolution error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from probes.base import Metric

PERCENTILE_CONFIDENCE_Z = 1.96
"""The normal quantile of the percentile interval: 95 %, the usual level for an error bar."""


@dataclass(frozen=True, slots=True)
class Point:
    """One sample reduced to the value a metric looks at.

    ``value`` None means the sample saw nothing (a timeout, a probe not yet synced): no evidence
    either way, so it neither breaks nor makes a run of values.
    """

    t: float
    value: Hashable | None
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Interval:
    """An instant known to lie in ``[lo, hi]`` (scenario seconds)."""

    lo: float
    hi: float

    @property
    def middle(self) -> float:
        return (self.lo + self.hi) / 2

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def since(self, origin: float, *, note: str = "") -> Metric:
        """The time from ``origin`` to this instant, in seconds, with half the interval as error."""
        return Metric(value=self.middle - origin, unit="s", error=self.half_width, note=note)


@dataclass(frozen=True, slots=True)
class FailureRun:
    """Consecutive failed samples: the first and last failed ``t``, and the ``t`` of the good samples
    around them (None: failing since the first sample, or still failing at the end)."""

    first: float
    last: float
    before: float | None
    after: float | None
    samples: int

    def length(self, end: float) -> float:
        """From the first failed sample to the next good one (or to ``end`` if none came)."""
        return (self.after if self.after is not None else end) - self.first

    def error(self) -> float:
        """How far :meth:`length` may be from the truth: the failure began after the good sample
        before it and ended after the last failed one, each known only to the gap between samples."""
        start_slack = self.first - self.before if self.before is not None else 0.0
        end_slack = self.after - self.last if self.after is not None else 0.0
        return max(start_slack, end_slack)


def last_known(points: Sequence[Point], before: float) -> Point | None:
    """The last point with a value strictly before ``before``."""
    found = None
    for point in points:
        if point.t >= before:
            break
        if point.value is not None:
            found = point
    return found


def settled(points: Sequence[Point], accept: Callable[[Hashable], bool], *, start: float, end: float,
            silent_is_unknown: bool = True) -> Interval | None:
    """When the value came to satisfy ``accept`` for good, between ``start`` and ``end``.

    "For good": no later point before ``end`` has a value ``accept`` refuses. The instant lies
    between the last refused point (or ``start``, if none came after it) and the end of the first
    accepted point after it. If the value was already accepted at ``start`` and stayed so, the
    answer is ``start`` exactly. None if it never settled (refused at the last point seen, or no
    point seen at all before ``end``).

    Points without a value are no evidence either way when ``silent_is_unknown`` (a DNS query that
    timed out says nothing of the answer). Otherwise such a point shows that the value had not
    settled yet, though it cannot undo a settled value (a failed request was not served by the new
    region, and a later one failing does not mean users went back to the old one).
    """
    prior = last_known(points, start)
    window = [p for p in points if start <= p.t < end and p.value is not None]
    last_refused = None
    for index, point in enumerate(window):
        if not accept(point.value):
            last_refused = index
    if last_refused is None:
        if prior is not None and accept(prior.value):
            return Interval(start, start)
        if not window:
            return None
        first = window[0]
        lo = max(prior.t, start) if prior is not None else start
    elif last_refused == len(window) - 1:
        return None
    else:
        first = window[last_refused + 1]
        lo = window[last_refused].t
    if not silent_is_unknown:
        lo = max([lo, *(p.t for p in points if p.t < first.t)])
    return Interval(lo, first.t + first.duration)


def first_seen(points: Sequence[Point], accept: Callable[[Hashable], bool], *, start: float,
               end: float) -> Interval | None:
    """When a value ``accept`` holds for first appeared in ``[start, end)``: between the point with a
    value before it (or ``start``) and the end of that point. ``start`` exactly if the last value
    before ``start`` was already accepted; None if none appeared."""
    prior = last_known(points, start)
    if prior is not None and accept(prior.value):
        return Interval(start, start)
    lo = start
    for point in points:
        if point.t < start or point.value is None:
            continue
        if point.t >= end:
            break
        if accept(point.value):
            return Interval(lo, point.t + point.duration)
        lo = point.t
    return None


def latest(intervals: Sequence[Interval]) -> Interval:
    """The instant of the last of several events, each known to lie in its interval."""
    return Interval(max(i.lo for i in intervals), max(i.hi for i in intervals))


def seen(points: Sequence[Point], *, start: float, end: float) -> frozenset[Hashable]:
    """Every value seen in ``[start, end)``."""
    return frozenset(p.value for p in points if start <= p.t < end and p.value is not None)


FINAL_STRETCH_SHARE = 0.25
"""The share of a window's last points that :func:`gone` looks at."""

FINAL_STRETCH_MIN = 3
"""The fewest points :func:`gone` looks at: one could be a passing glitch."""


def gone(points: Sequence[Point], before: frozenset[Hashable], *, start: float,
         end: float) -> frozenset[Hashable]:
    """The values of ``before`` that no longer appear at the end of ``[start, end)``: absent from its
    final stretch (the last quarter of its points with a value, at least three). With routing that
    spreads answers at random (Weighted) a region still answered shows up in any stretch of a few
    points with high odds (1 - 2^-3 at even weights); one that stopped does not. Empty without points."""
    window = [p for p in points if start <= p.t < end and p.value is not None]
    if not window:
        return frozenset()
    size = max(FINAL_STRETCH_MIN, math.ceil(FINAL_STRETCH_SHARE * len(window)))
    final = {p.value for p in window[-size:]}
    return frozenset(v for v in before if v not in final)


def failed_values(points: Sequence[Point], given: frozenset[str], *, incident: float,
                  end: float) -> frozenset[Hashable]:
    """The values that mean "the failed region": ``given`` (the regions the faults targeted) when the
    run knows them; otherwise the values seen before ``incident`` that are :func:`gone` by the end of
    ``[incident, end)``, what a watcher who was not told would conclude."""
    if given:
        return frozenset(given)
    return gone(points, seen(points, start=-math.inf, end=incident), start=incident, end=end)


def changes(points: Sequence[Point], *, start: float, end: float) -> int:
    """How many times the value changed in ``[start, end)``, counting from the last value before
    ``start``; points without a value are skipped (a timeout between two equal answers is no change)."""
    previous = last_known(points, start)
    current = previous.value if previous is not None else None
    count = 0
    for point in points:
        if point.t < start or point.value is None:
            continue
        if point.t >= end:
            break
        if current is not None and point.value != current:
            count += 1
        current = point.value
    return count


def failure_runs(points: Sequence[Point], failed: Callable[[Hashable | None], bool]) -> list[FailureRun]:
    """Every run of consecutive points whose value ``failed`` holds for, in order."""
    runs: list[FailureRun] = []
    before: float | None = None
    first: float | None = None
    last = 0.0
    count = 0
    for point in points:
        if failed(point.value):
            if first is None:
                first, count = point.t, 0
            last = point.t
            count += 1
            continue
        if first is not None:
            runs.append(FailureRun(first=first, last=last, before=before, after=point.t, samples=count))
            first = None
        before = point.t
    if first is not None:
        runs.append(FailureRun(first=first, last=last, before=before, after=None, samples=count))
    return runs


def longest_failure(points: Sequence[Point], failed: Callable[[Hashable | None], bool], *,
                    end: float) -> FailureRun | None:
    """The longest run of failures (the earliest of equally long ones); None if nothing failed."""
    runs = failure_runs(points, failed)
    if not runs:
        return None
    return max(runs, key=lambda run: (run.length(end), -run.first))


def share(points: Sequence[Point], accept: Callable[[Hashable | None], bool]) -> float | None:
    """The percentage (0-100) of points ``accept`` holds for; None without points."""
    if not points:
        return None
    return 100.0 * sum(1 for p in points if accept(p.value)) / len(points)


def share_error(points: Sequence[Point], accept: Callable[[Hashable | None], bool]) -> float | None:
    """The time-resolution error of :func:`share`, in percentage points.

    Each sample stands for one period; where the outcome changes between two samples the true
    boundary lies somewhere between them, so each change may misplace up to half a sample's worth
    of time on average: ``100 * changes / (2 * n)``. Zero when the outcome never changed.
    """
    if not points:
        return None
    flips = sum(1 for a, b in itertools.pairwise(points) if accept(a.value) != accept(b.value))
    return 100.0 * flips / (2 * len(points))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolating linearly between order statistics as numpy's
    default does; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def percentile_error(values: Sequence[float], q: float) -> float | None:
    """Half-width (the larger side) of a distribution-free 95 % interval for the ``q``-th percentile.

    The number of values below the true percentile is binomial ``(n, q)``; its normal approximation
    gives the ranks ``n q -+ z sqrt(n q (1 - q))`` (plus one on the upper side), whose order statistics
    bound the percentile whatever the distribution. Few samples give a wide interval, as they should.
    """
    value = percentile(values, q)
    if value is None:
        return None
    ordered = sorted(values)
    n = len(ordered)
    p = q / 100
    spread = PERCENTILE_CONFIDENCE_Z * math.sqrt(n * p * (1 - p))
    low_rank = max(1, math.floor(n * p - spread))
    high_rank = min(n, math.ceil(1 + n * p + spread))
    return max(value - ordered[low_rank - 1], ordered[high_rank - 1] - value)
