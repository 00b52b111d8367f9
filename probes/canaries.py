"""The replication probe's bookkeeping: which canaries were acknowledged, where each has been seen, which are
lost. Pure (no I/O), so that its rules are tested on their own; :mod:`probes.replication` drives it.

A canary is one sequence-numbered write, acknowledged at ``acked`` (scenario seconds) by the location that
held the writes then. Its way to the other locations is learnt by reads in each of them, each looking for
the oldest pending canaries at once: one location applies writes in commit order (one partition's
replication stream is ordered), so a canary found absent at ``t`` says that every canary sent after it was
acknowledged was absent at ``t`` too. Each canary's arrival in a location is therefore known to lie in
``[lo, hi]``: ``lo`` the start of the last read that proved it absent (else its sending), ``hi`` the end of
the read that found it. It was committed between its sending and its acknowledgement, so its lag (arrival
minus commit) is known to an interval too: the probe reports its middle, with half its width as the error
(half the gap between reads, plus the read's and the write's latency).

Lost writes are found by an audit: whenever the write region changes, every acknowledged canary not known
to be in the new write region is read there, and one that is absent is lost (the new write region never
receives what the old one had not replicated before a forced failover). A location that goes offline
forgets what it held; when it returns it holds a copy of the write region's data (as Cosmos DB reseeds a
returning region), so it then holds what the write region is known to hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Canary:
    """One acknowledged canary write."""

    seq: int
    sent: float
    acked: float
    location: str | None
    """The location that acknowledged it (None: not known)."""


@dataclass(slots=True)
class Arrival:
    """A canary found in a location: it arrived in ``[lo, hi]``, and was committed in ``[sent, acked]``
    (after it was sent, before its acknowledgement came back), so its lag, arrival minus commit, lies in
    ``[lo - acked, hi - sent]``: the middle of that, with half its width as the error."""

    seq: int
    lo: float
    hi: float
    sent: float
    acked: float

    @property
    def lag(self) -> float:
        return max(0.0, (self.lo + self.hi) / 2 - (self.sent + self.acked) / 2)

    @property
    def error(self) -> float:
        return ((self.hi - self.lo) + (self.acked - self.sent)) / 2


@dataclass(eq=False)
class _Location:
    online: bool = True
    present: set[int] = field(default_factory=set)
    pending: dict[int, float] = field(default_factory=dict)
    """Canaries not yet seen here -> the lower bound of their arrival (insertion order = seq order)."""


class CanaryLedger:
    """Every acknowledged canary and what is known of it in each location (see the module docstring).
    Locations are named by any stable key (the probe uses Azure's normalised location names)."""

    def __init__(self, locations: Iterable[str]) -> None:
        self.acked: dict[int, Canary] = {}
        self.lost: set[int] = set()
        """Canaries the write region's audit found missing (and no later audit found)."""
        self.write_location: str | None = None
        self._locations = {loc: _Location() for loc in locations}
        self._audit: dict[int, None] = {}
        """Canaries to look for in the write region, oldest first."""

    # --- what the writer and the account say ----------------------------------------------------

    def acknowledged(self, canary: Canary) -> None:
        """A write was acknowledged: it is in the location that acknowledged it, pending elsewhere."""
        self.acked[canary.seq] = canary
        for name, location in self._locations.items():
            if name == canary.location:
                location.present.add(canary.seq)
            else:
                location.pending[canary.seq] = canary.sent
        if canary.location != self.write_location:
            self._audit[canary.seq] = None

    def observe(self, write_location: str, online: Iterable[str]) -> None:
        """The account now: its write location and the locations serving."""
        serving = set(online)
        for name, location in self._locations.items():
            if location.online and name not in serving:
                location.online = False
                location.present.clear()
            elif not location.online and name in serving:
                self._returned(name, location)
        if write_location != self.write_location:
            self.write_location = write_location
            present = self._locations[write_location].present if write_location in self._locations else set()
            self._audit = dict.fromkeys(sorted(seq for seq in self.acked if seq not in present))

    def _returned(self, name: str, location: _Location) -> None:
        writer = self._locations.get(self.write_location or "")
        location.online = True
        location.present = set(writer.present) if writer is not None else set()
        location.pending = {seq: c.sent for seq, c in self.acked.items()
                            if seq not in location.present and seq not in self.lost}

    # --- reading in the other locations -----------------------------------------------------------

    def pending(self, location: str, limit: int) -> list[int]:
        """Up to ``limit`` canaries not yet seen in ``location``, oldest first."""
        return [seq for seq, _ in zip(self._locations[location].pending, range(limit), strict=False)]

    def behind(self, location: str, now: float) -> float:
        """How long the oldest canary not yet seen in ``location`` has been acknowledged (0: none)."""
        pending = self._locations[location].pending
        oldest = next(iter(pending), None)
        return max(0.0, now - self.acked[oldest].acked) if oldest is not None else 0.0

    def found(self, location: str, seq: int, hi: float) -> Arrival | None:
        """``seq`` was read in ``location`` by a read that ended at ``hi``: its arrival, the first time."""
        state = self._locations[location]
        lo = state.pending.pop(seq, None)
        state.present.add(seq)
        if lo is None:
            return None
        canary = self.acked[seq]
        return Arrival(seq=seq, lo=min(lo, hi), hi=hi, sent=canary.sent, acked=canary.acked)

    def looked(self, location: str, seqs: Sequence[int], present: Set[int], *, lo: float,
               hi: float) -> list[Arrival]:
        """One read, from ``lo`` to ``hi``, looked for ``seqs`` in ``location`` and found ``present`` among
        them: the arrivals of those found (the first time each is seen). The others were absent at ``lo``,
        and so was every canary sent after one of them was acknowledged."""
        arrivals = [arrival for seq in seqs if seq in present
                    if (arrival := self.found(location, seq, hi)) is not None]
        self._absent(location, [seq for seq in seqs if seq not in present], lo)
        return arrivals

    def _absent(self, location: str, seqs: list[int], lo: float) -> None:
        # Each absent canary bounds itself and those sent after its acknowledgement: together, the absent
        # ones and those sent after the earliest of their acknowledgements (one pass, however many).
        if not seqs:
            return
        pending = self._locations[location].pending
        absent = set(seqs)
        after = min(self.acked[seq].acked for seq in absent)
        for other in pending:
            if other in absent or self.acked[other].sent >= after:
                pending[other] = max(pending[other], lo)

    # --- the write region's audit -----------------------------------------------------------------

    def to_audit(self, limit: int) -> list[int]:
        """Up to ``limit`` canaries to look for in the write region, oldest first."""
        return [seq for seq, _ in zip(self._audit, range(limit), strict=False)]

    @property
    def audit_left(self) -> int:
        return len(self._audit)

    def audited(self, seq: int, *, present: bool) -> None:
        """The audit read ``seq`` in the write region."""
        self._audit.pop(seq, None)
        if present:
            self.lost.discard(seq)
            writer = self._locations.get(self.write_location or "")
            if writer is not None:
                writer.present.add(seq)
                writer.pending.pop(seq, None)  # there, but when it arrived is not known: no lag from it
            return
        self.lost.add(seq)
        for location in self._locations.values():
            location.pending.pop(seq, None)

    def known(self) -> Mapping[str, bool]:
        """Each location and whether it is serving, as last observed."""
        return {name: location.online for name, location in self._locations.items()}
