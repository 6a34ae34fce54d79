"""Helpers for integration tests: produce raw records and read topics ``read_committed``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
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


async def _settled_end_offsets(
    settings: Settings, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The last stable offsets once every transaction already committed is visible.

    A producer's commit returns before the coordinator has written the commit markers into
    the partitions: until then the last stable offset stops short of the transaction, and a
    read right after a replayer's or processor's run would miss its last records (seen on a
    loaded CI machine). So wait, a bounded while, until the last stable offset reaches the
    high watermark (no transaction open); one left open (a process still running) is read
    up to where it stands after the wait."""
    uncommitted = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await uncommitted.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            stable = await consumer.end_offsets(tps)
            high = await uncommitted.end_offsets(tps)
            if all(stable[tp] >= high[tp] for tp in tps):
                return stable
            if asyncio.get_running_loop().time() > deadline:
                return stable
            await asyncio.sleep(0.05)
    finally:
        await uncommitted.stop()


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
        end = await _settled_end_offsets(settings, consumer, tps)
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


class _RawHeaderKey(str):
    """A header key that aiokafka's pure-Python batch builder writes as the given bytes
    (it calls ``key.encode("utf-8")``): how a test writes a key that is not UTF-8."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawHeaderKey:
        made = super().__new__(cls, raw.decode("utf-8", errors="replace"))
        made.raw = raw
        return made

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def produce_one_batch(
    settings: Settings,
    partition: int,
    records: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[bytes, bytes]]]],
    *,
    compression: str = "gzip",
) -> None:
    """``records`` (key, value, raw headers) written as ONE producer batch of one partition,
    header keys as given bytes (UTF-8 or not), as a librdkafka or Java producer can.

    aiokafka's own (compiled) builder refuses such keys, so the batch is built with its
    pure-Python builder: test-only use of a private class.
    """
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        compression_type=compression,
        max_request_size=16_000_000,
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(
            2,
            {"gzip": 1, "none": 0}[compression],  # the batch header's codec bits
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=0,
            batch_size=16_000_000,
        )
        for key, value, headers in records:
            kept = [(_RawHeaderKey(k), v) for k, v in headers]
            assert batch.append(timestamp=None, key=key, value=value, headers=kept) is not None
        batch.close()
        delivered = await producer.send_batch(batch, settings.topic_raw, partition=partition)
        await delivered
    finally:
        await producer.stop()
