"""CreditLease: slices of one granted claim, never more than it reserved."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.claims import Claim
from streamproc.resilience.lease import CreditLease

DAY = "2026-11-26"


def lease(amount: int = 30, estimate: int = 6, max_age_s: float = 2.0) -> CreditLease:
    return CreditLease(Claim("c1", "me", DAY, amount), estimate, 100.0, max_age_s)


def test_slices_are_handed_out_while_the_estimates_fit() -> None:
    """30 credits at 6 per call: five slices, the sixth closes the lease."""
    credit = lease()
    assert [credit.take(100.0, DAY) for _ in range(6)] == [True] * 5 + [False]
    assert credit.closed and credit.in_flight == 5 and not credit.due()


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


def test_due_once_closed_and_idle_and_never_when_detached() -> None:
    credit = lease()
    assert credit.take(100.0, DAY)
    credit.close()
    assert not credit.due()
    credit.finish(6)
    assert credit.due()
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
    """Whatever the order of takes, finishes (charged at most the estimate) and closes: the
    lease never commits more than its claim, and what it settles is what was charged."""
    credit = lease(amount=amount_leads * estimate, estimate=estimate)
    charged = 0
    for op, value in steps:
        if op == "take":
            credit.take(100.0, DAY)
        elif op == "finish" and credit.in_flight:
            cost = min(value, estimate)
            credit.finish(cost)
            charged += cost
        elif op == "close":
            credit.close()
        assert credit.committed <= credit.claim.amount
    while credit.in_flight:
        credit.finish(estimate)
        charged += estimate
    credit.close()
    assert credit.due()
    assert credit.charged == charged <= credit.claim.amount
