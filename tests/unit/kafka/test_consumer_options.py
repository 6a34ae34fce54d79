"""The consumer's group options: the rebalance timeout is the max poll interval."""

from __future__ import annotations

from streamproc.kafka.client import consumer
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings


async def test_a_group_consumer_waits_max_poll_interval_for_a_member_to_rejoin() -> None:
    """rebalance_timeout_ms is max_poll_interval_ms (as in the Java client), not aiokafka's
    default of the session timeout, which a revocation's grace could outlast."""
    settings = Settings.model_validate({"max_poll_interval_ms": 120_000})
    kafka = KafkaConnection.from_settings(settings)
    member = consumer(kafka, group_id="g", max_poll_interval_ms=120_000)
    assert member._rebalance_timeout_ms == 120_000
    assert member._session_timeout_ms < member._rebalance_timeout_ms
    assert consumer(kafka, group_id="g")._rebalance_timeout_ms == 120_000
