"""The mock provider's plan limit: calls per window, fixed or sliding; time is an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.simulators.provider import MockProviderConfig, PlanLimit


def test_a_fixed_window_takes_the_limit_then_refuses_until_it_resets() -> None:
    """3 per 10 s from the first call at t=5: three pass, the fourth waits for t=15."""
    plan = PlanLimit(3, 10.0, "fixed")
    assert [plan.admit(5.0)[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    assert plan.admit(9.0) == (False, 0, 6.0)
    assert plan.admit(15.0)[:2] == (True, 2)


def test_a_sliding_window_frees_a_call_when_the_oldest_leaves_it() -> None:
    """2 per 10 s, calls at 0 and 4: at 8 the next one is refused for 2 s; at 10 it passes."""
    plan = PlanLimit(2, 10.0, "sliding")
    assert plan.admit(0.0)[0] and plan.admit(4.0)[0]
    assert plan.admit(8.0) == (False, 0, 2.0)
    assert plan.admit(10.0) == (True, 0, 4.0)


@given(
    kind=st.sampled_from(["fixed", "sliding"]),
    limit=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 3), min_size=1, max_size=200),
)
def test_no_window_of_the_plans_length_holds_more_than_the_limit(
    kind: str, limit: int, gaps: list[float]
) -> None:
    """Sliding: any window of ``window_s`` admits at most the limit; fixed: each of its
    windows does."""
    plan = PlanLimit(limit, 5.0, kind)  # type: ignore[arg-type]
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if plan.admit(now)[0]:
            admitted.append(now)
    if kind == "sliding":
        assert all(sum(1 for t in admitted if s - 5.0 < t <= s) <= limit for s in admitted)
    else:
        starts: list[float] = []
        for t in admitted:
            if not starts or t >= starts[-1] + 5.0:
                starts.append(t)
        assert all(sum(1 for t in admitted if s <= t < s + 5.0) <= limit for s in starts)


def test_a_plan_limit_below_one_is_refused() -> None:
    """A plan of 0 calls is a mistake, said at once."""
    with pytest.raises(ValueError, match="plan_limit"):
        MockProviderConfig(plan_limit=0)
