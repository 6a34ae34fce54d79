"""Arrivals per hour of past days counted from offsets by time on the real broker, without
reading a record, and the plan's shape learnt from them.

Scaled down for CI: three past days of 8 records each (6 at 09:00, 2 at 15:00, UTC)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer

from streamproc.kafka.arrivals import offsets_at
from streamproc.kafka.config import KafkaConnection
from streamproc.processing.spend_pacing import learn_plan_shape
from streamproc.resilience.arrivals import bucket_counts, history_bounds, learn_shape
from streamproc.resilience.budget import budget_day
from streamproc.settings import Settings
from tests.integration.conftest import configure


async def test_past_days_are_counted_per_hour_from_offsets_and_shape_the_plan(
    topics: Settings,
) -> None:
    """Records stamped over the last three days: each day counts 6 arrivals in its 09:00
    bucket and 2 in its 15:00 one, none elsewhere; the shape learnt is that of those
    counts, rising faster in the morning than the straight line."""
    today = budget_day(time.time(), "UTC")
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for age in (3, 2, 1):
            day = date.fromisoformat(today) - timedelta(days=age)
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            for i, hour in enumerate([9] * 6 + [15] * 2):
                at_ms = int((midnight + hour * 3600 + 60 * i) * 1000)
                await producer.send_and_wait(
                    topics.topic_raw, b"{}", key=f"{age}-{i}".encode(), timestamp_ms=at_ms
                )
    finally:
        await producer.stop()

    settings = configure(topics, pacing_history_days=3)
    kafka = KafkaConnection.from_settings(settings)
    bounds = history_bounds(today, "UTC", 3)
    days = []
    for day_bounds in bounds:
        found = await offsets_at(kafka, settings.topic_raw, list(day_bounds))
        assert len(found) == 3  # the fixture's partitions
        days.append(bucket_counts(found))
    expected = [[6 if h == 9 else 2 if h == 15 else 0 for h in range(24)]] * 3
    assert days == expected

    shape = await learn_plan_shape(
        kafka, today, "UTC", topic=settings.topic_raw, history_days=settings.pacing_history_days
    )
    assert shape == learn_shape(expected, source=settings.topic_raw)
    assert shape.source == f"{settings.topic_raw}: 3 days"
    # By 10:00 more than the line (0.42) has come; the prior per bucket tempers 8 leads.
    assert shape.shape[9] > 10 / 24 + 0.1
