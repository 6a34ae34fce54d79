"""The group's position on the input topic, read from Kafka: its committed offset and the
end offset of every partition. The same for a processor and ``streamproc console``: a
process knows only its own partitions, the group's committed offsets know them all.

Read-only: the consumer is assigned (it never joins the group) and commits nothing; one
OffsetFetch and one ListOffsets request per read.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamproc.console.payload import Lag
from streamproc.kafka.client import consumer as make_consumer
from streamproc.kafka.client import partitions_of, start_client, stop_quietly
from streamproc.settings import Settings

__all__ = ["LagReader"]


class LagReader:
    """Reads :class:`Lag` for ``settings.group_id`` on ``settings.topic_raw``; one client,
    started on the first read, stopped by :meth:`close`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self) -> Lag:
        s = self._settings
        if self._consumer is None:
            consumer = make_consumer(s, group_id=s.group_id, fetch_max_wait_ms=100)
            await start_client(s, consumer)
            self._consumer = consumer
        consumer = self._consumer
        # After the first read the client keeps the topic's metadata fresh by itself
        # (metadata_max_age_ms): asking for every topic's on each read cost the processor
        # CPU in proportion to the topics on the cluster (bench/profiles/).
        partitions = consumer.partitions_for_topic(s.topic_raw) or await partitions_of(
            consumer, s.topic_raw
        )
        tps = [TopicPartition(s.topic_raw, p) for p in sorted(partitions)]
        if set(tps) != consumer.assignment():
            consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        rows: dict[int, tuple[int | None, int]] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            rows[tp.partition] = (committed, ends[tp])
        return Lag(s.topic_raw, rows)

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_quietly(consumer)
