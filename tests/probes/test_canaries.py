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
    book.absent(EU, 1, lo=11.0)
    arrival = book.found(EU, 1, hi=13.0)
    assert arrival is not None
    # arrival in [11, 13], commit in [10, 10.5]: lag in [0.5, 3.0]
    assert (arrival.lag, arrival.error) == (pytest.approx(1.75), pytest.approx(1.25))
    assert book.found(EU, 1, hi=14.0) is None  # seen already: no second arrival
    assert book.pending(EU, 10) == []


def test_an_absent_canary_bounds_those_written_after_its_acknowledgement_not_those_written_with_it() -> None:
    book = ledger((1, 10.0, 11.0), (2, 10.5, 11.2), (3, 11.5, 12.0))
    assert book.first_batch(EU, 10) == [1, 2]  # 2 was sent before 1 came back: its order is unknown
    book.absent(EU, 1, lo=14.0)
    found_2 = book.found(EU, 2, hi=15.0)
    found_3 = book.found(EU, 3, hi=15.0)
    assert found_2 is not None
    assert found_3 is not None
    assert (found_2.lag, found_2.error) == (pytest.approx((10.5 + 15.0) / 2 - (10.5 + 11.2) / 2),
                                            pytest.approx((4.5 + 0.7) / 2))
    assert (found_3.lag, found_3.error) == (pytest.approx(14.5 - 11.75), pytest.approx((1.0 + 0.5) / 2))
    assert book.pending(EU, 10) == [1]
    assert book.behind(EU, now=20.0) == pytest.approx(9.0)


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
