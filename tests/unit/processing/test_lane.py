"""PartitionLane commits with a fake transactional producer: a commit cancelled half-way
leaves the window matching what the broker has (a CI run published a lead twice when the
commit loop was cancelled during shutdown while its transaction committed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from streamproc.processing.lane import PartitionLane
from streamproc.processing.outcome import Outcome, OutcomeKind, OutRecord


@dataclass
class _Record:
    offset: int
    topic: str = "raw"
    partition: int = 0
    timestamp: int = 0
    key: bytes | None = None
    value: bytes | None = b"{}"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class _Producer:
    """Commits take ``commit_s``; a commit, once begun, completes (as on the broker)."""

    def __init__(self, commit_s: float) -> None:
        self.commit_s = commit_s
        self.committed: list[list[bytes]] = []
        self._open: list[bytes] | None = None

    async def begin_transaction(self) -> None:
        self._open = []

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        assert self._open is not None
        self._open.append(kw["value"])
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        return None

    async def commit_transaction(self) -> None:
        opened, self._open = self._open, None
        assert opened is not None

        async def on_the_broker() -> None:
            await asyncio.sleep(self.commit_s)
            self.committed.append(opened)

        # aiokafka shields the wait for the commit's outcome the same way.
        await asyncio.shield(asyncio.ensure_future(on_the_broker()))

    async def abort_transaction(self) -> None:
        self._open = None


async def _enriched(record: Any) -> Outcome:
    out = OutRecord("enriched", None, f"lead-{record.offset}".encode())
    return Outcome(OutcomeKind.ENRICHED, [out], f"L{record.offset}", 1)


async def test_a_commit_cancelled_half_way_does_not_publish_its_prefix_again() -> None:
    producer = _Producer(commit_s=0.05)
    lane = PartitionLane(TopicPartition("raw", 0), producer, "g", 0)  # type: ignore[arg-type]
    for offset in range(3):
        lane.submit(_Record(offset), _enriched)
    await asyncio.sleep(0)
    committing = asyncio.ensure_future(lane.commit())
    await asyncio.sleep(0.01)  # inside commit_transaction
    committing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committing
    assert lane.committed_offset == 3 and len(lane) == 0
    assert await lane.commit() is None  # the final commit of a shutdown: nothing left
    await asyncio.sleep(0.1)
    assert producer.committed == [[b"lead-0", b"lead-1", b"lead-2"]]


class _Consumer:
    def __init__(self, tp: TopicPartition, committed: int) -> None:
        self._tp, self._committed = tp, committed
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {self._tp}

    async def committed(self, tp: TopicPartition) -> int:
        return self._committed

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def pause(self, *tps: TopicPartition) -> None:
        self.paused = set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused = set()


class _Stoppable(_Producer):
    async def stop(self) -> None:
        return None


async def test_a_failed_commit_reopens_the_lane_from_the_group_offset() -> None:
    """A commit that raised (a timeout) but committed on the broker: the new lane starts
    from the group's committed offset (8), not from the old lane's own belief (5)."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(Settings(), None)  # type: ignore[arg-type]
    lane = PartitionLane(tp, _Stoppable(0), "g", 5)  # type: ignore[arg-type]
    consumer = _Consumer(tp, committed=8)
    processor._lanes[tp] = lane
    processor._consumer = consumer  # type: ignore[assignment]

    async def new_producer(_: TopicPartition) -> Any:
        return _Stoppable(0)

    processor._start_producer = new_producer  # type: ignore[method-assign]
    await processor._stand_down(tp, lane, retry_in_s=0)
    assert tp not in processor._lanes and consumer.paused == {tp}
    await processor._reopen_due_lanes()
    reopened = processor._lanes[tp]
    assert reopened is not lane
    assert (reopened.committed_offset, reopened.position) == (8, 8)
    assert consumer.seeks == [(tp, 8)] and consumer.paused == set()


async def test_a_released_lead_ends_the_prefix_and_is_read_again() -> None:
    """A lead cancelled in the window (released from a hold at shutdown) has no outcome:
    the commit stops before it, so it and everything after it are read again."""
    producer = _Producer(commit_s=0)
    lane = PartitionLane(TopicPartition("raw", 0), producer, "g", 0)  # type: ignore[arg-type]

    async def held(record: Any) -> Outcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    lane.submit(_Record(0), _enriched)
    lane.submit(_Record(1), held)
    lane.submit(_Record(2), _enriched)
    await asyncio.sleep(0)
    lane._window[1].task.cancel()
    await asyncio.sleep(0)
    result = await lane.commit()
    assert result is not None and result.next_offset == 1
    assert producer.committed == [[b"lead-0"]]
