"""The console's lag reader on the real broker: the group's offsets and the end offsets,
read without fetching (no partition assigned: nothing prefetched and held), only when the
overview is asked for, and cached a few seconds."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streamproc.console.api import Console
from streamproc.console.config import ConsoleConfig
from streamproc.console.lag import LagReader
from streamproc.kafka.client import consumer as make_consumer
from streamproc.kafka.client import start_client, stop_quietly
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import Settings
from tests.integration.kafka_io import produce


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_lag_is_read_without_an_assignment_and_cached(topics: Settings) -> None:
    """Committed offsets from the group (none yet, then 3), end offsets from a consumer
    that is never assigned a partition; a read within CACHE_S is the cached one."""
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"k", orjson.dumps({"lead_id": f"l{i}", "domain": "a.example"})) for i in range(5)
    ]
    await produce(topics, records)  # one key: all on one partition
    clock = Clock()
    reader = LagReader(ConsoleConfig.from_settings(topics), clock=clock)
    try:
        first = await reader.read()
        ends = {p: end for p, (_, end) in first.partitions.items()}
        assert sum(ends.values()) == 5
        assert all(c is None for c, _ in first.partitions.values())
        hot = next(p for p, end in ends.items() if end == 5)
        assert reader._consumer is not None and reader._consumer.assignment() == set()

        kafka = KafkaConnection.from_settings(topics)
        member = make_consumer(kafka, group_id=topics.group_id)
        await start_client(kafka, member)
        try:
            tp = TopicPartition(topics.topic_raw, hot)
            member.assign([tp])
            await member.commit({tp: OffsetAndMetadata(3, "")})
        finally:
            await stop_quietly(member)

        clock.now += 1  # within the cache: the same answer, no request
        assert await reader.read() is first and reader.reads == 1
        clock.now += 3
        second = await reader.read()
        assert reader.reads == 2
        assert second.partitions[hot] == (3, 5)
        assert reader._consumer.assignment() == set()
    finally:
        await reader.close()


async def test_no_lag_read_while_nobody_asks(topics: Settings) -> None:
    """The console's background sampler reads the budget only: with nobody on the page,
    the lag reader never goes to the broker."""
    console = Console(
        ConsoleConfig.from_settings(topics), state=dict, restored=lambda: True, sample_s=0.05
    )
    app = web.Application()
    console.install(app)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the lifespan: the background sampler starts
    try:
        await asyncio.sleep(0.5)  # ten background samples
        assert console._lag_reader.reads == 0
        await console.sample()  # what an overview request does
        assert console._lag_reader.reads == 1
    finally:
        await runner.cleanup()
