"""``streamproc.kafka.client.transaction`` against a real broker: a producer fenced by a
newer one of its transactional id reports the fencing (a ``KafkaError``), whichever step
of the transaction meets it, never aiokafka's state-machine errors."""

from __future__ import annotations

import asyncio
import gc
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streamproc.kafka.client import (
    delivery_reported_by_commit,
    stop_quietly,
    transaction,
    transactional_producer,
)
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings
from tests.integration.kafka_io import read_all


async def _send(producer: AIOKafkaProducer, topic: str, value: bytes, partition: int) -> None:
    delivery_reported_by_commit(await producer.send(topic, value=value, partition=partition))


async def _fenced_midway(old: AIOKafkaProducer, new: AIOKafkaProducer, topic: str) -> None:
    async with transaction(old):
        await _send(old, topic, b"zombie", 0)
        await new.start()  # init_transactions: fences `old`, aborts its transaction
        await _send(old, topic, b"zombie-2", 1)


async def _one_more(producer: AIOKafkaProducer, topic: str, value: bytes) -> None:
    async with transaction(producer):
        await _send(producer, topic, value, 0)


async def test_a_fenced_producer_raises_a_kafka_error_in_and_after_its_transaction(
    topics: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    tid = f"{topics.group_id}.fence-{uuid.uuid4().hex[:6]}"
    topic = topics.topic_enriched
    kafka = KafkaConnection.from_settings(topics)
    old = transactional_producer(kafka, tid)
    await old.start()
    new = transactional_producer(kafka, tid)
    try:
        with pytest.raises(KafkaError) as during:
            await _fenced_midway(old, new, topic)
        # The next transaction of the fenced producer fails the same way, at its start.
        with pytest.raises(KafkaError) as after:
            await _one_more(old, topic, b"zombie-3")
        await _one_more(new, topic, b"survivor")
    finally:
        await asyncio.gather(stop_quietly(old), stop_quietly(new))
    print(f"fenced: during={during.value!r} after={after.value!r}")
    landed = [r.value for r in await read_all(topics, topic)]
    assert landed == [b"survivor"]
    # Nothing of the fenced producer is left for asyncio to log at garbage collection
    # (the tracebacks kept by pytest.raises hold the producer too).
    del old, new, during, after
    gc.collect()
    assert "never retrieved" not in caplog.text
