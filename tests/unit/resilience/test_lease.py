"""CreditLease: slices of one granted claim, never more than it reserved."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.claims import Claim
from streamproc.resilience.lease import CreditLease, lease_amount

DAY = "2026-11-26"


def lease(amount: int = 30, estimate: int = 6, max_age_s: float = 2.0) -> CreditLease:
    return CreditLease(Claim("c1", "me", DAY, amount), estimate, 100.0, max_age_s)


def test_slices_are_handed_out_while_the_estimates_fit() -> None:
    """30 credits at 6 per call: five slices, the sixth closes the lease."""
    credit = lease()
    assert [credit.take(100.0, DAY) for _ in range(6)] == [True] * 5 + [False]
    assert credit.closed and credit.in_flight == 5


def test_a_call_charged_less_gives_room_back() -> None:
    """A release (0) or a cheaper call leaves room for another slice in the same lease."""
    credit = lease(amount=12)
    assert credit.take(100.0, DAY) and credit.take(100.0, DAY)
    credit.finish(0)
    assert credit.take(100.0, DAY)
    credit.finish(2)
    assert credit.charged == 2 and credit.in_flight == 1
    assert not credit.take(100.0, DAY)  # 2 charged + 6 in flight: no room for 6 more


def test_age_day_change_and_exhaustion_close_the_lease() -> None:
    aged = lease(max_age_s=2.0)
    assert aged.take(101.0, DAY)
    assert not aged.take(102.0, DAY) and aged.closed
    other_day = lease()
    assert not other_day.take(100.0, "2026-11-27") and other_day.closed
    exhausted = lease()
    assert not exhausted.take(100.0, DAY, exhausted=True) and exhausted.closed


def test_due_as_soon_as_closed_even_with_calls_in_flight() -> None:
    """A closed lease is settled at once at what it committed (its calls in flight at their
    estimate), so it holds none of its unused credits while those calls run."""
    credit = lease()
    assert credit.take(100.0, DAY) and credit.take(100.0, DAY)
    credit.finish(4)
    credit.close()
    assert credit.due()
    assert credit.settle() == 4 + 6
    assert not credit.due()


def test_calls_ending_after_the_settle_report_their_corrections() -> None:
    """Booked at 6, charged 4 then 9: corrections -2 and +3, and the books end at the sum."""
    credit = lease()
    assert credit.take(100.0, DAY) and credit.take(100.0, DAY)
    credit.close()
    assert credit.settle() == 12
    assert credit.finish(4) == -2
    assert credit.finish(9) == 3
    assert credit.booked == credit.charged == 13


def test_a_lease_kept_for_its_lead_is_due_only_once_idle() -> None:
    """settle_when_closed=False (Clay): closed with a call in flight is not yet due."""
    credit = CreditLease(Claim("c1", "me", DAY, 6), 6, 100.0, 2.0, settle_when_closed=False)
    assert credit.take(100.0, DAY)
    credit.close()
    assert not credit.due()
    assert credit.finish(6) == 0
    assert credit.due()


def test_due_once_closed_and_never_when_detached() -> None:
    """A detached lease's claim belongs to its pending lead: never settled by the lease."""
    detached = lease(amount=6)
    assert detached.take(100.0, DAY)
    detached.detached = True
    detached.finish(6)
    assert detached.closed and not detached.due()


def test_finish_without_a_slice_is_a_bug() -> None:
    with pytest.raises(ValueError, match="without a slice"):
        lease().finish(0)


@settings(max_examples=300, deadline=None)
@given(
    amount_leads=st.integers(1, 20),
    estimate=st.integers(1, 10),
    steps=st.lists(st.tuples(st.sampled_from(["take", "finish", "close"]), st.integers(0, 10))),
)
def test_never_more_committed_than_reserved_and_the_settle_is_the_sum(
    amount_leads: int, estimate: int, steps: list[tuple[str, int]]
) -> None:
    """Whatever the order of takes, finishes (charged at most the estimate), closes and the
    settle: the lease never commits more than its claim, the books (settle plus
    corrections) never hold less than the calls may have cost, and end at their sum."""
    credit = lease(amount=amount_leads * estimate, estimate=estimate)
    charged = 0
    journal = 0  # what the settle and the corrections put in the books
    for op, value in steps:
        if op == "take":
            credit.take(100.0, DAY)
        elif op == "finish" and credit.in_flight:
            cost = min(value, estimate)
            journal += credit.finish(cost)
            charged += cost
        elif op == "close":
            credit.close()
        if credit.due():
            journal += credit.settle()
        assert credit.committed <= credit.claim.amount
        if credit.settled:
            assert journal == credit.booked >= charged  # in-flight calls at their estimate
    while credit.in_flight:
        journal += credit.finish(estimate)
        charged += estimate
    credit.close()
    if credit.due():
        journal += credit.settle()
    assert credit.charged == charged == journal <= credit.claim.amount


@settings(max_examples=300, deadline=None)
@given(
    estimate=st.integers(0, 50),
    leads=st.integers(1, 10_000),
    limit=st.integers(0, 10**9),
    share=st.floats(0.001, 1.0),
)
def test_a_lease_is_small_whatever_remains(
    estimate: int, leads: int, limit: int, share: float
) -> None:
    """A lease is whole calls, at least one, at most ``leads`` of them, and beyond one call
    never more than ``share`` of the day's limit: what a crash can strand is bounded."""
    amount = lease_amount(estimate, leads, limit, share)
    if estimate == 0:
        assert amount == 0
        return
    assert amount % estimate == 0
    assert estimate <= amount <= leads * estimate
    assert amount == estimate or amount <= limit * share


def test_a_lease_is_the_claim_size_when_the_budget_is_large() -> None:
    """50 leads at 6 against 100,000 credits a day: 300, as budget_claim_leads says."""
    assert lease_amount(6, 50, 100_000, 0.02) == 300
    assert lease_amount(6, 50, 6_000, 0.02) == 120
    assert lease_amount(6, 50, 500, 0.02) == 6
