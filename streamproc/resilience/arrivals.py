"""The day's expected arrivals, learnt from the last weeks of the input topic.

The spend plan's shape (:func:`~streamproc.resilience.spend_plan.forecast_shape`) needs the
leads that arrived in each part of each past budget day. They are counted without reading
a record: the offset of the first record at or after each bucket's start, per partition
(Kafka's ``ListOffsets`` by timestamp), and a bucket's arrivals are the offsets between its
start and the next one's, summed over the partitions. What is pure here: the buckets'
bounds (:func:`history_bounds`), offsets to counts (:func:`bucket_counts`) and counts to the
shape (:func:`learn_shape`). The same offsets give the same shape on every instance.

The counts are of offsets, so a transactional topic's commit markers count as arrivals
(one per transaction and partition: a small, even bias), and a day the topic did not hold
yet (created later, or past its retention) has no arrivals at all: such a day is left
out, not taken for a day with none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from streamproc.resilience.budget import day_end
from streamproc.resilience.pacing_step import PlanShape
from streamproc.resilience.spend_plan import forecast_shape, uniform_shape

__all__ = ["BUCKETS", "bucket_counts", "history_bounds", "learn_shape"]

#: Buckets per day: an hour, as the simulator's forecast (finer only adds noise to a
#: shape that the blend with the straight line smooths anyway).
BUCKETS = 24


def history_bounds(
    today: str, zone: str, days: int, buckets: int = BUCKETS
) -> list[tuple[float, ...]]:
    """For each of the ``days`` budget days before ``today`` (ISO date), oldest first, the
    epoch seconds of its ``buckets + 1`` bounds: equal parts of that day in ``zone`` (a day
    with a DST change has 23 or 25 hours, and so its buckets)."""
    if days < 0 or buckets < 1:
        raise ValueError("days must be >= 0 and buckets >= 1")
    first = date.fromisoformat(today) - timedelta(days=days)
    bounds = []
    for age in range(days):
        day = first + timedelta(days=age)
        start = day_end((day - timedelta(days=1)).isoformat(), zone)
        end = day_end(day.isoformat(), zone)
        width = (end - start) / buckets
        bounds.append((*(start + i * width for i in range(buckets)), end))
    return bounds


def bucket_counts(offsets: Sequence[Sequence[int]]) -> list[int]:
    """Arrivals per bucket from ``offsets[p][i]``: partition ``p``'s offset of the first
    record at or after bound ``i`` (its end offset when there is none)."""
    if not offsets:
        return []
    bounds = len(offsets[0])
    if bounds < 2 or any(len(p) != bounds for p in offsets):
        raise ValueError("every partition needs the same number (>= 2) of bounds")
    return [
        sum(max(0, p[i + 1] - p[i]) for p in offsets)  # a truncated log may step back
        for i in range(bounds - 1)
    ]


def learn_shape(
    days: Sequence[Sequence[int]], *, source: str, halflife_days: float = 7.0
) -> PlanShape:
    """The plan's shape from per-bucket counts of past days, oldest first: days with no
    arrival at all are left out (the topic did not hold them); none left, the straight
    line. Their mean counts are what the plan is re-estimated against during the day."""
    kept = [list(day) for day in days if sum(day) > 0]
    if not kept:
        buckets = len(days[0]) if days else BUCKETS
        return PlanShape(uniform_shape(buckets))
    expected = tuple(sum(column) / len(kept) for column in zip(*kept, strict=True))
    return PlanShape(forecast_shape(kept, halflife_days), f"{source}: {len(kept)} days", expected)
