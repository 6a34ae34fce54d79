"""Helpers for integration tests: produce raw records and read topics ``read_committed``."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamproc.settings import Settings


@dataclass(frozen=True)
class Read:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


async def produce(
    settings: Settings,
    records: list[tuple[bytes | None, bytes | None]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic_raw, value=v, key=k, headers=headers)
            for k, v in records
        ]
        for fut in futures:
            await fut
    finally:
        await producer.stop()


async def read_all(settings: Settings, topic: str) -> list[Read]:
    """Every committed record of a topic, up to its end offsets at call time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Read] = []
        while True:
            remaining = [tp for tp in tps if await consumer.position(tp) < end[tp]]
            if not remaining:
                break
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, msgs in batch.items():
                out += [
                    Read(tp.topic, tp.partition, m.offset, m.key, m.value, dict(m.headers))
                    for m in msgs
                ]
        return out
    finally:
        await consumer.stop()
