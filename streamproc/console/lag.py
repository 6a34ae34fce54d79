"""The group's position on the input topic, read from Kafka: its committed offset and the
end offset of every partition. The same for a processor and ``streamproc console``: a
process knows only its own partitions, the group's committed offsets know them all.

Read-only and fetch-free: the group's offsets come from an admin client (one OffsetFetch
for the whole group), the end offsets from a consumer that is never assigned a partition
and never joins a group (one ListOffsets per leader), so nothing is prefetched and held in
a processor's memory. A read happens only when the console asks (the page or its API),
and a read less than :data:`CACHE_S` old is answered again: nobody on the page, no
requests to the broker.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamproc.console.config import ConsoleConfig
from streamproc.console.payload import Lag
from streamproc.kafka.client import admin_client, partitions_of, start_client, stop_quietly
from streamproc.kafka.client import consumer as make_consumer

__all__ = ["CACHE_S", "LagReader"]

#: A lag read is reused for this long: several browsers on the page cost one read.
CACHE_S = 3.0


class LagReader:
    """Reads :class:`Lag` for ``config.replay.group_id`` on its ``topic_raw``; its clients
    are started on the first read and stopped by :meth:`close`."""

    def __init__(
        self, config: ConsoleConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config.replay
        self._kafka = config.replay.kafka
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._cached: tuple[float, Lag] | None = None
        #: Reads that went to the broker (tests, logs).
        self.reads = 0

    async def read(self) -> Lag:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < CACHE_S:
            return self._cached[1]
        lag = await self._read()
        self._cached = (self._clock(), lag)
        return lag

    async def _read(self) -> Lag:
        s = self._config
        if self._consumer is None:
            # No group: it never joins nor commits; never assigned: it never fetches.
            consumer = make_consumer(self._kafka, group_id=None)
            await start_client(self._kafka, consumer)
            self._consumer = consumer
        if self._admin is None:
            admin = admin_client(self._kafka)
            await start_client(self._kafka, admin)
            self._admin = admin
        self.reads += 1
        # After the first read the client's metadata names the topic's partitions: asking
        # for every topic's on each read cost the processor CPU in proportion to the topics
        # on the cluster (bench/profiles/).
        consumer = self._consumer
        partitions = consumer.partitions_for_topic(s.topic_raw) or await partitions_of(
            consumer, s.topic_raw
        )
        tps = [TopicPartition(s.topic_raw, p) for p in sorted(partitions)]
        committed = await self._admin.list_consumer_group_offsets(s.group_id, partitions=tps)
        ends = await consumer.end_offsets(tps)
        rows: dict[int, tuple[int | None, int]] = {}
        for tp in tps:
            found = committed.get(tp)
            offset = found.offset if found is not None and found.offset >= 0 else None
            rows[tp.partition] = (offset, ends[tp])
        return Lag(s.topic_raw, rows)

    async def close(self) -> None:
        self._cached = None
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        if consumer is not None:
            await stop_quietly(consumer)
        if admin is not None:
            with contextlib.suppress(Exception):  # shutdown: a broker gone must not fail it
                await admin.close()
