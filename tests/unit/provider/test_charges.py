"""A request's charge split across its leads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamproc.provider.charges import split_total


@given(st.integers(0, 10_000), st.lists(st.booleans(), min_size=1, max_size=100))
def test_the_shares_add_up_to_the_total_and_go_to_the_matched_leads(
    total: int, matched: list[bool]
) -> None:
    """The shares are whole, add up to the total exactly, differ by at most one, and go
    only to matched leads when any lead matched."""
    shares = split_total(total, matched)
    assert sum(shares) == total and len(shares) == len(matched)
    takers = [s for s, hit in zip(shares, matched, strict=True) if hit] if any(matched) else shares
    assert max(takers) - min(takers) <= 1
    if any(matched):
        assert all(s == 0 for s, hit in zip(shares, matched, strict=True) if not hit)


def test_a_billed_request_without_a_match_is_shared_by_every_lead() -> None:
    """An API that bills misses: 5 credits over 3 leads, none matched, is 2, 2, 1."""
    assert split_total(5, [False, False, False]) == [2, 2, 1]
    assert split_total(3, [False, True, True]) == [0, 2, 1]
