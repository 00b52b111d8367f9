"""The replication probe's bookkeeping: arrival intervals and what a read proves, the audit after a
failover, a region that returns."""

from __future__ import annotations

import pytest

from probes.canaries import Canary, CanaryLedger

US, EU = "eastus", "westeurope"


def ledger(*canaries: tuple[int, float, float]) -> CanaryLedger:
    """A ledger with US writing and EU reading, and the given (seq, sent, acked) acknowledged by US."""
    book = CanaryLedger([US, EU])
    book.observe(US, [US, EU])
    for seq, sent, acked in canaries:
        book.acknowledged(Canary(seq=seq, sent=sent, acked=acked, location=US))
    return book


def test_a_canary_read_absent_then_found_has_its_lag_bracketed_by_both_reads_and_its_write() -> None:
    book = ledger((1, 10.0, 10.5))
    assert book.looked(EU, [1], set(), lo=11.0, hi=11.1) == []
    [arrival] = book.looked(EU, [1], {1}, lo=12.9, hi=13.0)
    # arrival in [11, 13], commit in [10, 10.5]: lag in [0.5, 3.0]
    assert (arrival.lag, arrival.error) == (pytest.approx(1.75), pytest.approx(1.25))
    assert book.looked(EU, [1], {1}, lo=13.9, hi=14.0) == []  # seen already: no second arrival
    assert book.pending(EU, 10) == []


def test_an_absent_canary_bounds_those_written_after_its_acknowledgement_not_those_written_with_it() -> None:
    book = ledger((1, 10.0, 11.0), (2, 10.5, 11.2), (3, 11.5, 12.0))
    assert book.looked(EU, [1], set(), lo=14.0, hi=14.1) == []
    found_2, found_3 = book.looked(EU, [2, 3], {2, 3}, lo=14.9, hi=15.0)
    # 2 was sent before 1 came back (its order against 1 is unknown): only its sending bounds it
    assert (found_2.lag, found_2.error) == (pytest.approx((10.5 + 15.0) / 2 - (10.5 + 11.2) / 2),
                                            pytest.approx((4.5 + 0.7) / 2))
    assert (found_3.lag, found_3.error) == (pytest.approx(14.5 - 11.75), pytest.approx((1.0 + 0.5) / 2))
    assert book.pending(EU, 10) == [1]
    assert book.behind(EU, now=20.0) == pytest.approx(9.0)


def test_one_read_of_several_canaries_proves_each_one_it_did_not_find_absent_from_its_start() -> None:
    book = ledger((1, 10.0, 10.2), (2, 10.1, 10.3), (3, 10.4, 10.6), (4, 11.0, 11.2))
    [found_1] = book.looked(EU, [1, 2, 3], {1}, lo=12.0, hi=12.5)
    assert found_1.seq == 1
    # 2 and 3 absent at 12.0 by the read itself; 4 (not looked for) was sent after 2 came back: absent too
    found = book.looked(EU, [2, 3, 4], {2, 3, 4}, lo=13.9, hi=14.0)
    assert [(a.seq, a.lo, a.hi) for a in found] == [(2, 12.0, 14.0), (3, 12.0, 14.0), (4, 12.0, 14.0)]


def test_after_a_failover_the_canaries_the_new_write_region_was_not_seen_holding_are_audited() -> None:
    book = ledger((1, 1.0, 1.1), (2, 2.0, 2.1), (3, 3.0, 3.1))
    book.found(EU, 1, hi=2.0)
    book.observe(EU, [EU])
    assert book.to_audit(10) == [2, 3]
    book.audited(2, present=True)
    book.audited(3, present=False)
    assert (book.lost, book.audit_left) == ({3}, 0)
    # written by the new write region itself: nothing to audit
    book.acknowledged(Canary(seq=4, sent=5.0, acked=5.1, location=EU))
    assert book.to_audit(10) == []


def test_a_region_that_returns_holds_what_the_write_region_holds_and_waits_for_the_rest() -> None:
    book = ledger((1, 1.0, 1.1), (2, 2.0, 2.1))
    book.found(EU, 1, hi=2.0)
    book.observe(EU, [EU])
    book.audited(2, present=False)
    book.acknowledged(Canary(seq=3, sent=5.0, acked=5.1, location=EU))
    book.observe(EU, [EU, US])
    assert book.known() == {US: True, EU: True}
    assert book.pending(US, 10) == []  # 1 and 3 came with the copy; 2 is lost and never arrives
    book.acknowledged(Canary(seq=4, sent=6.0, acked=6.1, location=EU))
    assert book.pending(US, 10) == [4]
    book.observe(US, [EU, US])  # planned failback: the lost canary and the one US was not seen holding
    assert book.to_audit(10) == [2, 4]
