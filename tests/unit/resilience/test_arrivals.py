"""The day's expected arrivals from offsets by time: bucket bounds of past budget days,
offsets to counts, counts to the plan's shape (pure)."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.resilience.arrivals import bucket_counts, history_bounds, learn_shape
from streamproc.resilience.spend_plan import forecast_shape, uniform_shape


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_bounds_are_the_hours_of_the_days_before_today_oldest_first() -> None:
    """Three days before 2026-12-07 in UTC: 25 bounds each, from 2026-12-04 00:00, an hour
    apart, each day starting where the one before ends; today is not among them."""
    bounds = history_bounds("2026-12-07", "UTC", 3)
    assert [len(day) for day in bounds] == [25, 25, 25]
    assert bounds[0][0] == _utc("2026-12-04T00:00:00")
    assert bounds[0][1] - bounds[0][0] == 3600.0
    assert bounds[0][-1] == bounds[1][0] and bounds[1][-1] == bounds[2][0]
    assert bounds[2][-1] == _utc("2026-12-07T00:00:00")


def test_a_day_with_a_dst_change_has_buckets_of_its_own_length() -> None:
    """Paris springs forward on 2026-03-29: that day has 23 hours, so 24 buckets of 57.5
    minutes, from its local midnight to the next."""
    (day,) = history_bounds("2026-03-30", "Europe/Paris", 1)
    assert day[-1] - day[0] == 23 * 3600
    assert day[0] == _utc("2026-03-28T23:00:00")


def test_no_history_asked_gives_no_days() -> None:
    """pacing_history_days 0: no bounds (the straight line)."""
    assert history_bounds("2026-12-07", "UTC", 0) == []


@given(
    st.lists(
        st.lists(st.integers(0, 10_000), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    ),
)
def test_counts_from_offsets_are_the_records_between_the_bounds(
    stamps_per_partition: list[list[int]],
) -> None:
    """For records at any times over any partitions, the offset of the first record at or
    after each bound gives exactly the records of each bucket, summed over partitions."""
    bounds = [0, 2_500, 5_000, 7_500, 10_001]
    offsets = []
    expected = [0] * (len(bounds) - 1)
    for stamps in stamps_per_partition:
        ordered = sorted(stamps)
        offsets.append([bisect.bisect_left(ordered, b) for b in bounds])
        for stamp in ordered:
            expected[bisect.bisect_right(bounds, stamp) - 1] += 1
    assert bucket_counts(offsets) == expected


def test_an_offset_that_steps_back_counts_nothing_and_ragged_rows_are_refused() -> None:
    """A log truncated between two reads never counts negative arrivals; partitions with
    different numbers of bounds are a bug, refused."""
    assert bucket_counts([[10, 4, 6]]) == [0, 2]
    assert bucket_counts([]) == []
    with pytest.raises(ValueError, match="same number"):
        bucket_counts([[0, 1], [0, 1, 2]])


def test_days_without_any_arrival_are_left_out_and_none_left_is_the_straight_line() -> None:
    """A day the topic did not hold counts nothing and is not taken for a quiet day; with
    no day left the plan is the straight line, with no source."""
    busy = [0] * 8 + [10] * 4 + [1] * 12
    shape = learn_shape([[0] * 24, busy, [0] * 24], source="leads.raw")
    assert shape.shape == forecast_shape([busy]) and shape.source == "leads.raw: 1 days"
    assert shape.expected == tuple(float(count) for count in busy)
    straight = learn_shape([[0] * 24, [0] * 24], source="leads.raw")
    assert straight.shape == uniform_shape(24) and straight.source is None
    assert straight.expected is None
    assert learn_shape([], source="leads.raw").shape == uniform_shape(24)


def test_a_morning_peak_makes_a_plan_that_spends_faster_in_the_morning() -> None:
    """Arrivals 08:00-11:00: by 11:00 the learnt plan asks for more than the line."""
    morning = [1] * 8 + [30] * 3 + [1] * 13
    shape = learn_shape([morning] * 14, source="leads.raw")
    plan = shape.plan(1_000)
    line = uniform_shape(24)
    assert plan.target(11 * 3600) > 1_000 * line[10] + 100
    assert plan.target(23.99 * 3600) <= 1_000


def test_the_expected_arrivals_are_the_mean_of_the_days_kept_in_quarter_hours() -> None:
    """What the plan is re-estimated against: each hour's mean over the days kept, a quarter
    of it in each of its quarter-hours."""
    shape = learn_shape([[4] * 24, [0] * 24, [8] * 24], source="leads.raw")
    assert shape.expected == (6.0,) * 24
    assert shape.expected_quarters == (1.5,) * 96
