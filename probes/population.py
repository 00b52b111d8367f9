"""The simulated users of the http probe: who they are, and what each of them saw.

A population is N users, each at a vantage point (assigned in turn: user ``i`` at vantage point
``i mod V``) and with a phase of the resolver TTL, drawn once from a seed. Phases are stratified:
user ``i`` of ``N`` draws from ``[k/N, (k+1)/N)`` for the ``k`` of a seeded shuffle, so that every
stretch of the TTL holds its share of users and a percentile over users is off by at most one user's
worth of TTL (``TTL / N``) from the same percentile over every possible phase, rather than by the
random gaps of N independent draws.

A user's phase says where its cache was in the TTL when the probe started: at the first answer the
probe gets, the user's cache holds that answer for ``phase * TTL`` more seconds (it was fetched
``(1 - phase) * TTL`` before); from then on the user asks again at its first request (a sample) at or
after the expiry, and keeps the new answer for its TTL. So with a period dividing the TTL, user ``i``
refreshes at the first sample at or after ``t0 + phase_i * TTL``, then every TTL.

A sample records each user's outcome compactly (the module of :mod:`probes.http` describes the
values): ``outcomes`` is the list of distinct outcomes (real requests and resolution failures) and
``by_user`` one character per user, the index of its outcome in :data:`reports.samples.OUTCOME_DIGITS`.
:func:`user_outcomes` reads them back, so every metric can be recomputed from ``samples.jsonl``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probes.base import JSONValue
from reports.samples import OUTCOME_DIGITS

MAX_OUTCOMES = len(OUTCOME_DIGITS)
"""The most distinct outcomes one sample can record."""


@dataclass(frozen=True, slots=True)
class Population:
    """The users: their vantage points and TTL phases."""

    seed: int
    phases: tuple[float, ...]
    """Per user, in [0, 1): the share of the TTL its cached answer still had when the probe started."""
    vantage_points: tuple[str | None, ...]
    """Per user, the vantage point's name (None: the one unnamed vantage point)."""

    @classmethod
    def draw(cls, users: int, vantage_points: Sequence[str | None], seed: int) -> Population:
        """``users`` users over ``vantage_points`` (in turn), stratified TTL phases from ``seed``."""
        rng = random.Random(seed)
        strata = list(range(users))
        rng.shuffle(strata)
        phases = tuple(round((k + rng.random()) / users, 6) for k in strata)
        spots = tuple(vantage_points[i % len(vantage_points)] for i in range(users))
        return cls(seed=seed, phases=phases, vantage_points=spots)

    @property
    def size(self) -> int:
        return len(self.phases)

    def record(self) -> dict[str, JSONValue]:
        """What the first sample records, so that a reader can redo the users' caches."""
        out: dict[str, JSONValue] = {"seed": self.seed, "ttl_phase": list(self.phases)}
        if any(vp is not None for vp in self.vantage_points):
            out["vantage_point"] = list(self.vantage_points)
        return out


def encode(indices: Sequence[int]) -> str:
    """``by_user`` from each user's outcome index."""
    return "".join(OUTCOME_DIGITS[i] for i in indices)


def user_outcomes(values: Mapping[str, JSONValue]) -> list[Mapping[str, JSONValue]]:
    """Each user's outcome in a sample, in user order (empty when the sample has none)."""
    outcomes = values.get("outcomes")
    by_user = values.get("by_user")
    if not isinstance(outcomes, list) or not isinstance(by_user, str):
        return []
    found: list[Mapping[str, JSONValue]] = []
    for char in by_user:
        outcome = outcomes[OUTCOME_DIGITS.index(char)]
        found.append(outcome if isinstance(outcome, dict) else {})
    return found
