"""A consumer group from outside: where it stands on a topic, its members, moving it.

Read from outside the group (an admin client and a consumer that joins nothing), so it
answers the same for a running group, a stopped one and one that never ran. What ``run``
says at start-up (docs/configuration.md, ``start_offset``), ``streamproc group describe``
and ``streamproc group reset-offsets`` come from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsRequest_v2
from aiokafka.structs import OffsetAndMetadata

from streamproc.errors import ConfigError, KafkaSetupError
from streamproc.kafka.client import admin_client, consumer, start_client, stop_quietly
from streamproc.kafka.config import KafkaConnection
from streamproc.settings import start_offset_ms

__all__ = [
    "GroupPosition",
    "GroupState",
    "OffsetMove",
    "PartitionPosition",
    "group_position",
    "group_state",
    "move_offsets",
    "plan_offset_move",
]


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


async def group_position(kafka: KafkaConnection, group_id: str, topic: str) -> GroupPosition:
    """The group's committed offset and the last stable offset of every partition of
    ``topic``."""
    admin = admin_client(kafka)
    await start_client(kafka, admin)
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
    reader = consumer(kafka, group_id=None)
    await start_client(kafka, reader)
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


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the group coordinator says of a group: ``Empty`` (no member: offsets may be
    moved), ``Stable``, ``PreparingRebalance``, ``CompletingRebalance``, or ``Dead`` (it
    does not exist)."""

    state: str
    members: tuple[GroupMember, ...]

    @property
    def active(self) -> bool:
        return self.state not in ("Empty", "Dead")


class _DescribeGroups(DescribeGroupsRequest):  # type: ignore[misc]
    """DescribeGroups at v2 at most: aiokafka 0.14 decodes a v3 answer with v2's schema
    (its v3 request names the v2 response type) and fails with a buffer underrun."""

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION >= 2:
            return DescribeGroupsRequest_v2(self._groups)
        return super().build(request_struct_class)


async def group_state(kafka: KafkaConnection, group_id: str) -> GroupState:
    admin = admin_client(kafka)
    await start_client(kafka, admin)
    try:
        node = await admin.find_coordinator(group_id)
        response = await admin._client.send(node, _DescribeGroups([group_id]))
    finally:
        await admin.close()
    for error_code, gid, state, _ptype, _protocol, members, *_ in response.groups:
        if gid != group_id:
            continue
        if error_code:
            raise KafkaSetupError(
                f"cannot describe group {group_id}: {for_code(error_code).__name__}"
            )
        return GroupState(
            state,
            tuple(GroupMember(m[0], m[1], m[2]) for m in members),
        )
    return GroupState("Dead", ())


@dataclass(frozen=True, slots=True)
class OffsetMove:
    partition: int
    current: int | None
    target: int


async def plan_offset_move(
    kafka: KafkaConnection,
    group_id: str,
    topic: str,
    *,
    to: str,
    offset: int | None = None,
    partitions: Sequence[int] = (),
) -> list[OffsetMove]:
    """Where each partition's committed offset would go: ``to`` is ``earliest``,
    ``latest``, ``offset`` (``offset``, clamped to the partition's range) or an ISO time
    (the first record at or after it; the end when there is none)."""
    position = await group_position(kafka, group_id, topic)
    chosen = [p for p in position.partitions if not partitions or p.partition in partitions]
    unknown = set(partitions) - {p.partition for p in position.partitions}
    if unknown:
        raise ConfigError(
            f"{topic} has no partition {', '.join(map(str, sorted(unknown)))} "
            f"(it has {len(position.partitions)})"
        )
    tps = [TopicPartition(topic, p.partition) for p in chosen]
    reader = consumer(kafka, group_id=None)
    await start_client(kafka, reader)
    try:
        beginnings = await reader.beginning_offsets(tps)
        ends = await reader.end_offsets(tps)
        at_ms = None if to in ("earliest", "latest", "offset") else start_offset_ms(to)
        found = await reader.offsets_for_times(dict.fromkeys(tps, at_ms)) if at_ms else {}
    finally:
        await stop_quietly(reader)
    moves = []
    for p, tp in zip(chosen, tps, strict=True):
        if to == "earliest":
            target = beginnings[tp]
        elif to == "latest":
            target = ends[tp]
        elif to == "offset":
            assert offset is not None
            target = min(max(offset, beginnings[tp]), ends[tp])
        else:
            hit = found.get(tp)
            target = hit.offset if hit is not None else ends[tp]
        moves.append(OffsetMove(p.partition, p.committed, int(target)))
    return moves


async def move_offsets(
    kafka: KafkaConnection, group_id: str, topic: str, moves: Sequence[OffsetMove]
) -> None:
    """Commit ``moves`` for the group; refused while it has members (a running processor
    would commit over them, or read on from where it is)."""
    state = await group_state(kafka, group_id)
    if state.active:
        raise ConfigError(
            f"group {group_id} has {len(state.members)} active member(s) ({state.state}): "
            "stop every `streamproc run` of the group first"
        )
    committer = consumer(kafka, group_id=group_id)
    await start_client(kafka, committer)
    try:
        tps = {TopicPartition(topic, m.partition): m.target for m in moves}
        committer.assign(list(tps))
        try:
            await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in tps.items()})
        except KafkaError as exc:  # a member joined between the check and the commit
            raise KafkaSetupError(
                f"the group coordinator refused the move ({exc.__class__.__name__}): is a "
                f"member of {group_id} running?"
            ) from None
    finally:
        await stop_quietly(committer)
