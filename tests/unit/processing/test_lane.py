"""PartitionLane commits with a fake transactional producer: a commit cancelled half-way
leaves the window matching what the broker has (a CI run published a lead twice when the
commit loop was cancelled during shutdown while its transaction committed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from streamproc.processing.config import ProcessorConfig
from streamproc.processing.lane import PartitionLane
from streamproc.records.outcome import Outcome, OutcomeKind, OutRecord


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
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
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


class _BatchingProducer(_Producer):
    """Records sent without waiting form one batch; a batch holding a value that starts
    with b"BIG" is refused whole, as the broker does, and after a refusal this producer's
    later sends fail out of sequence (as aiokafka's idempotent producer's do)."""

    def __init__(self) -> None:
        super().__init__(commit_s=0)
        self._batch: list[tuple[bytes, asyncio.Future[None]]] = []
        self.broken = False
        self.stopped = False

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        from aiokafka.errors import OutOfOrderSequenceNumber

        assert self._open is not None
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            delivery.set_exception(OutOfOrderSequenceNumber())
            return delivery
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._drain)
        self._batch.append((kw["value"], delivery))
        return delivery

    def _drain(self) -> None:
        from aiokafka.errors import MessageSizeTooLargeError

        batch, self._batch = self._batch, []
        refused = any(value.startswith(b"BIG") for value, _ in batch)
        for value, delivery in batch:
            if refused:
                delivery.set_exception(MessageSizeTooLargeError())
            else:
                assert self._open is not None
                self._open.append(value)
                delivery.set_result(None)
        self.broken = self.broken or refused

    async def stop(self) -> None:
        self.stopped = True


async def test_a_refused_output_is_dead_lettered_and_the_rest_published() -> None:
    """The broker refuses a batch holding one lead's oversized output: the lane finds that
    lead by sending one record per batch with a fresh producer, dead-letters it, and
    publishes every other lead once, all in the commit of the same prefix."""
    from streamproc.errors import LeadError
    from streamproc.processing.publication import Publication

    producers = [_BatchingProducer()]

    async def new_producer() -> Any:
        producers.append(_BatchingProducer())
        return producers[-1]

    def dead_letter(record: Any, error: LeadError, previous: Outcome | None) -> Outcome:
        out = OutRecord("dlq", None, b"dlq-%d" % record.offset)
        return Outcome(OutcomeKind.DLQ, [out], None, 1, error.error_class)

    lane = PartitionLane(
        TopicPartition("raw", 0),
        producers[0],  # type: ignore[arg-type]
        "g",
        0,
        publication=Publication("dlq", dead_letter, {}, default_limit=1_000_000),
        new_producer=new_producer,
    )

    async def output(record: Any) -> Outcome:
        value = b"BIG-%d" % record.offset if record.offset == 2 else b"lead-%d" % record.offset
        return Outcome(OutcomeKind.ENRICHED, [OutRecord("enriched", None, value)], None, 1)

    for offset in range(5):
        lane.submit(_Record(offset), output)
    await asyncio.sleep(0)
    result = await lane.commit()
    assert result is not None and result.next_offset == 5
    assert [o.error_class for _, o in result.outcomes] == [
        None,
        None,
        "output_too_large",
        None,
        None,
    ]
    committed = [v for producer in producers for txn in producer.committed for v in txn]
    assert committed == [b"lead-0", b"lead-1", b"dlq-2", b"lead-3", b"lead-4"]
    assert all(p.stopped for p in producers[:-1]) and not producers[-1].stopped


async def test_a_fenced_lane_stands_down_instead_of_fencing_back() -> None:
    """A commit fenced by another producer: the lane is dropped and its partition paused,
    and no new producer is started at once (it would fence the new owner back); the
    partition is retried only after the stand-down period."""
    from aiokafka.errors import ProducerFenced

    from streamproc.processing.processor import FENCED_STAND_DOWN_S, Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    lane = PartitionLane(tp, _Stoppable(0), "g", 5)  # type: ignore[arg-type]

    async def fenced() -> None:
        raise ProducerFenced()

    lane.commit = fenced  # type: ignore[assignment,method-assign]
    consumer = _Consumer(tp, committed=5)
    processor._lanes[tp] = lane
    processor._consumer = consumer  # type: ignore[assignment]
    started: list[TopicPartition] = []

    async def new_producer(tp: TopicPartition) -> Any:
        started.append(tp)
        return _Stoppable(0)

    processor._start_producer = new_producer  # type: ignore[method-assign]
    await processor._commit_lane(tp, lane)
    await processor._reopen_due_lanes()
    assert tp not in processor._lanes and consumer.paused == {tp}
    assert started == [] and processor.stats.fenced == 1
    loop = asyncio.get_running_loop()
    assert processor._reopen_at[tp] >= loop.time() + FENCED_STAND_DOWN_S - 1


async def test_a_lane_that_fails_to_open_in_the_rebalance_is_opened_later() -> None:
    """Starting the producer fails inside the rebalance callback (where aiokafka would
    swallow the error): the partition is paused, not forgotten, and a later pass opens it."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    consumer = _Consumer(tp, committed=3)
    processor._consumer = consumer  # type: ignore[assignment]
    attempts: list[int] = []

    async def flaky_producer(_: TopicPartition) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise AssertionError("producer in a bad state")
        return _Stoppable(0)

    processor._start_producer = flaky_producer  # type: ignore[method-assign]
    await processor._open_lanes([tp])
    assert tp not in processor._lanes and consumer.paused == {tp}
    processor._reopen_at[tp] = 0.0  # due now
    await processor._reopen_due_lanes()
    assert processor._lanes[tp].committed_offset == 3 and consumer.paused == set()


async def test_a_commit_failing_with_a_non_kafka_error_keeps_the_lane_and_backs_off() -> None:
    """aiokafka reports a broken producer as AssertionError or IllegalOperation: the lane
    stays (its window kept), its fetching is paused, and the next try waits a backoff."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    lane = PartitionLane(tp, _Stoppable(0), "g", 2)  # type: ignore[arg-type]

    async def broken() -> None:
        raise AssertionError("Need at least one: key or value")

    lane.commit = broken  # type: ignore[assignment,method-assign]
    processor._lanes[tp] = lane
    consumer = _Consumer(tp, committed=2)
    processor._consumer = consumer  # type: ignore[assignment]
    await processor._commit_lane(tp, lane)
    assert processor._lanes[tp] is lane and processor.stats.aborted_transactions == 1
    assert lane.backoff.failures == 1 and lane.paused and consumer.paused == {tp}
    await processor._commit_lane(tp, lane)  # not due yet: no second try
    assert lane.backoff.failures == 1


def _submit_counted(processor: Any, lane: PartitionLane, count: int) -> list[int]:
    """Leads 0 to ``count - 1`` submitted to ``lane``; the list of offsets each time one's
    enrichment runs (a lead run twice shows twice)."""
    runs: list[int] = []

    async def enrich(record: Any) -> Outcome:
        runs.append(record.offset)
        return await _enriched(record)

    for offset in range(count):
        processor._submit(lane, _Record(offset), enrich)
    return runs


class _FailingProducer(_Stoppable):
    """Every commit raises (an ACL taken away): the transaction is aborted."""

    def __init__(self, failing: asyncio.Event) -> None:
        super().__init__(0)
        self.failing = failing

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        from aiokafka.errors import TopicAuthorizationFailedError

        if self.failing.is_set():
            raise TopicAuthorizationFailedError()
        return await super().send(topic, **kw)


async def test_a_persistent_commit_failure_never_runs_a_lead_again() -> None:
    """Commits failing round after round: each lead was processed once, the retries wait
    longer each time, and when the failure lifts the kept outcomes are published once."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(
        ProcessorConfig.from_settings(Settings(lane_retry_initial_s=0.01, lane_retry_max_s=0.04)),  # type: ignore[call-arg]
        None,  # type: ignore[arg-type]
    )
    failing = asyncio.Event()
    failing.set()
    producers: list[_FailingProducer] = []

    async def new_producer() -> Any:
        producers.append(_FailingProducer(failing))
        return producers[-1]

    consumer = _Consumer(tp, committed=0)

    async def read_committed() -> int:
        return await consumer.committed(tp)

    first = await new_producer()
    lane = PartitionLane(
        tp, first, "g", 0, new_producer=new_producer, read_committed=read_committed
    )
    lane.backoff.initial_s, lane.backoff.max_s = 0.01, 0.04
    processor._lanes[tp] = lane
    processor._consumer = consumer  # type: ignore[assignment]
    runs = _submit_counted(processor, lane, 3)
    await asyncio.sleep(0)
    delays = []
    loop = asyncio.get_running_loop()
    while len(delays) < 4:
        await processor._commit_lane(tp, lane)
        if lane.backoff.failures > len(delays):
            delays.append(lane.backoff.retry_at - loop.time())
        await asyncio.sleep(0.005)
    assert delays[0] < delays[1] < delays[2] and delays[3] <= 0.04
    assert processor._lanes[tp] is lane and len(lane) == 3 and runs == [0, 1, 2]
    failing.clear()
    while lane.backoff.failures:
        await processor._commit_lane(tp, lane)
        await asyncio.sleep(0.005)
    assert runs == [0, 1, 2] and processor.stats.committed == 3
    published = [v for p in producers for txn in p.committed for v in txn]
    assert published == [b"lead-0", b"lead-1", b"lead-2"]
    assert not lane.paused and consumer.paused == set()


async def test_a_failed_commit_that_did_commit_is_not_published_again() -> None:
    """A commit raised but went through on the broker: after the new producer fenced the
    old one the group's offset says so, and those leads leave the window unpublished."""
    tp = TopicPartition("raw", 0)
    consumer = _Consumer(tp, committed=0)
    producers: list[_Stoppable] = [_Stoppable(0)]

    async def new_producer() -> Any:
        producers.append(_Stoppable(0))
        return producers[-1]

    async def read_committed() -> int:
        return await consumer.committed(tp)

    lane = PartitionLane(
        tp,
        producers[0],
        "g",
        0,
        new_producer=new_producer,
        read_committed=read_committed,  # type: ignore[arg-type]
    )
    for offset in range(4):
        lane.submit(_Record(offset), _enriched)
    await asyncio.sleep(0)
    consumer._committed = 2  # what the "failed" commit really published (leads 0 and 1)
    recovered = await lane.restart()
    assert recovered is not None and [r.offset for r, _ in recovered.outcomes] == [0, 1]
    assert lane.committed_offset == 2 and len(lane) == 2
    result = await lane.commit()
    assert result is not None and result.next_offset == 4
    assert producers[-1].committed == [[b"lead-2", b"lead-3"]]


async def test_a_zombie_that_replaced_its_producer_does_not_publish_its_window() -> None:
    """After a refused output the lane starts a new producer; if the group's offset has
    moved past the lane's meanwhile (another owner committed), it raises instead of
    publishing its stale window over the new owner's."""
    from streamproc.errors import LeadError, PartitionSuperseded
    from streamproc.processing.publication import Publication

    tp = TopicPartition("raw", 0)
    consumer = _Consumer(tp, committed=0)
    producers = [_BatchingProducer()]

    async def new_producer() -> Any:
        consumer._committed = 7  # the real owner committed while we were away
        producers.append(_BatchingProducer())
        return producers[-1]

    async def read_committed() -> int:
        return await consumer.committed(tp)

    def dead_letter(record: Any, error: LeadError, previous: Outcome | None) -> Outcome:
        out = OutRecord("dlq", None, b"dlq-%d" % record.offset)
        return Outcome(OutcomeKind.DLQ, [out], None, 1, error.error_class)

    lane = PartitionLane(
        tp,
        producers[0],  # type: ignore[arg-type]
        "g",
        0,
        publication=Publication("dlq", dead_letter, {}, default_limit=1_000_000),
        new_producer=new_producer,
        read_committed=read_committed,
    )

    async def output(record: Any) -> Outcome:
        value = b"BIG" if record.offset == 1 else b"lead-%d" % record.offset
        return Outcome(OutcomeKind.ENRICHED, [OutRecord("enriched", None, value)], None, 1)

    for offset in range(3):
        lane.submit(_Record(offset), output)
    await asyncio.sleep(0)
    with pytest.raises(PartitionSuperseded):
        await lane.commit()
    assert all(p.committed == [] for p in producers)


async def test_a_fence_in_a_round_with_refusals_is_raised() -> None:
    """A batch refused and another fenced in the same round: the fence is raised (the
    lane stands down) rather than hidden behind the refusal."""
    from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced

    from streamproc.kafka.client import send_all

    class _Mixed:
        async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
            delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            error = MessageSizeTooLargeError() if kw["value"] == b"big" else ProducerFenced()
            delivery.set_exception(error)
            return delivery

    records = [OutRecord("enriched", None, b"big"), OutRecord("enriched", None, b"ok")]
    with pytest.raises(ProducerFenced):
        await send_all(_Mixed(), records)  # type: ignore[arg-type]


async def test_a_stand_down_racing_a_rebalance_leaves_the_new_lane_unpaused() -> None:
    """A lane stands down; while its producer stops, a rebalance opens a new lane for the
    partition: the stand-down must not pause the new lane's partition afterwards."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    consumer = _Consumer(tp, committed=4)
    consumer.paused = set()
    processor._consumer = consumer  # type: ignore[assignment]
    stopping = asyncio.Event()

    class _SlowStop(_Stoppable):
        async def stop(self) -> None:
            await stopping.wait()

    old = PartitionLane(tp, _SlowStop(0), "g", 4)  # type: ignore[arg-type]
    processor._lanes[tp] = old

    async def new_producer(_: TopicPartition) -> Any:
        return _Stoppable(0)

    processor._start_producer = new_producer  # type: ignore[method-assign]
    standing_down = asyncio.ensure_future(processor._stand_down(tp, old, retry_in_s=0))
    await asyncio.sleep(0.01)
    await processor._open_lanes([tp])  # the rebalance, while the old producer stops
    assert processor._lanes[tp] is not old and consumer.paused == set()
    stopping.set()
    await standing_down
    assert consumer.paused == set() and tp not in processor._reopen_at


class _IdleConsumer:
    """A partition with records behind (end offset 20) that the consumer keeps paused."""

    def __init__(self, tp: TopicPartition) -> None:
        self._tp = tp
        self.paused_tps = {tp}
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {self._tp}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 20)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


async def test_a_partition_left_paused_with_lag_is_reported_and_resumed() -> None:
    """Lag 9, nothing in flight, no progress: the watch reports the partition stalled (on
    the lane status too) and resumes its fetching where its lane is."""
    from streamproc.processing.processor import Processor
    from streamproc.processing.stalled_partitions import StallWatch
    from streamproc.settings import Settings

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    processor._stall = StallWatch(after_s=0)  # no progress for "long enough" at once
    consumer = _IdleConsumer(tp)
    processor._consumer = consumer  # type: ignore[assignment]
    processor._lanes[tp] = PartitionLane(tp, _Stoppable(0), "g", 11)  # type: ignore[arg-type]
    assert await processor.check_stalls() == [0]
    assert consumer.seeks == [(tp, 11)] and consumer.paused_tps == set()
    assert processor.stats.stalls == 1 and list(processor.stalled()) == [0]
    (status,) = processor.lane_status()
    assert status.stalled_s is not None and status.in_flight == 0
    assert await processor.check_stalls() == []  # reported once, not on every look


async def test_a_rebalance_callback_opens_lanes_without_waiting_for_them() -> None:
    """The assignment callback returns at once with the new partitions paused; their lanes
    open in the background, and a lane opened meanwhile is put back at its position."""
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    tp0, tp1 = TopicPartition("raw", 0), TopicPartition("raw", 1)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    consumer = _Consumer(tp0, committed=3)
    consumer.assignment = lambda: {tp0, tp1}  # type: ignore[method-assign]
    processor._consumer = consumer  # type: ignore[assignment]
    opened = PartitionLane(tp1, _Stoppable(0), "g", 7)  # type: ignore[arg-type]
    processor._lanes[tp1] = opened
    release = asyncio.Event()

    async def slow_producer(_: TopicPartition) -> Any:
        await release.wait()  # a coordinator that takes its time
        return _Stoppable(0)

    processor._start_producer = slow_producer  # type: ignore[method-assign]
    processor._assigned({tp0, tp1})
    assert consumer.paused == {tp0} and (tp1, 7) in consumer.seeks
    assert tp0 not in processor._lanes
    release.set()
    while tp0 not in processor._lanes:
        await asyncio.sleep(0)
    assert processor._lanes[tp0].committed_offset == 3 and (tp0, 3) in consumer.seeks


class _SizeLimitedProducer(_Producer):
    """Refuses, as the broker does, each record over its topic's real limit (one batch per
    record); after a refusal its later sends fail out of sequence."""

    def __init__(self, limits: dict[str, int]) -> None:
        super().__init__(commit_s=0)
        self.limits = limits
        self.broken = False

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber

        from streamproc.records.dlq import record_size

        assert self._open is not None
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broken:
            delivery.set_exception(OutOfOrderSequenceNumber())
        elif record_size(kw["key"], kw["value"], kw["headers"] or []) > self.limits[topic]:
            self.broken = True
            delivery.set_exception(MessageSizeTooLargeError())
        else:
            self._open.append(kw["value"])
            delivery.set_result(None)
        return delivery

    async def stop(self) -> None:
        return None


def _limited_lane(
    real_limits: dict[str, int], producers: list[_SizeLimitedProducer]
) -> PartitionLane:
    from streamproc.errors import LeadError
    from streamproc.processing.publication import Publication

    async def new_producer() -> Any:
        # A lane that starts producers without end is the defect: stop it here, loudly.
        assert len(producers) < 500, "the lane replaces its producer in a loop"
        producers.append(_SizeLimitedProducer(real_limits))
        return producers[-1]

    def dead_letter(record: Any, error: LeadError, previous: Outcome | None) -> Outcome:
        headers = [("streamproc.original.offset", str(record.offset).encode())]
        out = OutRecord("dlq", b"k" * 50_000, b"v" * 50_000, headers)
        return Outcome(OutcomeKind.DLQ, [out], None, 1, error.error_class)

    producers.append(_SizeLimitedProducer(real_limits))
    return PartitionLane(
        TopicPartition("raw", 0),
        producers[0],  # type: ignore[arg-type]
        "g",
        0,
        # Limits as read at start-up: far above what the topics really take.
        publication=Publication("dlq", dead_letter, {}, default_limit=1_000_000),
        new_producer=new_producer,
    )


async def _large_output(record: Any) -> Outcome:
    value = b"x" * 200_000 if record.offset == 1 else b"lead-%d" % record.offset
    return Outcome(OutcomeKind.ENRICHED, [OutRecord("enriched", None, value)], None, 1)


async def test_a_dlq_record_refused_for_its_size_is_cut_until_it_fits_in_a_few_rounds() -> None:
    """The DLQ takes far less than its limit said (5 kB): the lead's DLQ record is cut
    again in a few rounds (not a byte at a time) and every lead leaves once."""
    producers: list[_SizeLimitedProducer] = []
    lane = _limited_lane({"enriched": 100_000, "dlq": 5_000}, producers)
    for offset in range(3):
        lane.submit(_Record(offset), _large_output)
    await asyncio.sleep(0)
    result = await lane.commit()
    assert result is not None and result.next_offset == 3
    assert [o.kind for _, o in result.outcomes] == ["enriched", "dlq", "enriched"]
    assert len(producers) <= 12
    (dlq,) = result.outcomes[1][1].records
    assert dict(dlq.headers)["streamproc.key.truncated"] == b"true"


async def test_outputs_refused_round_after_round_give_up_the_commit_within_a_bound() -> None:
    """A DLQ that refuses even a minimal record (a 100-byte limit): the lane gives up the
    commit after a bounded number of rounds, with its own error, instead of starting
    producers for ever."""
    from streamproc.processing.lane import EXTRA_REFUSAL_ROUNDS, RefusedTooOften

    producers: list[_SizeLimitedProducer] = []
    lane = _limited_lane({"enriched": 100_000, "dlq": 100}, producers)
    for offset in range(3):
        lane.submit(_Record(offset), _large_output)
    await asyncio.sleep(0)
    with pytest.raises(RefusedTooOften):
        await lane.commit()
    assert len(producers) == 1 + 2 * 3 + EXTRA_REFUSAL_ROUNDS
    assert lane.committed_offset == 0 and len(lane) == 3


class _StuckProducer(_Stoppable):
    """A commit that never ends (a coordinator that does not answer)."""

    async def commit_transaction(self) -> None:
        await asyncio.Event().wait()


def _two_lanes() -> tuple[Any, PartitionLane, PartitionLane, _Stoppable]:
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    processor = Processor(ProcessorConfig.from_settings(Settings(commit_interval_ms=20)), None)  # type: ignore[arg-type]
    stuck_tp, well_tp = TopicPartition("raw", 0), TopicPartition("raw", 1)
    well_producer = _Stoppable(0)
    stuck = PartitionLane(stuck_tp, _StuckProducer(0), "g", 0)  # type: ignore[arg-type]
    well = PartitionLane(well_tp, well_producer, "g", 0)  # type: ignore[arg-type]
    processor._lanes.update({stuck_tp: stuck, well_tp: well})
    return processor, stuck, well, well_producer


async def _until(condition: Any, what: str) -> None:
    for _ in range(1_000):  # 10 s: generous for a fake producer
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_stuck_lane_never_keeps_another_partition_from_committing() -> None:
    """One lane's commit never ends: the other partition's leads keep committing, round
    after round, while it hangs."""
    processor, stuck, well, well_producer = _two_lanes()
    stuck.submit(_Record(0), _enriched)
    well.submit(_Record(0, partition=1), _enriched)
    loop_task = asyncio.ensure_future(processor._commit_loop())
    try:
        await _until(lambda: well.committed_offset == 1, "the first commit")
        well.submit(_Record(1, partition=1), _enriched)
        await _until(lambda: well.committed_offset == 2, "a commit while the other hangs")
        assert stuck.committed_offset == 0
        assert well_producer.committed == [[b"lead-0"], [b"lead-1"]]
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await processor.stop(grace_s=0)


class _UndeliveredProducer(_Stoppable):
    """Its records are never delivered (aiokafka waiting for ever for metadata whose
    task died); its stop hangs too, as aiokafka's does on such a producer."""

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_a_commit_without_an_answer_is_cut_and_its_window_published_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit that gets no answer ends at the transaction timeout as a failed commit;
    the retry's new producer publishes the window once (the stuck producer's stop given
    up at its bound), and no lead is run again."""
    from streamproc.kafka import client
    from streamproc.processing.processor import Processor
    from streamproc.settings import Settings

    monkeypatch.setattr(client, "STOP_TIMEOUT_S", 0.2)

    tp = TopicPartition("raw", 0)
    processor = Processor(ProcessorConfig.from_settings(Settings()), None)  # type: ignore[arg-type]
    consumer = _Consumer(tp, committed=0)
    producers: list[_Stoppable] = []

    async def new_producer() -> Any:
        producers.append(_Stoppable(0))
        return producers[-1]

    async def read_committed() -> int:
        return await consumer.committed(tp)

    lane = PartitionLane(
        tp,
        _UndeliveredProducer(0),  # type: ignore[arg-type]
        "g",
        0,
        new_producer=new_producer,
        read_committed=read_committed,
        commit_timeout_s=0.2,
    )
    lane.backoff.initial_s = 0.01
    processor._lanes[tp] = lane
    processor._consumer = consumer  # type: ignore[assignment]
    runs = _submit_counted(processor, lane, 2)
    await asyncio.sleep(0)
    await asyncio.wait_for(processor._commit_lane(tp, lane), timeout=10)
    assert processor.stats.commit_failures == 1 and len(lane) == 2 and lane.paused
    await asyncio.sleep(0.02)  # the backoff
    await asyncio.wait_for(processor._commit_lane(tp, lane), timeout=10)
    assert lane.backoff.failures == 0 and lane.committed_offset == 2
    assert [v for p in producers for txn in p.committed for v in txn] == [b"lead-0", b"lead-1"]
    assert runs == [0, 1] and processor.stats.committed == 2


async def test_stop_leaves_within_its_grace_whatever_a_lane_is_doing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop with a lane whose commit never ends: the commit is cut short after the
    grace and the final-commit allowance, the other lane's final commit is made, and
    stop returns."""
    from streamproc.processing import processor as module

    monkeypatch.setattr(module, "FINAL_COMMIT_S", 0.2)
    processor, stuck, well, well_producer = _two_lanes()
    stuck.submit(_Record(0), _enriched)
    well.submit(_Record(0, partition=1), _enriched)
    await asyncio.sleep(0)
    await processor.commit_all(wait_s=0.05)
    well.submit(_Record(1, partition=1), _enriched)
    await asyncio.wait_for(processor.stop(grace_s=0.2), timeout=30)
    assert processor._lanes == {}
    assert well_producer.committed == [[b"lead-0"], [b"lead-1"]]
    assert stuck.committed_offset == 0
