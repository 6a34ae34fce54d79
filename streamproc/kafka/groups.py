"""Where a consumer group stands on a topic: committed offset, last stable offset, lag.

Read from outside the group (an admin client and a consumer that joins nothing), so it
answers the same for a running group, a stopped one and one that never ran. What ``run``
says at start-up (docs/configuration.md, ``start_offset``) comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from streamproc.kafka.client import admin_client, consumer, start_client, stop_quietly
from streamproc.settings import Settings

__all__ = ["GroupPosition", "PartitionPosition", "group_position"]


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    partition: int
    #: The group's committed offset; None when it never committed on this partition.
    committed: int | None
    #: The last stable offset (what a ``read_committed`` reader can reach).
    end: int

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end - self.committed, 0)


@dataclass(frozen=True, slots=True)
class GroupPosition:
    group_id: str
    topic: str
    partitions: tuple[PartitionPosition, ...]

    @property
    def is_new(self) -> bool:
        """The group committed nothing on the topic: ``start_offset`` decides where it starts."""
        return all(p.committed is None for p in self.partitions)

    @property
    def lag(self) -> int:
        """Leads behind on the partitions with a committed offset."""
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def unstarted(self) -> int:
        """Partitions without a committed offset."""
        return sum(p.committed is None for p in self.partitions)

    def describe(self, start_offset: str) -> str:
        """One phrase for the start-up line."""
        if self.is_new:
            return f"new group: starts at {start_offset} (start_offset)"
        text = f"resumes at its committed offsets, {self.lag} leads behind"
        if self.unstarted:
            text += f"; {self.unstarted} partition(s) never committed start at {start_offset}"
        return text


async def group_position(settings: Settings, group_id: str, topic: str) -> GroupPosition:
    """The group's committed offset and the last stable offset of every partition of
    ``topic``."""
    admin = admin_client(settings)
    await start_client(settings, admin)
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [
        TopicPartition(topic, p["partition"])
        for d in described
        if d["topic"] == topic and d["error_code"] == 0
        for p in sorted(d["partitions"], key=lambda p: int(p["partition"]))
    ]
    if not tps:
        return GroupPosition(group_id, topic, ())
    reader = consumer(settings, group_id=None)
    await start_client(settings, reader)
    try:
        ends = await reader.end_offsets(tps)
    finally:
        await stop_quietly(reader)
    return GroupPosition(
        group_id,
        topic,
        tuple(
            PartitionPosition(
                tp.partition,
                committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
                ends[tp],
            )
            for tp in tps
        ),
    )
