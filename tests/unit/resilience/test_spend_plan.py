"""SpendPlan and forecast_shape: a monotone plan that never promises more than the limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.resilience.spend_plan import (
    SpendPlan,
    forecast_shape,
    surge_shape,
    uniform_shape,
)

DAY_S = 86400.0

counts = st.lists(st.integers(0, 500), min_size=4, max_size=4)
days = st.lists(counts, min_size=1, max_size=6)


def plan(shape: tuple[float, ...] | None = None, **kwargs: object) -> SpendPlan:
    fields: dict[str, object] = {
        "limit": 1000,
        "day_s": DAY_S,
        "finish_s": DAY_S - 3600,
        "shape": shape or uniform_shape(24),
        "blend": 0.7,
    }
    fields.update(kwargs)
    return SpendPlan(**fields)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    history=days,
    blend=st.floats(0, 1),
    limit=st.integers(0, 10_000),
    finish=st.floats(60, DAY_S),
    reserve=st.floats(0, 0.2),
    times=st.lists(st.floats(-100, DAY_S + 100), min_size=2, max_size=20),
)
def test_the_plan_is_monotone_and_never_above_the_limit(
    history: list[list[int]],
    blend: float,
    limit: int,
    finish: float,
    reserve: float,
    times: list[float],
) -> None:
    """Whatever the history, blend and reserve, S*(t) rises with t, within [0, limit]."""
    p = SpendPlan(
        limit, DAY_S, finish, forecast_shape(history), blend, reserve=reserve, close_s=finish / 2
    )
    targets = [p.target(t) for t in sorted(times)]
    assert all(0.0 <= v <= limit + 1e-9 for v in targets)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(targets))
    assert all(p.ceiling(t, slack=50) <= limit + 1e-9 for t in times)


@settings(max_examples=100, deadline=None)
@given(
    spent=st.floats(0, 1000),
    at=st.floats(0, DAY_S - 3601),
    later=st.lists(st.floats(0, DAY_S), min_size=1, max_size=10),
)
def test_a_replanned_plan_starts_where_the_spend_is_and_still_ends_at_the_limit(
    spent: float, at: float, later: list[float]
) -> None:
    """Re-anchored after an outage, the plan is on the spend at once, monotone, and whole
    by the finish: the missed spend is spread, never demanded in one step."""
    p = plan().replan(at, spent)
    assert p.target(at) == pytest.approx(spent)
    assert p.target(p.finish_s) == pytest.approx(1000)
    values = [p.target(t) for t in sorted([*later, at])]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(values))
    assert max(values) <= 1000 + 1e-9


def test_the_plan_follows_the_forecast_with_blend_one_and_a_line_with_blend_zero() -> None:
    """blend=1: half the day's arrivals by 06:00 means half the budget by then (before
    the finish); blend=0: the plan is a straight line to the finish."""
    morning = forecast_shape([[100, 0, 0, 0]] * 3)
    assert plan(morning, blend=1.0, finish_s=DAY_S).target(DAY_S / 4) == pytest.approx(
        1000 * morning[0], rel=1e-9
    )
    line = plan(morning, blend=0.0, finish_s=DAY_S / 2)
    assert line.target(DAY_S / 4) == pytest.approx(500)
    assert line.target(DAY_S / 2) == 1000


def test_the_fast_finish_reaches_the_limit_before_the_reset() -> None:
    """The plan is whole at finish_s and stays whole until the reset."""
    p = plan(finish_s=DAY_S - 3600)
    assert p.target(DAY_S - 3600) == 1000
    assert p.target(DAY_S - 1) == 1000
    assert p.target(DAY_S - 7200) < 1000


def test_the_closing_reserve_is_out_of_reach_until_it_opens() -> None:
    """Before close_s the gate never reaches into the reserve, whatever the slack; from
    then on it is released until the finish."""
    p = plan(blend=0.0, reserve=0.05, close_s=DAY_S - 7200, finish_s=DAY_S - 600)
    assert p.ceiling(DAY_S - 7201, slack=500) <= 950
    assert p.held(DAY_S - 7200) == pytest.approx(50)
    assert p.held(DAY_S - 600) == 0
    assert p.ceiling(DAY_S - 600, slack=0) == 1000


def test_the_forecast_weights_recent_days_more_and_ignores_volume() -> None:
    """A busy old day does not outweigh a quiet recent one: days count as shares,
    weighted by recency."""
    old_busy_morning = [1000, 0, 0, 0]
    recent_evening = [0, 0, 0, 10]
    shape = forecast_shape([old_busy_morning, recent_evening], halflife_days=1)
    assert shape[0] < 0.5
    assert shape[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(shape))


@pytest.mark.parametrize(
    "history",
    [[], [[1, 2], [1]], [[1, -1]]],
    ids=["no days", "ragged", "negative"],
)
def test_a_bad_history_is_refused(history: list[list[int]]) -> None:
    """No days, days of different lengths, or a negative count: ValueError."""
    with pytest.raises(ValueError, match=r"day|count"):
        forecast_shape(history)


def test_a_shape_that_does_not_end_at_one_is_refused() -> None:
    """A plan whose shape does not rise to 1 could promise less or more than the limit."""
    with pytest.raises(ValueError, match="rise"):
        plan((0.2, 0.5))


@settings(max_examples=150, deadline=None)
@given(
    limit=st.integers(0, 10_000),
    anchor=st.floats(0, DAY_S - 3601),
    spent_share=st.floats(0, 1.2),
    owed_share=st.floats(0, 1.5),
    over_s=st.floats(0, 20_000),
    times=st.lists(st.floats(0, DAY_S), min_size=2, max_size=20),
)
def test_a_plan_paying_back_an_outage_never_promises_more_than_the_limit(
    limit: int,
    anchor: float,
    spent_share: float,
    owed_share: float,
    over_s: float,
    times: list[float],
) -> None:
    """Re-anchored after an outage with a debt to pay back, the plan starts at the spend,
    rises, never passes the limit and is whole at the finish."""
    p = plan(limit=limit, reserve=0.04, close_s=DAY_S - 7200).replan(
        anchor, spent_share * limit, owed=owed_share * limit, over_s=over_s
    )
    targets = [p.target(t) for t in sorted({anchor, *times})]
    assert all(0.0 <= v <= limit + 1e-9 for v in targets)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(targets))
    assert p.target(anchor) == min(spent_share * limit, limit)
    assert p.target(p.finish_s) == pytest.approx(limit)


def test_a_debt_is_paid_back_over_its_stretch_not_at_once() -> None:
    """After an outage the plan asks for the missed credits over the next hour: half of
    them by half an hour, all by the hour, nothing in one step."""
    base = plan(limit=10_000).replan(43_200.0, 2000.0)
    owing = plan(limit=10_000).replan(43_200.0, 2000.0, owed=600.0, over_s=3600.0)
    extra = [owing.target(43_200.0 + m * 60) - base.target(43_200.0 + m * 60) for m in range(61)]
    assert extra[0] == 0.0
    assert 250 < extra[30] < 350
    assert extra[60] > 500
    assert max(b - a for a, b in itertools.pairwise(extra)) < 20


@settings(max_examples=150, deadline=None)
@given(
    history=days,
    limit=st.integers(0, 10_000),
    at=st.floats(1, DAY_S - 1),
    observed=counts,
    times=st.lists(st.floats(0, DAY_S), min_size=2, max_size=20),
)
def test_a_reshaped_plan_keeps_its_target_and_never_promises_more_than_the_limit(
    history: list[list[int]], limit: int, at: float, observed: list[int], times: list[float]
) -> None:
    """Reshaped during the day, the plan is where it was at that moment (a gap stays a
    gap), rises after it, never passes the limit and is whole at the finish."""
    p = plan(forecast_shape(history), limit=limit, reserve=0.04, close_s=DAY_S - 7200)
    p = p.replan(at / 2, limit / 3, owed=limit / 10, over_s=7200.0)
    expected = [sum(day[i] for day in history) / len(history) for i in range(4)]
    bucket = min(4, int(at // (DAY_S / 4)))
    q = p.reshape(at, surge_shape(expected, observed, bucket, lookback=1, horizon=1))
    assert q.target(at) == pytest.approx(p.target(at))
    targets = [q.target(t) for t in sorted({at, *times}) if t >= at]
    assert all(0.0 <= v <= limit + 1e-9 for v in targets)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(targets))
    assert q.target(q.finish_s) == pytest.approx(limit)


def test_a_surge_of_arrivals_draws_the_plan_toward_it_and_a_lull_away() -> None:
    """Twice the usual arrivals in the last hour: the plan asks for more over the next
    hour than the forecast's; half of them: less; the usual: the same."""
    expected = [10.0] * 96
    p = plan(limit=10_000, blend=1.0)
    at = 56 * 900.0  # 14:00

    def next_hour(seen_per_bucket: int) -> float:
        observed = [10] * 52 + [seen_per_bucket] * 4 + [0] * 40
        q = p.reshape(at, surge_shape(expected, observed, 56))
        return q.target(at + 3600) - q.target(at)

    usual, surge, lull = next_hour(10), next_hour(20), next_hour(5)
    assert surge > 1.5 * usual
    assert lull < 0.7 * usual
    assert usual == pytest.approx(p.target(at + 3600) - p.target(at), rel=0.05)


def test_a_top_lead_may_take_the_closing_reserve_only_from_the_close() -> None:
    """The top layer's gate goes past the plan's slack, but before the close never into the
    reserve; from the close it may take the reserve at once; never past the limit."""
    p = plan(limit=1000, reserve=0.04, close_s=DAY_S - 7200)
    before, after = DAY_S - 7201, DAY_S - 7000
    assert p.ceiling(before, 20, top=25) <= 960
    assert p.ceiling(before, 20, top=25) >= p.ceiling(before, 20)
    assert p.ceiling(after, 20) < p.target(after) + 21
    assert p.ceiling(after, 20, top=1000) == 1000
    assert p.ceiling(after, 20, top=25) == pytest.approx(min(1000, p.target(after) + 45))
